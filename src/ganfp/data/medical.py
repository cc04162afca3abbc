"""DICOM and NIfTI CT read as 8-bit images: stored values -> Hounsfield units -> a fixed window.

16-bit grayscale PNG and TIFF slices that store HU plus a fixed offset (COVID-CTset: HU + 1024; many PNG sets:
HU + 32768) are read the same way when the offset is given (`MedicalReading.hu_offset`); without it they are
stretched per image by ganfp.data.decode, as before.

ImageCLEF's GANs images are 8-bit PNG slices of CT; a fixed HU window maps every scan the same
way (the lung window by default), so an air pixel is 0 and a bone pixel 255 in every file,
whatever the scanner stored. The mapping is linear: HU `lo = center - width/2` -> 0,
`hi = center + width/2` -> 255, rounded half up, clipped. A DICOM file is one image; each axial
slice of a NIfTI volume is one image with id `<volume>_<slice:04d>`.

pydicom and nibabel are the optional extra `ganfp[medical]`: they are imported on first use, and
a missing one is a one-line InputError.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ganfp.data.manifest import UNLABELLED, Item, Manifest, is_dicom, is_nifti, volume_stem
from ganfp.errors import InputError
from ganfp.numerals import read_decimal

# (center, width) in HU; lung is the -1000..400 HU range the ImageCLEF CT slices show
WINDOW_PRESETS = {
    "lung": (-300.0, 1400.0),
    "mediastinum": (40.0, 400.0),
    "bone": (400.0, 1800.0),
}
DEFAULT_WINDOW = WINDOW_PRESETS["lung"]
# single-channel 16-bit modes: what an HU offset applies to. A float or 32-bit image can hold HU as they are, and no
# convention says it adds an offset; 8-bit and colour images are already windowed by whoever saved them
HU_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
HU_OFFSET_MAX = 65535  # a 16-bit value minus the offset: any larger offset leaves every value below -65535 HU
ID_SOURCES = ("name", "uid")
MISSING = "install ganfp[medical] (pip install 'ganfp[medical]')"


@dataclass(frozen=True)
class MedicalReading:
    """How DICOM and NIfTI files become images: the HU window, where ids come from, which slices."""

    window: tuple[float, float] | None = None  # (center, width) HU; None: lung for CT, the file's own otherwise
    id_from: str | None = None  # "name" (or None, not given): file name (+ slice); "uid": the DICOM SOPInstanceUID
    slices: tuple[int | None, int | None] | None = None  # NIfTI axial slices [start, stop), Python-style
    hu_offset: int | None = None  # a 16-bit grayscale PNG/TIFF stores HU + hu_offset; None: stretched per image

    @classmethod
    def parse(cls, window: str | None = None, id_from: str | None = None,
              slices: str | None = None, hu_offset: int | None = None) -> "MedicalReading":
        """From the command-line strings; each bad value is an InputError naming its option."""
        why = hu_offset_problem(hu_offset) if hu_offset is not None else None
        if why:
            raise InputError(f"--hu-offset {hu_offset}: {why}")
        reading = cls(parse_window(window) if window else None, id_from, parse_slices(slices) if slices else None,
                      hu_offset)
        if id_from is not None and id_from not in ID_SOURCES:
            raise InputError(f"--id-from {id_from}: choose one of: {', '.join(ID_SOURCES)}")
        return reading

    def __post_init__(self):
        """An offset from Python (`MedicalReading(hu_offset="1024")`) is checked here, before any image is read: a
        string failed in numpy's subtraction with a traceback, a negative number read images as HU + |N|."""
        why = hu_offset_problem(self.hu_offset) if self.hu_offset is not None else None
        if why:
            raise InputError(f"hu_offset={self.hu_offset!r}: {why}")
        if self.hu_offset is not None:  # numpy's int as Python's: it is written into a checkpoint's JSON metadata
            object.__setattr__(self, "hu_offset", int(self.hu_offset))

    def check_read(self, paths: list[str], recorded_offset: int | None = None) -> None:
        """Each option given must change something: --hu-offset needs a 16-bit grayscale PNG or TIFF among `paths`,
        --window a DICOM or NIfTI image (or, with an HU offset, such a PNG or TIFF), --id-from a DICOM file, --slices
        a NIfTI volume; otherwise it is refused (a forgotten or misplaced option would pass silently). An offset
        reads headers, and only until the first 16-bit image.

        `recorded_offset`: the offset the images are read with when this reading gives none, the one a checkpoint
        recorded; --window then reads its 16-bit slices in HU too (it was refused as changing nothing)."""
        offset = self.hu_offset if self.hu_offset is not None else recorded_offset
        hu = offset is not None and any(stores_hu(p) for p in paths)
        windowed = "DICOM or NIfTI image" + (" or 16-bit grayscale PNG/TIFF" if offset is not None else "")
        needs = (("--hu-offset", self.hu_offset is not None, "16-bit grayscale PNG or TIFF", lambda p: hu),
                 ("--window", self.window is not None, windowed, lambda p: hu or is_nifti(p) or is_dicom(p)),
                 ("--id-from", self.id_from is not None, "DICOM file", lambda p: not is_nifti(p) and is_dicom(p)),
                 ("--slices", self.slices is not None, "NIfTI volume", is_nifti))
        for option, given, kind, reads in needs:
            if given and not any(reads(p) for p in paths):
                raise InputError(f"{option}: the images read hold no {kind}, so it would change nothing; "
                                 f"leave it out")


