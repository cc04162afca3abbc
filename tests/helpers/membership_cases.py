"""Tiny membership cases with a known answer, shared by the membership and classify tests.

Real images are smooth random fields; the "used" ones appear in the generated set as slightly
noisy copies, next to a few unrelated generated images. Every scorer must rank used above not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def smooth_fields(rng: np.random.Generator, n: int, size: int = 32) -> np.ndarray:
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 1, 4, 4))).float()
    up = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return up.clamp(0, 255).round().to(torch.uint8)[:, 0].numpy()


def membership_case(seed: int = 0, n_used: int = 8, n_not_used: int = 8, copies: int = 3, extra: int = 8,
                    size: int = 32) -> dict:
    """{"real": uint8 (n, s, s), "used": bool mask, "generated": uint8 (m, s, s)}."""
    rng = np.random.default_rng(seed)
    real = smooth_fields(rng, n_used + n_not_used, size)
    noisy = [np.clip(real[:n_used] + rng.normal(0, 6, real[:n_used].shape), 0, 255).round().astype(np.uint8)
             for _ in range(copies)]
    generated = np.concatenate(noisy + [smooth_fields(rng, extra, size)])
    order = rng.permutation(len(real))  # ids must not reveal the labels
    used = np.arange(len(real)) < n_used
    return {"real": real[order], "used": used[order], "generated": generated[rng.permutation(len(generated))]}


def save(folder: Path, prefix: str, images: np.ndarray) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i, img in enumerate(images):
        ids.append(f"{prefix}_{i + 1:03d}")
        Image.fromarray(img).save(folder / f"{ids[-1]}.png")
    return ids


def write_case(root: Path, seed: int = 0, size: int = 32, **kw) -> tuple[Path, Path, dict[str, int]]:
    """(real folder, generated folder, id -> label) of a case written as PNGs."""
    case = membership_case(seed, size=size, **kw)
    ids = save(root / "real", "real", case["real"])
    save(root / "generated", "gen", case["generated"])
    return root / "real", root / "generated", dict(zip(ids, case["used"].astype(int).tolist()))


def write_dev(root: Path, seed: int = 1, size: int = 32, **kw) -> Path:
    """A calibration folder: used/, not_used/, generated/."""
    case = membership_case(seed, size=size, **kw)
    save(root / "used", "used", case["real"][case["used"]])
    save(root / "not_used", "not_used", case["real"][~case["used"]])
    save(root / "generated", "gen", case["generated"])
    return root


def hard_case(seed: int = 0, n_used: int = 16, n_not_used: int = 16, extra: int = 48, size: int = 32) -> dict:
    """Like `membership_case`, but each used image is in the generated set once, shifted by up to 2 px,
    re-contrasted and noisy, among many unrelated images: hard enough that scorers differ."""
    rng = np.random.default_rng(seed)
    real = smooth_fields(rng, n_used + n_not_used, size).astype(np.float64)
    copies = []
    for img in real[:n_used]:
        dy, dx = rng.integers(-2, 3, size=2)
        shifted = np.roll(img, (dy, dx), axis=(0, 1))
        gain, offset = rng.uniform(0.7, 1.2), rng.uniform(-30, 30)
        copies.append(gain * shifted + offset + rng.normal(0, 18, img.shape))
    generated = np.concatenate([np.stack(copies), smooth_fields(rng, extra, size)])
    generated = np.clip(generated, 0, 255).round().astype(np.uint8)
    order = rng.permutation(len(real))
    used = np.arange(len(real)) < n_used
    return {"real": real.round().astype(np.uint8)[order], "used": used[order],
            "generated": generated[rng.permutation(len(generated))]}
