"""Choose the recipe (feature space, method, k) on a labelled dev set, by cross-validated ROC-AUC.

Scores are label-free, so each candidate's scores are computed once on the whole dev set and
judged fold by fold. ROC-AUC, not F1, picks: F1 rewards labelling everything used. With dozens
of candidates and 160 dev images the best dev number is partly luck, so the default recipe
(chosen for its worst case over many generators) stays unless a candidate beats it by more than
the noise, and among candidates within noise of the best the simplest wins. The used fraction is
never fitted: it is the known prevalence (--used-fraction) or the dev set's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from ganfp.errors import InputError
from ganfp.membership.recipe import Recipe

K_GRID = (1, 3, 5, 10, 20, 40)
MIN_MARGIN = 0.02  # a challenger must beat the default by at least this much cross-validated AUC
BOOTSTRAP_ROUNDS = 1000


@dataclass
class Candidate:
    recipe: Recipe
    scores: np.ndarray  # dev scores, one per dev image
    simplicity: int  # lower = simpler: preferred among candidates within noise of the best


@dataclass
class Choice:
    recipe: Recipe
    used_fraction: float
    cv_auc: float
    dev_auc: float
    interval: tuple[float, float]  # 95% bootstrap interval of the dev ROC-AUC
    table: list[dict] = field(default_factory=list)  # one row per candidate, best first

    @property
    def leak_evidence(self) -> bool:
        """False when the interval includes 0.5: the dev set does not show that the generator leaks."""
        return self.interval[0] > 0.5

    def describe(self) -> str:
        lo, hi = self.interval
        text = (f"{self.recipe.label}; used fraction {self.used_fraction:.3f}; cross-validated ROC-AUC {self.cv_auc:.3f}, "
                f"dev ROC-AUC {self.dev_auc:.3f} (95% bootstrap interval {lo:.3f}-{hi:.3f})")
        if not self.leak_evidence:
            text += "; the interval includes 0.5: the dev set shows no evidence of leakage"
        return text

    def to_dict(self) -> dict:
        return {"recipe": self.recipe.label, "method": self.recipe.method, "features": self.recipe.features,
                "k": self.recipe.k, "with_default": self.recipe.with_default,
                "used_fraction": self.used_fraction, "cv_auc": self.cv_auc, "dev_auc": self.dev_auc,
                "interval": list(self.interval), "leak_evidence": self.leak_evidence, "table": self.table}


def folds(y: np.ndarray, seed: int, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    smallest = int(min((y == 0).sum(), (y == 1).sum()))
    if smallest < 2:
        raise InputError(f"calibration needs at least 2 used and 2 not_used images, got {int(y.sum())} used "
                         f"and {int((y == 0).sum())} not_used")
    splitter = StratifiedKFold(n_splits=min(n_folds, smallest), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def fold_aucs(scores: np.ndarray, y: np.ndarray, splits) -> np.ndarray:
    """ROC-AUC on each held-out fold: nothing is fitted, so the spread across folds is the noise."""
    return np.array([roc_auc_score(y[test], scores[test]) for _, test in splits])


def bootstrap_interval(scores: np.ndarray, y: np.ndarray, seed: int, rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float]:
    """95% interval of the ROC-AUC over stratified resamples of the dev images."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    values = np.empty(rounds)
    for r in range(rounds):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        values[r] = roc_auc_score(y[idx], scores[idx])
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def pick(rows: list[dict], default: Recipe | None) -> dict:
    """The default unless beaten beyond noise; then the simplest candidate within noise of the best
    that also beats the default beyond noise (a simpler one that does not is no reason to leave it)."""
    best = max(rows, key=lambda r: r["cv_auc"])
    noise = max(MIN_MARGIN, best["noise"])
    incumbent = next((r for r in rows if r["candidate"].recipe == default), None)
    if incumbent is not None and best["cv_auc"] - incumbent["cv_auc"] <= noise:
        return incumbent
    floor = incumbent["cv_auc"] + noise if incumbent is not None else -np.inf
    close = [r for r in rows if best["cv_auc"] - r["cv_auc"] <= best["noise"] and r["cv_auc"] > floor]
    return min(close, key=lambda r: (r["candidate"].simplicity, -r["cv_auc"], r["order"]))


def choose(candidates: list[Candidate], y_true, *, seed: int = 0, default: Recipe | None = None,
           used_fraction: float | None = None) -> Choice:
    """The chosen candidate, its dev numbers and the used fraction to carry to the test set."""
    y = np.asarray(y_true, dtype=np.int64)
    splits = folds(y, seed)
    rows = []
    for order, candidate in enumerate(candidates):
        per_fold = fold_aucs(candidate.scores, y, splits)
        rows.append({"candidate": candidate, "order": order, "cv_auc": float(per_fold.mean()),
                     "noise": float(per_fold.std(ddof=1) / np.sqrt(len(per_fold))) if len(per_fold) > 1 else 0.0})
    chosen = pick(rows, default)
    scores = chosen["candidate"].scores
    rows.sort(key=lambda r: (-r["cv_auc"], r["order"]))
    table = [{"candidate": r["candidate"].recipe.label, "cv_auc": r["cv_auc"], "chosen": r is chosen} for r in rows]
    return Choice(chosen["candidate"].recipe, float(y.mean()) if used_fraction is None else used_fraction,
                  chosen["cv_auc"], float(roc_auc_score(y, scores)), bootstrap_interval(scores, y, seed), table)
