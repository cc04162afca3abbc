"""Features of a manifest in a feature space (see spaces.py), and the on-disk embedding cache.

Deep embeddings cost a forward pass per image, so they are cached under
`<cache>/embeddings`, keyed by the images (decode-cache key and file fingerprint), the feature
space, the model and the checkpoint file (path, size, mtime). Pixel features are cheap views of
the decoded-image cache and are computed on the fly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ganfp.data.cache import cache_key, load_images
from ganfp.data.manifest import Manifest
from ganfp.data.medical import DEFAULT_WINDOW, MedicalReading, hu_offset_problem, parse_window, window_name
from ganfp.device import rng_untouched
from ganfp.errors import InputError, UnreadableImage
from ganfp.fileio import atomic_path, build_lock, write_json
from ganfp.membership.spaces import FeatureSpace
from ganfp.paths import cache_root

FEATURES_VERSION = 1  # bump when an embedding's meaning changes, so caches rebuild
CHUNK = 1024  # images converted at a time, so a memory-mapped set is never copied whole

Progress = Callable[[str, int, int], None]  # (task, advance, total)
# (manifest, side, role) -> float (N, side, side) in [0, 1]: where pixel spaces get their images
PixelSource = Callable[[Manifest, int, str], torch.Tensor]


def load_checked(manifest: Manifest, image_size: int, data_root=None, progress: Progress | None = None,
                 task: str = "decode") -> torch.Tensor:
    """uint8 (N, size, size) of every image; any unreadable file is one UnreadableImage naming it."""
    on_image = (lambda: progress(task, 1, len(manifest))) if progress else None
    image_set = load_images(manifest, image_size, data_root=data_root, skip_bad=True, on_image=on_image)
    if image_set.bad:
        path, reason = image_set.bad[0]
        more = f" (and {len(image_set.bad) - 1} more bad files)" if len(image_set.bad) > 1 else ""
        raise UnreadableImage(f"{path}: {reason}{more}")
    return image_set.images


def downsample(images_u8: torch.Tensor, size: int) -> torch.Tensor:
    """float (N, size, size) in [0, 1]: area-averaged, chunk by chunk."""
    out = torch.empty(len(images_u8), size, size)
    for start in range(0, len(images_u8), CHUNK):
        x = images_u8[start : start + CHUNK].float().div_(255.0)[:, None]
        if x.shape[-1] % size == 0:
            x = F.avg_pool2d(x, x.shape[-1] // size) if x.shape[-1] != size else x
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + len(x)] = x[:, 0]
    return out


def checkpoint_file(checkpoint: str | Path | None, runs_dir=None, instead: str = "or pass --checkpoint") -> Path:
    """The model.safetensors behind a stage folder, a chain run folder, or the newest chain run (`instead` ends
    the message when there is none: what the caller offers besides one)."""
    from ganfp.checkpoint import MODEL_FILE, resolve_checkpoint

    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.is_file():
        return path.resolve()
    return (resolve_checkpoint(path, runs_dir, instead) / MODEL_FILE).resolve()


def check_checkpoint_given(checkpoint: str | Path, runs_dir=None) -> None:
    """A --checkpoint that is there and is one, checked before it is known whether anything reads it: a path that is
    not there is named so, not as a folder of the wrong kind."""
    from ganfp.checkpoint import resolve_checkpoint

    if not Path(checkpoint).exists():
        raise InputError(f"--checkpoint {checkpoint}: not found (no such file or folder)")
    resolve_checkpoint(checkpoint, runs_dir)


def check_checkpoint_read(checkpoint: str | Path | None, runs_dir, image_size: int | None,
                          instead: str = "or pass --checkpoint") -> Path:
    """The model file the classifier or the checkpoint space reads, its header read before any image is decoded,
    and an --image-size that is not the size it was trained at refused: its network reads every image at that
    size, so another one would be ignored without a word."""
    from ganfp.checkpoint import check_model_meta, read_safetensors

    file = checkpoint_file(checkpoint, runs_dir, instead)
    meta = read_safetensors(file, tensors=False)[1]
    check_model_meta(file, meta)
    if image_size is not None and image_size != meta["image_size"]:
        raise InputError(f"--image-size {image_size}: the checkpoint {file} was trained on {meta['image_size']} px "
                         "images and its network reads every image at that size; drop --image-size")
    return file


def checkpoint_meta(file: Path) -> dict:
    """The ganfp metadata of a checkpoint, read without loading its tensors."""
    from ganfp.checkpoint import read_safetensors

    meta = read_safetensors(file, tensors=False)[1]
    if "image_size" not in meta:
        raise InputError(f"{file}: no ganfp metadata (model name, classes, image size)")
    return meta


def checkpoint_reading(reading: MedicalReading | None, checkpoint: str | None,
                       runs_dir) -> tuple[MedicalReading | None, list[str]]:
    """(the reading to use, warnings): a checkpoint sees DICOM and NIfTI images as it was trained on them. Without
    --window they are read in the window its stage recorded (none recorded: lung, as before windows were recorded);
    a --window of another is kept, as asked, and said in one line: it scores images unlike those it learnt from.
    --hu-offset likewise: the offset the stage recorded, unless another is given (said in one line)."""
    file = checkpoint_file(checkpoint, runs_dir)
    meta = checkpoint_meta(file)
    trained = parse_window(str(meta["window"]), f"{file}: window") if meta.get("window") is not None else None
    offset = recorded_hu_offset(meta, file)
    given = reading or MedicalReading()
    taken = replace(given, window=given.window or trained,
                    hu_offset=given.hu_offset if given.hu_offset is not None else offset)
    warnings = []
    if given.window is not None and given.window != (trained or DEFAULT_WINDOW):
        warnings.append(f"--window {window_name(given.window)}: the checkpoint {file} was trained on DICOM/NIfTI "
                        f"images read in the {window_name(trained or DEFAULT_WINDOW)} window, so it scores images "
                        "unlike those it learnt from; leave --window out to read them as it was trained")
    if given.hu_offset is not None and given.hu_offset != offset:
        how = f"read as HU + {offset}" if offset is not None else "stretched between their own percentiles"
        warnings.append(f"--hu-offset {given.hu_offset}: the checkpoint {file} was trained on 16-bit images {how}, "
                        "so it scores images unlike those it learnt from; leave --hu-offset out to read them as it "
                        "was trained")
    return (reading if taken == given else taken), warnings


def recorded_hu_offset(meta: dict, file: Path) -> int | None:
    """The HU offset a checkpoint's stage read its 16-bit images with (None: none, they were stretched)."""
    offset = meta.get("hu_offset")
    why = hu_offset_problem(offset) if offset is not None else None
    if why:
        raise InputError(f"{file}: hu_offset {offset!r} in its metadata {why}")
    return offset


