"""Every relative link in README.md and docs/*.md reaches a file, and every `#anchor` a heading in it.

A reader who follows a link to a moved file or a renamed section lands on a 404 or the top of the
page. Anchors are computed as GitHub renders them: the heading's text lowercased, everything but
letters, digits, `_`, `-` and spaces dropped, each space turned into a hyphen, and the second,
third, ... heading with the same anchor suffixed -1, -2, ...
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.docs import DOCS, ROOT

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# [text](target) and ![alt](target); the text may span lines, the target may not hold a space
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...


def prose(text: str) -> str:
    """The text outside fenced code blocks, so a `# comment` in a bash block is no heading."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's markdown text (links reduced to their text, code marks dropped)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """Every heading anchor of a markdown file, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(prose(doc.read_text(encoding="utf-8"))):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(doc: Path) -> list[tuple[int, str]]:
    """(line, target) of every relative link in a doc's prose; code spans and code blocks are skipped."""
    text = prose(doc.read_text(encoding="utf-8"))
    text = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in LINK.finditer(text)
        if not EXTERNAL.match(m.group(1))
    ]


def broken(doc: Path, target: str) -> str | None:
    """Why a link from `doc` to `target` leads nowhere, or None when it reaches its file and heading."""
    path, _, anchor = target.partition("#")
    file = (doc.parent / path).resolve() if path else doc
    if not file.is_file():
        return f"no file {path}"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"no heading #{anchor} in {path or file.name}"
    return None


LINKS = [(doc, line, target) for doc in DOCS for line, target in links(doc)]


def test_the_docs_have_relative_links():
    """Guards the parametrised test below against a link pattern that silently matches nothing."""
    assert len(LINKS) > 30
    assert "docs/datasets.md#from-dicom--nifti" in {t for _, _, t in LINKS}


@pytest.mark.parametrize(
    "doc,line,target", [pytest.param(*link, id=f"{link[0].relative_to(ROOT).as_posix()}:{link[1]}") for link in LINKS]
)
def test_relative_link_resolves(doc: Path, line: int, target: str):
    assert broken(doc, target) is None, f"{doc.relative_to(ROOT).as_posix()}:{line}: {target}: {broken(doc, target)}"


@pytest.mark.parametrize(
    "heading,expected",
    [
        ("From DICOM / NIfTI", "from-dicom--nifti"),
        ("Feature spaces (`--features`)", "feature-spaces---features"),
        ("The default, and why", "the-default-and-why"),
        ("GANs 2023, 2024 (stages 3 and 4)", "gans-2023-2024-stages-3-and-4"),
        ("See [the chain](chain.md) here", "see-the-chain-here"),
        ("snake_case stays", "snake_case-stays"),
    ],
)
def test_slug_follows_github(heading: str, expected: str):
    assert slug(heading) == expected


def test_duplicate_headings_are_numbered(tmp_path: Path):
    doc = tmp_path / "d.md"
    doc.write_text("# Results\n\n```bash\n# Results\n```\n\n## Results\n\n### Results!\n", encoding="utf-8")
    assert anchors(doc) == {"results", "results-1", "results-2"}


def test_broken_links_are_reported(tmp_path: Path):
    (tmp_path / "a.md").write_text("# Top\n\n## Two words\n", encoding="utf-8")
    doc = tmp_path / "b.md"
    doc.write_text("", encoding="utf-8")
    assert broken(doc, "a.md#two-words") is None
    assert broken(doc, "a.md#two-words-1") == "no heading #two-words-1 in a.md"
    assert broken(doc, "missing.md") == "no file missing.md"
    assert broken(doc, "#top") == "no heading #top in b.md"  # b.md itself has no heading


def test_links_skip_code(tmp_path: Path):
    doc = tmp_path / "c.md"
    doc.write_text("see [a](x.md) and `[b](y.md)`\n\n```python\nz[c](w)\n```\n[d\ntext](e.md#f)\n", encoding="utf-8")
    assert links(doc) == [(1, "x.md"), (6, "e.md#f")]
