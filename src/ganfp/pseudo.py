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


@register_pseudo_labeler("knn")
def knn_scores(ctx: dict) -> np.ndarray:
    """Calibrated nearest-neighbour scores against the dataset's own generated images: the stronger
    source, since it looks at the generated set (the classifier never does)."""
    from ganfp.classify import generated_manifest, native_image_size
    from ganfp.membership import DEFAULT_FEATURES, DEFAULT_K, MembershipScorer, Recipe, ScoringSetup

    manifest = ctx["manifest"]
    folder = manifest.info.get("generated")
    if not folder:
        raise InputError(f"{manifest.name}: pseudo_labels = \"knn\" needs a dataset with generated images (e.g. imageclef-gans-2023:test, demo:gans-test)")
    generated = generated_manifest(folder)
    setup = ScoringSetup(native_image_size(manifest, generated), ctx["device"], data_root=ctx["data_root"],
                         seed=ctx["config"].seed)
    return MembershipScorer(manifest, generated, setup).score(Recipe("knn", DEFAULT_FEATURES, DEFAULT_K))
