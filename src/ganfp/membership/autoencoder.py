"""Reconstruction scorer: a small conv autoencoder trained on the generated images only.

If the generator memorised its training images, the generated set crowds around them, and an
autoencoder that learned the generated set through a narrow code reconstructs those real images
better than unseen ones (VCMI, ImageCLEFmedical GANs 2023). score = minus the mean squared error.

Training is a fixed number of steps (not epochs), so its cost does not grow with the generated
set; it is seeded (weights, batch order) and the trained weights are cached beside the embeddings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ganfp.device import rng_untouched, seed_rng
from ganfp.errors import ArgumentError


AE_VERSION = 1


@dataclass(frozen=True)
class AutoencoderConfig:
    size: int = 32  # images are downsampled to size x size (a multiple of 4)
    width: int = 16  # channels of the first conv, doubled by the second
    code: int = 32  # bottleneck: narrow enough that the net cannot simply copy its input
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3

    def key(self) -> str:
        return f"v{AE_VERSION}-{self.size}-{self.width}-{self.code}-{self.steps}-{self.batch_size}-{self.lr}"


class ConvAutoencoder(nn.Module):
    """Two strided convs, a linear bottleneck, and the mirror image: seconds per 1,000 steps on a CPU."""

    def __init__(self, size: int = 32, width: int = 16, code: int = 32):
        super().__init__()
        if size % 4:
            raise ArgumentError(f"autoencoder size must be a multiple of 4, got {size}")
        c, s = 2 * width, size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width, c, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c * s * s, code),
        )
        self.decoder = nn.Sequential(
            nn.Linear(code, c * s * s), nn.ReLU(), nn.Unflatten(1, (c, s, s)),
            nn.ConvTranspose2d(c, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def train_autoencoder(generated: torch.Tensor, config: AutoencoderConfig, seed: int, device: torch.device,
                      on_step: Callable[[], None] | None = None) -> ConvAutoencoder:
    """Fit on `generated` (float (N, size, size) in [0, 1]); same seed on the CPU = same weights."""
    with rng_untouched(device):
        seed_rng(seed, device)
        model = ConvAutoencoder(config.size, config.width, config.code).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    rng = np.random.default_rng(seed)
    data = generated.to(device)
    order, pos = rng.permutation(len(data)), 0
    model.train()
    # cuDNN's fastest convolution kernels may sum in a varying order, so two GPU runs of one seed ended in
    # other weights; its deterministic ones cost nothing measurable on a net this small.
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        for _ in range(config.steps):
            if pos >= len(order):
                order, pos = rng.permutation(len(data)), 0
            idx = torch.as_tensor(order[pos : pos + config.batch_size], device=device)
            pos += config.batch_size
            x = data[idx][:, None]
            loss = nn.functional.mse_loss(model(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if on_step:
                on_step()
    return model.eval()


@torch.no_grad()
def reconstruction_scores(model: ConvAutoencoder, images: torch.Tensor, device: torch.device,
                          batch_size: int = 256) -> np.ndarray:
    """Minus the per-image mean squared reconstruction error (higher = better reconstructed = used)."""
    errors = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)[:, None]
        errors.append(((model(x) - x) ** 2).mean((1, 2, 3)).double().cpu())
    return -torch.cat(errors).numpy()


def cached_autoencoder(generated: torch.Tensor, generated_key: str, config: AutoencoderConfig, seed: int,
                       device: torch.device, cache_dir: Path,
                       on_step: Callable[[], None] | None = None) -> ConvAutoencoder:
    """The autoencoder for these generated images, config and seed: loaded, or trained and saved."""
    from safetensors.torch import load_file

    from ganfp.checkpoint import tensors_of, write_safetensors

    key = hashlib.sha256(f"{generated_key}\0{config.key()}\0{seed}\0{device.type}".encode()).hexdigest()[:32]
    path = Path(cache_dir) / f"{key}.safetensors"
    with rng_untouched():  # its random init, which the cached weights replace, drew from the caller's torch RNG
        model = ConvAutoencoder(config.size, config.width, config.code)
    try:
        model.load_state_dict(load_file(str(path)))
        return model.to(device).eval()
    except Exception:  # absent or unreadable: train again
        pass
    model = train_autoencoder(generated, config, seed, device, on_step)
    write_safetensors(path, tensors_of(model.state_dict(), ""), {})
    return model
