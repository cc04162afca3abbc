"""Numbers as a user writes them in an option or a spec: digits 0-9, nothing Python's int() and float() add.

int() and float() also take `1_0` (10: a typo of 1.0 or of 10), spaces around the number, a leading `+`, and digits
of other scripts (`٣` is 3); a value such as `--clusters 3_0` was read as 30 without a word. Here each is refused,
and the caller names the option and the value. Standard library only: the CLI's options import this.
"""

from __future__ import annotations

import re

WHOLE = re.compile(r"-?[0-9]+")
# 0.5, .5, 5., 1e-3, 2.5E+2; and the words float() reads, whose refusal (with the option's own range) is the option's
DECIMAL = re.compile(r"-?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|nan|inf|infinity)",
                     re.IGNORECASE | re.ASCII)

WHOLE_HINT = "a whole number in digits 0-9, such as 10"
DECIMAL_HINT = "a number in digits 0-9, such as 0.25 or 1e-3"


def read_whole(text: str) -> int | None:
    """`text` as an int, or None when it is not a whole number written in ASCII digits (an optional leading `-`)."""
    return int(text) if WHOLE.fullmatch(text) else None


def read_decimal(text: str) -> float | None:
    """`text` as a float, or None when it is not a number written in ASCII digits, a point and an exponent (or nan
    or inf, left to the caller's range)."""
    return float(text) if DECIMAL.fullmatch(text) else None
