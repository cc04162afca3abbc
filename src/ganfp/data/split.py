"""Train/validation split: stratified by class, and by group when the dataset has groups."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from ganfp.data.manifest import Manifest
from ganfp.errors import InputError


def split_indices(manifest: Manifest, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices. A split fixed by the dataset wins; groups never straddle the two sides."""
    fixed = [it.split for it in manifest.items]
    if all(s in ("train", "val") for s in fixed):
        split = np.array(fixed)
        return np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    labels = manifest.labels
    if not 0 < val_fraction < 1:
        raise InputError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    counts = np.bincount(labels, minlength=len(manifest.classes))
    if (counts[counts > 0] < 2).any():
        raise InputError(f"{manifest.name}: every class needs at least 2 images to split, got {dict(zip(manifest.classes, counts.tolist()))}")
    groups = manifest.groups
    if any(g is not None for g in groups):
        group_ids = np.array([g if g is not None else f"\0{i}" for i, g in enumerate(groups)])
        n_splits = max(2, round(1 / val_fraction))
        if len(set(group_ids)) >= n_splits:
            folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            train, val = next(folds.split(np.zeros(len(labels)), labels, group_ids))
            return np.sort(train), np.sort(val)
    idx = np.arange(len(labels))
    present = int((counts > 0).sum())
    n_val = max(present, int(round(val_fraction * len(labels))))  # every class on both sides
    train, val = train_test_split(idx, test_size=n_val, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(val)
