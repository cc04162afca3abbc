"""Every `$ ganfp ...` line of a ```console block in README.md and docs/*.md parses as the CLI would parse it.

Console blocks show commands with their output, and commands that cannot run here (downloads, Kaggle,
ImageCLEF registration data), so test_docs_commands.py does not run them. Nothing else read them: a renamed
option, a dropped choice or a dataset renamed in the registry would leave the docs wrong. Each line is parsed
by the real click command, without running it: click type-converts every option and refuses an unknown option,
a missing argument or a bad value, and a `fetch-data` line's dataset (and `--via` route) must be in the
registry that `ganfp fetch-data --list` reads.

Parsing runs the parameter callbacks (ganfp.cli.options). They only check values: the data-root ones look at
the folder (`check_writable` creates nothing), none writes or goes on the network. The data root and the
working folder are a temporary folder here, so the checks do not depend on this machine, and the test
asserts that parsing left that folder empty.
"""

from __future__ import annotations

import re
import shlex

import pytest
import typer.main
from helpers.docs import fenced_blocks

from ganfp.cli import app, click_errors, usage_error
from ganfp.errors import GanfpError
from ganfp.fetch.registry import DATASETS

PROMPT = re.compile(r"^\$\s+(ganfp(?:\s.*)?)$")


def console_commands() -> list[tuple[str, int, str]]:
    """(doc, line number, text after the `$ `) of every `$ ganfp` line of every ```console block; output lines,
    comment-only lines (`$ # ...`) and other programs (`$ pip install ...`) are left out."""
    found = []
    for doc, first, code in fenced_blocks("console"):
        for offset, line in enumerate(code.splitlines()):
            match = PROMPT.match(line)
            if match:
                found.append((doc, first + offset, match.group(1)))
    return found


COMMANDS = console_commands()


def parse(args: list[str]):
    """The command's context after click parsed `args` (no `ganfp`) as `ganfp ARGS` would, without invoking it."""
    group = typer.main.get_command(app)
    ctx = group.make_context("ganfp", args)
    first = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args  # click < 8.2
    name, command, rest = group.resolve_command(ctx, [*first, *ctx.args])
    return command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("line", [pytest.param(c, id=f"{c[0]}:{c[1]}") for c in COMMANDS])
def test_documented_console_command_parses(line, tmp_path, monkeypatch):
    doc, number, command = line
    monkeypatch.setenv("GANFP_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GANFP_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    where = f"{doc}:{number}: `{command}`"
    try:
        args = shlex.split(command, comments=True)[1:]  # the shell's quotes, escapes (`\&`) and `# comment`
    except ValueError as exc:
        pytest.fail(f"{where}: not a shell command line: {exc}")
    try:
        ctx = parse(args)
    except click_errors.UsageError as exc:
        pytest.fail(f"{where}: {usage_error(exc)}")
    except GanfpError as exc:  # a callback refusing the value, as the CLI would
        pytest.fail(f"{where}: {exc}")
    if ctx.info_name == "fetch-data" and ctx.params["name"] is not None:
        name, via = ctx.params["name"], ctx.params["via"]
        assert name in DATASETS, f"{where}: unknown dataset {name!r}; the registry has: {', '.join(DATASETS)}"
        assert via is None or DATASETS[name].route(via), f"{where}: {name} has no route {via!r}"
    assert not any(tmp_path.iterdir()), f"{where}: parsing wrote {sorted(tmp_path.rglob('*'))}"


def test_the_docs_show_console_commands():
    """A changed fence or prompt would otherwise leave this module testing nothing, and passing."""
    assert COMMANDS, "no `$ ganfp` lines found in ```console blocks"
