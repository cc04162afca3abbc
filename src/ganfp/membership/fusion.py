"""Fusion by rank averaging: scorers on different scales combine through their ranks.

Every member counts alike: with 160 dev images, fitted weights mostly fit noise.
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


def fuse(scores: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of the scorers' normalised ranks: scorers on different scales count alike."""
    if not scores:
        raise ValueError("fusion needs at least one scorer")
    return sum(normalised_ranks(s) for s in scores.values()) / len(scores)
