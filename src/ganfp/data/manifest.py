"""A dataset on disk as a list of items: what every adapter produces and every consumer reads."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from ganfp.data.names import skipped_name

UNLABELLED = -1
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
# DICOM when the file carries the DICM preamble: Siemens scanners export `.IMA` (older ones wrote their own format)
PREAMBLE_SUFFIXES = {".ima"}
NIFTI_ENDINGS = (".nii", ".nii.gz")  # read by ganfp.data.medical (the `medical` extra)
# what an image's id leaves out (a NIfTI slice's id is its own)
ID_SUFFIXES = IMAGE_SUFFIXES | DICOM_SUFFIXES | PREAMBLE_SUFFIXES
# files that come with image sets and are never images: not reported as skipped
SIDECAR_SUFFIXES = {".csv", ".tsv", ".txt", ".json", ".md", ".pdf", ".xml", ".html", ".htm", ".yaml", ".yml",
                    ".log", ".xls", ".xlsx", ".ods", ".doc", ".docx", ".rtf", ".ini", ".db"}
SIDECAR_NAMES = {"dicomdir", "readme", "license", "licence", "copying", "notice"}

log = logging.getLogger(__name__)
# what a call has warned of already: skipped files, and folders that mix intensity scales (("scales", folder))
_reported: ContextVar[set | None] = ContextVar("reported", default=None)
# the warnings logged under "ganfp" in the call (`folder_warnings_once`), for the reports that list a run's warnings
_logged: ContextVar[list[str] | None] = ContextVar("logged", default=None)
# the lists of the collectors (`logged_warnings`) open in this context, innermost last: a warning goes to those of
# the thread that logged it, not to another thread's call
_collecting: ContextVar[tuple[list[str], ...]] = ContextVar("collecting", default=())
# formats named as users name them; a file image_files found that none of these names is DICOM
FORMAT_NAMES = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
WINDOWED_FORMATS = {"DICOM", "NIfTI"}  # windowed when read (in HU for CT); every other format is read as saved


@dataclass(frozen=True)
class Item:
    path: str  # absolute path of the image file
    label: int = UNLABELLED  # index into Manifest.classes
    group: str | None = None  # items sharing a group stay on one side of a train/val split
    split: str | None = None  # set when the dataset itself fixes the split
    source: str = ""  # which adapter/part produced it
    frame: int | None = None  # axial slice of a NIfTI volume; None for one-image files
    window: tuple[float, float] | None = None  # HU (center, width) of a DICOM/NIfTI image; None: the default
    hu_offset: int | None = None  # a 16-bit grayscale PNG/TIFF stores HU + this, read in `window`; None: stretched
    name: str | None = None  # the id when it is not the file name (DICOM SOPInstanceUID)

    @property
    def id(self) -> str:
        """The task's image id: the file name without its image extension (`<volume>_<slice:04d>` for NIfTI)."""
        if self.name:
            return self.name
        if self.frame is not None:
            return f"{volume_stem(self.path)}_{self.frame:04d}"
        return file_id(Path(self.path).name)


@dataclass
class Manifest:
    name: str  # the dataset spec it came from, e.g. "demo:covid"
    classes: list[str]  # label index -> class name; for membership, index 1 is "used"
    items: list[Item]
    root: str = ""
    info: dict = field(default_factory=dict)  # adapter extras, e.g. where the generated images are

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labelled(self) -> bool:
        return bool(self.items) and all(it.label != UNLABELLED for it in self.items)

    @property
    def labels(self) -> np.ndarray:
        return np.array([it.label for it in self.items], dtype=np.int64)

    @property
    def groups(self) -> list[str | None]:
        return [it.group for it in self.items]

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    def subset(self, indices) -> "Manifest":
        return replace(self, items=[self.items[i] for i in indices])

    def with_labels(self, labels, classes: list[str] | None = None) -> "Manifest":
        """The same images with new labels (pseudo-labelling of an unlabelled set)."""
        items = [replace(it, label=int(lab)) for it, lab in zip(self.items, labels)]
        return replace(self, items=items, classes=classes or self.classes)

    def class_counts(self) -> dict[str, int]:
        counts = {c: 0 for c in self.classes}
        for it in self.items:
            if it.label != UNLABELLED:
                counts[self.classes[it.label]] += 1
        return counts

    def fingerprint(self, with_labels: bool = True) -> str:
        """Changes when any file is added, removed or rewritten (path, size, mtime), or relabelled."""
        h = hashlib.sha256()
        for it in self.items:
            st = os.stat(it.path)
            label = it.label if with_labels else ""
            read = "" if it.frame is None and it.window is None else f"\0{it.frame}\0{it.window}"  # slice, HU window
            read += "" if it.hu_offset is None else f"\0hu-offset {it.hu_offset}"  # and the decode cache's key
            line = f"{it.path}\0{st.st_size}\0{st.st_mtime_ns}\0{label}{read}\n"
            h.update(line.encode("utf-8", "surrogateescape"))  # a path named in Latin-1 on Linux keeps its bytes
        return h.hexdigest()


