"""Feature spaces the neighbour scorers compare images in, one registration each.

A space is named `<kind><N>` (N = the resolution the image is area-averaged to, e.g. `std32`),
`checkpoint` (the pooled features of a ganfp checkpoint) or a model name (ImageNet features).
Every pixel kind is registered in `SPACE_KINDS` with its metric, its default resolution and the
resolutions calibration tries; help texts, option checks, calibration and tests read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable

import torch

from ganfp.errors import InputError, require_text
from ganfp.membership.distances import Euclidean, Metric
from ganfp.membership.ncc import ShiftedNCC, standardise
from ganfp.membership.ssim import SSIMDistance
from ganfp.membership.whiten import whiten_by_generated
from ganfp.registry import Registry, did_you_mean


@dataclass(frozen=True)
class SpaceKind:
    """How images at N x N (float, [0, 1]) become features, and how those are compared."""

    features: Callable[[torch.Tensor], torch.Tensor]
    metric: Callable[[int], Metric]
    default_size: int
    calibrate_sizes: tuple[int, ...]
    vectors: bool  # features are vectors compared by L2 (methods that fit them need this), not images
    description: str
    # (real, generated) -> both transformed by something fitted to the two sets; None: each image alone. A
    # space with one never works above the decoded size: upsampled images have an empty high band that
    # a filter fitted to their spectra would amplify.
    joint: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None


SPACE_KINDS: Registry[SpaceKind] = Registry("feature space")


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def _standardised(x: torch.Tensor) -> torch.Tensor:
    return standardise(x.flatten(1))


def _images(x: torch.Tensor) -> torch.Tensor:
    return x


def _whitened_vectors(real: torch.Tensor, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets whitened by the generated images' spectrum, then standardised into vectors."""
    real, generated = whiten_by_generated(real, generated)
    return _standardised(real), _standardised(generated)


def ncc_shift(size: int) -> int:
    """Shifts searched at N px: about 6% of the width, so a 4 px shift at 64 px is covered at any N."""
    return max(1, round(size / 16))


SPACE_KINDS.add("pixels", SpaceKind(_flat, lambda n: Euclidean(), 64, (16, 32, 64), True,
                                    "raw pixels, L2 (what GAN-Leaks compares)"))
SPACE_KINDS.add("std", SpaceKind(_standardised, lambda n: Euclidean(), 32, (16, 32, 64), True,
                                 "per-image standardised pixels (zero mean, unit norm): blind to brightness and contrast"))
SPACE_KINDS.add("ncc", SpaceKind(_images, lambda n: ShiftedNCC(n, ncc_shift(n)), 32, (16, 32, 48), False,
                                 "best normalised cross-correlation over shifts of ~6% of the width"))
SPACE_KINDS.add("white", SpaceKind(_images, lambda n: ShiftedNCC(n, ncc_shift(n)), 48, (32, 48, 64), False,
                                   "ncc after whitening both sets by the generated images' spectrum: fine detail "
                                   "counts as much as the outline", joint=whiten_by_generated))
SPACE_KINDS.add("wstd", SpaceKind(_images, lambda n: Euclidean(), 32, (32, 48, 64), True,
                                  "std after the white whitening, without its shift search: vectors, so local "
                                  "and density can fit them", joint=_whitened_vectors))
SPACE_KINDS.add("ssim", SpaceKind(_images, lambda n: SSIMDistance(n), 64, (32, 64), False,
                                  "1 - SSIM (structure; punishes blur)"))


