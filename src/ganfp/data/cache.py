"""Decode a manifest's images once into a uint8 array on disk; reuse it until the files or size change.

The cache is a `.npy` file (N, size, size) of uint8 beside a small JSON record. It is memory-mapped,
so a dataset larger than RAM still trains: batches are gathered from the map. Datasets within the
memory budget are read into RAM once for fast random access.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganfp.data.decode import DECODE_VERSION, decode_with_depth
from ganfp.data.generated import image_headers
from ganfp.data.manifest import Manifest, require_manifest
from ganfp.errors import InputError, RuntimeFailure, require_int
from ganfp.fileio import WRITE_ERRNOS, atomic_path, build_lock, write_json
from ganfp.paths import cache_root, ensure_dir


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, size, size): memory-mapped from the cache file, or in RAM
    manifest: Manifest  # the items behind `images`, in order (bad files dropped with skip_bad)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of skipped files
    path: Path | None = None  # the cache file
    reused: bool = False  # True when the cache was already there
    memory_mapped: bool = False  # True when over the memory budget: batches are read from disk
    depths: list[str | None] | None = None  # each kept image's bit depth (`Header.depth`); None: not readable

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


def default_memory_budget() -> int:
    """A quarter of physical memory: enough for every dataset of the chain at 256x256."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 2 << 30


def cache_key(manifest: Manifest, image_size: int) -> str:
    h = hashlib.sha256(f"v{DECODE_VERSION}\0{image_size}\0".encode())
    h.update(manifest.fingerprint(with_labels=False).encode())
    return h.hexdigest()[:32]


def decode_all(manifest: Manifest, image_size: int, out: np.ndarray, skip_bad: bool, on_image: Callable[[], None] | None):
    """Decode into `out` with a thread pool (Pillow releases the GIL); returns indices kept, bad files and each kept
    image's bit depth.

    `on_image` runs on the calling thread, once per image in order: progress bars are not thread-safe (from
    the pool's threads, one thread removed a finished bar while another still advanced it: a KeyError on a
    16-core machine).
    """
    def work(i: int):
        try:
            item = manifest.items[i]
            out[i], depth = decode_with_depth(item.path, image_size, item.frame, item.window, item.hu_offset)
            return None, depth
        except InputError as exc:
            return str(exc), None

    kept, bad, depths = [], [], []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, (problem, depth) in enumerate(pool.map(work, range(len(manifest)))):
            if on_image:
                on_image()
            if problem is None:
                kept.append(i)
                depths.append(depth)
            elif skip_bad:
                bad.append((manifest.items[i].path, problem.split(": ", 1)[-1]))
            else:
                raise InputError(problem + " (use --skip-bad to skip such files)")
    return kept, bad, depths


def _read_cache(record_path: Path, array_path: Path, image_size: int) -> dict | None:
    """The cache entry's record when its array is there and of the recorded shape, else None (a miss, rebuilt).

    An empty array file (what a power cut leaves of a file renamed before its data reached the disk; ganfp syncs it
    first, a copied or restored cache may not have) failed every later run with numpy's EOFError.
    """
    try:
        record = json.loads(record_path.read_text())
        array = np.load(array_path, mmap_mode="r")
        if array.shape != (len(record["kept"]), image_size, image_size):
            return None
        return record
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return None


def reserve_space(path: Path) -> None:
    """Allocate the whole file on disk before the map is written: a memory-mapped write to a full disk is no error
    but a SIGBUS, which killed the run without a word (exit 135). Out of space, this raises the OSError at once,
    before any image is decoded; where the file system cannot allocate ahead, the map is written as before."""
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - macOS, Windows
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno in WRITE_ERRNOS:
                raise


def _build_cache(manifest: Manifest, image_size: int, key: str, array_path: Path, record_path: Path, skip_bad: bool,
                 on_image: Callable[[], None] | None) -> dict:
    """Decode every image into the `.npy` array (bad ones dropped with skip_bad), then write the record (last)."""
    with atomic_path(array_path) as tmp:
        full = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(manifest), image_size, image_size))
        reserve_space(tmp)
        kept, bad, depths = decode_all(manifest, image_size, full, skip_bad, on_image)
        if len(kept) < len(manifest):
            compact = full[kept]
            del full
            with open(tmp, "wb") as f:
                np.save(f, compact)
        else:
            full.flush()
            del full
    record = {"key": key, "size": image_size, "kept": kept, "bad": bad, "source": manifest.name, "depths": depths}
    write_json(record_path, record)
    return record


def load_images(
    manifest: Manifest,
    image_size: int,
    data_root: str | os.PathLike | None = None,
    skip_bad: bool = False,
    on_image: Callable[[], None] | None = None,
    memory_budget: int | None = None,
) -> ImageSet:
    """The manifest's images as uint8 (N, size, size), decoded at most once per (files, size)."""
    require_manifest("manifest", manifest)
    require_int("image_size", image_size, low=1)  # 0 failed in PIL with a ZeroDivisionError, 2.5 with a TypeError
    image_size = int(image_size)  # a numpy int wrote `np.int64(16)` into the .npy header, which numpy cannot read back
    if not len(manifest):
        raise InputError(f"{manifest.name}: no images")
    folder = cache_root(data_root) / "images"
    key = cache_key(manifest, image_size)
    array_path, record_path = folder / f"{key}.npy", folder / f"{key}.json"
    record, reused = _read_cache(record_path, array_path, image_size), True
    if record is None:
        ensure_dir(folder, "cache folder")
        with build_lock(folder / key):  # a second process decoding the same images waits, then reuses them
            record = _read_cache(record_path, array_path, image_size)
            if record is None:
                record = _build_cache(manifest, image_size, key, array_path, record_path, skip_bad, on_image)
                reused = False
    array = np.load(array_path, mmap_mode="c")
    if not record["kept"]:
        one = len(manifest) == 1
        example = f" ({'' if one else 'e.g. '}{record['bad'][0][0]}: {record['bad'][0][1]})" if record["bad"] else ""
        which = "its one image could not" if one else f"none of the {len(manifest)} images could"
        raise InputError(f"{manifest.name}: {which} be decoded{example}")
    budget = default_memory_budget() if memory_budget is None else memory_budget
    mapped = array.nbytes > budget
    if not mapped:
        array = np.array(array, subok=False)  # read into RAM once: random batches then cost nothing
    kept_manifest = manifest if len(record["kept"]) == len(manifest) else manifest.subset(record["kept"])
    bad = [tuple(b) for b in record["bad"]]
    depths = _depths(record, kept_manifest, record_path)
    return ImageSet(torch.from_numpy(array), kept_manifest, bad, array_path, reused, mapped, depths)


def _depths(record: dict, kept: Manifest, record_path: Path) -> list[str | None] | None:
    """The kept images' bit depths as the record holds them. A cache built before ganfp recorded them has none, and
    its key (DECODE_VERSION) is unchanged, since its pixels are right: the depths are read from the kept files'
    headers (one open each, no pixel decoded) and written into its record, so a stage that mixes depths is still
    warned of, and the next run reads them there. None when a header cannot be read (a file gone since): no warning,
    as before, rather than a failed run."""
    depths = record.get("depths")
    if isinstance(depths, list) and len(depths) == len(record["kept"]):
        return depths
    try:
        depths = [header.depth for header in image_headers(kept)]
    except InputError:
        return None
    try:
        write_json(record_path, {**record, "depths": depths})  # atomic: a reader sees the old record or this one
    except (OSError, RuntimeFailure):
        pass  # a read-only cache: read from the headers again next time
    return depths
