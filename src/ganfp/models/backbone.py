"""The interface every ganfp model has: logits, pooled embeddings, and a head that can be replaced."""

from __future__ import annotations

import abc

import torch
from torch import nn


class Backbone(nn.Module, abc.ABC):
    """Subclasses set `name`, `num_features`, `num_classes` and name their head parameters."""

    name: str
    num_features: int
    num_classes: int
    head_prefixes: tuple[str, ...]  # state-dict key prefixes that belong to the classifier head
    first_conv: str | None = None  # key prefix of the input layer, for adapting channel counts
    image_size: int
    # Pixel normalisation the weights expect, (mean, std) of grayscale values in [0, 1]. The
    # default is ImageNet's statistics averaged over RGB; timm models take theirs from the
    # pretrained config (ViT: 0.5 / 0.5). Checkpoints record it, so inference matches training.
    norm: tuple[float, float] = (0.449, 0.226)

    @abc.abstractmethod
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier, shape (batch, num_features)."""

    @abc.abstractmethod
    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one for a new stage."""

    def is_head_key(self, key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in self.head_prefixes)


class TimmBackbone(Backbone):
    """A timm model behind the ganfp interface (`net.` prefixes its parameters)."""

    def __init__(self, name: str, net: nn.Module, image_size: int):
        super().__init__()
        self.name = name
        self.net = net
        self.image_size = image_size
        self.num_features = getattr(net, "head_hidden_size", None) or net.num_features  # pooled width fed to the classifier
        self.num_classes = net.num_classes
        classifier = net.pretrained_cfg.get("classifier", "head")
        self.head_prefixes = ("net." + classifier,)
        first_conv = net.pretrained_cfg.get("first_conv")
        self.first_conv = f"net.{first_conv}" if first_conv else None
        self.norm = grayscale_norm(net.pretrained_cfg, self.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def reset_head(self, num_classes: int) -> None:
        self.net.reset_classifier(num_classes)
        self.num_classes = num_classes


def grayscale_norm(pretrained_cfg: dict, default: tuple[float, float]) -> tuple[float, float]:
    """(mean, std) for one-channel input: the pretrained config's per-channel values averaged.

    The RGB stem is folded to one channel by summing its filters, so a gray pixel feeds every
    colour filter the same value; the averages keep the folded stem's inputs at the scale it learnt.
    """
    mean, std = pretrained_cfg.get("mean"), pretrained_cfg.get("std")
    if not mean or not std:
        return default
    return round(sum(mean) / len(mean), 6), round(sum(std) / len(std), 6)
