"""`casia[:v1|v2]`: CASIA image tampering detection, authentic (0) vs tampered (1).

The label comes from the file-name prefix (`Au_` authentic, `Tp_`/`Sp_` tampered), else from
the folder (`Au`, `Tp`, `Sp`). The version comes from a `CASIA1`/`CASIA 2.0`-style folder, else
from the name (`Sp_` and 4-digit `Au_` ids are v1, `Tp_` and 5-digit ids v2), so the archives'
different nestings (`CASIA2/Au`, `casia/CASIA2/Tp`, `CASIA 1.0 dataset/Modified Tp/Tp/CM`) all
work. Ground-truth masks (`*_gt.png`, `groundtruth` folders) are not samples and are skipped.
Group = the photo a tampered image was built on (its target id), so an authentic photo and the
forgeries made from it stay on one side of a train/validation split.
"""

from __future__ import annotations

import re
from pathlib import Path

from ganfp.data.adapters import register_adapter
from ganfp.data.manifest import Item, Manifest, image_files
from ganfp.errors import InputError

CLASSES = ["authentic", "tampered"]
AU_NAME = re.compile(r"^au[_-]([a-z]{3})[_-]?(\d+)", re.I)
TP_NAME = re.compile(r"^(tp|sp)[_-]", re.I)
TARGET_ID = re.compile(r"^(?:tp|sp)_[a-z]_[a-z]+_[a-z]_(?:[a-z]_)?[a-z]{3}\d+_([a-z]{3})(\d+)_", re.I)
MASK_NAME = re.compile(r"(_gt\d*|_mask|_combine)$", re.I)
MASK_DIR = re.compile(r"ground\s*_?truth|^gt$|^masks?$", re.I)
VERSION_DIR = re.compile(r"casia\s*[-_ ]?\s*v?([12])(?:\.0)?(?!\d)", re.I)
AU_DIRS = {"au", "authentic"}
TP_DIRS = {"tp", "sp", "tampered", "modified tp", "modified_tp"}


def _label(path: Path, rel_dirs: tuple[str, ...]) -> int | None:
    if AU_NAME.match(path.name) or path.name.lower().startswith("au_"):
        return 0
    if TP_NAME.match(path.name):
        return 1
    for d in reversed(rel_dirs):
        if d.lower() in AU_DIRS:
            return 0
        if d.lower() in TP_DIRS:
            return 1
    return None


def _version(path: Path, rel_dirs: tuple[str, ...]) -> int | None:
    for d in reversed(rel_dirs):
        m = VERSION_DIR.search(d)
        if m:
            return int(m.group(1))
    name = path.name.lower()
    if name.startswith("sp_"):
        return 1
    if name.startswith("tp_"):
        return 2
    m = AU_NAME.match(path.name)
    if m:
        return 1 if len(m.group(2)) == 4 else 2 if len(m.group(2)) == 5 else None
    return None


def _group(path: Path, label: int, version: int | None) -> str | None:
    """The id of the photo an image shows: itself when authentic, the target when tampered."""
    m = AU_NAME.match(path.name) if label == 0 else TARGET_ID.match(path.name)
    return f"v{version or '?'}:{m.group(1).lower()}{int(m.group(2))}" if m else None


def scan(folder: Path) -> tuple[list[tuple[Path, int, int | None, str | None]], dict]:
    """(path, label, version, group) for every sample under `folder`, and counts of what was skipped."""
    found, skipped = [], {"masks": 0, "unlabelled": 0, "duplicates": 0}
    seen: set[tuple[int | None, str]] = set()
    for path in image_files(folder):
        rel_dirs = path.relative_to(folder).parts[:-1]
        if MASK_NAME.search(path.stem) or any(MASK_DIR.search(d) for d in rel_dirs):
            skipped["masks"] += 1
            continue
        label = _label(path, rel_dirs)
        if label is None:
            skipped["unlabelled"] += 1
            continue
        version = _version(path, rel_dirs)
        key = (version, path.stem.lower())
        if key in seen:  # the same file in two nestings of one archive
            skipped["duplicates"] += 1
            continue
        seen.add(key)
        found.append((path, label, version, _group(path, label, version)))
    return found, skipped


