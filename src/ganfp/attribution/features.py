"""Feature spaces for attribution: the membership spaces, and frequency-domain fingerprints.

Generators leave traces in the spectrum (up-sampling checkerboards, missing high frequencies)
that pixel distances barely see. Two fingerprints are offered next to the membership spaces:

- `spectrum`: the azimuthally averaged log power spectrum (one value per radius), as in Durall
  et al., "Watch your up-convolution" (CVPR 2020);
- `residual`: the log power spectrum of the high-pass residual (image minus its 3x3 mean),
  pooled to 16 x 16 blocks, which keeps where a periodic artefact's peaks sit.

A spec joins spaces with `+` (`pixels32+spectrum`); each block is standardised on the training
images and weighted by 1/sqrt(its width), so a 1024-value pixel block does not drown a 33-value
spectrum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ganfp.data.manifest import Manifest
from ganfp.errors import InputError, require_text
from ganfp.registry import Registry, did_you_mean

FREQUENCY = Registry("frequency feature")
RESIDUAL_BLOCKS = 16
CHUNK = 256  # images transformed at a time


@dataclass(frozen=True)
class FeatureContext:
    """Where and how features are computed; `image_size` is the one size every image is decoded at."""

    image_size: int
    device: str = "cpu"
    batch_size: int = 128
    data_root: str | None = None
    runs_dir: str | None = None  # where the `checkpoint` space finds the newest finished chain run
    checkpoint: str | None = None  # the model file of the `checkpoint` space (`checkpoint_of`); None: the newest run's


def decode(manifest: Manifest, ctx: FeatureContext) -> torch.Tensor:
    """uint8 (N, size, size) through the decoded-image cache; an unreadable file is one InputError."""
    from ganfp.membership.features import load_checked

    return load_checked(manifest, ctx.image_size, ctx.data_root)


def _power(x: torch.Tensor) -> torch.Tensor:
    """log(1 + |FFT|^2) of mean-free float images, centred (zero frequency in the middle).

    `x` is overwritten, and each step after the FFT works in place: at 256 px a chunk's float copy is
    64 MB, and the out-of-place steps allocated a new one each.
    """
    x = x.sub_(x.mean(dim=(-2, -1), keepdim=True))
    return torch.fft.fftshift(torch.fft.fft2(x).abs().square_(), dim=(-2, -1)).log1p_()


@FREQUENCY.register("spectrum", description="azimuthally averaged log power spectrum")
def spectrum(images: torch.Tensor) -> np.ndarray:
    size = images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size) - size // 2, torch.arange(size) - size // 2, indexing="ij")
    radius = torch.hypot(yy.float(), xx.float()).round().long().flatten()
    keep = radius <= size // 2  # the corners hold only some directions
    counts = torch.bincount(radius[keep]).float()
    out = []
    for start in range(0, len(images), CHUNK):
        p = _power(images[start : start + CHUNK].to(torch.float32, copy=True).div_(255.0)).flatten(1)[:, keep]
        sums = torch.zeros(len(p), len(counts)).index_add_(1, radius[keep], p)
        out.append(sums / counts)
    return torch.cat(out).numpy().astype(np.float64)


@FREQUENCY.register("residual", description="log power spectrum of the high-pass residual, 16x16 blocks")
def residual(images: torch.Tensor) -> np.ndarray:
    out = []
    blocks = min(RESIDUAL_BLOCKS, images.shape[-1])
    for start in range(0, len(images), CHUNK):
        x = images[start : start + CHUNK].to(torch.float32, copy=True).div_(255.0)[:, None]
        high = x.sub_(F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1))  # x is not read again
        p = _power(high[:, 0])[:, None]
        out.append(F.adaptive_avg_pool2d(p, blocks).flatten(1))
    return torch.cat(out).numpy().astype(np.float64)


def pair_space(name: str):
    """The membership space `name` when it compares an unknown image with a labelled one only in pairs: an image
    metric (`ncc`, `white`, `ssim`: shifted correlation, structure) or a space whose whitening is fitted to both sets
    (`white`, `wstd`). None for the vector spaces, the frequency fingerprints, joins and unknown names."""
    from ganfp.membership.distances import Euclidean
    from ganfp.membership.spaces import SPACE_KINDS, parse_features

    if name in FREQUENCY or "+" in name:
        return None
    try:
        space = parse_features(name)
    except InputError:
        return None
    joint = space.kind != "deep" and SPACE_KINDS.get(space.kind).joint is not None
    return space if joint or not isinstance(space.metric, Euclidean) else None


def membership_space(name: str) -> Callable[..., np.ndarray]:
    """The one place attribution touches the membership vector spaces: check `name`, return its vectors.

    Only spaces compared by Euclidean distance, image by image, are vectors (pixels, std, deep ones); the pair
    spaces (`pair_space`) have no vector to cluster or fit a model to, and only knn reads them.
    """
    from ganfp.membership.features import compute_features
    from ganfp.membership.spaces import SPACE_KINDS, close_space, parse_features, spaces_help

    try:
        space = parse_features(name)
    except InputError:
        kind = re.fullmatch(r"([a-z]+)[0-9]*", name)
        if kind and kind.group(1) in SPACE_KINDS:
            raise  # a known kind at a size out of range (pixels0): its message gives the range
        close = did_you_mean(name, FREQUENCY.names()) or close_space(name)
        raise InputError(f"--features {name}{close}: not one of {', '.join(FREQUENCY.names())}, {spaces_help()}"
                         ) from None
    if pair_space(name) is not None:
        raise InputError(f"--features {name}: {space.kind} compares images in pairs (a shifted correlation, or "
                         "whitening fitted to both sets), not as vectors: only --method knn (and fusion) reads it, "
                         "alone; clustering, centroid and linear need pixels[N], std[N] or a spectrum")

    def vectors(manifest: Manifest, ctx: FeatureContext,
                images: Callable[[], torch.Tensor] | None = None) -> np.ndarray:
        """`images` gives the decoded set when the caller already holds it: pixel spaces then read no file."""
        from ganfp.device import resolve_device
        from ganfp.membership.features import downsample

        pixels = None if images is None else lambda _manifest, side, _role: downsample(images(), side)
        out = compute_features(space, manifest, image_size=ctx.image_size, device=resolve_device(ctx.device),
                               batch_size=ctx.batch_size, data_root=ctx.data_root, pixels=pixels,
                               checkpoint=_checkpoint(ctx) if space.kind == "deep" and space.model is None else None)
        return out.flatten(1).numpy().astype(np.float64)

    return vectors


def _checkpoint(ctx: FeatureContext) -> Path:
    """The model file of the `checkpoint` space: the context's, else the newest finished chain run's."""
    return Path(ctx.checkpoint or checkpoint_of("checkpoint", None, ctx.runs_dir))


def checkpoint_of(spec: str, checkpoint: str | None, runs_dir) -> str | None:
    """The model file the `checkpoint` space of `spec` reads (None without one): --checkpoint, else the newest finished
    chain run under attribute's --runs-dir, checked as classify checks it, before any image is decoded.

    Resolved here, not by the membership features, so the message names attribute's options.
    """
    from ganfp.membership.features import check_checkpoint_read

    if not reads_checkpoint(spec):
        return None
    instead = "or pass --checkpoint, or point --runs-dir at the folder of your chain runs"
    return str(check_checkpoint_read(checkpoint, runs_dir, None, instead))


def parse_spaces(spec: str, pairs: bool = False) -> list[str]:
    """`pixels32+spectrum` -> its spaces, each a frequency fingerprint or a membership vector space; with `pairs`
    (a method that compares images in pairs), a pair space alone (`white64`) is taken too."""
    require_text("features", spec)
    if pairs and pair_space(spec.strip()) is not None:
        return [spec.strip()]
    names = [s.strip() for s in spec.split("+")]
    first: dict[str, str] = {}  # each space, as `space_label` names it -> the spelling that named it first
    for name in names:
        if not name:
            raise InputError(f"--features {spec!r}: empty feature space name")
        if name not in FREQUENCY:
            membership_space(name)
        label = space_label(name)
        if label in first:  # its block would count twice in every distance, silently
            twice = f"{name} given twice" if first[label] == name else f"{first[label]} and {name} are both {label}"
            raise InputError(f"--features {spec}: {twice}; name each space once")
        first[label] = name
    return names


def space_label(name: str) -> str:
    """One name per space, aliases resolved: `pixels` and `pixels064` are `pixels64`, `std` is `std32`."""
    from ganfp.membership.spaces import parse_features

    return name if name in FREQUENCY else parse_features(name).label


def beyond_the_images(spec: str, size: int, pairs: bool = False) -> list[str]:
    """classify's warning for each membership space of `spec` finer than the `size` px images (`pixels64` compares
    them upsampled, `white64` at their size): the frequency fingerprints are computed at the images' own size."""
    from ganfp.membership.spaces import space_beyond_the_images

    return space_beyond_the_images(spec, size, [name for name in parse_spaces(spec, pairs) if name not in FREQUENCY])


