"""The generated-image side of a membership set: its manifest, and the one image size shared with the real side.

Shared by `classify` and by the chain's "knn" pseudo-labeler, which must see the images the same way;
`attribute` reads its one image size here too.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ganfp.data.decode import Header, image_header
from ganfp.data.manifest import (MANIFEST_READERS, UNLABELLED, Manifest, folder_warnings_once, image_files,
                                 require_manifest)
from ganfp.data.medical import DEFAULT_WINDOW, MedicalReading, file_items, window_name
from ganfp.errors import InputError, count, require_path

# The smallest side the membership scorers compare at (--image-size's minimum): the shift-tolerant spaces need
# a crop left after their shifts, and below 6 px a native size failed there with a traceback. `attribute` keeps to
# it too: its cnn method trains at no less, and failed below it only after printing that it was training.
MIN_IMAGE_SIZE = 8
HU_WINDOWED = "DICOM or NIfTI in an HU window"  # listed with the bit depths, though not one
SPEC_LIKE = re.compile(r"^[a-z][a-z0-9-]+:")  # `demo:gans-dev`, not a path (a drive letter is one character)
HEADER_THREADS, HEADER_TASKS_PER_THREAD = 8, 4  # image_headers: reads in flight, and runs of files each


@folder_warnings_once()
def generated_manifest(path: str | Path, reading: MedicalReading | None = None, option: str = "") -> Manifest:
    """Every image under the generated folder (sub-folders included; NIfTI: every slice), unlabelled.

    `option`: the option that named the folder (`--generated`), which the error names so the user knows
    which argument to fix; empty when the folder came with a dataset spec.
    """
    require_path(option.lstrip("-") or "path", path)
    root = Path(path).expanduser()
    where = f"{option} {root}" if option else str(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"{where}: the generated images must be a folder, this is a file")
    if not root.is_dir():
        spec = SPEC_LIKE.match(str(path)) and option  # `--generated demo:gans-dev`: a spec where a folder goes
        raise InputError(f"{where}: generated images folder not found" + (
            "; it takes a folder, not a dataset spec (a spec given as the real images brings its own generated "
            "images)" if spec else ""))
    try:
        files = image_files(root)
    except InputError as exc:  # an unreadable folder, named by its path
        raise InputError(f"{option} {exc}" if option else str(exc)) from None
    if not files:
        raise InputError(f"{where}: the generated images folder holds no images")
    items = [it for p in files for it in file_items(p, UNLABELLED, source="generated", reading=reading)]
    return Manifest(f"folder:{root}", [], items, str(root))


def shared_files(first: Manifest, second: Manifest) -> list[str]:
    """Paths of the images of `first` whose very file `second` holds too: a generated folder that is the real
    folder, a folder above it, or a link to either, where each real image is its own nearest generated image; or
    real images that are calibration images too, chosen for by their own labels.

    Files are compared by identity (one stat each, no image read), so links count and copies do not: a generated
    image equal to a real one may be the generator's copy, which is what membership looks for.
    """
    second_files = {_file_identity(it.path) for it in second.items} - {None}
    return [it.path for it in first.items if _file_identity(it.path) in second_files]


def copied_files(first: Manifest, second: Manifest) -> dict[str, str]:
    """{path of an image file of `first`: a file of `second` with the very same bytes}: a generated folder that is a
    copy of the real one (or holds one), found without decoding an image. Only files of a real file's size are
    opened, and only those whose first and last 4 KiB match one are read in full (DICOM slices share one size)."""
    originals = list(dict.fromkeys(it.path for it in first.items))  # a NIfTI volume's slices share one file
    sizes = {_size(path) for path in originals} - {None}
    by_ends: dict[tuple, list[str]] = {}
    for path in originals:
        if (ends := _ends(path)) is not None:
            by_ends.setdefault(ends, []).append(path)
    copies: dict[str, str] = {}
    for path in dict.fromkeys(it.path for it in second.items):
        if _size(path) not in sizes:
            continue
        for original in by_ends.get(_ends(path), []):
            if original not in copies and _same_bytes(original, path):
                copies[original] = path
    return copies


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # reading the image names the problem


def _ends(path: str, span: int = 4096) -> tuple[int, bytes, bytes] | None:
    """(size, first and last `span` bytes): what two copies share, and two images of one size rarely do."""
    try:
        with open(path, "rb") as f:
            head = f.read(span)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - span, 0))
            return size, head, f.read(span)
    except OSError:
        return None


def _same_bytes(a: str, b: str) -> bool:
    try:
        return not os.path.samefile(a, b) and Path(a).read_bytes() == Path(b).read_bytes()  # a link: shared_files
    except OSError:
        return False


def _file_identity(path: str) -> tuple[int, int] | str | None:
    """(device, inode), the resolved path where the file system has no inodes (0), None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # reading the image names the problem
    return (st.st_dev, st.st_ino) if st.st_ino else os.path.realpath(path)