def hu_offset_problem(offset: object) -> str | None:
    """What is wrong with an HU offset, or None: one rule for the option, a chain file's `hu_offset` key and the
    offset a checkpoint recorded."""
    if not isinstance(offset, (int, np.integer)) or isinstance(offset, bool) or not 0 <= offset <= HU_OFFSET_MAX:
        return f"must be a whole number from 0 to {HU_OFFSET_MAX} (what a 16-bit image adds to HU, e.g. 1024)"
    return None


def stores_hu(path: str) -> bool:
    """Whether an HU offset applies to the file: a 16-bit single-channel PNG or TIFF, from its header. A file that
    cannot be opened is not one here; decoding it names its problem."""
    if is_dicom(path) or is_nifti(path):
        return False
    try:
        with Image.open(path) as img:
            return holds_hu(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def holds_hu(img: Image.Image) -> bool:
    """Whether an opened image is one an HU offset applies to: 16-bit single-channel. An older Pillow opened a
    16-bit grayscale PNG as mode I (32-bit), which a PNG cannot otherwise be."""
    return img.mode in HU_MODES or (img.mode == "I" and img.format == "PNG")


def parse_window(text: str, option: str = "--window") -> tuple[float, float]:
    """A preset name (lung, mediastinum, bone) or CENTER,WIDTH in HU; `option` names where it was written."""
    why = window_problem(text)
    if why:
        raise InputError(f"{option} {text}: {why}")
    return WINDOW_PRESETS[text] if text in WINDOW_PRESETS else _center_width(text)


def _center_width(text: str) -> tuple[float, float] | None:
    """CENTER,WIDTH -> the two numbers (spaces around each allowed), each in digits 0-9 (`-600`, `1e3`): float() read
    `4_0` as 40, and other scripts' digits. None if it is not two such numbers."""
    parts = [read_decimal(p.strip()) for p in text.split(",")]
    return (parts[0], parts[1]) if len(parts) == 2 and None not in parts else None


def window_problem(text: str) -> str | None:
    """What is wrong with a window's text, or None: one rule for the options and a chain file's `window` key."""
    if text in WINDOW_PRESETS:
        return None
    numbers = _center_width(text)
    if numbers is None:
        return f"give CENTER,WIDTH in HU (digits 0-9, such as 40,400) or one of: {', '.join(WINDOW_PRESETS)}"
    center, width = numbers
    if not (math.isfinite(center) and math.isfinite(width)):
        return "CENTER and WIDTH must be finite numbers"
    if not width > 0:
        return "the width must be positive"
    return None


def window_name(window: tuple[float, float] | None) -> str | None:
    """How a window is written down (a checkpoint's metadata, a message): its preset's name, else CENTER,WIDTH."""
    if window is None:
        return None
    named = next((name for name, preset in WINDOW_PRESETS.items() if preset == tuple(window)), None)
    return named or ",".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in window)  # exact