def embedding_key(space: FeatureSpace, manifest: Manifest, image_size: int, device: torch.device,
                  checkpoint: Path | None) -> str:
    """Changes with the images, the decode size, the space, the model, the checkpoint file, the device type."""
    parts = [f"v{FEATURES_VERSION}", space.name, str(image_size), cache_key(manifest, image_size),
             manifest.fingerprint(with_labels=False), device.type]  # CUDA embeds under bf16 autocast
    if checkpoint is not None:
        st = checkpoint.stat()
        parts += [str(checkpoint), str(st.st_size), str(st.st_mtime_ns)]
    else:
        import timm

        parts += [space.model or "", f"timm {timm.__version__}"]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def deep_features(space: FeatureSpace, manifest: Manifest, *, image_size: int, device: torch.device,
                  batch_size: int = 128, data_root=None, checkpoint: str | Path | None = None, runs_dir=None,
                  progress: Progress | None = None, task: str = "embed") -> torch.Tensor:
    """Pooled features (N, F), L2-normalised, from the cache or computed in batches and cached."""
    ckpt = checkpoint_file(checkpoint, runs_dir) if space.model is None else None
    if ckpt is not None:
        image_size = int(checkpoint_meta(ckpt)["image_size"])
    key = embedding_key(space, manifest, image_size, device, ckpt)
    folder = cache_root(data_root) / "embeddings"
    array_path, record_path = folder / f"{key}.npy", folder / f"{key}.json"
    cached = _cached_features(record_path, array_path, len(manifest))
    if cached is not None:
        return cached
    with build_lock(folder / key):  # a second process embedding the same images waits, then reads them
        cached = _cached_features(record_path, array_path, len(manifest))
        if cached is not None:
            return cached
        images = load_checked(manifest, image_size, data_root, progress, task=f"decode ({image_size} px)")
        model = _feature_model(space, ckpt, image_size, device)
        features = _embed_in_chunks(model, images, batch_size, device, progress, task)
        features = F.normalize(features, dim=1)  # cosine geometry: the scale of deep features carries no identity
        with atomic_path(array_path) as tmp, open(tmp, "wb") as f:
            np.save(f, features.numpy())
        write_json(record_path, {"key": key, "space": space.name, "dim": int(features.shape[1]),
                                 "images": len(manifest), "source": manifest.name,
                                 "checkpoint": str(ckpt) if ckpt else None})
    return features


