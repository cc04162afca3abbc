"""Synthetic axial chest-CT slices for the demo data: random anatomy drawn in Hounsfield units.

Each "patient" is a dict of anatomy parameters; `render_slice` draws it at a height z in [0, 1]
(top of the lungs to the diaphragm), so a patient's slices vary smoothly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

AIR, LUNG, FAT, SOFT, BONE_CORE, BONE_CORTEX, TABLE = -1000.0, -860.0, -100.0, 45.0, 250.0, 1300.0, 300.0


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur with reflected edges, as a few shifted sums (no BLAS, no scipy)."""
    if sigma_px <= 0:
        return img
    r = max(1, int(np.ceil(3 * sigma_px)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_px) ** 2)
    k /= k.sum()
    h, w = img.shape
    p = np.pad(img, ((r, r), (0, 0)), mode="reflect")
    img = sum(wt * p[i : i + h] for i, wt in enumerate(k))
    p = np.pad(img, ((0, 0), (r, r)), mode="reflect")
    return sum(wt * p[:, i : i + w] for i, wt in enumerate(k))


def _smooth_field(coarse: np.ndarray, n: int) -> np.ndarray:
    """A coarse random grid upsampled smoothly to n x n (low-frequency tissue texture)."""
    img = Image.fromarray(coarse.astype(np.float32)).resize((n, n), Image.BICUBIC)
    return np.asarray(img, dtype=np.float64)


def _pixel_span(centre: float, radius: float, n: int) -> tuple[int, int]:
    """Pixel index range covering [centre - radius, centre + radius] on a [-1, 1] axis of n pixels."""
    lo = int(np.floor((centre - radius + 1) / 2 * (n - 1)))
    hi = int(np.ceil((centre + radius + 1) / 2 * (n - 1))) + 1
    return max(lo, 0), min(max(hi, 0), n)


def random_patient(rng: np.random.Generator, lesions: bool = False) -> dict:
    """One patient's anatomy; with `lesions`, ground-glass opacities in the lungs."""
    a = rng.uniform(0.74, 0.92)  # body half-width (image half-width = 1)
    b = a * rng.uniform(0.62, 0.78)  # body half-height
    p = {
        "cx": rng.normal(0, 0.025), "cy": rng.normal(0.02, 0.025), "a": a, "b": b,
        "shape": rng.uniform(2.0, 2.7), "fat": rng.uniform(0.04, 0.11),
        "lung_w": rng.uniform(0.27, 0.36), "lung_h": rng.uniform(0.70, 0.86), "lung_x": rng.uniform(0.40, 0.50),
        "lung_tilt": rng.uniform(-0.25, 0.05), "lung_asym": rng.uniform(0.88, 1.0),
        "heart_r": rng.uniform(0.17, 0.25), "heart_x": rng.uniform(0.04, 0.14),
        "rib_phase": rng.uniform(0, 2 * np.pi), "rib_count": int(rng.integers(9, 13)),
        "spine_r": rng.uniform(0.075, 0.1), "table_gap": rng.uniform(0.03, 0.09),
        "vessels": rng.uniform(-1, 1, size=(int(rng.integers(20, 36)), 3)),  # x, y in lung frame; size
        "parenchyma": rng.normal(size=(16, 16)), "noise_hu": rng.uniform(12, 28),
    }
    if lesions:
        n = int(rng.integers(3, 7))
        p["lesions"] = np.column_stack([
            rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.45, 1.05, size=n),  # side * distance from mid-line
            rng.uniform(-0.55, 0.8, size=n),  # y, posterior-biased
            rng.uniform(0.1, 0.2, size=n),  # radius
            rng.uniform(0.15, 0.9, size=n),  # height z where it is largest
            rng.uniform(300, 520, size=n),  # HU added at the centre
        ])
    return p


def _super_ellipse(x, y, cx, cy, ax, ay, n):
    return (np.abs((x - cx) / ax) ** n + np.abs((y - cy) / ay) ** n) <= 1.0