def window_text(window: object) -> str | None:
    """A window as written down: a preset's name, else CENTER,WIDTH ("40,400" is "mediastinum"); None when not given
    or not a window (a stage's checks report that)."""
    if not isinstance(window, str) or window_problem(window):
        return None
    return window_name(parse_window(window))


def with_window(manifest: Manifest, window: tuple[float, float] | None, hu_offset: int | None = None) -> Manifest:
    """The manifest with its DICOM and NIfTI images read in `window`: any adapter's images, read as a stage or a
    checkpoint was trained on them. With `hu_offset` the other images are read in it too, as HU + `hu_offset` (the
    decoder applies it to 16-bit grayscale ones only); without, they are left alone (they have no HU)."""
    items = [replace(it, **item_reading(it.path, window, hu_offset)) for it in manifest.items]
    return replace(manifest, items=items)


def item_reading(path: str, window: tuple[float, float] | None, hu_offset: int | None) -> dict:
    """The `Item` fields that say how the file at `path` is read: a DICOM or NIfTI image's window; another image's
    window and HU offset when an offset is given (nothing otherwise: it is read as saved)."""
    if is_nifti(path) or is_dicom(path):
        return {"window": window}
    return {"window": window, "hu_offset": hu_offset} if hu_offset is not None else {}


def parse_slices(text: str) -> tuple[int | None, int | None]:
    """START:STOP (stop excluded; either may be left out), or one slice number."""
    match = re.fullmatch(r"\s*([0-9]*)\s*(:?)\s*([0-9]*)\s*", text)  # digits 0-9: \d took other scripts' too
    if not match or not (match.group(1) or match.group(3)) or (not match.group(2) and match.group(3)):
        raise InputError(f"--slices {text}: give START:STOP (e.g. 40:80, 40:, :80) or one slice number, in digits 0-9")
    start = int(match.group(1)) if match.group(1) else None
    if not match.group(2):
        return start, start + 1
    stop = int(match.group(3)) if match.group(3) else None
    if start is not None and stop is not None and stop <= start:
        raise InputError(f"--slices {text}: STOP must be greater than START")
    return start, stop


