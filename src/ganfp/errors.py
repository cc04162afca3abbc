"""Errors a user can act on. The CLI prints their message as one line and exits with `exit_code`.

Anything else that escapes is a bug and keeps its traceback.
"""


class GanfpError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code = 1


class InputError(GanfpError):
    """Bad input: a missing or malformed file, an unknown name, an invalid option (exit 2)."""

    exit_code = 2


class RuntimeFailure(GanfpError):
    """The input was fine but the work failed: no network, out of memory, interrupted (exit 1)."""

    exit_code = 1


class Interrupted(GanfpError):
    """Ctrl-C during training: the last good checkpoint is kept and the message says how to resume (exit 130)."""

    exit_code = 130
