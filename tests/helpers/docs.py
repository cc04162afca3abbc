"""The fenced code blocks of the README and docs/, for the tests that run what the docs show."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fenced_blocks(language: str) -> list[tuple[str, int, str]]:
    """(doc relative to the project, line number of the block's first line, code) of every ```language block."""
    block = re.compile(rf"^```{language}\n(.*?)^```", re.S | re.M)
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in block.finditer(text):
            first = text[: match.start(1)].count("\n") + 1
            found.append((doc.relative_to(ROOT).as_posix(), first, match.group(1)))
    return found