def reads_checkpoint(spec: str) -> bool:
    """Whether `spec` holds `checkpoint`, the one space that reads --checkpoint (without it: a chain run under
    --runs-dir)."""
    return "checkpoint" in parse_spaces(spec, pairs=True)


def compute(spec: str, manifest: Manifest, ctx: FeatureContext) -> tuple[np.ndarray, tuple[int, ...]]:
    """(N, D) features of every image and the width of each space's block, in spec order.

    The images are read from the cache once for all the spaces of `spec` (`spectrum+residual` read the
    whole set twice, 164 MB each time for 2,500 images at 256 px), and let go once no later space reads
    them: a deep space decodes its own.
    """
    from ganfp.membership.spaces import parse_features

    names = parse_spaces(spec)
    reads = [name in FREQUENCY or parse_features(name).kind != "deep" for name in names]
    decoded: list[torch.Tensor] = []

    def images() -> torch.Tensor:
        if not decoded:
            decoded.append(decode(manifest, ctx))
        return decoded[0]

    blocks = []
    for i, name in enumerate(names):
        if name in FREQUENCY:
            blocks.append(FREQUENCY.get(name)(images()))
        else:
            blocks.append(membership_space(name)(manifest, ctx, images))
        if not any(reads[i + 1 :]):
            decoded.clear()
    return np.hstack(blocks), tuple(b.shape[1] for b in blocks)


# A column whose standard deviation on the training features is below this is constant up to rounding (the
# spectrum's zero frequency of mean-free images is ~1e-10); features are of order 1 (pixels in [0, 1], log powers).
CONSTANT = 1e-8


class BlockScaler:
    """Standardise every column on the training features, then weight each block by 1/sqrt(width).

    A column constant on the training images (a border pixel that is always 0) gets weight 0: every labelled image
    and class mean shares its value, so it cannot tell the classes apart. Divided by its spread (0, plus 1e-8 as it
    was), a difference there in an unknown image counted 1e8 times over and that one pixel swamped every distance.
    Kept at scale 1 with its mean removed, it would add the same raw difference to the distance to every class:
    no vote gained, and probabilities flattened by an amount set by the feature's units.
    """

    def fit(self, x: np.ndarray, widths: tuple[int, ...]) -> "BlockScaler":
        self.mean = x.mean(0)
        std = x.std(0)
        varies = std >= CONSTANT
        self.scale = np.where(varies, std, 1.0)
        self.weight = np.concatenate([np.full(w, 1.0 / np.sqrt(w)) for w in widths]) * varies
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale * self.weight
