"""Command line: parses arguments and prints; all the work happens in the library.

Nothing heavy (torch, numpy) is imported here or at the top of a command module: `ganfp --help`
and `ganfp fetch-data --list` stay fast. Each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import sys
import threading
from typing import Iterator, NoReturn

import typer

try:  # typer >= 0.29 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as click_errors

from ganfp import ui
from ganfp.cli.app import app

# isort: off
# Each module registers its commands on `app`, in the order `ganfp --help` lists them.
from ganfp.cli import data, train, evaluate, classify, models, attribute  # noqa: E402,F401
# isort: on
from ganfp.errors import GanfpError, StopSignal

NO_ARGS_IS_HELP = getattr(click_errors, "NoArgsIsHelpError", ())  # click >= 8.2


# An option of one command given to the other: a user who continued a stage with `train-stage --resume` tries it on
# the chain. (command, option) -> what does that there.
OTHER_COMMANDS_OPTIONS = {
    ("chain", "--resume"): "a chain continues its interrupted stage and skips its finished ones when simply run "
                           "again with the same options",
    ("chain", "--force"): "--from-stage STAGE trains that stage and every one after it again",
    ("train-stage", "--from-stage"): "--from-stage is a chain option; train-stage trains the one stage in --out "
                                     "(--force trains over a stage already there)",
}


def usage_error(exc: click_errors.UsageError) -> str:
    """Click's usage error as one line: the problem, what does it instead when it is another command's option, then
    where the help is."""
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    command = exc.ctx.info_name if exc.ctx is not None else None
    instead = OTHER_COMMANDS_OPTIONS.get((command, getattr(exc, "option_name", None)))
    if isinstance(exc, click_errors.NoSuchOption) and instead:
        return f"{exc.format_message()}; {instead}{where}"
    return f"{exc.format_message()}{where}"


SIGNALS = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM"}


def _interrupt(signum: int, frame) -> None:
    """Ctrl-C or SIGTERM as an exception: `finally` blocks remove temporary files and release locks.

    Not a KeyboardInterrupt: typer turns that into a silent exit 130, with no word of what happened.
    """
    name = signal.Signals(signum).name
    raise StopSignal(f"interrupted by {SIGNALS.get(name, name)}; an output not finished keeps its previous content",
                     128 + signum)


@contextlib.contextmanager
def signals_as_errors() -> Iterator[None]:
    """Within it, SIGINT and SIGTERM raise `StopSignal` (main thread only; the old handlers come back after).

    SIGTERM's default would end the process at once (a scheduler's time limit, `kill`, `docker stop`),
    leaving its temporary files behind and saying nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in SIGNALS:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:  # nohup's SIGINT stays ignored
            previous[number] = signal.signal(number, _interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _ReaderGone(Exception):
    """A BrokenPipeError carried past click's main, which takes one (an OSError of errno EPIPE) for its own exit 1:
    that wraps sys.stdout and leaves its descriptor, and the bytes buffered for it, to fail again at exit."""


def _past_click(method):
    """`method` of the command (make_context prints --help and --version, invoke runs the command) with a closed
    pipe raised as `_ReaderGone`, for `main`'s one handler."""

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except BrokenPipeError as exc:
            raise _ReaderGone() from exc

    return call


def _reader_left() -> bool:
    """Whether the reader of stdout or stderr has closed its end: a BrokenPipeError of another pipe is no quiet exit.
    Where poll cannot tell (Windows), it is taken for the reader's."""
    poll = getattr(select, "poll", None)
    if poll is None:
        return True
    for stream in (sys.stdout, sys.stderr):
        try:
            watch = poll()
            watch.register(stream.fileno(), select.POLLOUT)
            if any(events & (select.POLLERR | select.POLLHUP) for _, events in watch.poll(0)):
                return True
        except (AttributeError, OSError, ValueError):  # a stream without a descriptor (the tests' capture)
            continue
    return False


def _reader_gone() -> NoReturn:
    """The reader of stdout or stderr went away (`ganfp ... --json | head -1`): exit 1, quietly, as the Python docs
    recommend (signal module, "Note on SIGPIPE"). What is still to be written, and Python's flush of it at exit, goes
    to os.devnull: no "Exception ignored ... BrokenPipeError". An output file is whole or not written, as on a
    signal: the files are written before the result is printed, and a message that fails half-way through the work
    leaves it through `written_together`, which keeps the previous content."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # a stream without a descriptor (the tests' capture)
            continue
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Every error is one line: a usage error or an InputError exits 2, a RuntimeFailure 1,
    an interruption 128 + the signal (130 Ctrl-C, 143 SIGTERM). A reader of the output that went away (a pipe
    closed early) ends it silently with 1.

    Anything else is a bug and keeps its traceback.
    """
    try:
        try:
            with ui.collecting_warnings():
                _run(argv)
        finally:  # what is buffered is written here, where a closed pipe is caught, not in Python's flush at exit
            sys.stdout.flush()
            sys.stderr.flush()
    except (BrokenPipeError, _ReaderGone) as exc:
        if not _reader_left():  # another pipe's (a worker's): a bug, which keeps its traceback
            raise (exc.__cause__ if isinstance(exc, _ReaderGone) else exc) from None
        _reader_gone()


def _run(argv: list[str] | None) -> None:
    ui.show_library_lines()
    command = typer.main.get_command(app)
    command.make_context = _past_click(command.make_context)
    command.invoke = _past_click(command.invoke)
    try:
        with signals_as_errors():
            code = command.main(args=argv, prog_name="ganfp", standalone_mode=False)
    except NO_ARGS_IS_HELP as exc:  # `ganfp` alone: the help, as click prints it
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        ui.error(usage_error(exc))
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:  # e.g. a file click itself could not open
        ui.error(exc.format_message())
        sys.exit(exc.exit_code)
    except (GanfpError, StopSignal) as exc:
        ui.error(str(exc))
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        ui.error("interrupted")
        sys.exit(130)
    if isinstance(code, int) and code != 0:
        sys.exit(code)