def _counts(found) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for _, label, version, _ in found:
        v = counts.setdefault(f"v{version}" if version else "unknown", {c: 0 for c in CLASSES})
        v[CLASSES[label]] += 1
    return counts


def _expected(where: str, folder: Path) -> str:
    top = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
    return (
        f"{where}: no CASIA images found (expected files named Au_*/Tp_*/Sp_* or folders Au/ and Tp/, "
        f"e.g. CASIA2/Au/Au_ani_00001.jpg); found at the top: {', '.join(top) or 'nothing'}"
    )


CLASS_FOLDERS = {"authentic": "an Au/ folder or files named Au_*", "tampered": "a Tp/ folder or files named Tp_*/Sp_*"}


def describe(folder: Path, where: str) -> dict:
    """Counts per version and class; an unrecognised layout, or a version with one class only, is an InputError."""
    found, skipped = scan(folder)
    if not found:
        raise InputError(_expected(where, folder))
    counts = _counts(found)
    _check_both_classes(counts, where)
    return {"counts": counts, "skipped": skipped}


def _check_both_classes(counts: dict, where: str) -> None:
    """A set of one class cannot train stage 1: refuse it at import (half an archive unpacked, Tp/ left out),
    not mark it ready for the chain to fail on. Images of no known version join the default one, so they are
    checked on their own only when no version is known."""
    named = {version: per for version, per in counts.items() if version != "unknown"} or counts
    for version, per in sorted(named.items()):
        for cls in CLASSES:
            if not per[cls]:
                other = next(c for c in CLASSES if c != cls)
                of = f" {version}" if version != "unknown" else ""
                raise InputError(f"{where}: no {cls} CASIA{of} images ({CLASS_FOLDERS[cls]}), only {per[other]} "
                                 f"{other}; import the whole dataset, with both its Au/ and Tp/ folders")


def select_version(found, arg: str | None, spec: str):
    versions = {v for _, _, v, _ in found}
    if arg is None:
        want = 2 if 2 in versions else 1 if 1 in versions else None
    elif arg.lower() in ("v1", "1"):
        want = 1
    elif arg.lower() in ("v2", "2"):
        want = 2
    else:
        raise InputError(f"{spec}: unknown CASIA version {arg!r}; use casia, casia:v1 or casia:v2")
    chosen = [f for f in found if f[2] == want or (arg is None and f[2] is None)]
    if not chosen:
        have = ", ".join(sorted(f"v{v}" for v in versions if v)) or "none recognised"
        raise InputError(f"{spec}: no CASIA v{want} images in the dataset (versions found: {have})")
    return chosen, want


@register_adapter("casia", "CASIA tampering (ganfp fetch-data casia); casia:v1 or casia:v2, default v2 when present",
                  describe=describe)
def load(arg: str | None, data_root: Path, **options) -> Manifest:
    from ganfp.fetch.store import require_ready

    spec = f"casia:{arg}" if arg else "casia"
    if options:
        raise InputError(f"{spec}: unknown option(s) {', '.join(sorted(options))} (casia takes none)")
    folder = require_ready("casia", data_root)
    found, skipped = scan(folder)
    if not found:
        raise InputError(_expected(str(folder), folder))
    chosen, version = select_version(found, arg, spec)
    items = [Item(str(p.resolve()), label, group=group, source=spec) for p, label, _, group in chosen]
    for label, cls in enumerate(CLASSES):
        if not any(it.label == label for it in items):
            raise InputError(f"{spec}: no {cls} images found under {folder} (expected Au_* authentic and Tp_*/Sp_* tampered)")
    info = {"version": f"v{version}" if version else None, "skipped": skipped}
    return Manifest(spec, list(CLASSES), items, str(folder), info)
