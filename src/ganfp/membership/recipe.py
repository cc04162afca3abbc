"""What one score is made of, and ganfp's defaults.

A `Recipe` names a method, the feature space it compares in and its k. The default recipe was
chosen by its worst case over the generator zoo (docs/membership.md,
`python benchmarks/membership.py --zoo`), not by its best on one generator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    method: str
    features: str | None = None  # the feature space of neighbour methods and fusion, e.g. "std32"
    k: int | None = None  # neighbours, for the methods that use k

    @property
    def label(self) -> str:
        parts = [self.method] + ([self.features] if self.features else []) + ([f"k={self.k}"] if self.k else [])
        return " ".join(parts)


# The label-free default, chosen by its worst case over the generator zoo (docs/membership.md):
# local linear reconstruction in standardised pixels at 32 px with 40 neighbours. A blurry
# generator's samples are smooth mixtures around its training images and a memoriser's blends are
# sums of two, so a used image lies in the span of its generated neighbours.
DEFAULT_METHOD = "local"
DEFAULT_FEATURES = "std32"  # for every neighbour method without --features
DEFAULT_K = 5  # for neighbour methods that register no default k of their own
FUSION_MEMBERS = ("knn", "retrieval", "density", "autoencoder")