def render_slice(p: dict, z: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """One axial slice in HU (float32, size x size), drawn at 2x and averaged down against jaggies."""
    n = 2 * size
    y, x = np.mgrid[-1:1:complex(0, n), -1:1:complex(0, n)].astype(np.float32)
    img = np.full((n, n), AIR, dtype=np.float32)
    cx, cy, a, b = p["cx"], p["cy"], p["a"], p["b"]
    body = _super_ellipse(x, y, cx, cy, a, b, p["shape"])
    inner = _super_ellipse(x, y, cx, cy, a - p["fat"], b - p["fat"] * 0.8, p["shape"])
    tissue = _smooth_field(p["parenchyma"].T, n)
    img[body] = FAT + 15 * tissue[body]
    img[inner] = SOFT + 12 * tissue[inner]

    # ribs: bright arcs just inside the muscle wall, sternum in front
    theta = np.arctan2((y - cy) / b, (x - cx) / a)
    r = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    ring = np.abs(r - (0.86 - p["fat"])) < 0.028
    ribs = np.cos(p["rib_count"] * theta + p["rib_phase"] + 3 * z) > 0.3
    img[ring & ribs & (np.abs(theta + np.pi / 2) > 0.35)] = BONE_CORTEX * 0.8
    img[_super_ellipse(x, y, cx, cy - b * 0.84, 0.07, 0.035, 2)] = BONE_CORTEX * 0.7

    # lungs: tall ellipses either side, larger mid-way down, carved by the heart lower down
    grow = 0.75 + 0.3 * np.sin(np.pi * (0.25 + 0.75 * z))
    lung_mask = np.zeros_like(body)
    for side in (-1, 1):
        lx = cx + side * p["lung_x"] * a
        w = p["lung_w"] * a * grow * (p["lung_asym"] if side > 0 else 1.0)
        h = p["lung_h"] * b * grow
        rx, ry = x - lx, y - cy - 0.05 * b
        t = p["lung_tilt"] * side
        u, v = rx * np.cos(t) + ry * np.sin(t), -rx * np.sin(t) + ry * np.cos(t)
        lung_mask |= (np.abs(u / w) ** 2.2 + np.abs(v / h) ** 2.0) <= 1.0
    heart_r = p["heart_r"] * (0.5 + 0.7 * z)
    heart = _super_ellipse(x, y, cx + p["heart_x"], cy - 0.15 * b, heart_r * 1.15, heart_r, 2)
    mediastinum = (np.abs(x - cx) < 0.09) & (y < cy + 0.5 * b)
    lung_mask &= inner & ~heart & ~mediastinum
    tex = _smooth_field(p["parenchyma"], n)
    img[lung_mask] = LUNG + 25 * tex[lung_mask]

    # vessels: dots in the lungs, thicker near the hila, drifting with z
    for vx, vy, vs in p["vessels"]:
        side = 1.0 if vx >= 0 else -1.0
        px = cx + side * (p["lung_x"] + (2 * abs(vx) - 1) * p["lung_w"] * 0.85) * a + 0.04 * np.sin(5 * z + vy)
        py = cy + vy * p["lung_h"] * b * 0.75
        hilum = np.hypot(px - cx - side * 0.2 * a, (py - cy) / 1.5)
        rad = (0.006 + 0.006 * (vs + 1)) * (1.6 - min(hilum, 0.9))
        r0, r1 = _pixel_span(py, rad, n)
        c0, c1 = _pixel_span(px, rad, n)
        dot = ((x[r0:r1, c0:c1] - px) ** 2 + (y[r0:r1, c0:c1] - py) ** 2) < rad**2
        img[r0:r1, c0:c1][dot & lung_mask[r0:r1, c0:c1]] = -150.0 + 100 * vs

    for lx, ly, lr, lz, amp in p.get("lesions", ()):
        weight = np.exp(-0.5 * ((z - lz) / 0.45) ** 2)
        gx = cx + lx * p["lung_x"] * a
        gy = cy + ly * p["lung_h"] * b * 0.8
        blob = amp * weight * np.exp(-((x - gx) ** 2 + (y - gy) ** 2) / (2 * (lr * (0.6 + 0.4 * weight)) ** 2))
        img[lung_mask] += blob[lung_mask]

    # spine: vertebral body (cortex + marrow), canal, spinous process; aorta beside it
    sx, sy, sr = cx, cy + b * 0.62, p["spine_r"]
    vert = _super_ellipse(x, y, sx, sy, sr * 1.1, sr, 2)
    img[vert] = BONE_CORTEX
    img[_super_ellipse(x, y, sx, sy, sr * 0.85, sr * 0.75, 2)] = BONE_CORE
    img[_super_ellipse(x, y, sx, sy + sr * 1.45, sr * 0.4, sr * 0.4, 2)] = SOFT - 20
    img[_super_ellipse(x, y, sx, sy + sr * 2.2, sr * 0.25, sr * 0.55, 2) & body] = BONE_CORTEX * 0.9
    img[_super_ellipse(x, y, sx + sr * 1.3, sy - sr * 0.9, sr * 0.6, sr * 0.6, 2)] = SOFT + 10

    # table under the patient
    ty = cy + b + p["table_gap"] + 0.04 * x**2
    img[(np.abs(y - ty) < 0.02) & (np.abs(x) < 0.95)] = TABLE

    img = img.reshape(size, 2, size, 2).mean(axis=(1, 3))
    img = blur(img, 0.3 + 0.1 * size / 64)  # scanner point-spread
    noise = blur(rng.normal(0, 1, size=(size, size)), 0.7) * p["noise_hu"] * 1.8
    return (img + noise).astype(np.float32)


def to_ctset(hu: np.ndarray) -> np.ndarray:
    """COVID-CTset's stored values: HU + 1024 as 16-bit, roughly 0..5000."""
    return np.clip(np.rint(hu + 1024.0), 0, 5000).astype(np.uint16)


def to_display(hu: np.ndarray, level: float = -300.0, width: float = 1500.0) -> np.ndarray:
    """An 8-bit windowed view, as the ImageCLEF PNGs are."""
    lo = level - width / 2
    return np.clip(np.rint((hu - lo) / width * 255.0), 0, 255).astype(np.uint8)
