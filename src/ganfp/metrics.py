"""Binary metrics with "used" (label 1) as the positive class, as the task defines it.

Confusion counts are computed by hand with numpy, so a trainer can call `binary_metrics` every
epoch cheaply and an undefined ratio (no image predicted "used") is 0.0 without a warning.
Only the threshold-free ranking metrics (ROC-AUC, average precision) call scikit-learn.
"""

from __future__ import annotations

import numpy as np

BASELINES = {"all used": 1, "all not used": 0}


def as_binary(values, name: str) -> np.ndarray:
    """A 1-D int array of 0/1, or ValueError naming the argument."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return arr.astype(np.int64)


def confusion_counts(y_true, y_pred) -> dict[str, int]:
    """tp, fp, tn, fn with 1 = used as the positive class."""
    t = as_binary(y_true, "y_true")
    p = as_binary(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
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


def _ranking_metrics(t: np.ndarray, scores) -> tuple[float | None, float | None]:
    if scores is None or t.min() == t.max():
        return None, None
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.asarray(scores, dtype=np.float64)
    if s.shape != t.shape:
        raise ValueError(f"scores has {s.size} values but y_true has {t.size}")
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN")
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
        raise ValueError("no samples to score")
    c = confusion_counts(t, y_pred)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    present = [r for r, count in ((recall, tp + fn), (specificity, tn + fp)) if count]
    roc_auc, average_precision = _ranking_metrics(t, scores)
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
        raise ValueError(f"confusion must be {len(classes)}x{len(classes)}, got shape {cm.shape}")
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
