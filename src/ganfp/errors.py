"""Errors a user can act on. The CLI prints their message as one line and exits with `exit_code`.

Anything else that escapes is a bug and keeps its traceback.
"""

import contextlib
from typing import Iterator


class GanfpError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code = 1


class InputError(GanfpError):
    """Bad input: a missing or malformed file, an unknown name, an invalid option (exit 2)."""

    exit_code = 2


class RuntimeFailure(GanfpError):
    """The input was fine but the work failed: no network, out of memory, interrupted (exit 1)."""

    exit_code = 1


class WeightsUnavailable(RuntimeFailure):
    """ImageNet weights neither cached nor downloadable (exit 1).

    Raised where the weights load, which cannot tell which command asked for them: the message ends with
    a way round that fits the trainer's --init, and a command that offers another way says so with `instead`.
    """

    def __init__(self, problem: str, hint: str):
        super().__init__(f"{problem}; {hint}")
        self.problem = problem

    def instead(self, hint: str) -> "WeightsUnavailable":
        return WeightsUnavailable(self.problem, hint)


@contextlib.contextmanager
def weights_hint(hint: str) -> Iterator[None]:
    """Within it, missing ImageNet weights end with `hint`: what the running command offers instead."""
    try:
        yield
    except WeightsUnavailable as exc:
        raise exc.instead(hint) from None


class Interrupted(GanfpError):
    """Training stopped by Ctrl-C or a termination signal: the message says which checkpoint to go on from.

    Exit 128 + the signal's number, as a shell reports a process a signal ended: 130 for Ctrl-C (SIGINT),
    143 for SIGTERM.
    """

    exit_code = 130

    def __init__(self, message: str = "interrupted", exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class StopSignal(BaseException):
    """SIGINT or SIGTERM while a CLI command runs, raised by its signal handler with the one line to print.

    A BaseException, as KeyboardInterrupt is: an `except Exception` (a decoder's, a download's) must not
    swallow the user's Ctrl-C. Exit 128 + the signal's number (130, 143).
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
