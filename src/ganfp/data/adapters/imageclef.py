"""`imageclef-gans-YYYY:PART`: the ImageCLEFmedical GANs data of 2023, 2024 and 2025.

The folders are found wherever they sit under the dataset root, since the organisers' archives
differ in their top-level folders:

- `dev`: `used/` (1) and `not_used/` (0) side by side; `info["generated"]` = the nearest
  `generated/` folder (the generator's output the real images are compared with).
- `test`, `test-N`: the unlabelled `real_unknown_N/`; `info["generated"]` = `generated_N/`.
- `attribution` (alias `attribution-train`): generated images labelled by training subset or
  generator, `generated/<class>/` (2025 subtask 2, 2024 task 2); `attribution-real`: `real/<class>/`;
  `attribution-unknown`: the unlabelled `generated_unknown/` to attribute.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ganfp.data.adapters import register_adapter
from ganfp.data.manifest import UNLABELLED, Item, Manifest, image_files, skipped_name
from ganfp.data.medical import MedicalReading, file_items
from ganfp.errors import InputError

EDITIONS = (2023, 2024, 2025)
MEMBERSHIP_CLASSES = ["not_used", "used"]
USED = {"used", "real_used"}
NOT_USED = {"not_used", "notused", "unused", "real_not_used"}
GENERATED = re.compile(r"^generated(?:_?(\d+))?$")
REAL_UNKNOWN = re.compile(r"^real_unknown(?:_?(\d+))?$")
TEST_ARG = re.compile(r"^test(?:[-_]?([0-9]+))?$")  # a spec's test-N: digits 0-9, as every number given
ATTRIBUTION_PARTS = ("attribution", "attribution-train", "attribution-real", "attribution-unknown")
PARTS = ("dev", "test", "test-N", *ATTRIBUTION_PARTS)
MAX_DEPTH = 8


def _norm(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def names_generated(folder_name: str, number: int | None = None) -> bool:
    """Whether a folder's name marks the generator's images (`generated/`, `Generated_1/`, `generated-2/`); with a
    test set's `number`, one numbered otherwise is another test set's generator's images, and does not."""
    found = GENERATED.match(_norm(folder_name))
    return found is not None and (number is None or found.group(1) is None or int(found.group(1)) == number)


def real_unknown_number(folder_name: str) -> int | None:
    """The N of a `real_unknown_N/` folder (1 when unnumbered); None for a folder of another name."""
    found = REAL_UNKNOWN.match(_norm(folder_name))
    return int(found.group(1) or 1) if found else None


def dev_folder(parent: Path, role: str, where: str) -> Path:
    """`parent`'s folder of a dev set's `role` (`used`, `not_used`, `generated`), its name read as this adapter reads
    the organisers' (`Used/`, `Not-Used/`, `real_not_used/`, `generated_1/`): a user's own dev set named so was
    refused as missing its folders, though `imageclef-gans-YYYY:dev` reads it. Two folders of one role are refused, naming both (which
    holds the images?); none gives `parent/role`, whose absence the caller reports."""
    fits = {"used": USED.__contains__, "not_used": NOT_USED.__contains__, "generated": names_generated}[role]
    found = [d for d in _children(parent) if fits(_norm(d.name))]
    if len(found) > 1:
        raise InputError(f"{where}: holds {', '.join(d.name + '/' for d in found)}, each read as the {role}/ folder; "
                         "keep one")
    return found[0] if found else parent / role


def _dirs(folder: Path) -> list[Path]:
    """Every folder under `folder` (itself included), not hidden, at most MAX_DEPTH deep."""
    found = []
    base = len(folder.parts)
    for top, dirs, _ in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not skipped_name(d)) if len(Path(top).parts) - base < MAX_DEPTH else []
        found.append(Path(top))
    return found


def _children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not skipped_name(p.name))


def _flat_images(folder: Path) -> bool:
    return bool(image_files(folder, recursive=False))


def _class_dirs(folder: Path) -> list[Path]:
    return [d for d in _children(folder) if image_files(d)]


def _near(start: Path, root: Path, pattern: re.Pattern, index: int | None = None) -> Path | None:
    """The closest folder matching `pattern` beside `start` or beside one of its parents (up to `root`).

    Among several, the one numbered `index` wins, then an unnumbered one (`generated` for the dev set). With
    `index`, a folder numbered otherwise is another test set's and never matches (`real_unknown_2/` was compared
    with a lone `generated_1/`, another generator's images), and the search ends at the level holding one.
    """
    level = start
    while True:
        found = [d for d in _children(level) if pattern.match(_norm(d.name)) and _flat_images(d)]
        ranked = sorted((_number_rank(pattern.match(_norm(d.name)).group(1), index), d.name, d) for d in found)
        hits = [d for rank, _, d in ranked if index is None or rank < 2]  # 2 with an index: another's number
        if hits:
            return hits[0]
        if found or level == root or root not in level.parents:
            return None
        level = level.parent


