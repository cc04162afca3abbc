"""What one score is made of, and ganfp's defaults.

A `Recipe` names a method, the feature space it compares in and its k. The default is the
`ensemble`: a rank fusion of recipes chosen by their worst case over the generator zoo
(docs/membership.md, `python benchmarks/membership.py --zoo`), not by their best on one generator.
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


# The label-free default: knn (d_R/d_G) in standardised pixels at two coarse scales, with k = 5
# (blurry generators: averaging and calibration see their low-frequency memory), plus the single
# nearest neighbour under shift-tolerant NCC (near-copies that were shifted, warped or re-contrasted).
DEFAULT_ENSEMBLE = (
    Recipe("knn", "std16", 5),
    Recipe("knn", "std32", 5),
    Recipe("knn", "ncc32", 1),
)
DEFAULT_METHOD = "ensemble"
DEFAULT_FEATURES = "std32"  # for a single method (--method knn) without --features
DEFAULT_K = 5
FUSION_MEMBERS = ("knn", "retrieval", "density", "autoencoder")
