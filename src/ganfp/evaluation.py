"""Score a predictions file against ground truth: what `ganfp evaluate` prints, callable from Python.

Ids are matched by name, never by line order, and every mismatch is an InputError naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ganfp.errors import InputError
from ganfp.metrics import baseline_rows, binary_metrics
from ganfp.submission import BOM_REASON, Predictions, preview_ids, decide, read_labels, read_predictions

CONFUSION_KEYS = ("tp", "fp", "tn", "fn")


@dataclass
class EvaluationReport:
    preds: str
    labels: str
    format: str  # format of the predictions file
    decision: str  # where the 0/1 predictions came from
    n: int
    metrics: dict
    baselines: dict[str, dict]
    confusion: dict[str, int]
    notes: list[str]
    y_true: np.ndarray = field(repr=False)
    y_pred: np.ndarray = field(repr=False)
    scores: np.ndarray | None = field(repr=False)
    ids: list[str] = field(default_factory=list, repr=False)  # the ground truth's ids, the order of y_true

    def to_dict(self) -> dict:
        """The report as plain JSON types (what `--json` prints)."""
        return {
            "preds": self.preds,
            "labels": self.labels,
            "format": self.format,
            "decision": self.decision,
            "n": self.n,
            "used": int(self.y_true.sum()),
            "metrics": self.metrics,
            "baselines": self.baselines,
            "confusion": self.confusion,
            "notes": self.notes,
        }


def _align(preds: Predictions, preds_path, truth_ids: list[str], labels_path) -> np.ndarray:
    """Index into `preds` for each ground-truth id; any id on one side only is an InputError."""
    truth = set(truth_ids)
    for image_id, line in zip(preds.ids, preds.lines):
        if image_id not in truth:
            raise InputError(f"{preds_path}:{line}: id {image_id!r} is not in {labels_path}")
    position = {image_id: i for i, image_id in enumerate(preds.ids)}
    missing = [i for i in truth_ids if i not in position]
    if missing:
        raise InputError(f"{preds_path}: {len(missing)} of the {len(truth_ids)} ids in {labels_path} "
                         f"have no prediction ({preview_ids(missing)})")
    return np.array([position[i] for i in truth_ids], dtype=np.int64)


def _predicted_labels(preds: Predictions, preds_path, used_fraction, threshold) -> tuple[np.ndarray, str]:
    rule_given = used_fraction is not None or threshold is not None
    if rule_given and preds.scores is None:
        raise InputError(f"{preds_path}: a used fraction or threshold needs scores, "
                         f"but this file ({preds.format}) has none")
    if preds.labels is not None and not rule_given:
        return preds.labels, "labels from the file"
    labels = decide(preds.scores, used_fraction=used_fraction, threshold=threshold)
    if threshold is not None:
        return labels, f"score >= {threshold:g}"
    q = 0.5 if used_fraction is None else used_fraction
    default = "" if rule_given else " (default rule: the file has scores only)"
    return labels, f"top {q:.0%} of scores labelled used{default}"


def _notes(metrics: dict, has_scores: bool, y_true: np.ndarray) -> list[str]:
    notes = []
    if metrics["tp"] + metrics["fp"] == 0:
        notes.append("no image predicted used: precision is 0 by convention")
    if metrics["kappa"] is None:
        notes.append("kappa undefined: one class fills both truth and predictions")
    if y_true.min() == y_true.max():
        notes.append("the labels hold one class only: ROC-AUC and average precision are undefined")
    elif not has_scores:
        notes.append("no scores in the predictions: ROC-AUC and average precision need an id,score file")
    return notes


def evaluate_files(preds_path, labels_path, used_fraction: float | None = None,
                   threshold: float | None = None) -> EvaluationReport:
    """Metrics of a predictions file against a ground-truth file, with the two constant baselines.

    A headerless predictions file is held to the official rules against the ground-truth ids.
    `used_fraction` / `threshold` turn the file's scores into labels (see submission.decide).
    """
    truth = read_labels(labels_path)
    preds = read_predictions(preds_path, ids=truth.ids)
    index = _align(preds, preds_path, truth.ids, labels_path)
    all_labels, decision = _predicted_labels(preds, preds_path, used_fraction, threshold)
    y_pred = all_labels[index]
    scores = None if preds.scores is None else preds.scores[index]
    metrics = binary_metrics(truth.labels, y_pred, scores)
    return EvaluationReport(
        preds=str(preds_path),
        labels=str(labels_path),
        format=preds.format,
        decision=decision,
        n=len(truth.ids),
        metrics=metrics,
        baselines=baseline_rows(truth.labels),
        confusion={k: metrics[k] for k in CONFUSION_KEYS},
        notes=_notes(metrics, scores is not None, truth.labels) + ([f"{preds_path}: {BOM_REASON}"] if preds.bom else []),
        y_true=truth.labels,
        y_pred=y_pred,
        scores=scores,
        ids=list(truth.ids),
    )