def file_id(name: str) -> str:
    """`scan.v2.png` -> `scan.v2`: the file name without an extension ganfp reads as an image, else all of it.

    Not `Path.stem`: a DICOM file named by its UID (`1.2.840.113619.2.55.3.969.1`) has no extension, and the stem
    dropped its last part, so two slices of one series got the same id.
    """
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and stem and f".{suffix.lower()}" in ID_SUFFIXES else name


def cell_id(cell: str) -> str:
    """The id in a table cell that holds an id, a file name or a path (with `/` or `\\`): `dir\\a.png` -> `a`.

    Without surrounding spaces, as an id cell is read (the organisers' validator strips every token): a file named
    `trail .png` is `trail`, as the id cell `trail ` is, so one table gives the same ids under either header.
    """
    return file_id(PurePosixPath(cell.strip().replace("\\", "/")).name).strip()


def volume_stem(path: str | os.PathLike) -> str:
    """`scan.nii.gz` -> `scan`: the file name without its (one or two) NIfTI extensions."""
    name = Path(path).name
    return next((name[: -len(e)] for e in NIFTI_ENDINGS[::-1] if name.lower().endswith(e)), Path(path).stem)


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_ENDINGS)


def is_dicom(path: str | os.PathLike) -> bool:
    """A `.dcm` file, or one carrying the DICM preamble named `.IMA` (Siemens) or without an image extension (none,
    or a UID's digits).

    A DICOMDIR (the index every DICOM export medium carries, named so by PS3.10) is not an image.
    """
    if Path(path).name.upper() == "DICOMDIR":
        return False
    suffix = Path(path).suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if not _named_like_dicom(suffix):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _named_like_dicom(suffix: str) -> bool:
    """A name whose extension leaves the DICM preamble to say whether the file is DICOM."""
    return not suffix or suffix[1:].isdigit() or suffix.lower() in PREAMBLE_SUFFIXES


MANIFEST_READERS = "ganfp.data.real.read_real(FOLDER) or ganfp.data.generated.generated_manifest(FOLDER)"


def require_manifest(name: str, value) -> None:
    """`value` is a Manifest, else one InputError naming `name`: a folder name given where a manifest belongs
    failed with an AttributeError ("'str' object has no attribute 'items'")."""
    if not isinstance(value, Manifest):
        from ganfp.errors import InputError, shown

        raise InputError(f"{name}={shown(value)}: must be a Manifest, as {MANIFEST_READERS} returns")


def is_image_file(path: Path) -> bool:
    """What ganfp reads: the usual image formats, DICOM and NIfTI."""
    return path.suffix.lower() in IMAGE_SUFFIXES or is_nifti(path) or is_dicom(path)


def _unreadable(folder, exc: OSError):
    from ganfp.errors import InputError

    where = exc.filename or folder
    return InputError(f"{where}: cannot read the folder ({exc.strerror or exc})")


def list_folder(folder: str | os.PathLike) -> list[Path]:
    """The entries of `folder`; a folder that cannot be read is the user's to fix (InputError naming it)."""
    try:
        return list(Path(folder).iterdir())
    except OSError as exc:
        raise _unreadable(folder, exc) from None


