"""`create_model(name, ...)`: one entry point for every architecture and every source of weights."""

from __future__ import annotations

import os
import pickle
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch

from ganfp.errors import InputError, WeightsUnavailable, require_int, require_path, require_text
from ganfp.models._registry import model_entry, register_model
from ganfp.models.backbone import Backbone, TimmBackbone
from ganfp.models.conv5 import Conv5

IN_CHANS = 1  # ganfp works in grayscale throughout; timm folds RGB stems into one channel


@register_model("conv5", "the paper's 5-block conv net with a 512-d embedding layer")
def _conv5(num_classes: int, image_size: int, pretrained: bool, **kw) -> Backbone:
    if pretrained:
        raise InputError("conv5 has no ImageNet weights; use --init none or a local weights file (--init FILE)")
    return Conv5(num_classes=num_classes, in_chans=IN_CHANS, image_size=image_size, **kw)


OFFLINE_HINT = "start from --init none, or from a local weights file: --init FILE (a .safetensors or .pth state_dict)"


def _timm_factory(timm_name: str, takes_img_size: bool = False):
    def factory(num_classes: int, image_size: int, pretrained: bool, **kw) -> Backbone:
        import timm

        if takes_img_size:
            kw["img_size"] = image_size
        cached = check_weights_reachable(timm_name) if pretrained else None
        try:
            net = timm.create_model(timm_name, pretrained=pretrained, num_classes=num_classes, in_chans=IN_CHANS, **kw)
        except Exception as exc:  # the hub raises many types: offline, DNS, HTTP, missing cache
            if not pretrained:
                raise
            raise _weights_failure(timm_name, cached, exc) from exc
        return TimmBackbone(timm_name, net, image_size)

    return factory


def _weights_failure(timm_name: str, cached: str | None, exc: Exception) -> WeightsUnavailable:
    """A cached file that fails to load is damaged (a download cut off, a disk that lost writes), not a download
    that failed: saying "could not download" sent users to check a network that was never used."""
    if cached is None:
        return WeightsUnavailable(f"could not download ImageNet weights for {timm_name} ({type(exc).__name__})",
                                  OFFLINE_HINT)
    return WeightsUnavailable(f"{cached}: the cached ImageNet weights for {timm_name} cannot be read "
                              f"({type(exc).__name__}); delete the file to download them again", OFFLINE_HINT)


def check_weights_reachable(timm_name: str) -> str | None:
    """Fail in a second when ImageNet weights are neither cached nor downloadable; the cached file, if any.

    Without this the hub retries an unreachable server for about a minute before giving up.
    Checked once per model build: the local cache first, then HF_HUB_OFFLINE, then one short
    connection to the hub (skipped behind a proxy, which a plain socket cannot go through).
    """
    from huggingface_hub import constants, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    repo = getattr(cfg, "hf_hub_id", None)
    if not repo:
        return None  # weights from a plain URL (torch hub): let timm try
    for cached in (try_to_load_from_cache(repo, f) for f in ("model.safetensors", "pytorch_model.bin")):
        if isinstance(cached, str):
            return cached
    if constants.HF_HUB_OFFLINE:
        raise WeightsUnavailable(f"ImageNet weights for {timm_name} are not cached and HF_HUB_OFFLINE is set", OFFLINE_HINT)
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise WeightsUnavailable(f"ImageNet weights for {timm_name} are not cached and {host} cannot be reached (offline?)",
                                 OFFLINE_HINT) from None
    return None


register_model("resnet18", "ResNet-18 (timm resnet18)", "resnet18")(_timm_factory("resnet18"))
register_model("vgg11", "VGG-11 (timm vgg11)", "vgg11", min_image_size=32)(_timm_factory("vgg11"))  # five 2x poolings
register_model(
    "vit_b_32", "ViT-B/32 at the stage's image size (timm vit_base_patch32_224)", "vit_base_patch32_224", min_image_size=32
)(
    _timm_factory("vit_base_patch32_224", takes_img_size=True)
)


def create_model(
    name: str,
    num_classes: int = 2,
    image_size: int = 224,
    weights: str | os.PathLike | None = "none",
    **kwargs,
) -> Backbone:
    """Build a registered model (or any timm model) with weights `none`, `imagenet` or a local file."""
    _check_arguments(name, num_classes, image_size, weights)
    num_classes, image_size = int(num_classes), int(image_size)  # numpy's: the model's metadata must be JSON
    entry = model_entry(name)
    weights = "none" if weights in (None, "") else weights
    pretrained = weights == "imagenet"
    if entry.factory is not None:
        model = entry.factory(num_classes=num_classes, image_size=image_size, pretrained=pretrained, **kwargs)
    else:  # any other timm model name
        takes_img_size = "vit" in name or "deit" in name or "swin" in name
        model = _timm_factory(name, takes_img_size)(num_classes, image_size, pretrained, **kwargs)
    model.name = entry.name  # the registry name, which checkpoints record
    if weights not in ("none", "imagenet"):
        load_weights(model, weights)
    return model


