"""Binary metrics with "used" (label 1) as the positive class, as the task defines it; at the end,
the metrics of attribution (several classes) and of clustering by generator.

Confusion counts are computed by hand with numpy, so a trainer can call `binary_metrics` every
epoch cheaply and an undefined ratio (no image predicted "used") is 0.0 without a warning.
Only the threshold-free ranking metrics (ROC-AUC, average precision) call scikit-learn.
"""

from __future__ import annotations

import numpy as np

from ganfp.errors import ArgumentError, shown

BASELINES = {"all used": 1, "all not used": 0}


def as_array(values, name: str, what: str) -> np.ndarray:
    """`values` as a numpy array, or ArgumentError: None, a number, a set or a generator (numpy makes each a 0-d
    array) named for what it is, not as "shape ()", and a ragged list named, not numpy's "inhomogeneous shape"."""
    try:
        arr = np.asarray(values)
    except ValueError:
        raise ArgumentError(f"{name} must be a flat list or a 1-D array of {what}, not a ragged one") from None
    if arr.ndim == 0:
        raise ArgumentError(f"{name}={shown(values)}: must be a list or a 1-D array of {what}, "
                            f"not {type(values).__name__}")
    return arr


def as_binary(values, name: str) -> np.ndarray:
    """A 1-D int array of 0/1, or ArgumentError (a ValueError) naming the argument."""
    arr = as_array(values, name, "0/1 labels")
    if arr.ndim != 1:
        raise ArgumentError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ArgumentError(f"{name} must hold only 0 and 1")
    return arr.astype(np.int64)


def confusion_counts(y_true, y_pred) -> dict[str, int]:
    """tp, fp, tn, fn with 1 = used as the positive class."""
    t = as_binary(y_true, "y_true")
    p = as_binary(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ArgumentError(f"y_true has {t.size} values but y_pred has {p.size}")
    tp = int(np.sum(t & p))
    fp = int(np.sum(p)) - tp
    fn = int(np.sum(t)) - tp
    tn = int(t.size) - tp - fp - fn
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def _ratio(num: int, den: int) -> float:
    """num/den, and 0.0 for 0/0 (scikit-learn's zero_division=0 convention)."""
    return num / den if den else 0.0


def _kappa(tp: int, fp: int, tn: int, fn: int) -> float | None:
    """Cohen's kappa; None when chance agreement is 1 (one class everywhere), where it is undefined."""
    n = tp + fp + tn + fn
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def as_scores(scores, t: np.ndarray) -> np.ndarray:
    """`scores` as finite float64, one per label, or ArgumentError: checked whether or not both classes are present, so
    scores of the wrong length (or NaN) are refused on every call, not only on the calls that rank them."""
    raw = as_array(scores, "scores", "numbers")
    if raw.dtype.kind in "US" or (raw.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in raw.flat)):
        raise ArgumentError("scores must be numbers, got text")  # "0.9" converts silently: a column read as strings
    try:
        s = raw.astype(np.float64)
    except (TypeError, ValueError):
        raise ArgumentError("scores must be numbers") from None
    if s.ndim != 1:
        raise ArgumentError(f"scores must be 1-D, got shape {s.shape}")
    if s.shape != t.shape:
        raise ArgumentError(f"scores has {s.size} values but y_true has {t.size}")
    if np.isnan(s).any():
        raise ArgumentError("scores must not contain NaN")
    if np.isinf(s).any():
        raise ArgumentError("scores must be finite (one is infinite)")
    return s


def _ranking_metrics(t: np.ndarray, s: np.ndarray | None) -> tuple[float | None, float | None]:
    if s is None or t.min() == t.max():
        return None, None
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(t, s)), float(average_precision_score(t, s))


def binary_metrics(y_true, y_pred, scores=None) -> dict:
    """Every metric of the evaluate table, plus n and the confusion counts.

    Undefined ratios are 0.0 (precision with nothing predicted used, recall with no used image,
    specificity with no unused image); balanced accuracy averages recall over the classes present
    in y_true (as scikit-learn does); kappa is None when one class fills both y_true and y_pred;
    roc_auc and average_precision need scores and both classes in y_true, else None.
    """
    t = as_binary(y_true, "y_true")
    if t.size == 0:
        raise ArgumentError("no samples to score")
    s = None if scores is None else as_scores(scores, t)
    c = confusion_counts(t, y_pred)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    present = [r for r, count in ((recall, tp + fn), (specificity, tn + fp)) if count]
    roc_auc, average_precision = _ranking_metrics(t, s)
    return {
        "n": int(t.size),
        "accuracy": (tp + tn) / t.size,
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": sum(present) / len(present),
        "kappa": _kappa(tp, fp, tn, fn),
        "roc_auc": roc_auc,
        "average_precision": average_precision,
        **c,
    }


def used_class_index(classes: list[str]) -> int:
    """The column of P(used) among `classes`: the class named "used" when there is one, else class 1."""
    return classes.index("used") if "used" in classes else 1