def image_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under `folder` (any case of extension, DICOM and NIfTI too), sorted, skipping hidden files and
    hidden sub-folders and `__MACOSX/` (`skipped_name`: never images of the set).

    An unreadable folder (or sub-folder), or a link named like an image whose target is gone, raises InputError:
    skipping it would silently drop images. Other files that are not images (an ACR-NEMA file without the DICOM
    preamble, a `.raw` volume) are skipped with a warning, so a folder of them does not pass for a smaller set.
    """
    folder = Path(folder)
    paths = [p for p in (_walk(folder) if recursive else list_folder(folder)) if not skipped_name(p.name)]
    images = {p for p in paths if is_image_file(p)}
    broken = sorted(p for p in images if p.is_symlink() and not p.exists())
    if broken:  # skipping it would silently drop an image from the submission
        from ganfp.errors import InputError

        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise InputError(f"{broken[0]}: a broken link, to {os.readlink(broken[0])}, which does not exist{more}")
    _warn_skipped(folder, [p for p in paths if p not in images and not _sidecar(p) and p.is_file()])
    found = sorted(p for p in images if p.is_file())
    _warn_mixed_scales(folder, found)
    return found


def _walk(folder: Path) -> list[Path]:
    """Every file name under `folder`; linked folders count, once; hidden sub-folders and `__MACOSX/` are left out."""
    def fail(exc: OSError) -> None:
        raise _unreadable(folder, exc)

    paths, seen = [], set()
    for top, dirs, names in os.walk(folder, onerror=fail, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not skipped_name(d)]
        refuse_loops((Path(top) / d for d in dirs), walked=folder)
        paths.extend(Path(top) / n for n in names)
    return paths


def refuse_loops(folders: Iterable[Path], walked: Path | None = None) -> None:
    """A linked folder that holds the link itself (`again -> .`, `up -> ..`) is a loop, the user's to remove: read
    as a class, its images were read twice, and beside loose images the folder was refused as holding "sub-folders
    of images" without a word on the link. In a `walked` folder only a link out to a folder holding it counts: it
    read images from outside; one back inside is walked once, harmlessly."""
    for link in folders:
        if not link.is_symlink():
            continue
        target, parent = link.resolve(), link.parent.resolve()
        if target in (parent, *parent.parents) and (walked is None or target in walked.resolve().parents):
            from ganfp.errors import InputError

            raise InputError(f"{link}: a link to {os.readlink(link)} ({target}), a folder that holds the link "
                             "itself (a loop); remove the link")


def _sidecar(path: Path) -> bool:
    return path.suffix.lower() in SIDECAR_SUFFIXES or path.stem.lower() in SIDECAR_NAMES


@contextmanager
def folder_warnings_once() -> Iterator[None]:
    """Within it (a command, a library call, as a decorator), each file skipped as not an image, and each folder
    that mixes intensity scales, is warned of once, though a command lists a folder more than once; the next call
    warns again. It was once per process: a notebook that read a folder a second time heard nothing. What the call
    logs is kept for its report (`with_logged`)."""
    if _reported.get() is not None:  # an inner call: the outer one's files
        yield
        return
    with logged_warnings() as logged:
        reported, kept = _reported.set(set()), _logged.set(logged)
        try:
            yield
        finally:
            _reported.reset(reported)
            _logged.reset(kept)


class _Kept(logging.Handler):
    """Puts the text of each warning logged under "ganfp" in the lists of the collectors open where it was logged
    (`_collecting`). One for the process: a handler per collector printed a warning once per collector open (twice
    in a chain's stage, from Python with no logging set up), and kept another thread's warnings as its call's own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        for kept in _collecting.get():
            kept.append(record.getMessage())
        if not _handled_elsewhere(record) and logging.lastResort is not None:
            logging.lastResort.handle(record)  # as without it: Python prints a warning no handler takes on stderr


_KEEPER = _Kept()


def _handled_elsewhere(record: logging.LogRecord) -> bool:
    """Whether a handler other than `_KEEPER` takes `record`: else Python's last resort, which prints it (from a
    notebook), is skipped because `_KEEPER` counts as one."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not _KEEPER for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


@contextmanager
def logged_warnings() -> Iterator[list[str]]:
    """Within it, each warning the library logs on this thread (files skipped as not images, folders that mix
    intensity scales) is kept in the list it yields, in order: the log's lines go to the terminal alone, and what
    carries a run's warnings (a report, a chain stage's summary) must list them beside its own. The library logs
    none from its thread pools."""
    logging.getLogger("ganfp").addHandler(_KEEPER)  # once: a handler already there is not added again
    kept: list[str] = []
    token = _collecting.set((*_collecting.get(), kept))
    try:
        yield kept
    finally:
        _collecting.reset(token)


def announce(warnings: Iterable[str]) -> None:
    """A call's own warnings logged, once its outputs are written, as the library logs what it meets while reading:
    from Python only the result held them (a notebook saw none), and a command prints them as every other."""
    for text in warnings:
        log.warning(text)


def with_logged(own: Iterable[str]) -> list[str]:
    """The warnings logged so far in this call (`folder_warnings_once`), then `own`, each once: a report, which a
    user hands on, lists every warning its run showed, the skipped files' too, not only its command's own."""
    return list(dict.fromkeys([*(_logged.get() or ()), *own]))


def _image_format(path: Path) -> str:
    """An image file's format as its users name it (PNG, TIFF, DICOM, NIfTI), from the name `image_files` found."""
    suffix = path.suffix.lower()
    if is_nifti(path):
        return "NIfTI"
    return FORMAT_NAMES.get(suffix, suffix[1:].upper()) if suffix in IMAGE_SUFFIXES else "DICOM"


