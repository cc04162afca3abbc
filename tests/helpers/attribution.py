"""Tiny seeded image sets of a few known classes, and the one-line error check, for the attribution tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 16
CLASSES = ("alpha", "beta", "gamma")


def class_images(rng: np.random.Generator, c: int, n: int) -> np.ndarray:
    """Images of class `c`: its own fixed pattern plus noise, so a class is learnable but no two images are equal."""
    base = np.random.default_rng(100 + c).integers(40, 216, (SIZE, SIZE))
    return np.clip(base + rng.normal(0, 25, (n, SIZE, SIZE)), 0, 255).astype(np.uint8)


def save(folder: Path, prefix: str, images: np.ndarray, palette: bool = False, bits: int = 8) -> list[str]:
    """PNGs; with `palette`, 8-bit palette ("colormap") PNGs like the 2025 data, grey level = palette entry; with
    `bits=16`, 16-bit grey PNGs of the same levels."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i, img in enumerate(images):
        ids.append(f"{prefix}_{i:03d}")
        out = Image.fromarray(img) if bits == 8 else Image.fromarray(img.astype(np.uint16) * 257)
        if palette:  # store index 255 - v with a reversed grey ramp: reading the index instead would invert the image
            out = Image.fromarray((255 - img).astype(np.uint8), mode="P")
            out.putpalette(np.repeat(255 - np.arange(256), 3).tolist())
        out.save(folder / f"{ids[-1]}.png")
    return ids


def blobs(rng: np.random.Generator, n_per: int = 10) -> tuple[np.ndarray, list[str]]:
    images = np.concatenate([class_images(rng, c, n_per) for c in range(3)])
    return images, [cls for cls in CLASSES for _ in range(n_per)]


def one_line_error(result, *fragments):
    code, out, err = result
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
