"""Alignment-tolerant distance: 1 - the best normalised cross-correlation over small shifts.

A memorising generator emits near-copies that are shifted, warped or re-contrasted. Raw pixel
distances miss them; NCC ignores brightness and contrast, and taking the best of every shift of
up to `shift` pixels tolerates misalignment. Every shifted crop of each query is compared with
each reference's central crop in one matrix product per block, so no pair is ever looped over.
The shifts go on the queries (the real images, a few hundred) rather than on the references
(up to tens of thousands of generated ones): the same products, but one tall matrix times one
wide one instead of many thin ones, several times faster on a CPU.
"""

from __future__ import annotations

import torch

from ganfp.errors import ArgumentError


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Rows with zero mean and unit norm: their dot product is the Pearson correlation."""
    x = x - x.mean(-1, keepdim=True)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)


class ShiftedNCC:
    """1 - max over shifts in [-shift, shift]^2 of the NCC of a's shifted crop with b's central crop."""

    name = "ncc"

    def __init__(self, size: int, shift: int):
        if size - 2 * shift < 4:
            raise ArgumentError(f"a {size} px image leaves no crop for shifts of {shift} px")
        self.size, self.shift, self.crop = size, shift, size - 2 * shift
        self.variants = (2 * shift + 1) ** 2
        self.floats_per_pair = self.variants + 1

    def centres(self, a: torch.Tensor) -> torch.Tensor:
        s = self.shift
        return standardise(a[:, s : s + self.crop, s : s + self.crop].reshape(len(a), -1).float())

    def shifted(self, a: torch.Tensor) -> torch.Tensor:
        """(len(a) * variants, crop^2): every shifted crop of every image, standardised."""
        crops = a.float().unfold(1, self.crop, 1).unfold(2, self.crop, 1)  # (n, 2s+1, 2s+1, crop, crop)
        return standardise(crops.reshape(len(a) * self.variants, -1))

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        sim = self.shifted(a) @ self.centres(b).T  # (na * variants, nb)
        return (1.0 - sim.view(len(a), self.variants, len(b)).amax(1)).clamp_min_(0)
