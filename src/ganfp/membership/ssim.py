"""SSIM between every pair of two image sets, batched as matrix products.

SSIM's only cross term, the local covariance, is a weighted inner product of two windows:
sum_q w_q x_q y_q. With windows laid out as rows (one per window position), all pairs of a
block come out of one batched matrix product, never a loop over pairs. Windows are Gaussian
(sigma 1.5, as in Wang et al. 2004), 7 px wide, every `stride` (3) pixels; images are floats in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganfp.errors import ArgumentError

C1, C2 = 0.01**2, 0.03**2  # Wang et al.'s constants for a data range of 1


def gaussian_window(size: int, sigma: float, device=None) -> torch.Tensor:
    """Flattened 2-D Gaussian weights (size*size,), summing to 1."""
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    return torch.outer(g, g).flatten()


class SSIMDistance:
    """1 - SSIM, the mean over windows of the SSIM map; a Metric for `distances.nearest`."""

    name = "ssim"

    def __init__(self, size: int, window: int = 7, sigma: float = 1.5, stride: int = 3):
        if size < window:
            raise ArgumentError(f"SSIM needs images of at least {window} px, got {size}")
        self.size, self.window, self.sigma, self.stride = size, window, sigma, stride
        self.positions = ((size - window) // stride + 1) ** 2
        self.floats_per_pair = 2 * self.positions  # two work buffers
        self._buffers: dict[str, torch.Tensor] = {}

    def window_stats(self, images: torch.Tensor):
        """Per window and image: weighted mean and variance (P, n), and sqrt-weighted pixels (P, n, window^2)."""
        w = gaussian_window(self.window, self.sigma, images.device)
        x = images.float()
        kernel = w.view(1, 1, self.window, self.window)
        mu = F.conv2d(x[:, None], kernel, stride=self.stride).flatten(1).T  # (P, n)
        var = F.conv2d((x * x)[:, None], kernel, stride=self.stride).flatten(1).T - mu * mu
        patches = x.unfold(1, self.window, self.stride).unfold(2, self.window, self.stride)  # (n, py, px, win, win)
        patches = patches.permute(1, 2, 0, 3, 4).reshape(self.positions, len(x), -1)
        return mu.contiguous(), var.contiguous(), patches * w.sqrt()

    def _buffer(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A reused work buffer: fresh multi-megabyte allocations per block cost more than the arithmetic."""
        numel = shape[0] * shape[1] * shape[2]
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < numel or buf.device != like.device:
            buf = self._buffers[name] = torch.empty(numel, device=like.device)
        return buf[:numel].view(shape)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """SSIM of every pair, (len(a), len(b)), computed in place in two (P, na, nb) buffers."""
        mu_a, var_a, wa = self.window_stats(a)
        mu_b, var_b, wb = self.window_stats(b)
        shape = (self.positions, len(a), len(b))
        out, tmp = self._buffer("out", shape, wa), self._buffer("tmp", shape, wa)
        torch.bmm(wa, wb.transpose(1, 2), out=out)  # sum_q w_q a_q b_q
        torch.mul(mu_a[:, :, None], mu_b[:, None, :], out=tmp)
        out.sub_(tmp).mul_(2).add_(C2)  # 2 cov + C2
        out.mul_(tmp.mul_(2).add_(C1))  # numerator
        torch.add((mu_a * mu_a + C1)[:, :, None], (mu_b * mu_b)[:, None, :], out=tmp)
        out.div_(tmp)  # / luminance denominator
        torch.add((var_a + C2)[:, :, None], var_b[:, None, :], out=tmp)
        out.div_(tmp)  # / contrast-structure denominator
        return out.mean(0)

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.similarity(a, b)
