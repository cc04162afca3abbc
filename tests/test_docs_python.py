"""Every ```python block of README.md and docs/*.md runs, as written, on tiny copies of the demo data.

The Python examples are what a notebook user copies; an undefined name or a wrong attribute in one
is a bug like a failing command. Blocks are found when the tests are collected, and run in document
order (README first, then docs/ by name) in one working folder, each in a fresh namespace: a block
must define every name it uses. The folders the examples name are stood in for by a few demo images
(PLACEHOLDERS), small enough that the whole file runs in seconds; $GANFP_DATA is an empty data root.

SKIP names, by the block's first line, a block that cannot run here, and why. It is empty: keep it so.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from helpers.docs import fenced_blocks

SKIP: dict[str, str] = {}
N_REAL, N_GENERATED = 20, 100  # the membership examples' real/ and generated/


BLOCKS = fenced_blocks("python")


def _param(doc: str, line: int, code: str):
    head = code.strip().splitlines()[0]
    marks = [pytest.mark.skip(reason=SKIP[head])] if head in SKIP else []
    return pytest.param(doc, line, code, id=f"{doc}:{line}", marks=marks)


def _copy_first(source: Path, target: Path, n: int) -> list[str]:
    target.mkdir(parents=True)
    files = sorted(source.glob("*.png"))[:n]
    for f in files:
        shutil.copy(f, target / f.name)
    return [f.stem for f in files]


@pytest.fixture(scope="module")
def work(tmp_path_factory, demo_root):
    """The examples' folders, from the demo: real/, generated/, labels.csv (membership), dev.zip (fetch),
    train/generated/<class>/ and generated_unknown/ (attribution)."""
    work = tmp_path_factory.mktemp("docs-python")
    demo = demo_root / "demo"
    ids = set(_copy_first(demo / "gans-test" / "real_unknown_1", work / "real", N_REAL))
    _copy_first(demo / "gans-test" / "generated_1", work / "generated", N_GENERATED)
    rows = (demo / "gans-test-labels.csv").read_text().splitlines()
    (work / "labels.csv").write_text("\n".join([rows[0]] + [r for r in rows[1:] if r.split(",")[0] in ids]) + "\n")
    with zipfile.ZipFile(work / "dev.zip", "w") as zf:
        for part, n in (("used", 4), ("not_used", 4), ("generated", 6)):
            for f in sorted((demo / "gans-dev" / part).glob("*.png"))[:n]:
                zf.write(f, f"{part}/{f.name}")
    for cls, patient in (("a", "patient1"), ("b", "patient2")):
        images = sorted((demo / "covid" / ("covid" if cls == "a" else "normal") / patient).glob("*.tif"))
        (work / "train" / "generated" / cls).mkdir(parents=True)
        (work / "generated_unknown").mkdir(exist_ok=True)
        for i, f in enumerate(images[:12]):
            shutil.copy(f, (work / "generated_unknown" if i >= 8 else work / "train" / "generated" / cls) / f"{cls}{i}.tif")
    return work


@pytest.mark.parametrize("doc, line, code", [_param(*b) for b in BLOCKS])
def test_documented_python_runs(doc, line, code, work, tmp_path_factory, monkeypatch, one_torch_thread):
    monkeypatch.chdir(work)
    monkeypatch.setenv("GANFP_DATA", str(tmp_path_factory.getbasetemp() / "docs-python-data"))
    for name in ("GANFP_RUNS", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    exec(compile(code, f"{doc}:{line}", "exec"), {"__name__": "__docs__"})


def test_the_skip_list_names_only_blocks_the_docs_still_hold():
    heads = {code.strip().splitlines()[0] for _, _, code in BLOCKS}
    stale = [head for head in SKIP if head not in heads]
    assert not stale, f"no longer in the docs (remove them from SKIP): {stale}"
    assert BLOCKS, "no ```python blocks found"
