"""Synthetic "photographs" for the demo's CASIA part, and the copy-move and splice edits on them.

Each CASIA category gets a recognisable scene made of 1/f noise (the spectrum of natural images),
colour palettes and shapes. Edits paste a resampled, re-lit patch with a hard border, as a quick
forgery does; the mask of the edit is returned too.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CATEGORIES = ("ani", "arc", "art", "cha", "nat", "pla", "sec", "txt")
SIZES = ((96, 96), (112, 96), (128, 96), (96, 112), (96, 128), (112, 112), (128, 128))  # (width, height)


def pink_noise(rng: np.random.Generator, h: int, w: int, beta: float = 2.0, stretch: float = 1.0) -> np.ndarray:
    """Zero-mean unit-variance noise with power ~ 1/f^beta; `stretch` > 1 makes it streaky (fur, grain)."""
    fy = np.fft.fftfreq(h)[:, None] * stretch
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spectrum = np.fft.rfft2(rng.normal(size=(h, w))) / f ** (beta / 2)
    spectrum[0, 0] = 0.0
    img = np.fft.irfft2(spectrum, s=(h, w))
    return img / (img.std() + 1e-8)


def _mix(field: np.ndarray, c1, c2) -> np.ndarray:
    """Colour the field between two RGB colours (0..1)."""
    t = 1.0 / (1.0 + np.exp(-1.5 * field))
    return np.asarray(c1)[None, None] * (1 - t[..., None]) + np.asarray(c2)[None, None] * t[..., None]


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def photo(rng: np.random.Generator, category: str, w: int, h: int) -> np.ndarray:
    """An RGB uint8 scene of the given CASIA category."""

    def col(lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        return rng.uniform(lo, hi, size=3)

    base = _mix(pink_noise(rng, h, w, rng.uniform(1.6, 2.6)), col(0, 0.6), col(0.4, 1))
    if category == "nat":  # sky over a wavy horizon
        horizon = h * rng.uniform(0.3, 0.6) + 4 * pink_noise(rng, 1, w, 2.5)[0]
        sky = np.linspace(0, 1, h)[:, None, None] * (col(0.5, 1) - col(0.3, 0.8)) + np.array([0.5, 0.7, 0.95])
        base = np.where((np.arange(h)[:, None] < horizon)[..., None], np.clip(sky, 0, 1), base * [0.7, 0.9, 0.5])
    elif category == "pla":  # leaves
        base = _mix(pink_noise(rng, h, w, 1.4), [0.05, 0.25, 0.05], [0.5, 0.85, 0.3])
        for _ in range(int(rng.integers(4, 10))):
            m = _ellipse(h, w, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, 18), rng.uniform(3, 10))
            base[m] = base[m] * rng.uniform(0.5, 1.4)
    elif category == "ani":  # a furry body on a background
        fur = _mix(pink_noise(rng, h, w, 2.0, stretch=rng.uniform(3, 8)), col(0.2, 0.5) * [1, 0.7, 0.4], col(0.6, 1) * [1, 0.8, 0.5])
        m = _ellipse(h, w, h * rng.uniform(0.4, 0.6), w * rng.uniform(0.35, 0.65), h * rng.uniform(0.2, 0.35), w * rng.uniform(0.25, 0.4))
        base[m] = fur[m]
    elif category == "arc":  # a wall with a grid of windows
        base = base * 0.3 + col(0.4, 0.9) * 0.7
        step, size = int(rng.integers(14, 24)), rng.uniform(0.35, 0.6)
        y, x = np.mgrid[0:h, 0:w]
        windows = ((y % step) < step * size) & ((x % step) < step * size) & (y > h * 0.15)
        base[windows] = col(0, 0.3)
    elif category == "art":  # coloured discs and bars
        for _ in range(int(rng.integers(5, 12))):
            if rng.random() < 0.5:
                m = _ellipse(h, w, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 20), rng.uniform(4, 20))
            else:
                y0, x0 = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
                m = np.zeros((h, w), bool)
                m[y0 : y0 + int(rng.integers(4, 30)), x0 : x0 + int(rng.integers(4, 30))] = True
            base[m] = col()
    elif category == "cha":  # a face: skin ellipse, eyes
        cy, cx, ry, rx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6), h * rng.uniform(0.22, 0.32), w * rng.uniform(0.16, 0.24)
        skin = np.array([0.9, 0.7, 0.55]) * rng.uniform(0.6, 1.05)
        base[_ellipse(h, w, cy, cx, ry, rx)] = skin
        for side in (-1, 1):
            base[_ellipse(h, w, cy - ry * 0.2, cx + side * rx * 0.4, ry * 0.09, rx * 0.15)] = 0.1
    elif category == "sec":  # objects on a floor
        floor = int(h * rng.uniform(0.5, 0.75))
        base[floor:] = base[floor:] * 0.5 + col(0.2, 0.6) * 0.5
        for _ in range(int(rng.integers(2, 6))):
            y0, x0 = int(rng.integers(h // 4, floor)), int(rng.integers(0, w - 10))
            base[y0 : y0 + int(rng.integers(8, 30)), x0 : x0 + int(rng.integers(8, 30))] = col()
    else:  # txt: a periodic texture
        y, x = np.mgrid[0:h, 0:w]
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period)
        base = _mix(2.5 * wave + 0.8 * pink_noise(rng, h, w, 1.0), col(0, 0.5), col(0.5, 1))
    shade = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(0.85, 1.1), w)[None, :, None]
    grain = 0.02 * rng.normal(size=(h, w, 1))
    return np.clip(np.rint((base * shade + grain) * 255), 0, 255).astype(np.uint8)


def _patch_box(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of an edit covering roughly 8-25% of the image."""
    ph = int(rng.integers(h // 3, h // 2 + 1))
    pw = int(rng.integers(w // 3, w // 2 + 1))
    return int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1)), ph, pw


def _paste(rng: np.random.Generator, target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut a patch out of `source`, resample and re-light it, paste it into `target` with a hard edge."""
    h, w = target.shape[:2]
    top, left, ph, pw = _patch_box(rng, h, w)
    scale = rng.uniform(0.55, 0.8) if rng.random() < 0.5 else rng.uniform(1.3, 1.8)
    sh, sw = min(source.shape[0], max(4, int(ph / scale))), min(source.shape[1], max(4, int(pw / scale)))
    sy, sx = int(rng.integers(0, source.shape[0] - sh + 1)), int(rng.integers(0, source.shape[1] - sw + 1))
    patch = Image.fromarray(source[sy : sy + sh, sx : sx + sw]).resize((pw, ph), Image.BILINEAR)
    if rng.random() < 0.5:
        patch = patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    patch = np.asarray(patch, dtype=np.float64) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    mask = np.zeros((h, w), bool)
    if rng.random() < 0.5:
        mask[top : top + ph, left : left + pw] = True
    else:
        mask[top : top + ph, left : left + pw] = _ellipse(ph, pw, ph / 2, pw / 2, ph / 2, pw / 2)
    out = target.copy()
    region = out[top : top + ph, left : left + pw]
    inside = mask[top : top + ph, left : left + pw]
    region[inside] = np.clip(np.rint(patch[inside]), 0, 255).astype(np.uint8)
    return out, mask


def copy_move(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A region of the image pasted elsewhere in it (CASIA `Tp_S`)."""
    return _paste(rng, img, img)


def splice(rng: np.random.Generator, img: np.ndarray, donor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A region of another image pasted in (CASIA `Tp_D`)."""
    return _paste(rng, img, donor)
