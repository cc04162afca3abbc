"""Train/validation split: stratified by class, and by group when the dataset has groups."""

from __future__ import annotations

import math

import numpy as np

from ganfp.data.manifest import Manifest
from ganfp.errors import InputError


def split_indices(manifest: Manifest, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices. A split fixed by the dataset wins; groups never straddle the two sides."""
    # here, not at module import: `split_problem` is read by commands that never split (attribute's knn)
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    fixed = [it.split for it in manifest.items]
    if all(s in ("train", "val") for s in fixed):
        split = np.array(fixed)
        return np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if not 0 < val_fraction < 1:
        raise InputError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    why = split_problem(manifest, val_fraction)
    if why:
        raise InputError(f"{manifest.name}: {why}")
    labels = manifest.labels
    folds = _group_folds(manifest, val_fraction)
    if folds is not None:
        group_ids, n_splits = folds
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train, val = next(splitter.split(np.zeros(len(labels)), labels, group_ids))
        return np.sort(train), np.sort(val)
    train, val = train_test_split(np.arange(len(labels)), test_size=_val_size(manifest, val_fraction),
                                  stratify=labels, random_state=seed)
    return _every_class_on_both_sides(labels, np.sort(train), np.sort(val), seed)


def _every_class_on_both_sides(labels: np.ndarray, train: np.ndarray, val: np.ndarray,
                               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The split with one image of each class that a side lacks swapped in from the other side.

    scikit-learn's stratified split rounds a small class away on one side ({a: 2, b: 100} at 0.2 put no `a` in
    validation), so the stage never saw how it does on that class. Each swap gives back an image of the class
    most frequent on the lacking side, so both sides keep their sizes; a split that lacks nothing is returned
    as it is, so recorded splits and resumed runs stay the same.
    """
    rng = np.random.default_rng(seed)
    for cls in np.flatnonzero(np.bincount(labels) >= 2):
        for have, lack in ((train, val), (val, train)):
            if (labels[lack] == cls).any():
                continue
            donor = np.bincount(labels[lack]).argmax()  # at least 2 there: each side holds as many as the classes
            give = rng.choice(have[labels[have] == cls])
            take = rng.choice(lack[labels[lack] == donor])
            have[have == give], lack[lack == take] = take, give
    return np.sort(train), np.sort(val)


def split_problem(manifest: Manifest, val_fraction: float) -> str | None:
    """Why the labelled `manifest` cannot be split, or None: each side needs as many images as there are classes.

    Known from the labels alone, so a stage checks it before decoding an image: scikit-learn's own refusal
    came after the decoding, as a traceback.
    """
    if all(it.split in ("train", "val") for it in manifest.items):
        return None
    counts = np.bincount(manifest.labels, minlength=len(manifest.classes))
    if (counts[counts > 0] < 2).any():
        return f"every class needs at least 2 images to split, got {dict(zip(manifest.classes, counts.tolist()))}"
    if _group_folds(manifest, val_fraction) is not None:
        return None
    n, present = len(manifest), int((counts > 0).sum())
    n_val = _val_size(manifest, val_fraction)
    if n - n_val >= present:
        return None
    largest = math.floor((n - present) / n * 100) / 100
    return (f"val_fraction {val_fraction:g} puts {n_val} of the {n} images in validation, leaving too few to train "
            f"on each of the {present} classes; use at most {largest:g}")


def _group_folds(manifest: Manifest, val_fraction: float) -> tuple[np.ndarray, int] | None:
    """(group ids, number of folds) when the split keeps groups whole; None when there are too few groups."""
    groups = manifest.groups
    if not any(g is not None for g in groups):
        return None
    group_ids = np.array([g if g is not None else f"\0{i}" for i, g in enumerate(groups)])
    n_splits = max(2, round(1 / val_fraction))
    return (group_ids, n_splits) if len(set(group_ids)) >= n_splits else None


def _val_size(manifest: Manifest, val_fraction: float) -> int:
    """Validation images of the ungrouped split: no fewer than the classes (the stratified split's minimum)."""
    present = int((np.bincount(manifest.labels) > 0).sum())
    return max(present, int(round(val_fraction * len(manifest))))
