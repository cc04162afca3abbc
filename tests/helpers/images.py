"""Tiny image sets with a known answer (a class or a membership), written as files by the tests that need them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_fields(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n smooth uint8 images: 4 x 4 random blocks, bilinearly enlarged."""
    coarse = rng.uniform(0, 255, (n, 4, 4)).astype(np.float32)
    return np.stack([np.asarray(Image.fromarray(c, mode="F").resize((size, size), Image.Resampling.BILINEAR))
                     for c in coarse]).clip(0, 255).round().astype(np.uint8)


def copy_case(seed: int = 0, n_real: int = 12, extra: int = 6, size: int = 32) -> dict:
    """{"real", "used" (bool), "generated"}: the first half of the real images reappear, noisy, among the generated."""
    rng = np.random.default_rng(seed)
    real = smooth_fields(rng, n_real, size)
    used = np.arange(n_real) < n_real // 2
    copies = [np.clip(real[i] + rng.normal(0, 4, real[i].shape), 0, 255).round().astype(np.uint8)
              for i in np.flatnonzero(used)]
    return {"real": real, "used": used, "generated": np.stack(copies + list(smooth_fields(rng, extra, size)))}


def write_pngs(folder: Path, prefix: str, images: np.ndarray) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{prefix}{i:03d}.png")
    return [f"{prefix}{i:03d}" for i in range(len(images))]


def write_frames(path: Path, n: int = 3, size: int = 16, seed: int = 0, **save: object) -> Path:
    """One file of n different frames: a multi-page TIFF, an animated GIF or PNG, an MPO (`format="MPO"`); n=1 is the
    first of them alone, as a plain file."""
    rng = np.random.default_rng(seed)
    frames = [Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)) for _ in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, **({"save_all": True, "append_images": frames[1:]} if n > 1 else {}), **save)
    return path


def write_tiff_pages(path: Path, pages: list[Image.Image], previews: tuple[int, ...] = ()) -> Path:
    """One TIFF of the given pages; those numbered in `previews` are marked reduced-resolution copies (NewSubfileType
    bit 0), as scanners and image editors mark the previews they store beside the image."""
    pages = [page.copy() for page in pages]
    for n, page in enumerate(pages):
        page.encoderinfo = {"tiffinfo": {254: int(n in previews)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    pages[0].save(path, save_all=True, append_images=pages[1:])
    return path


def write_class_folder(root: Path, n_per_class: int = 24, size: int = 32, seed: int = 0, groups: int = 0) -> Path:
    """Two learnable classes: dark images in `a/`, bright ones in `b/` (optionally in group sub-folders)."""
    rng = np.random.default_rng(seed)
    for label, cls in enumerate(["a", "b"]):
        for i in range(n_per_class):
            folder = root / cls / (f"p{i % groups}" if groups else "")
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 120, (size, size)) + 100 * label
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{cls}{i:03d}.png")
    return root
