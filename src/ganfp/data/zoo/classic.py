"""The zoo's generators without a neural network: the demo's PCA + Gaussian mixture, and a memoriser.

A family is a frozen dataclass of its settings whose `fit(train_u8, seed)` returns a sampler with
`sample(n, seed) -> (n, S, S) uint8`; `quick()` gives a cheaper copy for tests.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from ganfp.data.demo import PCA_COMPONENTS, USED_PER_MIXTURE, fit_pcagmm, sample_pcagmm


def to_u8(pixels: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] to 8-bit grey levels."""
    return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PcaGmmSampler:
    pca: PCA
    mixture: GaussianMixture
    shape: tuple[int, int]

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        mixture = copy.copy(self.mixture)  # sklearn samples from `random_state`: a copy per call leaves the fit alone
        mixture.random_state = int(rng.integers(2**31 - 1))
        return sample_pcagmm(self.pca, mixture, n, rng).reshape(n, *self.shape)


@dataclass(frozen=True)
class PcaGmm:
    """The demo's generator: PCA to `components` dimensions, one diagonal Gaussian per `used_per_mixture` images."""

    components: int = PCA_COMPONENTS
    used_per_mixture: int = USED_PER_MIXTURE

    def fit(self, train: np.ndarray, seed: int) -> PcaGmmSampler:
        pca, mixture = fit_pcagmm(train, seed, self.components, self.used_per_mixture)
        return PcaGmmSampler(pca, mixture, train.shape[1:])

    def quick(self) -> PcaGmm:
        return self


@dataclass(frozen=True)
class Memoriser:
    """Near-copies of training images, each moved a little in geometry and intensity; a share are blends.

    A copy gets a smooth elastic warp of `warp_px` (peak displacement, drawn in that range), a shift
    of up to `shift_px` and a rotation of up to `rotate_deg` (both normal with sd `spread` x the
    bound: mostly small moves; uniform up to the bound when `spread` is None), gamma
    exp(+-`gamma`), contrast 1 +- `contrast` and Gaussian noise of `noise` grey levels (sizes are
    for 64 px and scale with the image). A blend mixes two different training images with a
    weight in `blend_weight`, then gets the same perturbations. `spread` sets the leak: raw-pixel
    distances punish every pixel of shift.
    """

    warp_px: tuple[float, float] = (1.0, 2.0)
    shift_px: float = 4.0
    rotate_deg: float = 6.0
    gamma: float = 0.25
    contrast: float = 0.15
    noise: float = 6.0
    spread: float | None = 0.4
    blend_share: float = 0.5
    blend_weight: tuple[float, float] = (0.3, 0.7)

    def fit(self, train: np.ndarray, seed: int) -> MemoriserSampler:
        if len(train) < 2:
            raise ValueError("the memoriser's blends need at least two training images")
        return MemoriserSampler(train.astype(np.float64) / 255.0, self)

    def quick(self) -> Memoriser:
        return self


@dataclass(frozen=True)
class MemoriserSampler:
    train: np.ndarray  # (N, S, S) floats in [0, 1]
    cfg: Memoriser

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.stack([to_u8(self._one(rng)) for _ in range(n)])

    def _one(self, rng: np.random.Generator) -> np.ndarray:
        cfg, k = self.cfg, len(self.train)
        if rng.random() < cfg.blend_share:
            a, b = rng.choice(k, size=2, replace=False)
            w = rng.uniform(*cfg.blend_weight)
            img = w * self.train[a] + (1 - w) * self.train[b]
        else:
            img = self.train[int(rng.integers(k))]
        img = warp(img, rng, cfg)
        img = np.clip(img, 0, 1) ** np.exp(rng.uniform(-cfg.gamma, cfg.gamma))
        img = (img - img.mean()) * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + img.mean()
        return img + rng.normal(0, cfg.noise / 255.0, img.shape)


def bounded_draws(rng: np.random.Generator, bound: float, spread: float | None, n: int) -> np.ndarray:
    """Moves within +-`bound`: normal with sd `spread` x `bound`, clipped (mostly small), or uniform when `spread` is None."""
    if spread is None:
        return rng.uniform(-bound, bound, size=n)
    return np.clip(rng.normal(0, spread * bound, size=n), -bound, bound)


def warp(img: np.ndarray, rng: np.random.Generator, cfg: Memoriser) -> np.ndarray:
    """One resampling for the elastic field, the rotation about the centre and the shift (cubic)."""
    s = img.shape[0]
    scale = s / 64.0
    field = rng.normal(size=(2, 4, 4))
    field = np.stack([ndimage.zoom(f, s / 4, order=3, mode="nearest") for f in field])
    field *= rng.uniform(*cfg.warp_px) * scale / max(np.abs(field).max(), 1e-9)
    angle = np.deg2rad(bounded_draws(rng, cfg.rotate_deg, cfg.spread, 1))[0]
    shift = bounded_draws(rng, cfg.shift_px, cfg.spread, 2) * scale
    y, x = np.mgrid[0:s, 0:s].astype(np.float64) - (s - 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    src_y = cos * y - sin * x + (s - 1) / 2 - shift[0] + field[0]
    src_x = sin * y + cos * x + (s - 1) / 2 - shift[1] + field[1]
    return ndimage.map_coordinates(img, [src_y, src_x], order=3, mode="nearest")
