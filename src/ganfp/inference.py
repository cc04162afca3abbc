"""Batched inference over a uint8 image tensor: class probabilities and pooled embeddings."""

from __future__ import annotations

import numpy as np
import torch

from ganfp.data.loader import MEAN, STD, iterate_batches
from ganfp.device import autocast


@torch.no_grad()
def _run(model, images: torch.Tensor, batch_size: int, device: torch.device, fn) -> torch.Tensor:
    model.eval().to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # Host images stream up batch by batch (pinned, non-blocking: each copy overlaps the previous
    # batch's compute). Each image is read once, so moving the whole set first only adds one copy
    # that nothing overlaps: 0.69 of the bare forward pass on an H200, streamed 0.93.
    out = None  # filled batch by batch without waiting: pinned host memory, non-blocking copies
    norm = getattr(model, "norm", (MEAN, STD))  # the model's own (ViT: 0.5 / 0.5), recorded in its checkpoint
    batches = iterate_batches(images, np.arange(len(images)), batch_size, device, channels_last=channels_last, norm=norm)
    for start, (x, _) in zip(range(0, len(images), batch_size), batches):
        with autocast(device):
            y = fn(x).float()
        if out is None:
            out = torch.empty((len(images), *y.shape[1:]), pin_memory=device.type == "cuda")
        out[start : start + len(y)].copy_(y, non_blocking=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out


def predict_proba(model, images: torch.Tensor, batch_size: int = 256, device: torch.device | str = "cpu") -> np.ndarray:
    """Softmax probabilities, shape (N, num_classes)."""
    probs = _run(model, images, batch_size, torch.device(device), lambda x: model(x).softmax(-1))
    return probs.numpy()


def embed(model, images: torch.Tensor, batch_size: int = 256, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pooled features before the classifier, shape (N, model.num_features), float32 on the CPU."""
    return _run(model, images, batch_size, torch.device(device), model.embed)