def window_hu(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU -> uint8: center - width/2 -> 0, center + width/2 -> 255, linear between, rounded half up.

    A voxel without a value (NaN, as resampled or masked float volumes hold outside the scan) is 0,
    as padding is: casting NaN to uint8 is undefined (platform-dependent, and numpy warns).
    """
    center, width = window
    lo = center - width / 2.0
    scaled = (np.asarray(hu, dtype=np.float64) - lo) * (255.0 / width)
    scaled[np.isnan(scaled)] = 0.0
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def hu_gray(values: np.ndarray, hu_offset: int, window: tuple[float, float] | None) -> np.ndarray:
    """uint8 of a 16-bit image that stores HU + `hu_offset`, in `window` (None: lung), as a DICOM slice is read."""
    return window_hu(np.asarray(values, dtype=np.float64) - hu_offset, window or DEFAULT_WINDOW)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise InputError(f"DICOM files need pydicom: {MISSING}") from None
    return pydicom


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise InputError(f"NIfTI files need nibabel: {MISSING}") from None
    return nibabel


def _read_dicom(path: str, pixels: bool):
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except (OSError, pydicom.errors.InvalidDicomError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable DICOM file ({exc})") from None


def _plugin_for(syntax) -> str:
    """The pip packages of the first pylibjpeg route pydicom names for a transfer syntax."""
    from pydicom.pixels import get_decoder

    missing = get_decoder(syntax).missing_dependencies
    route = next((m for m in missing if m.startswith("pylibjpeg")), missing[0] if missing else "pylibjpeg")
    wanted = route.split("requires", 1)[-1].split(" and ")
    return " ".join(re.split(r"[<>=!~ ]", w.strip(), maxsplit=1)[0] for w in wanted)


def _dicom_pixels(ds, path: str) -> np.ndarray:
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        from pydicom.pixels import get_decoder

        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            plugin = _plugin_for(syntax)
            raise InputError(f"{path}: {syntax.name} pixel data needs a decoder plugin: pip install {plugin}")
    if "PixelData" not in ds:
        raise InputError(f"{path}: DICOM file without pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(f"{path}: holds {frames} frames (a multi-frame DICOM), and ganfp reads one image per file; "
                         f"give one file per slice")
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom's decoders raise many types; any is this file's problem
        raise InputError(f"{path}: cannot decode DICOM pixel data ({_first_line(exc)})") from None


def dicom_gray(path: str, window: tuple[float, float] | None) -> np.ndarray:
    """uint8 (rows, columns): stored values -> HU by RescaleSlope/Intercept -> window.

    Without a given window, CT gets the lung window; other modalities (no HU) the file's own
    WindowCenter/WindowWidth, else their full value range. Those are shown as the file says to:
    MONOCHROME1 (the lowest value white, as CR and DX often store) is inverted. CT is not: its HU are
    physical, so air is -1000 HU and black whichever way the scanner asked for it to be displayed.
    """
    ds = _read_dicom(path, pixels=True)
    values = _dicom_pixels(ds, path).astype(np.float64)
    values = values * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    if str(ds.get("Modality", "CT")).upper() == "CT":
        return window_hu(values, window or DEFAULT_WINDOW)
    gray = window_hu(values, window or _own_window(ds, values))
    return 255 - gray if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1" else gray


def _first(value) -> float:
    """A DICOM number that may be multi-valued (several windows): the first."""
    from pydicom.multival import MultiValue

    return float(value[0] if isinstance(value, MultiValue) else value)


def _own_window(ds, values: np.ndarray) -> tuple[float, float]:
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        if width > 0:
            return center, width
    lo, hi = float(values.min()), float(values.max())
    return (lo + hi) / 2.0, max(hi - lo, 1e-6)


def _nifti_axes(img) -> tuple[int, tuple[int, int], tuple[bool, bool]]:
    """(array axis running inferior-superior, in-plane axes ordered (R-L, A-P), whether each is flipped)."""
    nib = _nibabel()
    ornt = nib.orientations.io_orientation(img.affine)  # per array axis: (RAS axis, +1/-1)
    by_target = {int(target): (axis, flip < 0) for axis, (target, flip) in enumerate(ornt)}
    (x_axis, x_flip), (y_axis, y_flip) = by_target[0], by_target[1]
    return by_target[2][0], (x_axis, y_axis), (x_flip, y_flip)


def _load_nifti(path: str):
    nib = _nibabel()
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises ImageFileError, OSError, gzip errors...
        raise InputError(f"{path}: not a readable NIfTI file ({_first_line(exc)})") from None
    if len(img.shape) < 3 or any(n != 1 for n in img.shape[3:]):  # (x, y, z, 1), as some converters write, is 3-D
        raise InputError(f"{path}: a NIfTI volume must have 3 dimensions, this one has shape {tuple(img.shape)}")
    return img


def nifti_slice_count(path: str) -> int:
    img = _load_nifti(path)
    return int(img.shape[_nifti_axes(img)[0]])


class _Volumes:
    """The last few NIfTI volumes read, unscaled, so decoding every slice reads a file once.

    A `.nii.gz` cannot be read slice by slice without decompressing everything before the slice;
    the decode threads ask for consecutive slices of one volume, so a small cache of whole volumes
    turns N decompressions into one. Loading holds the lock: two threads never load one volume twice.
    """

    def __init__(self, keep: int = 2):
        self.keep, self.lock, self.held = keep, threading.Lock(), OrderedDict()

    def get(self, path: str):
        key = (path, os.stat(path).st_mtime_ns)
        with self.lock:
            if key not in self.held:
                img = _load_nifti(path)
                try:
                    data = np.asarray(img.dataobj.get_unscaled())
                    data = data.reshape(data.shape[:3])  # drop the trailing axes of length 1 _load_nifti accepts
                except Exception as exc:  # truncated gzip, short file: nibabel and zlib raise many types
                    raise InputError(f"{path}: cannot read the NIfTI volume ({type(exc).__name__}: {exc})") from None
                self.held[key] = (img, data, _nifti_scale(img))
                while len(self.held) > self.keep:
                    self.held.popitem(last=False)
            self.held.move_to_end(key)
            return self.held[key]


def _nifti_scale(img) -> tuple[float, float]:
    slope, inter = getattr(img.dataobj, "slope", 1.0), getattr(img.dataobj, "inter", 0.0)
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    return slope, 0.0 if inter is None or not np.isfinite(inter) else float(inter)


VOLUMES = _Volumes()


def nifti_gray(path: str, frame: int, window: tuple[float, float] | None) -> np.ndarray:
    """uint8 of axial slice `frame` shown radiologically: anterior up, the patient's right on the left."""
    img, data, (slope, inter) = VOLUMES.get(path)
    z_axis, (x_axis, y_axis), (x_flip, y_flip) = _nifti_axes(img)
    if not 0 <= frame < img.shape[z_axis]:
        raise InputError(f"{path}: no slice {frame} (the volume has {img.shape[z_axis]})")
    index = [slice(None)] * 3
    index[z_axis] = frame
    plane = data[tuple(index)].astype(np.float64) * slope + inter  # scl_slope, scl_inter
    kept = [a for a in range(3) if a != z_axis]
    ras = plane if kept.index(x_axis) == 0 else plane.T  # (x: towards the right, y: towards anterior)
    ras = ras[::-1] if x_flip else ras
    ras = ras[:, ::-1] if y_flip else ras
    return window_hu(ras.T[::-1, ::-1], window or DEFAULT_WINDOW)


def medical_gray(path: str, frame: int | None, window: tuple[float, float] | None) -> np.ndarray:
    if is_nifti(path):
        if frame is None:
            raise InputError(f"{path}: a NIfTI volume holds many slices; read it through a folder of images")
        return nifti_gray(path, frame, window)
    return dicom_gray(path, window)


def decode_medical(path: str, size: int, frame: int | None, window: tuple[float, float] | None) -> np.ndarray:
    """(size, size) uint8 of a DICOM file or a NIfTI slice, resized the way decode.py resizes images."""
    gray = Image.fromarray(medical_gray(path, frame, window))
    if gray.size != (size, size):
        gray = gray.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(gray, dtype=np.uint8)


def medical_size(path: str) -> tuple[int, int]:
    """(width, height) of a DICOM file's image or of a NIfTI volume's axial slices, from the header."""
    if is_nifti(path):
        img = _load_nifti(path)
        _, (x_axis, y_axis), _ = _nifti_axes(img)
        return int(img.shape[x_axis]), int(img.shape[y_axis])
    ds = _read_dicom(path, pixels=False)
    if "Rows" not in ds or "Columns" not in ds:
        raise InputError(f"{path}: DICOM file without an image (no Rows/Columns)")
    return int(ds.Columns), int(ds.Rows)


def _slice_range(path: str, count: int, slices) -> range:
    start, stop = slices or (None, None)
    chosen = range(count)[slice(start, stop)]
    if not len(chosen):
        raise InputError(f"{path}: --slices {start or ''}:{stop or ''} selects none of its {count} slices")
    return chosen


def file_items(path: Path, label: int = UNLABELLED, group: str | None = None, source: str = "",
               reading: MedicalReading | None = None) -> list[Item]:
    """The images of one file: itself, or one per selected axial slice of a NIfTI volume.

    The path is made absolute, not resolved: a symbolic link's own name is the image's id (a DVC, git-annex or
    Hugging Face cache links `case_01.png` to a blob named by its hash, which became the id).
    """
    reading = reading or MedicalReading()
    where = os.path.abspath(path)
    if is_nifti(where):
        group = group or volume_stem(where)  # a volume's slices stay on one side of a train/val split
        return [Item(where, label, group=group, source=source, frame=z, window=reading.window)
                for z in _slice_range(where, nifti_slice_count(where), reading.slices)]
    if not is_dicom(where):
        return [Item(where, label, group=group, source=source,
                     **item_reading(where, reading.window, reading.hu_offset))]
    name = None
    if reading.id_from == "uid":
        name = str(_read_dicom(where, pixels=False).get("SOPInstanceUID", "") or "")
        if not name:
            raise InputError(f"{where}: --id-from uid, but the file has no SOPInstanceUID")
    return [Item(where, label, group=group, source=source, window=reading.window, name=name)]
