"""What one score is made of, and ganfp's defaults.

A `Recipe` names a method, the feature space it compares in and its k, and whether its scores are
rank-averaged with the default's (what `--calibrate` chooses between: a dev set of 160 images can
prefer a scorer that the test images, a different fit of the generator, do not). The default recipe was
chosen by its worst case over the generator zoo (docs/membership.md,
`python benchmarks/membership.py --zoo`), not by its best on one generator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ganfp.errors import InputError, plain_numbers, require_int


@dataclass(frozen=True)
class Recipe:
    method: str
    features: str | None = None  # the feature space of neighbour methods and fusion, e.g. "std32"
    k: int | None = None  # neighbours, for the methods that use k
    with_default: bool = False  # rank-average these scores with the default's

    def __post_init__(self):
        """Checked when made, not at the first neighbour pass: from Python a `Recipe("knn", "std32", 0)` silently
        became k=5 and `k=2.5` failed inside torch. The method and space names are checked by their registries."""
        for name in ("method", "features"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InputError(f"Recipe {name}={value!r}: must be a name (a str) or None")
        if self.k is not None:
            require_int("Recipe k", self.k, low=1)
        plain_numbers(self)

    @property
    def own(self) -> Recipe:
        """This recipe without the default mixed in."""
        return replace(self, with_default=False)

    @property
    def label(self) -> str:
        return self.noted()

    def noted(self, note: str = "") -> str:
        """The label, `note` in brackets after the recipe's own part, before the default it is averaged with
        (calibration's: the k a small dev set cuts the recipe's k to)."""
        parts = [self.method] + ([self.features] if self.features else []) + ([f"k={self.k}"] if self.k else [])
        text = " ".join(parts + ([f"({note})"] if note else []))
        return f"{DEFAULT_METHOD} + {text} (rank average)" if self.with_default else text


# The label-free default, chosen by its worst case over the generator zoo (docs/membership.md): a
# weighted mean of three log closeness scores, each judged against the real images and, in the two vector
# spaces, the generated set's own spread (beyond_typical).
# Local linear reconstruction in raw pixels at 32 px with 40 neighbours, weight 2 (blurry and smooth
# generators, blends: a used image lies in the span of its generated neighbours); the shift-tolerant
# 5 nearest neighbours in white48 (near-copies shifted by up to 4 px, warped or re-contrasted, and the
# detail a generator reproduces from its training slices; near-copies give large scores, which adding
# keeps); and the 10 nearest in the same whitened images at 32 px, unshifted (a GAN's samples lie
# where its training slices are, and at 32 px its texture is gone).
DEFAULT_ENSEMBLE: tuple[tuple[Recipe, float], ...] = (
    (Recipe("local", "pixels32", 40), 2.0),
    (Recipe("knn", "white48", 5), 1.0),
    (Recipe("knn", "wstd32", 10), 1.0),
)
DEFAULT_METHOD = "ensemble"
DEFAULT_FEATURES = "std32"  # for every neighbour method without --features
DEFAULT_K = 5  # for neighbour methods that register no default k of their own
FUSION_MEMBERS = ("knn", "retrieval", "density", "autoencoder")
