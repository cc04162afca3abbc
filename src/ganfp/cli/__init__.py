"""Command line: parses arguments and prints; all the work happens in the library."""

from __future__ import annotations

import sys

from ganfp import ui
from ganfp.cli.app import app
from ganfp.errors import GanfpError

# Each module registers its commands on `app`.
from ganfp.cli import data, train, evaluate, classify  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: a user mistake prints one line and exits 2, a runtime failure exits 1."""
    try:
        app(args=argv, standalone_mode=False)
    except GanfpError as exc:
        ui.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        ui.error("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's own usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(0)
