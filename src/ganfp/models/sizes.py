"""The image sizes a model takes and whether ImageNet weights exist for it, known without building it for real.

A timm model that is not registered comes with no known minimum: a ViT whose patch grid is fixed at 224 px, or a
net whose poolings leave nothing of a small image, failed with a torch traceback at the first batch, after every
image was decoded. Building it on the meta device and passing it one image costs no memory and a tenth of a
second, and tells.
"""

from __future__ import annotations

import functools

import torch

from ganfp.models._registry import model_entry
from ganfp.models.factory import IN_CHANS, create_model

LARGEST = 4096  # the largest --image-size ganfp accepts


def image_size_problem(name: str, size: int) -> str | None:
    """Why model `name` cannot take `size`-pixel images, naming the smallest it takes; None when it can (or when
    the probe cannot tell: an unknown minimum must not refuse a model that may work)."""
    entry = model_entry(name)
    if entry.factory is not None:  # registered: its minimum is known and tested
        if size >= entry.min_image_size:
            return _partial_patch_problem(name, size)
        return f"{name} needs at least {entry.min_image_size} pixels, got {size}"
    why = _probe(name, size)
    if why is None:
        return _partial_patch_problem(name, size)
    smallest = smallest_image_size(name)
    if smallest is None:
        return None
    if _probe(name, 2 * smallest) is not None:  # no larger image either: a fixed patch grid
        return f"{name} takes only {smallest}-pixel images (its input size is fixed), got {size}"
    if size < smallest:
        return f"{name} needs at least {smallest} pixels, got {size}"
    return f"{name} does not take {size}-pixel images ({why}); the smallest it takes is {smallest}"


def _partial_patch_problem(name: str, size: int) -> str | None:
    """A transformer's patch convolution drops what is left of the image after its last whole patch: vit_b_32 at
    48 pixels trained on the top-left 32 and never saw the rest, without a word."""
    patch = patch_side(name)
    left = size % patch
    if left == 0:
        return None
    fits = " or ".join(str(n) for n in (size - left, size - left + patch) if n >= patch)
    return (f"{name} cuts images into {patch}-pixel patches, so {size} pixels would leave the last {left} rows and "
            f"columns unseen; use a multiple of {patch} ({fits})")


@functools.lru_cache(maxsize=None)
def patch_side(name: str) -> int:
    """The side of the whole patches `name` sees, 1 for a net without patches or one that pads the last patch."""
    size = _default_size(name)
    try:
        model = _skeleton(name, size)
    except Exception:  # noqa: BLE001 - a model that cannot be built is reported by the other checks
        return 1
    embed = getattr(getattr(model, "net", None), "patch_embed", None)
    if embed is None or getattr(embed, "dynamic_img_pad", False):
        return 1
    patch = getattr(embed, "patch_size", 1)
    return int(patch[0] if isinstance(patch, (tuple, list)) else patch)


def min_image_size(name: str) -> int | None:
    """The smallest image `name` takes: the registry's for a registered model, else probed (None: unknown)."""
    entry = model_entry(name)
    return entry.min_image_size if entry.factory is not None else smallest_image_size(name)


@functools.lru_cache(maxsize=None)
def smallest_image_size(name: str) -> int | None:
    """The smallest size at which `name` runs, up to its ImageNet size; None when it does not run at that size.

    Found by bisection over multiples of its patch size (a transformer cuts the image into whole patches; a net
    of convolutions has none, and every size counts): a net that takes an image takes a larger one, up to a
    fixed patch grid's size.
    """
    high = _default_size(name)
    if _probe(name, high) is not None:
        return None
    unit = _patch_size(name, high)
    low, high = max(1, -(-8 // unit)), high // unit  # in patches
    while low < high:
        mid = (low + high) // 2
        if _probe(name, mid * unit) is None:
            high = mid
        else:
            low = mid + 1
    return high * unit if _probe(name, high * unit) is None else _default_size(name)


def _patch_size(name: str, size: int) -> int:
    """The side of the patches a transformer cuts images into; 1 for a net without patches."""
    patch = getattr(getattr(getattr(_skeleton(name, size), "net", None), "patch_embed", None), "patch_size", 1)
    return int(patch[0] if isinstance(patch, (tuple, list)) else patch)


def imagenet_weights(name: str) -> bool:
    """Whether ImageNet weights for `name` are published for download (its timm architecture has a source)."""
    timm_name = model_entry(name).timm_name
    if timm_name is None:
        return False
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    return cfg is not None and bool(getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None)
                                    or getattr(cfg, "file", None))


def _default_size(name: str) -> int:
    """The image size the architecture was made for (timm's pretrained config), 224 when it has none.

    A model of ganfp's own (conv5) has none, known without importing timm (2-3 s, most of a chain's checks)."""
    entry = model_entry(name)
    if entry.factory is not None and entry.timm_name is None:
        return 224
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(entry.timm_name or name)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return min(int(size[-1]), LARGEST) if size else 224


@functools.lru_cache(maxsize=None)
def _probe(name: str, size: int) -> str | None:
    """The first line of what goes wrong when `name` is built for and given one `size`-pixel image, or None."""
    try:
        model = _skeleton(name, size)
        with torch.device("meta"):
            model(torch.empty(2, IN_CHANS, size, size))  # two: batch norm in training needs more than one value
    except Exception as exc:  # timm and torch raise many kinds: an assertion, a RuntimeError, a ValueError
        text = str(exc).strip().splitlines()
        return (text[0] if text else type(exc).__name__)[:160].rstrip(".")
    return None


@functools.lru_cache(maxsize=None)
def _skeleton(name: str, size: int) -> torch.nn.Module:
    """`name` built for `size`-pixel images on the meta device (no memory, no weights), once: the probe, the search
    for the smallest size and the patch's side each built the same model again."""
    with torch.device("meta"):
        return create_model(name, num_classes=2, image_size=size)
