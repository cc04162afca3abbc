"""Models registered by name through small factory functions, as timm does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ganfp.errors import InputError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable
    description: str
    timm_name: str | None  # the timm architecture behind it, None for ganfp's own
    min_image_size: int = 8  # smaller inputs do not fit its patches or poolings


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, timm_name: str | None = None, min_image_size: int = 8):
    def wrap(factory: Callable) -> Callable:
        _REGISTRY[name] = ModelEntry(name, factory, description, timm_name, min_image_size)
        return factory

    return wrap


def list_models() -> list[str]:
    """The tested contract: every name here trains, embeds, saves and loads the same way."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    import timm

    if timm.is_model(name):
        return ModelEntry(name, None, f"timm model {name}", name)
    raise InputError(f"unknown model {name!r}; choose one of: {', '.join(list_models())} (or any timm model name)")