def confusion_metrics(confusion: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Accuracy and F1 from a (true x predicted) confusion matrix of any number of classes.

    F1 is the "used" class's (`used_class_index`) for two classes and the macro average otherwise;
    per class it is 2tp / (2tp + fp + fn), 0.0 when undefined, as `binary_metrics` computes it.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ArgumentError(f"confusion must be {len(classes)}x{len(classes)}, got shape {cm.shape}")
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    f1 = [_ratio(2 * t, 2 * t + p + n) for t, p, n in zip(tp, fp, fn)]
    return {
        "accuracy": float(_ratio(tp.sum(), cm.sum())),
        "f1": float(f1[used_class_index(classes)] if len(classes) == 2 else np.mean(f1)),
    }


def baseline_rows(y_true) -> dict[str, dict]:
    """Metrics of the two constant answers, "all used" and "all not used".

    Their constant score gives ROC-AUC 0.5 and average precision = the share of used images:
    the chance level a method must beat.
    """
    t = as_binary(y_true, "y_true")
    return {
        name: binary_metrics(t, np.full_like(t, label), scores=np.full(t.shape, float(label)))
        for name, label in BASELINES.items()
    }


# --- Several classes (attribution) and clusters (grouping by generator) ---------------------------

RANDOM_DRAWS = 20  # random baselines are averaged over this many seeded draws


def class_indices(values, name: str, n_classes: int) -> np.ndarray:
    """A 1-D int array of class indices in [0, n_classes), or ArgumentError naming the argument: a 2-D array was
    flattened into the confusion matrix, a -1 counted as the last class and 1.7 as class 1, without a word."""
    arr = as_array(values, name, "class indices")
    if arr.ndim != 1:
        raise ArgumentError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.number)
                     or not np.array_equal(arr, np.round(arr))):
        raise ArgumentError(f"{name} must hold class indices (whole numbers), got {arr.dtype} values")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ArgumentError(f"{name} must hold class indices 0 to {n_classes - 1}, got {arr.min()} to {arr.max()}")
    return arr


def class_metrics(y_true, y_pred, n_classes: int) -> dict:
    """Accuracy, macro-F1 and balanced accuracy of class indices, with the (true x predicted) confusion matrix.

    Macro-F1 averages over the classes present in y_true or y_pred; a class never predicted has
    precision 0 by the same convention as the binary metrics.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ArgumentError(f"n_classes must be a whole number of at least 1, got {n_classes!r}")
    t, p = class_indices(y_true, "y_true", n_classes), class_indices(y_pred, "y_pred", n_classes)
    if t.shape != p.shape or t.size == 0:
        raise ArgumentError(f"y_true has {t.size} values but y_pred has {p.size} (need one or more each)")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    tp, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(n_classes), where=present)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    return {
        "n": int(t.size),
        "accuracy": float(tp.sum() / t.size),
        "macro_f1": float(f1[present].mean()),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "confusion": confusion.tolist(),
    }


def class_baselines(y_true, n_classes: int, seed: int = 0) -> dict[str, dict]:
    """The answers a method must beat: always the most frequent class, and a uniform random class."""
    t = np.asarray(y_true, dtype=np.int64)
    majority = class_metrics(t, np.full_like(t, np.bincount(t, minlength=n_classes).argmax()), n_classes)
    rng = np.random.default_rng(seed)
    draws = [class_metrics(t, rng.integers(n_classes, size=t.size), n_classes) for _ in range(RANDOM_DRAWS)]
    keys = ("accuracy", "macro_f1", "balanced_accuracy")
    random = {"n": int(t.size), **{key: float(np.mean([d[key] for d in draws])) for key in keys}}  # n: as every row
    return {"majority class": {k: v for k, v in majority.items() if k != "confusion"}, "random class": random}


def matched_accuracy(y_true, clusters) -> float:
    """Accuracy after the best one-to-one matching of clusters to classes (Hungarian algorithm).

    Clusters left without a class (more clusters than classes) count as wrong.
    """
    from scipy.optimize import linear_sum_assignment

    t, c = np.unique(y_true, return_inverse=True)[1], np.unique(clusters, return_inverse=True)[1]
    table = np.zeros((t.max() + 1, c.max() + 1), dtype=np.int64)
    np.add.at(table, (t, c), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / t.size)


def cluster_metrics(y_true, clusters) -> dict:
    """Adjusted Rand index, normalised mutual information and matched accuracy of a clustering."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    t, c = np.asarray(y_true), np.asarray(clusters)
    if t.ndim != 1 or c.ndim != 1:
        raise ArgumentError(f"y_true and clusters must be 1-D, got shapes {t.shape} and {c.shape}")
    if t.shape != c.shape or t.size == 0:
        raise ArgumentError(f"y_true has {t.size} values but clusters has {c.size} (need one or more each)")
    return {
        "n": int(t.size),
        "clusters": int(len(np.unique(c))),
        "ari": float(adjusted_rand_score(t, c)),
        "nmi": float(normalized_mutual_info_score(t, c)),
        "matched_accuracy": matched_accuracy(t, c),
    }


def cluster_baselines(y_true, k: int, seed: int = 0) -> dict[str, dict]:
    """One cluster for everything, and K clusters drawn at random (the chance level of ARI is 0)."""
    t = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    draws = [cluster_metrics(t, rng.integers(k, size=t.size)) for _ in range(RANDOM_DRAWS)]
    keys = ("ari", "nmi", "matched_accuracy")
    random = {"n": int(t.size), "clusters": k, **{key: float(np.mean([d[key] for d in draws])) for key in keys}}
    return {"one cluster": cluster_metrics(t, np.zeros_like(t, dtype=np.int64)), f"random {k} clusters": random}
