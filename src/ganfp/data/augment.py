"""Augmentation on whole batches on the device: random horizontal flips and small shifts.

Random numbers come from a CPU generator, so a seed gives the same augmentation on every device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganfp.device import to_device


class BatchAugment:
    def __init__(self, seed: int, flip: bool = True, max_shift: int = 4, rank: int = 0, world: int = 1):
        self.generator = torch.Generator().manual_seed(seed)
        self.rank, self.world = rank, world  # under DDP: draw for the global batch, keep this rank's share
        self.flip = flip
        self.max_shift = max_shift

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n, share = b * self.world, slice(self.rank, None, self.world)  # N ranks draw what one process would
        if self.flip:
            flips = (torch.rand(n, generator=self.generator) < 0.5)[share]
            x = torch.where(to_device(flips, x.device)[:, None, None, None], x.flip(-1), x)
        if self.max_shift > 0:
            s = self.max_shift
            offsets = to_device(torch.randint(0, 2 * s + 1, (2, n), generator=self.generator)[:, share], x.device)
            padded = F.pad(x, (s, s, s, s), mode="reflect")
            rows = (offsets[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
            cols = (offsets[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            chans = torch.arange(c, device=x.device)[None, :, None, None]
            x = padded[batch, chans, rows, cols]  # plain (B, C, H, W) strides, as the model's own input
        return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x.contiguous()
