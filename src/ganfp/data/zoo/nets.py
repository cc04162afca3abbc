"""The zoo's neural generators, small enough to train on a CPU core in seconds: a conv VAE and a DCGAN.

Both are trained on one thread with a forked RNG, so the same seed gives the same bytes and the
caller's torch state is left as it was. Image sides are powers of two from 16 px up: the nets
halve (or double) the side down to (or up from) 4 px.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@contextlib.contextmanager
def one_thread_seeded(seed: int) -> Iterator[torch.Generator]:
    """One torch thread (several times faster for nets this small) and a private, seeded RNG."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(threads)


def levels(size: int) -> int:
    """Stride-2 stages between `size` px and 4 px."""
    if size < 8 or size & (size - 1):
        raise ValueError(f"the zoo's nets need a power-of-two image side of at least 8 px, not {size}")
    return int(np.log2(size // 4))


def widths(size: int, width: int) -> list[int]:
    """Channels after each down stage: doubling, capped at 4x `width`."""
    return [width * min(2**i, 4) for i in range(levels(size))]


def encoder(size: int, width: int, norm: bool) -> nn.Sequential:
    layers, c_in = [], 1
    for c in widths(size, width):
        layers += [nn.Conv2d(c_in, c, 4, 2, 1)] + ([nn.BatchNorm2d(c)] if norm and c_in > 1 else [])
        layers += [nn.LeakyReLU(0.2)]
        c_in = c
    return nn.Sequential(*layers, nn.Flatten())


def decoder(size: int, width: int, latent: int) -> nn.Sequential:
    """Latent code to a (1, size, size) image in [0, 1] (sigmoid) through transposed convolutions."""
    ws = widths(size, width)[::-1]
    layers: list[nn.Module] = [nn.Linear(latent, ws[0] * 16), nn.Unflatten(1, (ws[0], 4, 4))]
    for c_in, c_out in zip(ws, ws[1:] + [1]):
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)]
    return nn.Sequential(*layers, nn.Sigmoid())


def to_tensor(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_u8.astype(np.float32) / 255.0).unsqueeze(1)


def decode_u8(net: nn.Module, z: torch.Tensor, batch: int = 256) -> np.ndarray:
    with torch.no_grad():
        out = torch.cat([net(z[i : i + batch]) for i in range(0, len(z), batch)])
    return np.clip(np.rint(out.squeeze(1).numpy() * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DecoderSampler:
    """Decodes codes drawn from N(0, I): what both the VAE and the GAN sample from."""

    net: nn.Module
    latent: int

    def sample(self, n: int, seed: int) -> np.ndarray:
        with one_thread_seeded(seed) as g:
            return decode_u8(self.net, torch.randn(n, self.latent, generator=g))


@dataclass(frozen=True)
class VAE:
    """A conv VAE (Bernoulli pixels, KL weight `beta`) trained for `steps` Adam steps on the training slices.

    Its samples are blurry. It leaks through overfitting: with few images and many steps the
    decoder's output drifts towards the training images themselves.
    """

    latent: int = 8
    width: int = 8
    steps: int = 800
    batch: int = 16
    lr: float = 4e-3
    beta: float = 1.0

    def fit(self, train: np.ndarray, seed: int) -> DecoderSampler:
        size = train.shape[1]
        with one_thread_seeded(seed) as g:
            enc = encoder(size, self.width, norm=False)
            head = nn.Linear(widths(size, self.width)[-1] * 16, 2 * self.latent)
            dec = decoder(size, self.width, self.latent)
            params = [*enc.parameters(), *head.parameters(), *dec.parameters()]
            opt = torch.optim.Adam(params, lr=self.lr)
            x_all = to_tensor(train)
            for _ in range(self.steps):
                x = x_all[torch.randint(len(x_all), (min(self.batch, len(x_all)),), generator=g)]
                mu, logvar = head(enc(x)).chunk(2, dim=1)
                z = mu + torch.randn(mu.shape, generator=g) * (0.5 * logvar).exp()
                rec = F.binary_cross_entropy(dec(z), x, reduction="sum")
                kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
                loss = (rec + self.beta * kl) / len(x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return DecoderSampler(dec.eval(), self.latent)

    def quick(self) -> VAE:
        return replace(self, steps=20, width=4)