def _check_manifests(caller: str, manifests: tuple) -> None:
    """One Manifest or more, with one image or more: from Python `native_image_size()` failed unpacking nothing,
    and `native_image_size("real/")` with an AttributeError."""
    if not manifests:
        raise InputError(f"{caller}(): give the Manifests of the images, as {MANIFEST_READERS} returns")
    for n, manifest in enumerate(manifests, 1):
        require_manifest(f"{caller} argument {n}", manifest)
    if not any(len(m) for m in manifests):
        raise InputError(f"{caller}: {' and '.join(m.name for m in manifests)} hold no images")


def image_headers(*manifests: Manifest) -> list[Header]:
    """The header of every item's file, in order: one open each, no pixels decoded; a bomb or a broken file is one
    line.

    Threads keep several reads in flight (a network disk), each reading a run of files: one pool task per file cost
    more than the header it read, and made this pass 2-4x slower than one thread reading them all.
    """
    _check_manifests("image_headers", manifests)
    paths = [it.path for m in manifests for it in m.items]
    run = -(-len(paths) // (HEADER_TASKS_PER_THREAD * HEADER_THREADS))  # rounded up: at least one file a task
    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
        runs = pool.map(_headers, [paths[start:start + run] for start in range(0, len(paths), run)])
        return [header for headers in runs for header in headers]


def _headers(paths: list[str]) -> list[Header]:
    return [image_header(path) for path in paths]


def depths_by_set(sets: list[str], depths: list[str | None]) -> str:
    """Each set's bit depths with their counts ("class a 16-bit (8), the unknown images 8-bit (12)"), or "" when
    every image is of one depth: a 16-bit image is windowed by its own 0.5-99.5 percentiles and an 8-bit one read as
    it is, so images of two depths are read with two contrasts.

    `sets[i]` names the set of the image whose depth (`Header.depth`) is `depths[i]`. DICOM and NIfTI files (None)
    have no depth of their own (windowed in HU whatever it is), so they never make a mix; but a mix lists them
    (`HU_WINDOWED`), since a set whose counts fall short of its images reads as an image lost.
    """
    by_set: dict[str, Counter[str]] = {name: Counter() for name in sets}  # in the order the sets come
    for name, depth in zip(sets, depths):
        by_set[name][depth or HU_WINDOWED] += 1
    if len(set().union(*by_set.values()) - {HU_WINDOWED}) < 2:
        return ""
    return ", ".join(f"{name} " + " and ".join(f"{depth} ({found[depth]})" for depth in sorted(found, key=_fewest_bits))
                     for name, found in by_set.items())


def high_depth_reading(reading: MedicalReading | None) -> str:
    """How 16-bit, 32-bit and float images are read, as the warnings of a mix of depths say it: stretched per image,
    or (with an HU offset) the 16-bit ones in a fixed HU window and only the 32-bit and float ones stretched."""
    stretch = "stretched between their own 0.5 and 99.5 percentiles"
    if reading is None or reading.hu_offset is None:
        return f"16-bit, 32-bit and float images are {stretch}"
    window = window_name(reading.window or DEFAULT_WINDOW)
    return (f"16-bit images are read as HU + {reading.hu_offset} in the {window} window and 32-bit and float ones "
            f"{stretch}")


def _fewest_bits(depth: str) -> float:
    """Depths in order of their bits ("1-bit" before "16-bit"), DICOM and NIfTI last."""
    return float("inf") if depth == HU_WINDOWED else int(depth.split("-")[0])


def native_image_size(*manifests: Manifest, headers: list[Header] | None = None) -> int:
    """The one square size all images share (read from file headers); otherwise ask for --image-size.

    Comparing pixels only makes sense at one resolution. Files of different sizes are not
    silently resized: the user decides, with --image-size N, that all are resized to N x N.
    `headers`: the manifests' `image_headers`, when the caller read them for more than the size.
    """
    _check_manifests("native_image_size", manifests)
    paths = [it.path for m in manifests for it in m.items]
    sizes = [h.size for h in (image_headers(*manifests) if headers is None else headers)]
    by_size = Counter(sizes)
    if len(by_size) > 1:
        example = {s: p for p, s in zip(paths, sizes)}
        listed = ", ".join(f"{w}x{h} ({count(n, 'file')}, e.g. {example[(w, h)]})"
                           for (w, h), n in by_size.most_common())
        raise InputError(f"images have different sizes: {listed}; pass --image-size N to resize all to N x N")
    ((w, h),) = by_size
    if w != h:
        raise InputError(f"{paths[0]}: images are {w}x{h}, not square; pass --image-size N to resize all to N x N")
    if w < MIN_IMAGE_SIZE:
        raise InputError(f"{paths[0]}: images are {w}x{h}, below the {MIN_IMAGE_SIZE} px ganfp compares images at; "
                         f"pass --image-size N (at least {MIN_IMAGE_SIZE}) to resize all to N x N")
    return w
