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


# The label-free default, chosen by its worst case over the generator zoo (docs/membership.md): the
# mean of two log closeness ratios. Local linear reconstruction in standardised pixels at 32 px with
# 40 neighbours (blurry and smooth generators, blends: a used image lies in the span of its generated
# neighbours), and the shift-tolerant 5 nearest neighbours in white48 (near-copies shifted by up to
# 4 px, warped or re-contrasted, and the detail a generator reproduces from its training slices;
# near-copies give large ratios, which adding keeps).
DEFAULT_ENSEMBLE: tuple[tuple[Recipe, float], ...] = (
    (Recipe("local", "std32", 40), 1.0),
    (Recipe("knn", "white48", 5), 1.0),
)
DEFAULT_METHOD = "ensemble"
DEFAULT_FEATURES = "std32"  # for every neighbour method without --features
DEFAULT_K = 5  # for neighbour methods that register no default k of their own
FUSION_MEMBERS = ("knn", "retrieval", "density", "autoencoder")
