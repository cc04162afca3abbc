"""Whitening by the generated set's spectrum: fine detail counts as much as coarse shape.

CT slices put most of their energy in low spatial frequencies, so a plain correlation mostly asks
whether two slices have the same outline, which every slice of a body region shares. A generator
that learned from an image reproduces its finer structure too, at its own strength: a PCA model
keeps the detail its components span, a memoriser keeps all of it. Dividing every frequency by the
generated images' root mean power (as phase correlation does in image registration) gives each
frequency the same weight in the generated set, so the correlation is decided by the structure the
generator reproduces, not by the outline. Two kinds of frequency are not the real images' shared
structure and are turned down, judged from the two sets' mean spectra (never from a label):

- where the generated images carry more power than the real ones (added noise, upsampling
  checkerboards), by the share of it the real images account for (a Wiener gain);
- where they carry less than `REPRODUCED` of the real images' power, entirely: the generator does not
  reproduce that detail (a blurry decoder, a GAN upsampled from half the size), so no copy of a
  training image can be found there, and whitening would only amplify the real images' own detail.
"""

from __future__ import annotations

import torch

FLOOR = 1e-6  # power floor, relative to the strongest frequency: no division by zero where both sets are silent
# Share of the real images' power below which a frequency counts as not reproduced. On the generator zoo
# 0.15-0.3 score alike (docs/membership-history.md); without a cut, a GAN upsampled from 32 px falls to chance.
REPRODUCED = 0.2
CHUNK = 512  # images transformed at a time: 512 mirrored 64 px spectra are 67 MB


def _spectrum(images: torch.Tensor) -> torch.Tensor:
    """Half spectra (rfft2) of the images mirrored into 2N x 2N: a periodic extension with no jump at the borders."""
    x = images.float()
    x = x - x.mean((-2, -1), keepdim=True)
    x = torch.cat([x, x.flip(-1)], -1)
    return torch.fft.rfft2(torch.cat([x, x.flip(-2)], -2))


def mean_power(images: torch.Tensor) -> torch.Tensor:
    """(2 size, size + 1) mean power per frequency of the mirrored images without their means."""
    n, m = images.shape[-2:]
    power = torch.zeros(2 * n, m + 1, dtype=torch.float64)  # float64 sums: independent of the images' order
    for start in range(0, len(images), CHUNK):
        power += _spectrum(images[start : start + CHUNK]).abs().square().sum(0, dtype=torch.float64)
    return power / max(len(images), 1)


def whitening_filter(real: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """(2 size, size + 1) gain per frequency: generated power^-1/2 x min(1, real / generated power), 0 where not reproduced."""
    gen_power, real_power = mean_power(generated), mean_power(real)
    if float(gen_power.max()) == 0:  # every generated image flat (a collapsed generator): it reproduces no detail
        return torch.zeros(gen_power.shape)  # (the floor below was 0, and 1/sqrt(0) x 0 NaN reached the scorers)
    gen_power = gen_power.clamp_min(float(gen_power.max()) * FLOOR)
    wiener = (real_power / gen_power).clamp_(max=1.0)
    reproduced = gen_power >= REPRODUCED * real_power
    return (gen_power.rsqrt() * wiener * reproduced).float()


def apply_filter(images: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Images (N, size, size) with every frequency scaled by `gain` (and their mean removed)."""
    out = torch.empty(images.shape, dtype=torch.float32)
    n, m = images.shape[-2:]
    for start in range(0, len(images), CHUNK):
        spectra = _spectrum(images[start : start + CHUNK]) * gain
        out[start : start + CHUNK] = torch.fft.irfft2(spectra, s=(2 * n, 2 * m))[..., :n, :m]
    return out


def whiten_by_generated(real: torch.Tensor, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, generated) images, both filtered by one gain read from the two sets' spectra."""
    gain = whitening_filter(real, generated)
    return apply_filter(real, gain), apply_filter(generated, gain)