def _number_rank(number: str | None, index: int | None) -> int:
    if number is not None and index is not None and int(number) == index:
        return 0
    return 1 if number is None else 2


def find_dev(root: Path) -> list[tuple[Path, Path, Path]]:
    """(parent, used, not_used) for every folder holding both."""
    found = []
    for d in _dirs(root):
        kids = {_norm(c.name): c for c in _children(d)}
        used = next((kids[k] for k in kids if k in USED), None)
        not_used = next((kids[k] for k in kids if k in NOT_USED), None)
        if used and not_used:
            found.append((d, used, not_used))
    return found


def find_tests(root: Path) -> dict[int, list[Path]]:
    """real_unknown folders by their number (1 when unnumbered); two of one number are two editions' test sets."""
    found: dict[int, list[Path]] = {}
    for d in _dirs(root):
        m = REAL_UNKNOWN.match(_norm(d.name))
        if m and _flat_images(d):
            found.setdefault(int(m.group(1) or 1), []).append(d)
    return found


def find_attribution(root: Path) -> list[Path]:
    """Folders whose `generated/` holds one sub-folder of images per class (two or more)."""
    found = []
    for d in _dirs(root):
        gen = next((c for c in _children(d) if _norm(c.name) == "generated"), None)
        if gen is not None and len(_class_dirs(gen)) >= 2:
            found.append(d)
    return found


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path != root else "."


def _expected(where: str, root: Path, part: str) -> str:
    wanted = {
        "dev": "folders used/ and not_used/ side by side (with generated/ nearby)",
        "test": "a folder real_unknown_1/ (with generated_1/ nearby)",
        "attribution": "a folder generated/ with one sub-folder per class (and real/<class>, generated_unknown/)",
    }
    dirs = [_rel(d, root) for d in _dirs(root)[1:9]] if root.is_dir() else []
    return f"{where}: no {part} set found: expected {wanted[part]} somewhere under it; found folders: {', '.join(dirs) or 'none'}"


def _one(candidates: list, where: str, root: Path, part: str):
    if not candidates:
        raise InputError(_expected(where, root, part))
    if len(candidates) > 1:
        names = ", ".join(_rel(c[0] if isinstance(c, tuple) else c, root) for c in candidates)
        raise InputError(f"{where}: several {part} sets found ({names}); keep one per dataset folder, or load one with folder:PATH")
    return candidates[0]


def _items(folder: Path, label: int, spec: str, reading: MedicalReading | None = None) -> list[Item]:
    return [it for p in image_files(folder) for it in file_items(p, label, source=spec, reading=reading)]


def load_part(root: Path, part: str, spec: str, where: str, reading: MedicalReading | None = None) -> Manifest:
    """The manifest of one part of an ImageCLEF GANs dataset unpacked under `root`; DICOM and NIfTI files (a
    user's own set in this layout) are read as `reading` says, as in any other folder."""
    if part == "dev":
        parent, used, not_used = _one(find_dev(root), where, root, "dev")
        items = _items(not_used, 0, spec, reading) + _items(used, 1, spec, reading)
        for folder, label in ((not_used, 0), (used, 1)):
            if not any(it.label == label for it in items):
                raise InputError(f"{folder}: no images (the {MEMBERSHIP_CLASSES[label]} real images of {spec})")
        info = {}
        generated = _near(parent, root, GENERATED)
        if generated:
            info["generated"] = str(generated.resolve())
        return Manifest(spec, list(MEMBERSHIP_CLASSES), items, str(parent), info)
    test = TEST_ARG.match(part)
    if test:
        tests = find_tests(root)
        if not tests:
            raise InputError(_expected(where, root, "test"))
        index = int(test.group(1)) if test.group(1) else (1 if 1 in tests or len(tests) > 1 else next(iter(tests)))
        if index not in tests:
            raise InputError(f"{spec}: no real_unknown_{index}/ folder (found: {', '.join(f'real_unknown_{i}' for i in sorted(tests))})")
        folder = _one(tests[index], where, root, f"test-{index}")
        items = _items(folder, UNLABELLED, spec, reading)
        return Manifest(spec, [], items, str(folder), _test_info(folder, root, index))
    if part in ATTRIBUTION_PARTS:
        return _attribution(root, part, spec, where)
    raise InputError(f"{spec}: unknown part {part!r}; choose one of: {', '.join(PARTS)}")


def _test_info(folder: Path, root: Path, index: int) -> dict:
    """A test set's `generated`: its own `generated_N/` (or an unnumbered `generated/`); without one, `unpaired`
    names the other test sets' generated folders beside it, never compared with it, so a reader can say why."""
    generated = _near(folder, root, GENERATED, index) or _own_generated(folder, index)
    if generated:
        return {"generated": str(generated.resolve())}
    others = [d.name for d in _children(folder.parent) if GENERATED.match(_norm(d.name)) and _flat_images(d)]
    return {"unpaired": others} if others else {}