def _check_arguments(name, num_classes, image_size, weights) -> None:
    """From Python, `weights=1` failed as a TypeError in pathlib, and `num_classes=0` built a model without a
    head (timm's feature extractor) that every checkpoint check then refused far from the call."""
    require_text("name", name)
    require_int("num_classes", num_classes, low=1)
    require_int("image_size", image_size, low=1)
    require_path("weights", weights, optional=True)


PICKLE_STARTS = {b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"}  # the first bytes of pickle protocols 2-5
DAMAGED_WEIGHTS = "cannot be read as weights: damaged, cut short, or not a torch.save or .safetensors file at all"


def _unpickling_problem(path: Path, exc: pickle.UnpicklingError) -> str:
    """Why the safe reader refused `path`: a pickle of other objects than tensors, or of pickle features it does not
    read (full unpickling runs code: never done), or bytes that are no pickle at all (a damaged or cut-short file, or
    another kind), which torch reports alike."""
    with open(path, "rb") as f:
        head = f.read(2)
    if "Unsupported global" in str(exc) or head in PICKLE_STARTS:
        return ("not a weights file ganfp can read safely: a pickle of other objects than tensors, or written by "
                "pickle itself (a state_dict saved with torch.save, or .safetensors, is read); full unpickling is "
                "never done")
    return DAMAGED_WEIGHTS


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a plain state_dict, never unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():  # torch's note on the file's pickle protocol is not the user's to act on
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's message is a page on weights_only; say what it means here
        raise InputError(f"{path}: {_unpickling_problem(path, exc)}") from exc
    except Exception as exc:
        if "zip archive" in str(exc):  # torch.save's format is a zip: one cut short has no central directory
            raise InputError(f"{path}: {DAMAGED_WEIGHTS}") from exc
        raise InputError(f"{path}: not a readable weights file ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from exc
    for key in ("state_dict", "model", "model_state_dict"):  # common wrappers of a state_dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)")
    return without_wrapper_prefixes(state)


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel and DistributedDataParallel; torch.compile


def without_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's own names in a state_dict saved from a wrapped model (`module.conv1.weight`), as timm's
    `clean_state_dict` gives them: such a file was refused as "120 missing, 122 unexpected"."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
                state, stripped = {k[len(prefix):]: v for k, v in state.items()}, True
    return state


def load_weights(model: Backbone, path: str | os.PathLike, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load every backbone weight from `path` or fail; only the head may stay fresh (new classes)."""
    model.load_state_dict(fit_weights(model, path, state), strict=False)


def check_weights_fit(path: str | os.PathLike, name: str) -> None:
    """The weights in `path` fit model `name`, checked when a stage's settings are, before any image is decoded
    (they were found not to fit only when the model was built, after the decoding).

    The model is built on the meta device (no memory, no initialisation), at 224 pixels: no weight's shape
    depends on the image size but ViT's position embeddings, which `fit_weights` resamples.
    """
    with torch.device("meta"):
        skeleton = create_model(name, num_classes=2, image_size=224)
    fit_weights(skeleton, path)


def fit_weights(model: Backbone, path: str | os.PathLike,
                state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """`path`'s tensors (or `state`) made to fit `model`: a fresh head for other classes, a stem folded to one
    channel, position embeddings resampled; one InputError naming what does not fit."""
    state = dict(state if state is not None else read_state_dict(path))
    own = model.state_dict()
    if not any(k in own for k in state) and any(f"net.{k}" in own for k in state):
        state = {f"net.{k}": v for k, v in state.items()}  # a bare timm state_dict
    for key in list(state):
        if key not in own or state[key].shape == own[key].shape:
            continue
        if model.is_head_key(key):
            del state[key]  # the head is replaced for the new stage's classes
        elif model.first_conv and key == f"{model.first_conv}.weight" and state[key].dim() == 4:
            from timm.models import adapt_input_conv

            state[key] = adapt_input_conv(own[key].shape[1], state[key])
        elif key.endswith("pos_embed"):
            from timm.layers import resample_abs_pos_embed

            grid = int((own[key].shape[1] - 1) ** 0.5)
            state[key] = resample_abs_pos_embed(state[key], (grid, grid), num_prefix_tokens=1)
    missing = [k for k in own if k not in state and not model.is_head_key(k)]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise InputError(f"{path}: weights do not match model {model.name}: " + ", ".join(parts))
    return state