def _cached_features(record_path: Path, array_path: Path, n: int) -> torch.Tensor | None:
    """The cached embeddings when the record and the array agree, else None (a miss: an empty array file, as a power
    cut leaves one renamed before its data was on disk, failed with numpy's EOFError)."""
    try:
        record = json.loads(record_path.read_text())
        features = np.load(array_path)
        if features.shape != (n, record["dim"]):
            return None
        return torch.from_numpy(features)
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return None


def _feature_model(space: FeatureSpace, ckpt: Path | None, image_size: int, device: torch.device):
    """The embedding model, built without drawing from the caller's torch RNG (`rng_untouched`)."""
    from ganfp.checkpoint import load_checkpoint
    from ganfp.models import create_model

    with rng_untouched():
        if ckpt is not None:
            return load_checkpoint(ckpt, device)[0]
        return create_model(space.model, num_classes=2, image_size=image_size, weights="imagenet").to(device).eval()


def _embed_in_chunks(model, images: torch.Tensor, batch_size: int, device: torch.device, progress: Progress | None,
                     task: str) -> torch.Tensor:
    from ganfp import inference

    step = batch_size * 8
    parts = []
    for start in range(0, len(images), step):
        parts.append(inference.embed(model, images[start : start + step], batch_size, device))
        if progress:
            progress(task, min(step, len(images) - start), len(images))
    return torch.cat(parts).float()


def compute_features(space: FeatureSpace, manifest: Manifest, *, image_size: int, device: torch.device,
                     batch_size: int = 128, data_root=None, checkpoint=None, runs_dir=None,
                     progress: Progress | None = None, role: str = "",
                     pixels: PixelSource | None = None) -> torch.Tensor:
    """The features of every image of `manifest` in `space`: vectors, or images for image metrics (SSIM, NCC).

    `pixels` supplies the area-averaged images of pixel spaces (a caller scoring several spaces keeps
    them); by default each call decodes and averages afresh.
    """
    if space.kind == "deep":
        return deep_features(space, manifest, image_size=image_size, device=device, batch_size=batch_size,
                             data_root=data_root, checkpoint=checkpoint, runs_dir=runs_dir, progress=progress,
                             task=f"embed {role}".strip())
    if pixels is None:
        images = load_checked(manifest, image_size, data_root, progress, f"decode {role}".strip())
        return space.features(downsample(images, space.size))
    return space.features(pixels(manifest, space.size, role))


def paired_features(space: FeatureSpace, real: Manifest, generated: Manifest, **common) -> tuple[FeatureSpace, torch.Tensor, torch.Tensor]:
    """(the space as used, real features, generated features): the space at no more than the decoded
    size, both sets in it, after its kind's joint transform (fitted to the two sets) if it has one."""
    at = space.at_most(common["image_size"])
    gen = compute_features(at, generated, role="generated", **common)
    ref, gen = at.pair(compute_features(at, real, role="real", **common), gen)
    return at, ref, gen