@dataclass(frozen=True)
class FeatureSpace:
    name: str  # as written by the user: std32, pixels, checkpoint, resnet18
    kind: str  # a SPACE_KINDS name, or "deep"
    size: int | None = None  # resolution of pixel kinds
    model: str | None = None  # the ImageNet model of a deep space; None for a checkpoint

    @property
    def metric(self) -> Metric:
        return SPACE_KINDS.get(self.kind).metric(self.size) if self.kind != "deep" else Euclidean()

    @property
    def label(self) -> str:
        """How reports name it: std32, ssim64, checkpoint, resnet18 (imagenet)."""
        if self.kind != "deep":
            return f"{self.kind}{self.size}"
        return "checkpoint" if self.model is None else f"{self.model} (imagenet)"

    @property
    def vectors(self) -> bool:
        """Whether features are vectors compared by L2 (deep features are)."""
        return self.kind == "deep" or SPACE_KINDS.get(self.kind).vectors

    def features(self, small: torch.Tensor) -> torch.Tensor:
        """Features of images already downsampled to size x size (pixel kinds only)."""
        return SPACE_KINDS.get(self.kind).features(small)

    def at_most(self, image_size: int | None) -> FeatureSpace:
        """This space, at no more than the decoded `image_size` when its kind fits a joint transform."""
        if self.kind == "deep" or image_size is None or self.size <= image_size or not SPACE_KINDS.get(self.kind).joint:
            return self
        return replace(self, size=image_size)

    def pair(self, real: torch.Tensor, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both sets' features after the kind's joint transform (fitted to the two sets), if it has one."""
        joint = SPACE_KINDS.get(self.kind).joint if self.kind != "deep" else None
        return joint(real, generated) if joint else (real, generated)


def spaces_help() -> str:
    kinds = ", ".join(f"{name}[N]" for name in SPACE_KINDS.names())
    return f"{kinds}, checkpoint, or a model name with ImageNet weights"


def parse_features(spec: str, option: str | None = "--features") -> FeatureSpace:
    """`<kind>[N]` for a registered kind, `checkpoint`, or a model name (ImageNet weights).

    Its errors name `option`, the one that gave `spec` (`--features nope: not one of ...`); None leads them with
    `spec` alone, for a caller that names the setting itself: train-stage said `--pseudo-features: --features nope:`.
    """
    require_text("features", spec)
    said = f"{option} {spec}" if option else spec
    match = re.fullmatch(r"([a-z]+)([0-9]*)", spec)  # digits 0-9: \d took other scripts' too
    if match and match.group(1) in SPACE_KINDS:
        kind, digits = match.groups()
        size = int(digits) if digits else SPACE_KINDS.get(kind).default_size
        if not 8 <= size <= 1024:
            raise InputError(f"{said}: resolution must be between 8 and 1024 px")
        return FeatureSpace(spec, kind, size)
    if spec == "checkpoint":
        return FeatureSpace(spec, "deep")
    from ganfp.models import imagenet_weights, list_models, model_entry

    try:
        model_entry(spec)
    except InputError:
        raise InputError(f"{said}{close_space(spec)}: not one of {spaces_help()}") from None
    if not imagenet_weights(spec):  # else refused when the model was built, after every image was decoded
        others = ", ".join(name for name in list_models() if imagenet_weights(name))
        raise InputError(f"{said}: {spec} has no ImageNet weights; choose a model with them ({others}; "
                         "see: ganfp models list), or checkpoint")
    return FeatureSpace(spec, "deep", model=spec)


def close_space(spec: str) -> str:
    """` (did you mean 'white48'?)` for a space one typo from `spec`: every kind at `spec`'s resolution (the list of
    kinds alone did not say which was meant), `checkpoint`, and the models with ImageNet weights."""
    from ganfp.models import imagenet_weights, list_models

    digits = re.search(r"[0-9]*$", spec).group()
    spaces = [f"{kind}{digits}" for kind in SPACE_KINDS.names()]
    return did_you_mean(spec, [*spaces, "checkpoint", *(name for name in list_models() if imagenet_weights(name))])


def check_features_size(features: str | None, size: int | None, image_size: int | None) -> None:
    """A deep feature space whose model cannot take the images' size (a ViT's fixed patch grid, a net whose
    poolings leave nothing of a small image), refused before any image is decoded: it failed at the first batch."""
    if features is None or size is None:
        return
    from ganfp.models import image_size_problem

    model = parse_features(features).model
    why = image_size_problem(model, size) if model else None
    if why:
        asked = "" if image_size else " (the images' own size; pass --image-size N to resize them)"
        raise InputError(f"--features {features}: {why}{asked}")


def space_beyond_the_images(features: str | None, size: int | None, names: list[str] | None = None) -> list[str]:
    """A --features finer than the images, said aloud: a whitened space compares at the images' size, under the
    name it was asked by (`knn white64` ran as white32 on 32 px images), and the others compare upsampled images,
    which hold no more detail than at the images' size. `names`: the spaces of this kind that `features` joins
    (attribute's `pixels64+spectrum`), when it is not one itself; one warning each."""
    if features is None or size is None:
        return []
    warnings = []
    for space in map(parse_features, [features] if names is None else names):
        if space.kind == "deep" or space.size <= size:
            continue
        at = space.at_most(size)
        done = (f"it compares them at {size} px, as {at.label}" if at != space
                else f"they are upsampled to {space.size} px, which adds no detail")
        warnings.append(f"--features {features}: {space.label} is finer than the {size} px images; {done}")
    return warnings


def calibration_spaces() -> list[FeatureSpace]:
    """Every pixel kind at every resolution it is calibrated at."""
    return [parse_features(f"{entry.name}{n}") for entry in SPACE_KINDS for n in entry.obj.calibrate_sizes]