def _warn_mixed_scales(folder: Path, images: list[Path]) -> None:
    """A folder of DICOM or NIfTI slices (windowed when read) and of other images (read as saved, 8-bit PNGs
    exported in some window) holds two intensity scales, read without a word: a slice saved both ways differs in
    contrast, and the scorers compare the scales as much as the images. Once per folder in a call."""
    formats = Counter(_image_format(p) for p in images)
    mixed = formats.keys() & WINDOWED_FORMATS and formats.keys() - WINDOWED_FORMATS
    if not mixed or not _first_time(("scales", folder)):
        return
    listed = " and ".join(f"{name} ({n})" for name, n in sorted(formats.items()))
    log.warning("%s: mixes %s files: DICOM and NIfTI are read in a window (HU for CT), the others by their "
                "stored pixel values, so the two may be on different intensity scales; keep one format per set",
                folder, listed)


def warn_scales_by_class(root: Path, files_by_class: dict[str, list[Path]]) -> None:
    """Classes read on different intensity scales, each in one format (`covid/` all DICOM, `normal/` all PNG), pass
    `_warn_mixed_scales`, which looks at one folder; yet a model then tells the classes apart by their format, not
    their content, and scores well on a split of the same set. Once per labelled set in a call."""
    scales = {cls: {_image_format(p) in WINDOWED_FORMATS for p in files} for cls, files in files_by_class.items()}
    windowed = [cls for cls, kinds in scales.items() if kinds == {True}]
    stored = [cls for cls, kinds in scales.items() if kinds == {False}]
    if not windowed or not stored or not _first_time(("class scales", root)):
        return
    log.warning("%s: class %s holds only DICOM or NIfTI files, read in a window (HU for CT), and class %s only "
                "images read by their stored pixel values: a model can tell the classes apart by their format alone; "
                "give every class the same format", root, " and ".join(windowed), " and ".join(stored))


def _first_time(key: tuple) -> bool:
    """Whether `key` (a warning and its folder) is yet to be warned of in this call; marks it warned."""
    reported = _reported.get()
    if key in (reported or ()):
        return False
    if reported is not None:
        reported.add(key)
    return True


def _warn_skipped(folder: Path, skipped: list[Path]) -> None:
    """Say how many files were not read as images, naming the first, once per file in a call."""
    reported = _reported.get()
    new = sorted(set(skipped) - (reported or set()))
    if not new:
        return
    if reported is not None:
        reported.update(new)
    first = new[0].relative_to(folder)
    dicom_like = _named_like_dicom(first.suffix)  # named as is_dicom expects a DICOM file
    hint = "; DICOM without the DICM preamble (old ACR-NEMA files) is not read" if dicom_like else ""
    files = f"{len(new)} files" if len(new) > 1 else "1 file"
    log.warning("%s: %s skipped, not in an image format ganfp reads (first: %s)%s", folder, files, first, hint)
