"""Pseudo-labels for an unlabelled stage (the paper's stage 4 on the ImageCLEF test set).

The paper says only that stage 4 "uses the ImageCLEF test dataset", which has no labels.
ganfp reads it as self-training: score every image, label the most confident fraction at each
end (top = used, bottom = not used), and fine-tune on those. Scorers register here by name.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ganfp.errors import InputError

# name -> fn(context) -> one score per image, higher = class 1 ("used")
PSEUDO_LABELERS: dict[str, Callable[[dict], np.ndarray]] = {}


def register_pseudo_labeler(name: str):
    def wrap(fn):
        PSEUDO_LABELERS[name] = fn
        return fn

    return wrap


@register_pseudo_labeler("self")
def self_scores(ctx: dict) -> np.ndarray:
    """The previous stage's own P(class 1): the faithful reading of the paper."""
    from ganfp.inference import predict_proba

    return predict_proba(ctx["model"], ctx["images"], ctx["batch_size"], ctx["device"])[:, 1]


def pseudo_labels(method: str, ctx: dict, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels): the top `fraction` of images by score labelled 1, the bottom `fraction` 0."""
    if method not in PSEUDO_LABELERS:
        raise InputError(f"unknown pseudo-label source {method!r}; choose one of: {', '.join(sorted(PSEUDO_LABELERS))}")
    if not 0 < fraction <= 0.5:
        raise InputError(f"pseudo_fraction must be in (0, 0.5], got {fraction}")
    scores = np.asarray(PSEUDO_LABELERS[method](ctx), dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    n = max(2, int(round(fraction * len(scores))))
    if 2 * n > len(scores):
        raise InputError(f"too few images ({len(scores)}) to pseudo-label {fraction:.0%} at each end")
    top, bottom = order[:n], order[-n:]
    indices = np.concatenate([top, bottom])
    labels = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    keep = np.argsort(indices)
    return indices[keep], labels[keep]
