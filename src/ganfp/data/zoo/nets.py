"""The zoo's neural generators, small enough to train on one CPU core in a minute or two: a conv VAE and a DCGAN.

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


def decode_u8(net: nn.Module, z: torch.Tensor, size: int, batch: int = 256) -> np.ndarray:
    """Decode in batches; a net that draws smaller than `size` is upsampled bilinearly."""
    with torch.no_grad():
        out = torch.cat([net(z[i : i + batch]) for i in range(0, len(z), batch)])
        if out.shape[-1] != size:
            out = F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False)
    return np.clip(np.rint(out.squeeze(1).numpy() * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DecoderSampler:
    """Decodes codes drawn from N(0, I): what both the VAE and the GAN sample from."""

    net: nn.Module
    latent: int
    size: int

    def sample(self, n: int, seed: int) -> np.ndarray:
        with one_thread_seeded(seed) as g:
            return decode_u8(self.net, torch.randn(n, self.latent, generator=g), self.size)


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
        return DecoderSampler(dec.eval(), self.latent, size)

    def quick(self) -> VAE:
        return replace(self, steps=20, width=4)


class BatchSpread(nn.Module):
    """Appends the batch's mean feature spread as one more input (minibatch std): a collapsed batch is easy to spot."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = x.std(dim=0, unbiased=False).mean().expand(len(x), 1)
        return torch.cat([x, spread], dim=1)


def critic(size: int, width: int) -> nn.Sequential:
    """The DCGAN discriminator: stride-2 convolutions under spectral norm (steadier than batch norm on few images)."""
    sn = nn.utils.parametrizations.spectral_norm
    layers, c_in = [], 1
    for c in widths(size, width):
        layers += [sn(nn.Conv2d(c_in, c, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c_in = c
    return nn.Sequential(*layers, nn.Flatten(), BatchSpread(), sn(nn.Linear(c_in * 16 + 1, 1)))


@dataclass(frozen=True)
class DCGAN:
    """A small DCGAN (non-saturating loss, Adam 0.5/0.999) trained for `steps` generator steps.

    The generator is the VAE's decoder (transposed convolutions with batch norm), the discriminator
    `critic`. It draws at `draw_size` px and is upsampled, so its samples are soft, with the usual
    GAN texture. With no augmentation, a small latent and a wide enough discriminator, the
    discriminator learns the few training images themselves, which pulls the generator towards
    them: the leak (tuned to GAN-Leaks ROC-AUC 0.65-0.85, see docs/demo-data.md).
    """

    latent: int = 8
    width: int = 16
    steps: int = 4000
    batch: int = 32
    lr: float = 5e-4
    draw_size: int = 32  # the nets work at most at this side (4x cheaper than 64 px); samples are upsampled

    def fit(self, train: np.ndarray, seed: int) -> DecoderSampler:
        size = train.shape[1]
        side = min(size, self.draw_size)
        with one_thread_seeded(seed) as g:
            gen, disc = decoder(side, self.width, self.latent), critic(side, self.width)
            opt_g = torch.optim.Adam(gen.parameters(), lr=self.lr, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(disc.parameters(), lr=self.lr, betas=(0.5, 0.999))
            x_all = F.interpolate(to_tensor(train), size=(side, side), mode="area") * 2 - 1
            n = min(self.batch, len(x_all))
            for _ in range(self.steps):
                real = x_all[torch.randint(len(x_all), (n,), generator=g)]
                fake = gen(torch.randn(n, self.latent, generator=g)) * 2 - 1
                loss_d = F.softplus(-disc(real)).mean() + F.softplus(disc(fake.detach())).mean()
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                loss_g = F.softplus(-disc(fake)).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
        return DecoderSampler(gen.eval(), self.latent, size)

    def quick(self) -> DCGAN:
        return replace(self, steps=10, width=4)
