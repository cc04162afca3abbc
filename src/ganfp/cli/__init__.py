"""Command line: parses arguments and prints; all the work happens in the library."""

from __future__ import annotations

import sys

from ganfp import ui
from ganfp.cli.app import app
from ganfp.errors import GanfpError

# Each module registers its commands on `app`.
from ganfp.cli import data, train, evaluate, classify, models, attribute  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Click reports usage errors itself (exit 2); a GanfpError prints one line and
    exits with its code (2 for input, 1 for runtime failures); anything else is a bug and keeps its traceback."""
    try:
        app(args=argv, prog_name="ganfp")
    except GanfpError as exc:
        ui.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        ui.error("interrupted")
        sys.exit(130)
