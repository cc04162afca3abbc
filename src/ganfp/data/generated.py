"""The generated-image side of a membership set: its manifest, and the one image size shared with the real side.

Shared by `classify` and by the chain's "knn" pseudo-labeler, which must see the images the same way.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ganfp.data.manifest import UNLABELLED, Manifest, image_files, is_dicom, is_nifti
from ganfp.data.medical import MedicalReading, file_items, medical_size
from ganfp.errors import InputError


def generated_manifest(path: str | Path, reading: MedicalReading | None = None) -> Manifest:
    """Every image under the generated folder (sub-folders included; NIfTI: every slice), unlabelled."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: generated images folder not found")
    files = image_files(root)
    if not files:
        raise InputError(f"{root}: the generated images folder holds no images")
    items = [it for p in files for it in file_items(p, UNLABELLED, source="generated", reading=reading)]
    return Manifest(f"folder:{root}", [], items, str(root))


def _image_size_of(path: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    if is_dicom(path) or is_nifti(path):
        return medical_size(path)
    try:
        with Image.open(path) as img:
            return img.size
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (cannot identify format)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None


def native_image_size(*manifests: Manifest) -> int:
    """The one square size all images share (read from file headers); otherwise ask for --image-size.

    Comparing pixels only makes sense at one resolution. Files of different sizes are not
    silently resized: the user decides, with --image-size N, that all are resized to N x N.
    """
    paths = [it.path for m in manifests for it in m.items]
    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(pool.map(_image_size_of, paths))
    by_size = Counter(sizes)
    if len(by_size) > 1:
        example = {s: p for p, s in zip(paths, sizes)}
        listed = ", ".join(f"{w}x{h} ({n} files, e.g. {example[(w, h)]})" for (w, h), n in by_size.most_common())
        raise InputError(f"images have different sizes: {listed}; pass --image-size N to resize all to N x N")
    ((w, h),) = by_size
    if w != h:
        raise InputError(f"{paths[0]}: images are {w}x{h}, not square; pass --image-size N to resize all to N x N")
    return w
