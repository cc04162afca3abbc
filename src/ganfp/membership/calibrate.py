"""Choose method, k, fusion weights and used fraction on a labelled dev set, by cross-validated F1.

Scores are unsupervised, so they are computed once on the whole dev set; what is fitted (fusion
weights, the used fraction) is fitted on the training folds and judged on the held-out fold.
The used fraction is a rank rule, so it carries to a test set with another generated-set size,
where an absolute threshold would not (distances shrink as the generated set grows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ganfp.errors import InputError
from ganfp.membership.fusion import fit_weights, fuse, roc_auc
from ganfp.metrics import binary_metrics
from ganfp.submission import best_used_fraction, decide

K_GRID = (1, 3, 5, 10)


@dataclass
class Candidate:
    method: str
    k: int | None  # None for scorers without neighbours
    members: dict[str, np.ndarray]  # the dev scores of each scorer; several for fusion

    @property
    def name(self) -> str:
        return self.method if self.k is None else f"{self.method} k={self.k}"

    def fit(self, idx: np.ndarray, y: np.ndarray) -> tuple[dict[str, float] | None, float]:
        """(fusion weights, used fraction) fitted on the images `idx`."""
        weights = fit_weights({m: s[idx] for m, s in self.members.items()}, y[idx]) if self.method == "fusion" else None
        return weights, best_used_fraction(self.scores(np.arange(len(y)), weights)[idx], y[idx])

    def scores(self, idx: np.ndarray, weights: dict[str, float] | None) -> np.ndarray:
        if self.method == "fusion":
            return fuse({m: s[idx] for m, s in self.members.items()}, weights)
        return self.members[self.method][idx]


@dataclass
class Choice:
    method: str
    k: int | None
    weights: dict[str, float] | None
    used_fraction: float
    cv_f1: float
    dev_auc: float
    table: list[dict] = field(default_factory=list)  # one row per candidate, best first

    def describe(self) -> str:
        parts = [f"method {self.method}"]
        if self.k is not None:
            parts.append(f"k {self.k}")
        if self.weights:
            total = sum(self.weights.values())
            parts.append("weights " + ", ".join(f"{m} {w / total:.2f}" for m, w in self.weights.items()))
        parts.append(f"used fraction {self.used_fraction:.3f}")
        parts.append(f"cross-validated F1 {self.cv_f1:.3f}, dev ROC-AUC {self.dev_auc:.3f}")
        return "; ".join(parts)


def folds(y: np.ndarray, seed: int, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    smallest = int(min((y == 0).sum(), (y == 1).sum()))
    if smallest < 2:
        raise InputError(f"calibration needs at least 2 used and 2 not_used images, got {int(y.sum())} used and {int((y == 0).sum())} not_used")
    splitter = StratifiedKFold(n_splits=min(n_folds, smallest), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def cross_validated_f1(candidate: Candidate, y: np.ndarray, splits) -> float:
    """F1 of the out-of-fold decisions, each fold labelled by the rule fitted on the others.

    The rule "top q is used" fitted on the training folds becomes a cut halfway between the last
    image it takes and the first it leaves, applied to the held-out fold: scores of one dev set share one scale (fusion ranks are
    taken over the whole dev set, which needs no labels), and a small fold cannot hold q exactly.
    """
    everything = np.arange(len(y))
    predicted = np.zeros(len(y), dtype=np.int64)
    for train, test in splits:
        weights, q = candidate.fit(train, y)
        scores = candidate.scores(everything, weights)
        chosen = decide(scores[train], used_fraction=q).astype(bool)
        if not chosen.any():
            continue  # the rule labels nothing used
        cut = scores[train][chosen].min()
        if (~chosen).any():
            cut = (cut + scores[train][~chosen].max()) / 2  # mid-gap
        predicted[test] = scores[test] >= cut
    return float(binary_metrics(y, predicted)["f1"])


def choose(candidates: list[Candidate], y_true, seed: int = 0) -> Choice:
    """The candidate with the best cross-validated F1 (ties: higher dev ROC-AUC, then list order)."""
    y = np.asarray(y_true, dtype=np.int64)
    splits = folds(y, seed)
    everything = np.arange(len(y))
    rows = []
    for order, candidate in enumerate(candidates):
        weights, q = candidate.fit(everything, y)
        rows.append({"candidate": candidate, "weights": weights, "used_fraction": q, "order": order,
                     "cv_f1": cross_validated_f1(candidate, y, splits),
                     "dev_auc": roc_auc(candidate.scores(everything, weights), y)})
    rows.sort(key=lambda r: (-r["cv_f1"], -r["dev_auc"], r["order"]))
    best = rows[0]
    table = [{"method": r["candidate"].method, "k": r["candidate"].k, "cv_f1": r["cv_f1"], "dev_auc": r["dev_auc"],
              "used_fraction": r["used_fraction"]} for r in rows]
    return Choice(best["candidate"].method, best["candidate"].k, best["weights"], best["used_fraction"],
                  best["cv_f1"], best["dev_auc"], table)
