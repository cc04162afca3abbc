"""Errors a user can act on. The CLI prints their message as one line and exits with `exit_code`.

Anything else that escapes is a bug and keeps its traceback.
"""

import contextlib
import dataclasses
import math
import numbers
import os
from typing import Iterator


class GanfpError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code = 1


class InputError(GanfpError):
    """Bad input: a missing or malformed file, an unknown name, an invalid option (exit 2)."""

    exit_code = 2


class ArgumentError(InputError, ValueError):
    """A bad value given to a function of arrays (`ganfp.metrics`, the membership scorers' lower-level pieces): an
    InputError, as every bad argument from Python is, and a ValueError, as numpy's and scikit-learn's are and as
    those functions raised before."""


class UnreadableImage(InputError):
    """An image file that cannot be decoded, named in the message: a caller reading several sets adds which one."""


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


def shown(value, limit: int = 60) -> str:
    """`value`'s repr for a one-line message, cut at `limit` characters: a list of a thousand ids is no line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def of_option(option: str, value, exc: InputError) -> InputError:
    """`exc` said of the option that gave `value`, led by the value once: a command that reads several image sets
    names the one at fault, and a dataset spec's errors name no value (`--train unknown demo part 'x'`, `--real
    dataset imageclef-gans-2023 is not in ...`) while a file's start with its path (`--real r.csv: is a file`)."""
    text = str(exc)
    return InputError(f"{option} {text}" if text.startswith(f"{value}:") else f"{option} {value}: {text}")


def count(n: int, noun: str) -> str:
    """`1 image`, `2 images`: a message about one file should not read "1 images are not listed"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def require_int(name: str, value, low: int | None = None, high: int | None = None) -> None:
    """`value` is a whole number in [low, high], else one InputError naming `name`.

    The CLI's options check this before a library call; from Python, `k=2.5` or `k="5"` would
    otherwise fail deep inside torch or numpy with a message that names neither the argument nor the fix.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name}={value!r}: must be a whole number, not {type(value).__name__}")
    if low is not None and value < low:
        raise InputError(f"{name}={value}: must be at least {low}")
    if high is not None and value > high:
        raise InputError(f"{name}={value}: must be at most {high}")


def plain_number(value):
    """numpy's int and float scalars as Python's int and float; anything else as it is.

    From a notebook `np.arange(...)` and `df.k.max()` hand over numpy scalars, which the checks accept as numbers but
    which then leak: a results dict `json.dumps` refuses (`int64 is not JSON serializable`), a digest of "16" instead
    of 16, and `np.int64(16)` in a cached .npy header that numpy itself cannot read back.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or type(value) in (int, float):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def plain_numbers(config) -> None:
    """A dataclass's numpy number fields made Python numbers, in place (a frozen one's too): its `__post_init__`."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        plain = plain_number(value)
        if plain is not value:
            object.__setattr__(config, f.name, plain)


MAX_SEED = 2**32 - 1  # numpy's seed range (RandomState, scikit-learn's random_state), which the CLI's --seed takes


def require_seed(name: str, value) -> None:
    """`value` is a seed every random step takes, 0 to MAX_SEED, else one InputError naming `name`: from Python a
    `seed=-1` failed inside numpy ("expected non-negative integer"), a `seed=1.5` as a TypeError, and a seed past
    2**32 - 1 drew demo data no `--seed` can reproduce."""
    require_int(name, value, low=0, high=MAX_SEED)


def require_text(name: str, value) -> None:
    """`value` is a str (a name, a spec), else one InputError naming `name`: from Python `features=32` failed in
    `re` or `str.strip` with a TypeError or an AttributeError that named neither the argument nor the fix."""
    if not isinstance(value, str):
        raise InputError(f"{name}={value!r}: must be text (a str), not {type(value).__name__}")


def require_callable(name: str, value, arguments: str, optional: bool = True) -> None:
    """`value` is a callable (or None when `optional`), else one InputError naming `name`: from Python an
    `observer=print_epoch()` (its result, not the function) failed as "'NoneType' object is not callable" at the first
    epoch, after the stage's images were read and its folder locked. `arguments` says what it is called with."""
    if (value is None and optional) or callable(value):
        return
    alone = ", or None" if optional else ""
    raise InputError(f"{name}={shown(value)}: must be a function, called as {name}{arguments}{alone}")


def require_flag(name: str, value) -> None:
    """`value` is True or False, else one InputError naming `name`: `resume="no"` is true, so it resumed."""
    if not isinstance(value, bool):
        raise InputError(f"{name}={shown(value)}: must be True or False, not {type(value).__name__}")


def require_number(name: str, value) -> None:
    """`value` is a finite real number (an int or a float, numpy's too), else one InputError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{name}={value!r}: must be a finite number")


def require_path(name: str, value, optional: bool = False) -> None:
    """`value` is a path, a str or an os.PathLike such as pathlib.Path (or None when `optional`), else one InputError
    naming `name`.

    From a notebook, `None` or a list of folders failed inside pathlib with "expected str, bytes or os.PathLike
    object, not list", naming neither the argument nor the fix. An empty str (or one of spaces alone), as a
    `os.environ.get("DIR", "")` gives, is refused too, as the CLI refuses `""`: pathlib reads it as the current
    folder, so `classify(real="")` scored it and `generated=""` counted as not given.
    """
    if value is None and optional:
        return
    if not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{name}={shown(value)}: must be a path (a str or a pathlib.Path), not {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise InputError(f"{name}={value!r}: an empty path, which would be read as the current folder; give a path")


def require_paths(required: dict[str, object], optional: dict[str, object] | None = None) -> None:
    """`require_path` for each argument of an entry point, by name; the `optional` ones may be None."""
    for name, value in required.items():
        require_path(name, value)
    for name, value in (optional or {}).items():
        require_path(name, value, optional=True)
