"""Fusion by weighted rank averaging: scorers on different scales combine through their ranks.

Weights fitted on a labelled split are each scorer's ROC-AUC above chance (max(0, AUC - 0.5)):
one number per scorer, hard to overfit on a dev set of 160 images, and a scorer that ranks
worse than chance gets no say.
"""

from __future__ import annotations

import numpy as np


def normalised_ranks(scores) -> np.ndarray:
    """Ranks in [0, 1] (0 = lowest score); equal scores share their average rank."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size < 2:
        return np.full(s.shape, 0.5)
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_s[1:] != sorted_s[:-1]]))
    ends = np.concatenate([starts[1:], [s.size]])
    average = (starts + ends - 1) / 2.0  # mean position of each run of equal scores
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks / (s.size - 1)


def fuse(scores: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """Weighted mean of the scorers' normalised ranks (equal weights when none are given)."""
    names = list(scores)
    weights = weights or {name: 1.0 for name in names}
    total = sum(weights.get(name, 0.0) for name in names)
    if total <= 0:
        raise ValueError("fusion needs at least one scorer with a positive weight")
    return sum(weights.get(name, 0.0) * normalised_ranks(scores[name]) for name in names) / total


def roc_auc(scores, y_true) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U); 0.5 when one class is absent."""
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return 0.5
    ranks = normalised_ranks(scores) * (y.size - 1) + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_weights(scores: dict[str, np.ndarray], y_true) -> dict[str, float]:
    """max(0, AUC - 0.5) per scorer on labelled data; equal weights when none beats chance."""
    weights = {name: max(0.0, roc_auc(s, y_true) - 0.5) for name, s in scores.items()}
    if sum(weights.values()) <= 0:
        return {name: 1.0 for name in scores}
    return weights
