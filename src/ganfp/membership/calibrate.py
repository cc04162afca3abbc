"""Choose the recipe (feature space, method, k) on a labelled dev set, by cross-validated ROC-AUC.

Scores are label-free, so each candidate's scores are computed once on the whole dev set and
judged fold by fold. ROC-AUC, not F1, picks: F1 rewards labelling everything used. With hundreds
of candidates and 160 dev images the best dev number is partly luck, so the default recipe
(chosen for its worst case over many generators) stays unless a candidate beats it by more than
the noise and leaving it is expected to pay on dev images the choice never saw (`switch_gain`);
among candidates within noise of the best the simplest wins. The used fraction is never fitted:
it is the known prevalence (--used-fraction) or the dev set's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ganfp.errors import InputError, count
from ganfp.membership.recipe import Recipe
from ganfp.membership.scorers import KS_USED_SETS

K_GRID = (1, 3, 5, 10, 20, 40)
MIN_MARGIN = 0.02  # a challenger must beat the default by at least this much cross-validated AUC
MIN_GAIN = 0.02  # ... and leaving the default must be expected to gain this much on images the choice did not see
BOOTSTRAP_ROUNDS = 1000
SWITCH_ROUNDS = 200
# what classify says, on the terminal and in the report, when the dev ROC-AUC interval includes 0.5
NO_LEAK_EVIDENCE = ("the dev set shows no evidence of leakage: its ROC-AUC interval includes 0.5, so these labels "
                    "may be no better than chance")


# (set, k used, images in the set) for each set of the dev set in which a recipe's neighbour passes use fewer
# neighbours than its k: the whole set, where it holds fewer, or the scorer's own cap (local's on a few hundred images)
Cut = tuple[tuple[str, int, int], ...]


def cut_label(recipe: Recipe, cut: Cut) -> str:
    """The recipe's label, with the k it really uses on the dev set where that is fewer than its k, in the words of
    classify's k warning: a table of `local pixels32 k=10`, `k=20` and `k=40` that all fit with 3 neighbours on a
    small dev set read as three recipes."""
    nouns = dict(KS_USED_SETS)
    uses = " and ".join(f"k={used} among the {count(n, nouns[name])}" for name, used, n in cut)
    return recipe.noted(f"on the dev set it uses {uses}" if cut else "")


@dataclass
class Candidate:
    recipe: Recipe
    scores: np.ndarray  # dev scores, one per dev image
    simplicity: int  # lower = simpler: preferred among candidates within noise of the best
    cut: Cut = ()  # where the dev set's sizes cut the recipe's k

    @property
    def label(self) -> str:
        return cut_label(self.recipe, self.cut)


@dataclass
class Choice:
    recipe: Recipe
    used_fraction: float
    cv_auc: float
    dev_auc: float
    interval: tuple[float, float]  # 95% bootstrap interval of the dev ROC-AUC
    table: list[dict] = field(default_factory=list)  # one row per candidate, best first
    switch_gain: float | None = None  # expected gain of leaving the default (`switch_gain`); None: not needed
    cut: Cut = ()  # where the dev set's sizes cut the recipe's k

    @property
    def label(self) -> str:
        return cut_label(self.recipe, self.cut)

    @property
    def leak_evidence(self) -> bool:
        """False when the interval includes 0.5: the dev set does not show that the generator leaks."""
        return self.interval[0] > 0.5

    def describe(self) -> str:
        lo, hi = self.interval
        text = (f"{self.label}; used fraction {self.used_fraction:.3f}; cross-validated ROC-AUC {self.cv_auc:.3f}, "
                f"dev ROC-AUC {self.dev_auc:.3f} (95% bootstrap interval {lo:.3f}-{hi:.3f})")
        if self.switch_gain is not None:
            text += f"; leaving the default is expected to gain {self.switch_gain:+.3f} ROC-AUC on unseen dev images"
            text += "" if self.switch_gain > MIN_GAIN else f" (not above {MIN_GAIN}: the default stays)"
        if not self.leak_evidence:
            text += "; the interval includes 0.5: the dev set shows no evidence of leakage"
        return text

    def to_dict(self) -> dict:
        return {"recipe": self.label, "method": self.recipe.method, "features": self.recipe.features,
                "k": self.recipe.k, "k_used": {name: used for name, used, _ in self.cut},
                "with_default": self.recipe.with_default,
                "used_fraction": self.used_fraction, "cv_auc": self.cv_auc, "dev_auc": self.dev_auc,
                "interval": list(self.interval), "leak_evidence": self.leak_evidence,
                "switch_gain": self.switch_gain, "table": self.table}


def folds(y: np.ndarray, seed: int, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    smallest = int(min((y == 0).sum(), (y == 1).sum()))
    if smallest < 2:
        raise InputError(f"calibration needs at least 2 used and 2 not_used images, got {int(y.sum())} used "
                         f"and {int((y == 0).sum())} not_used")
    splitter = StratifiedKFold(n_splits=min(n_folds, smallest), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def weighted_auc(scores: np.ndarray, y: np.ndarray, used: np.ndarray, not_used: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of weights (rounds x used images, rounds x not-used images: how many
    times each image is in a fold or a resample), ties counted half, as roc_auc_score counts them.

    One sort per candidate, then a running sum of the not-used weights in score order per round:
    linear in the images, so hundreds of candidates x hundreds of resamples stay a fraction of a
    second on the 2023 dev shape and seconds on thousands of dev images (one roc_auc_score call per
    fold and candidate took 5 s there; a used x not-used comparison matrix grows with the square).
    """
    order = np.argsort(scores, kind="stable")
    ranked, used_at = scores[order], y[order] == 1
    starts_run = np.r_[True, ranked[1:] != ranked[:-1]]  # runs of equal scores (ties)
    first, group = np.flatnonzero(starts_run), np.cumsum(starts_run) - 1
    last = np.r_[first[1:], len(ranked)] - 1
    position_among = (np.cumsum(y == 1) - 1, np.cumsum(y == 0) - 1)  # each image's column in `used` / `not_used`
    neg = np.zeros((len(not_used), len(ranked)))
    neg[:, ~used_at] = not_used[:, position_among[1][order[~used_at]]]
    below_or_equal = np.cumsum(neg, axis=1)
    g = group[used_at]
    below = np.where(first[g] > 0, below_or_equal[:, np.maximum(first[g] - 1, 0)], 0.0)
    equal = below_or_equal[:, last[g]] - below
    wins = (used[:, position_among[0][order[used_at]]] * (below + 0.5 * equal)).sum(1)
    return wins / np.maximum(used.sum(1) * not_used.sum(1), 1)