def _own_generated(folder: Path, index: int) -> Path | None:
    """The test set's `generated_N/` beside it though it holds no loose image (empty, or its images in sub-folders):
    the set went without generated images in silence (classify ran the classifier); named, reading it reads its
    images or says it holds none, as for a `generated/` beside a folder of real images."""
    for beside in _children(folder.parent):
        numbered = GENERATED.match(_norm(beside.name))
        if numbered and numbered.group(1) and int(numbered.group(1)) == index:
            return beside
    return None


def _attribution(root: Path, part: str, spec: str, where: str) -> Manifest:
    parent = _one(find_attribution(root), where, root, "attribution")
    generated = next(c for c in _children(parent) if _norm(c.name) == "generated")
    classes = [d.name for d in _class_dirs(generated)]
    real = next((c for c in _children(parent) if _norm(c.name) == "real"), None)
    unknown = next((c for c in _children(parent) if "unknown" in _norm(c.name) and not REAL_UNKNOWN.match(_norm(c.name)) and _flat_images(c)), None)
    info = {"generated": str(generated.resolve()), "classes": classes}
    info.update({k: str(v.resolve()) for k, v in (("real", real), ("unknown", unknown)) if v is not None})
    if part == "attribution-unknown":
        if unknown is None:
            raise InputError(f"{where}: no generated_unknown/ folder of images beside {_rel(generated, root)}")
        return Manifest(spec, [], _items(unknown, UNLABELLED, spec), str(unknown), info)
    source = generated
    if part == "attribution-real":
        if real is None:
            raise InputError(f"{where}: no real/ folder beside {_rel(generated, root)}")
        source = real
        real_classes = [d.name for d in _class_dirs(real)]
        classes = classes if set(real_classes) == set(classes) else real_classes
    items = [it for label, cls in enumerate(classes) for it in _items(source / cls, label, spec)]
    return Manifest(spec, list(classes), items, str(source), info)


def _attribution_counts(parent: Path, root: Path) -> dict:
    """An attribution set's classes and images per part, as its load reads them."""
    manifest = _attribution(parent, "attribution-train", "", "")
    counts = {"folder": _rel(parent, root), "classes": len(manifest.classes), "generated": len(manifest)}
    for key in ("real", "unknown"):
        if key in manifest.info:
            counts[key] = len(image_files(manifest.info[key]))
    return counts


def describe(folder: Path, where: str) -> dict:
    """The parts found (with image counts); none at all is an InputError."""
    found: dict = {}
    for parent, used, not_used in find_dev(folder):
        generated = _near(parent, folder, GENERATED)
        found.setdefault("dev", []).append(
            {"folder": _rel(parent, folder), "used": len(image_files(used)), "not_used": len(image_files(not_used)),
             "generated": len(image_files(generated)) if generated else 0}
        )
    for index, tests in sorted(find_tests(folder).items()):
        if len(tests) > 1:  # ambiguous for every later load, as two dev sets are
            names = ", ".join(_rel(t, folder) for t in tests)
            raise InputError(f"{where}: several test-{index} sets found ({names}); keep one edition per dataset name")
        found.setdefault("test", []).append({"folder": _rel(tests[0], folder), "index": index,
                                             "images": len(image_files(tests[0]))})
    for parent in find_attribution(folder):
        found.setdefault("attribution", []).append(_attribution_counts(parent, folder))
    for part in ("dev", "attribution"):  # ambiguous for every later load: refused now, not at first use
        if len(found.get(part, [])) > 1:
            names = ", ".join(f["folder"] for f in found[part])
            raise InputError(f"{where}: several {part} sets found ({names}); keep one edition per dataset name")
    if not found:
        dirs = [_rel(d, folder) for d in _dirs(folder)[1:9]]
        raise InputError(
            f"{where}: no ImageCLEF GANs layout recognised: expected used/ + not_used/ (development set), "
            f"real_unknown_1/ (test set) or generated/<class>/ (attribution); found folders: {', '.join(dirs) or 'none'}"
        )
    return found


def _register(year: int) -> None:
    name = f"imageclef-gans-{year}"

    @register_adapter(name, f"ImageCLEFmedical GANs {year} (ganfp fetch-data {name} --from ARCHIVE); parts: {', '.join(PARTS)}",
                      describe=describe)
    def load(arg: str | None, data_root: Path, **options) -> Manifest:
        from ganfp.fetch.store import require_ready

        spec = f"{name}:{arg}" if arg else name
        if not arg:
            raise InputError(f"{spec}: name a part, e.g. {name}:dev or {name}:test (parts: {', '.join(PARTS)})")
        if options:
            raise InputError(f"{spec}: unknown option(s) {', '.join(sorted(options))} ({name} takes none)")
        root = require_ready(name, data_root, hint=" --from ARCHIVE_OR_FOLDER")
        return load_part(root, arg, spec, str(root))


for _year in EDITIONS:
    _register(_year)
