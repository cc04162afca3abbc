"""Two ways to combine scorers: rank averaging (any scales) and adding log ratios (one scale).

`fusion` mixes scorers on unrelated scales (votes, ratios, reconstruction errors), so only their
ranks can be averaged. The default ensemble's members are all log closeness scores (`log_ratio`):
adding them keeps each member's strength of evidence, so a near-copy that one space sees plainly (a
large score) is not averaged away by spaces that see nothing (scores near 0), as a rank would be.
Weights are fixed by design, never fitted on a dev set of 160 images, where fitted weights mostly
fit noise.
"""

from __future__ import annotations

import numpy as np

from ganfp.errors import ArgumentError


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
    if not scores:
        raise ArgumentError("fusion needs at least one scorer")
    weights = weights or dict.fromkeys(scores, 1.0)
    return sum(weights[name] * normalised_ranks(s) for name, s in scores.items()) / sum(weights[n] for n in scores)


def add_log_ratios(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of log-ratio scores: evidence from several spaces, on one scale (0 = none)."""
    if not scores:
        raise ArgumentError("an ensemble needs at least one scorer")
    return sum(weights[name] * np.asarray(s, dtype=np.float64) for name, s in scores.items()) / sum(weights[n] for n in scores)