def fold_aucs(scores: np.ndarray, y: np.ndarray, splits) -> np.ndarray:
    """ROC-AUC on each held-out fold: nothing is fitted, so the spread across folds is the noise."""
    held_out = np.zeros((len(splits), len(y)))
    for f, (_, test) in enumerate(splits):
        held_out[f, test] = 1
    return weighted_auc(scores, y, held_out[:, y == 1], held_out[:, y == 0])


def resample_counts(y: np.ndarray, seed: int, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified bootstrap: how often each used and each not-used image is drawn, per round."""
    rng = np.random.default_rng(seed)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    counts = [(np.bincount(rng.integers(0, n_pos, n_pos), minlength=n_pos),
               np.bincount(rng.integers(0, n_neg, n_neg), minlength=n_neg)) for _ in range(rounds)]
    return tuple(np.stack(c).astype(np.float64) for c in zip(*counts))


def bootstrap_interval(scores: np.ndarray, y: np.ndarray, seed: int, rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float]:
    """95% interval of the ROC-AUC over stratified resamples of the dev images."""
    values = weighted_auc(scores, y, *resample_counts(y, seed, rounds))
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def switch_gain(scores: np.ndarray, y: np.ndarray, default: int, seed: int, rounds: int = SWITCH_ROUNDS) -> float:
    """Expected ROC-AUC gain over the default, on dev images the choice did not see, of leaving it.

    The cross-validated margin of the best of hundreds of candidates is inflated by the choice
    itself (the best is partly the luckiest). So the choice is replayed on stratified resamples of
    the dev images: on each, the candidate with the highest ROC-AUC replaces the default when it
    beats it by more than MIN_MARGIN, and the two are compared on the images the resample left
    out (0 where the default stays). The mean over resamples is what switching is worth. On the
    zoo (ten families, six seeds, two of them held out) the 26 switches with a gain above MIN_GAIN
    came out between -0.018 and +0.089 test ROC-AUC; the 16 others the margin alone would have
    made, between -0.043 and +0.032, no better than the default on average (docs/membership-history.md).
    `scores` is candidates x images.
    """
    in_pos, in_neg = resample_counts(y, seed, rounds)
    out_pos, out_neg = (in_pos == 0).astype(np.float64), (in_neg == 0).astype(np.float64)
    in_bag, out_of_bag = np.empty((rounds, len(scores))), np.empty((rounds, len(scores)))
    for c, row in enumerate(scores):
        in_bag[:, c], out_of_bag[:, c] = weighted_auc(row, y, in_pos, in_neg), weighted_auc(row, y, out_pos, out_neg)
    best, r = in_bag.argmax(1), np.arange(rounds)
    switched = in_bag[r, best] - in_bag[:, default] > MIN_MARGIN
    return float(np.where(switched, out_of_bag[r, best] - out_of_bag[:, default], 0.0).mean())


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
    from sklearn.metrics import roc_auc_score  # here, as `folds` imports its splitter: scikit-learn's metrics take
    # 1.7 s to import, which every `ganfp classify` paid though only --calibrate reads them

    y = np.asarray(y_true, dtype=np.int64)
    splits = folds(y, seed)
    rows = []
    for order, candidate in enumerate(candidates):
        per_fold = fold_aucs(candidate.scores, y, splits)
        rows.append({"candidate": candidate, "order": order, "cv_auc": float(per_fold.mean()),
                     "noise": float(per_fold.std(ddof=1) / np.sqrt(len(per_fold))) if len(per_fold) > 1 else 0.0})
    chosen, gain = pick(rows, default), None
    incumbent = next((i for i, c in enumerate(candidates) if c.recipe == default), None)
    if incumbent is not None and chosen is not rows[incumbent]:
        gain = switch_gain(np.stack([c.scores for c in candidates]), y, incumbent, seed)
        if gain <= MIN_GAIN:
            chosen = rows[incumbent]
    scores = chosen["candidate"].scores
    rows.sort(key=lambda r: (-r["cv_auc"], r["order"]))
    table = [{"candidate": r["candidate"].label, "cv_auc": r["cv_auc"], "chosen": r is chosen} for r in rows]
    return Choice(chosen["candidate"].recipe, float(y.mean()) if used_fraction is None else used_fraction,
                  chosen["cv_auc"], float(roc_auc_score(y, scores)), bootstrap_interval(scores, y, seed), table, gain,
                  chosen["candidate"].cut)
