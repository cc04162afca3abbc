"""Pseudo-labels for an unlabelled stage (the paper's stage 4 on the ImageCLEF test set).

The paper says only that stage 4 "uses the ImageCLEF test dataset", which has no labels.
ganfp reads it as self-training: score every image, label the most confident fraction at each
end (top = used, bottom = not used), and fine-tune on those. The chain calls `pseudo_label` and
hands the trainer the labelled result. Scorers register in `PSEUDO_LABELERS` by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganfp import distributed
from ganfp.data.manifest import Manifest
from ganfp.errors import InputError
from ganfp.metrics import used_class_index
from ganfp.registry import Registry


@dataclass(frozen=True)
class PseudoSettings:
    """Every setting that changes the pseudo-labels (all of them are in the stage's digest)."""

    method: str  # a PSEUDO_LABELERS name
    fraction: float  # share of images labelled at each end of the ranking
    features: str  # "knn": the membership feature space
    k: int  # "knn": neighbours
    seed: int
    batch_size: int
    window: tuple[float, float] | None = None  # "knn": the HU window the stage reads its DICOM/NIfTI images in
    hu_offset: int | None = None  # "knn": the stage's 16-bit images store HU + this (read in `window`)


@dataclass
class PseudoContext:
    settings: PseudoSettings
    model: torch.nn.Module  # the previous stage's model
    classes: list[str]  # its classes
    manifest: Manifest  # the unlabelled images
    images: torch.Tensor  # decoded at the stage's image size
    device: torch.device
    data_root: str | Path | None


# name -> fn(context) -> one score per image, higher = more likely "used"; meta `reads_generated`: the source
# scores against the dataset's generated images (so they belong to the stage's data, and must exist); `settings`:
# the stage settings it reads besides pseudo_fraction (train-stage refuses the others' options as ignored)
PSEUDO_LABELERS: Registry[Callable[[PseudoContext], np.ndarray]] = Registry("pseudo-label source")


@PSEUDO_LABELERS.register("self")
def self_scores(ctx: PseudoContext) -> np.ndarray:
    """The previous stage's own P(used): the faithful reading of the paper."""
    from ganfp.inference import predict_proba

    probs = predict_proba(ctx.model, ctx.images, ctx.settings.batch_size, ctx.device)
    return probs[:, used_class_index(ctx.classes)]


@PSEUDO_LABELERS.register("knn", reads_generated=True, settings=("pseudo_features", "pseudo_k"))
def knn_scores(ctx: PseudoContext) -> np.ndarray:
    """Calibrated nearest-neighbour scores against the dataset's own generated images: the stronger
    source, since it looks at the generated set (the classifier never does)."""
    from ganfp.data.generated import generated_manifest, native_image_size
    from ganfp.data.medical import with_window
    from ganfp.membership import MembershipScorer, Recipe, ScoringSetup

    manifest, s = ctx.manifest, ctx.settings
    check_source("knn", manifest)
    generated = generated_manifest(manifest.info["generated"])
    if s.window or s.hu_offset is not None:  # compared as the stage's images are
        generated = with_window(generated, s.window, s.hu_offset)
    setup = ScoringSetup(native_image_size(manifest, generated), ctx.device, data_root=ctx.data_root, seed=s.seed)
    return MembershipScorer(manifest, generated, setup).score(Recipe("knn", s.features, s.k))


def check_source(source: str, manifest: Manifest, fraction: float | None = None) -> None:
    """What a source needs of the dataset, known from its manifest before a single image is decoded; with
    `fraction`, enough images to label that share at each end.

    A labelled dataset is refused: its labels would be silently replaced by the source's guesses.
    """
    if fraction is not None:
        per_end(len(manifest), fraction, manifest.name)
    if manifest.labelled:
        raise InputError(
            f'{manifest.name}: is labelled (classes {", ".join(manifest.classes)}), and pseudo_labels = "{source}" '
            "would replace its labels with guesses; pseudo-labels are for an unlabelled set (a flat folder of "
            "images): drop pseudo_labels to train on the labels"
        )
    if PSEUDO_LABELERS.entry(source).meta.get("reads_generated") and not manifest.info.get("generated"):
        raise InputError(
            f'{manifest.name}: pseudo_labels = "{source}" needs a dataset with generated images '
            "(e.g. imageclef-gans-2023:test, demo:gans-test)"
        )


def per_end(count: int, fraction: float, where: str = "") -> int:
    """Images pseudo-labelled at each end of a ranking of `count`: `fraction` of them, at least two (a split needs
    two of each class); one InputError when there are too few."""
    n = max(2, int(round(fraction * count)))
    if 2 * n > count:
        raise InputError(f"{where + ': ' if where else ''}too few images ({count}) to pseudo-label {fraction:.0%} at "
                         f"each end: it takes at least {2 * n}")
    return n


def rank_labels(scores: np.ndarray, fraction: float, used: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels): the top `fraction` of images by score labelled `used`, the bottom `fraction`
    the other of two classes. Ties keep file order (a stable sort), so the result is deterministic."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    n = per_end(len(scores), fraction)
    indices = np.concatenate([order[:n], order[-n:]])
    labels = np.concatenate([np.full(n, used, dtype=np.int64), np.full(n, 1 - used, dtype=np.int64)])
    keep = np.argsort(indices)
    return indices[keep], labels[keep]


def pseudo_label(
    settings: PseudoSettings,
    init: str | Path,
    manifest: Manifest,
    images: torch.Tensor,
    device: torch.device,
    data_root=None,
) -> tuple[Manifest, torch.Tensor]:
    """The confidently scored images of an unlabelled set, labelled with the classes of the model in `init`."""
    from ganfp.checkpoint import load_checkpoint

    labeler = PSEUDO_LABELERS.get(settings.method)
    model, meta = load_checkpoint(init, device)
    classes = list(meta["classes"])
    if len(classes) != 2:
        raise InputError(
            f"{init}: pseudo-labels need a two-class model (used / not used), this one has {len(classes)} classes"
        )
    scores = labeler(PseudoContext(settings, model, classes, manifest, images, device, data_root))
    ranked = rank_labels(scores, settings.fraction, used_class_index(classes))
    idx, labels = distributed.broadcast_object(ranked)  # every rank trains on rank 0's labels
    return manifest.subset(idx).with_labels(labels, classes), images[torch.as_tensor(idx)]
