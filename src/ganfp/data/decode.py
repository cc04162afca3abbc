"""Decode any image file once into an 8-bit grayscale square array.

16-bit and 32-bit images (CT scans such as COVID-CTset's TIFFs, values ~0-5000) are windowed
per image: the 0.5th..99.5th percentile range is mapped to 0..255. A fixed window would need
scanner-specific calibration the datasets don't provide; the percentile window keeps every
slice visible and is robust to a few outlier pixels. When the user knows the calibration (a
16-bit slice stores HU + an offset: `hu_offset`), a 16-bit grayscale image is read in a fixed HU
window instead, as DICOM is (ganfp.data.medical.hu_gray), so every slice has the same contrast.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ganfp.data.manifest import is_dicom, is_nifti
from ganfp.data.medical import decode_medical, holds_hu, hu_gray, medical_size
from ganfp.errors import InputError, require_int, require_path

DECODE_VERSION = 5  # bump when decoding changes, so caches rebuild (5: a TIFF whose other pages are previews is read)
HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
MODE_DEPTHS = {"1": "1-bit", "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I;16N": "16-bit",
               "I": "32-bit", "F": "32-bit float"}  # any other mode is read as 8-bit grey levels
WINDOW_PERCENTILES = (0.5, 99.5)
NEW_SUBFILE_TYPE, REDUCED_RESOLUTION = 254, 1  # the TIFF tag, and its bit that marks a page as a preview of another
# The filters below are process-wide while any ganfp thread reads headers: the first thread in installs them and the
# last one out removes them. catch_warnings per read could not be used: it swaps the whole filter list and puts back
# what it found, so two threads interleaving put back each other's, and a lock around it serialised every header
# read of the decoding threads (a 1.5x slower cold decode on 2 cores).
_FILTERS_LOCK = threading.Lock()
_readers = 0  # ganfp threads inside `_pil_duplicates_silenced`
_added: list[tuple] = []  # the filter entries it put in warnings.filters, while `_readers` > 0


@contextlib.contextmanager
def _pil_duplicates_silenced():
    """Ignore, while ganfp reads image headers, PIL's warnings that duplicate the one-line refusal ganfp gives.

    PIL warns (two lines on stderr) between its pixel limit and twice it, and raises above; ganfp refuses both
    (`_open`). A TIFF cut short warns "Corrupt EXIF data" (two lines) as its directories are read, then is refused
    ("cannot decode image", or the frame count of a volume). A library must not change its caller's filters for
    good, so they are removed again when the last reading thread is done.
    """
    global _readers
    with _FILTERS_LOCK:
        if not _readers:
            before = list(warnings.filters)
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning,
                                    module=r"PIL\.TiffImagePlugin")
            _added[:] = [f for f in warnings.filters if f not in before]
        _readers += 1
    try:
        yield
    finally:
        with _FILTERS_LOCK:
            _readers -= 1
            if not _readers:
                for entry in _added:
                    if entry in warnings.filters:
                        warnings.filters.remove(entry)
                _added.clear()


def window_to_uint8(values: np.ndarray) -> np.ndarray:
    """The percentile window of the finite values; NaN (outside a float reconstruction's field of view) is black.

    One NaN made every percentile NaN, and the whole image decoded black.
    """
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    if not finite.all():  # +-inf stay, and clip to white or black
        values = np.where(np.isnan(values), values[finite].min(), values)
    lo, hi = np.percentile(values if finite.all() else values[finite], WINDOW_PERCENTILES)
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def to_grayscale(img: Image.Image) -> Image.Image:
    """Mode L for any input: alpha is composited over black, palettes and colour reduced to luminance."""
    if img.mode in HIGH_DEPTH_MODES:
        return Image.fromarray(window_to_uint8(np.asarray(img)))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    return img if img.mode == "L" else img.convert("L")


@contextlib.contextmanager
def _reading(path: str):
    """Every way an image file can fail to open or decode, as one InputError naming the file."""
    try:
        yield
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except UnidentifiedImageError as exc:
        if _empty(path):  # an interrupted download or copy, not a file of another format
            raise InputError(f"{path}: empty file (0 bytes)") from exc
        raise InputError(f"{path}: not an image file (cannot identify format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: image too large, refused as a possible decompression bomb ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot decode image ({reason})") from exc


def _empty(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def _check_pixels(img: Image.Image) -> None:
    """Over PIL's pixel limit (MAX_IMAGE_PIXELS) is refused, not just warned about."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.size[0] * img.size[1] > limit:
        raise Image.DecompressionBombError(f"{img.size[0]}x{img.size[1]} pixels is over the limit of {limit}")


def _open(path: str) -> Image.Image:
    """Open (read the header only); over the pixel limit is refused before anything else is read."""
    img = Image.open(path)
    try:
        _check_pixels(img)
    except Image.DecompressionBombError:
        img.close()
        raise
    return img


@contextlib.contextmanager
def _image(path: str, one: bool = False):
    """The file opened at its image, its pixels not yet decoded; every failure is one InputError naming the file.

    `one`: refuse a file of several images. A multi-page TIFF is opened at its first full page even without it, so
    the size and depth read from the header are those of the image decoded, not of a preview stored first.
    """
    with _reading(path), _header_read(path, one) as img:
        yield img


def _header_read(path: str, one: bool) -> Image.Image:
    """`_image`'s file, open at its image, its headers checked (PIL's duplicate warnings silenced while read)."""
    with _pil_duplicates_silenced():
        img = _open(path)
        try:
            images = _seek_image(img) if one or img.format == "TIFF" else 1
            if one and images > 1:
                raise InputError(f"{path}: holds {images} frames (a multi-page or animated image), and ganfp reads "
                                 f"one image per file; save one image per slice, or a CT volume as NIfTI (.nii.gz), "
                                 f"which ganfp reads slice by slice")
            if img.tell():
                _check_pixels(img)
        except BaseException:
            img.close()
            raise
    return img


def _seek_image(img: Image.Image) -> int:
    """How many images the file holds, `img` left at the first. A multi-page TIFF (a CT volume in one file) or an
    animated GIF/PNG/WebP decoded as its first frame would score one arbitrary slice for the whole file. An MPO
    (a phone or camera JPEG) is one: its extra frames are previews, and the first is the photo.

    `is_animated` comes from the header (TIFF, PNG, WebP, MPO) or one skip past the first frame's data (GIF), and
    a TIFF's pages are walked by their directories: no pixels are decoded.
    """
    try:
        if img.format == "MPO" or not getattr(img, "is_animated", False):
            return 1
        if img.format != "TIFF":
            return img.n_frames
        pages = _full_pages(img)
        img.seek(pages[0])
        return len(pages)
    except Exception as exc:  # past its first frame a damaged file makes PIL raise TypeError, IndexError, struct.error
        raise OSError(f"damaged after its first frame: {type(exc).__name__}: {exc}") from exc


def _full_pages(img: Image.Image) -> list[int]:
    """The pages of a TIFF that are images of their own, not previews of one: a scanner or an image editor may add
    reduced-resolution copies, marked so (NewSubfileType bit 0) or only smaller than the first full page.

    Pages of one size are a volume's slices, each counted. A file of previews only is counted as it is.
    """
    full, first = [], None
    for page in range(img.n_frames):
        img.seek(page)
        if img.tag_v2.get(NEW_SUBFILE_TYPE, 0) & REDUCED_RESOLUTION:
            continue
        if first is None:
            first = img.size
        elif img.width <= first[0] and img.height <= first[1] and img.size != first:
            continue
        full.append(page)
    return full or list(range(img.n_frames))


class Header(NamedTuple):
    """What one open of a file's header tells, without decoding the pixels."""

    size: tuple[int, int]  # (width, height)
    mode: str | None  # PIL's mode; None for DICOM and NIfTI, which are windowed in HU whatever their depth

    @property
    def depth(self) -> str | None:
        """The bit depth as the decoder reads it: 16-bit, 32-bit and float images are windowed by their own
        percentiles, 1-bit ones become black and white, the rest (grey, palette, colour) are read as 8-bit grey
        levels. So two modes of one depth (a palette PNG and a grey one) decode alike and share a depth."""
        return None if self.mode is None else mode_depth(self.mode)


def mode_depth(mode: str) -> str:
    """The bit depth of a PIL mode as the decoder reads it (see `Header.depth`)."""
    return MODE_DEPTHS.get(mode, "8-bit")


def image_header(path: str) -> Header:
    """The file's size and mode from one header read: `native_image_size` and the bit depth checks share it."""
    require_path("path", path)
    if is_dicom(path) or is_nifti(path):
        return Header(medical_size(path), None)
    with _image(path) as img:
        return Header(img.size, img.mode)


def high_depth(path: str) -> bool | None:
    """Whether the file holds more than 8 bits per pixel (windowed by its percentiles when decoded), from its
    header; None for DICOM and NIfTI, which are windowed in HU whatever their depth."""
    mode = image_header(path).mode
    return None if mode is None else mode in HIGH_DEPTH_MODES


def decode_image(path: str, size: int, frame: int | None = None, window: tuple[float, float] | None = None,
                 hu_offset: int | None = None) -> np.ndarray:
    """The image at `path` as a (size, size) uint8 array; a file that isn't one image raises InputError.

    DICOM files and NIfTI slices (`frame`) are windowed in HU (`window`) by ganfp.data.medical; so is a 16-bit
    grayscale image with `hu_offset` (it stores HU + hu_offset).
    """
    return decode_with_depth(path, size, frame, window, hu_offset)[0]


def decode_with_depth(path: str, size: int, frame: int | None = None, window: tuple[float, float] | None = None,
                      hu_offset: int | None = None) -> tuple[np.ndarray, str | None]:
    """`decode_image`'s array and the file's bit depth (`Header.depth`; None for DICOM and NIfTI), known from the
    file opened to decode it: the decode cache records it, so training warns of a mix without a header pass."""
    require_path("path", path)
    require_int("size", size, low=1)  # size=0 failed in PIL with a ZeroDivisionError
    if is_dicom(path) or is_nifti(path):
        return decode_medical(path, size, frame, window), None
    with _image(path, one=True) as img:
        depth = mode_depth(img.mode)
        if img.format in ("JPEG", "MPO"):  # an MPO is a camera JPEG with previews after it
            img.draft("L", (size, size))  # let libjpeg decode at reduced scale: much faster
        with _pil_duplicates_silenced():
            img.getexif()  # read (and kept) here, where a damaged EXIF block's warning is silenced
        hu = hu_offset is not None and holds_hu(img)  # before the transpose, whose copy has no format
        img = ImageOps.exif_transpose(img)
        gray = Image.fromarray(hu_gray(np.asarray(img), hu_offset, window)) if hu else to_grayscale(img)
        if gray.size != (size, size):
            gray = gray.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(gray, dtype=np.uint8), depth
