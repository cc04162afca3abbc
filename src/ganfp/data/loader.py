"""Batches straight from a uint8 tensor: no per-image Python work, no decoding, no workers.

Images stay uint8 until they reach the device; conversion, normalisation and augmentation
happen there, on the whole batch.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from ganfp.device import to_device

MEAN, STD = 0.449, 0.226  # ImageNet's mean/std averaged over RGB: what timm's 1-channel CNN stems expect
Normalization = tuple[float, float]  # (mean, std) of pixel values in [0, 1]; each model declares its own


def to_model_input(batch: torch.Tensor, channels_last: bool = False, norm: Normalization = (MEAN, STD)) -> torch.Tensor:
    """uint8 (B, H, W) on the device -> normalised float (B, 1, H, W)."""
    mean, std = norm
    x = batch.unsqueeze(1).float().mul_(1.0 / (255.0 * std)).sub_(mean / std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def device_images(images: torch.Tensor, device: torch.device, budget_fraction: float = 0.25) -> torch.Tensor:
    """Move the whole uint8 set to the GPU once when it fits in a fraction of its memory.

    For training, which reads every image every epoch; inference reads each once and streams.
    """
    if device.type != "cuda" or images.is_cuda:
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() <= free * budget_fraction:
        return images.to(device)
    return images


def iterate_batches(
    images: torch.Tensor,
    indices: np.ndarray,
    batch_size: int,
    device: torch.device,
    labels: torch.Tensor | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    channels_last: bool = False,
    norm: Normalization = (MEAN, STD),
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield (input normalised by `norm`, labels) on `device` for `indices` in order, `batch_size` at a time.

    From a memory-mapped cache only the batch's rows are read (sorted, for sequential I/O).
    On CUDA every host-to-device copy is pinned and non-blocking, so the GPU never waits for the
    next batch to be prepared (see `ganfp.device.to_device`).
    """
    for start in range(0, len(indices), batch_size):
        idx = np.ascontiguousarray(indices[start : start + batch_size], dtype=np.int64)
        idx_t = torch.from_numpy(idx)
        if images.is_cuda:
            batch = images.index_select(0, to_device(idx_t, images.device))
        elif len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all():
            batch = images[int(idx[0]) : int(idx[-1]) + 1]  # in order (inference): a view, no gather
        else:
            order = np.argsort(idx, kind="stable")
            rows = images.numpy()[idx[order]]  # in file order: sequential reads from a memory map
            batch = torch.from_numpy(rows[np.argsort(order)])  # back to the shuffled order (numpy: no thread pool)
        x = to_model_input(to_device(batch, device), channels_last, norm)
        if augment is not None:
            x = augment(x)
        y = None
        if labels is not None:
            y = labels.index_select(0, to_device(idx_t, labels.device)) if labels.is_cuda else to_device(labels[idx_t], device)
        yield x, y
