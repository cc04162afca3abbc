"""Every `ganfp.<name>` the README and docs/ name in prose resolves, and every `ganfp.<name>(` is callable.

The ```python blocks run (test_docs_python.py), but the prose names library calls too ("From Python:
`ganfp.metrics.binary_metrics(y_true, y_pred, scores=None)`"): a renamed or moved function leaves such a
sentence pointing at nothing, and a notebook user copying it gets an AttributeError.
"""

from __future__ import annotations

import importlib
import re

import pytest
from helpers.docs import DOCS, ROOT

NAME = re.compile(r"\bganfp((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\()?")
NOT_CODE = {"ganfp.lock"}  # a file name: the advisory lock a train-stage holds (docs/chain.md)


def named() -> list[tuple[str, str, bool]]:
    """(doc:line, dotted name, called) of every `ganfp.x.y` or `ganfp.x.y(` outside the fenced blocks."""
    found = []
    for doc in DOCS:
        fenced = False
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                fenced = not fenced
                continue
            for match in NAME.finditer("" if fenced else line):
                dotted = "ganfp" + match.group(1)
                if dotted not in NOT_CODE:
                    found.append((f"{doc.relative_to(ROOT).as_posix()}:{number}", dotted, bool(match.group(2))))
    return found


def resolve(dotted: str):
    """The object `dotted` names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[end:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


NAMES = named()


def test_the_docs_name_library_calls():
    assert sum(called for _, _, called in NAMES) >= 5  # the scan finds what it checks


@pytest.mark.parametrize("where, dotted, called", NAMES, ids=[f"{w}:{d}" for w, d, _ in NAMES])
def test_a_name_in_the_docs_resolves(where, dotted, called):
    try:
        obj = resolve(dotted)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{where}: {dotted} does not exist ({exc})")
    assert not called or callable(obj), f"{where}: {dotted}(...) is called, but is a {type(obj).__name__}"
