"""Score a predictions file against ground truth: what `ganfp evaluate` prints, callable from Python.

Ids are matched by name, never by line order, and every mismatch is an InputError naming the file. Predictions of
images the ground truth does not label are left out, with a note, when every labelled image has one: ground truth for
part of the images.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

import numpy as np

from ganfp.data.manifest import cell_id
from ganfp.errors import InputError, require_number, require_path
from ganfp.metrics import baseline_rows, binary_metrics
from ganfp.numerals import read_decimal
from ganfp.registry import did_you_mean
from ganfp.submission import (
    BOM_REASON,
    FILE_WORDS,
    Predictions,
    constant_labelling,
    decide,
    near_miss,
    preview_ids,
    read_labels,
    read_predictions,
    ties_at_the_cut,
    used_count,
)

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
    threshold: float | None = field(default=None, repr=False)  # the --threshold that decided, if one did

    def to_dict(self) -> dict:
        """The report as plain JSON types (what `--json` prints); `task` as in the attribution and clustering
        reports, so a script reading `evaluate --task auto` tells the three apart by one key."""
        return {
            "task": "membership",
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


def _align(preds: Predictions, preds_path, truth_ids: list[str], labels_path,
           hint: str = "") -> tuple[np.ndarray, list[str]]:
    """Index into `preds` for each ground-truth id, and the predicted ids the ground truth lacks.

    Those are left out (ground truth for part of the images) only when every ground-truth id has a prediction:
    beside a missing id, an unknown one is a misspelling or another set's, refused with the ground truth's spelling
    when it has one (and `hint`).
    """
    truth = set(truth_ids)
    position = {image_id: i for i, image_id in enumerate(preds.ids)}
    missing = [i for i in truth_ids if i not in position]
    unlabelled = [(image_id, line) for image_id, line in zip(preds.ids, preds.lines) if image_id not in truth]
    if unlabelled and missing:
        image_id, line = unlabelled[0]
        raise InputError(f"{preds_path}:{line}: id {image_id!r} is not in {labels_path}"
                         + near_miss(image_id, truth_ids) + hint)
    if missing:
        raise InputError(f"{preds_path}: {len(missing)} of the {len(truth_ids)} ids in {labels_path} "
                         f"have no prediction ({preview_ids(missing)})")
    return np.array([position[i] for i in truth_ids], dtype=np.int64), [i for i, _ in unlabelled]


def _unlabelled_notes(unlabelled: list[str], preds: Predictions, labels_path) -> list[str]:
    """Predictions the ground truth does not label: said, with how many, since every metric leaves them out."""
    if not unlabelled:
        return []
    return [f"{len(unlabelled)} of the {len(preds.ids)} predictions are of images {labels_path} does not label "
            f"({preview_ids(unlabelled)}): left out of every metric"]


def _predicted_labels(preds: Predictions, preds_path, used_fraction, threshold) -> tuple[np.ndarray, str, list[str]]:
    """The 0/1 predictions, how they were made, and a note when they say less than the metrics suggest: equal
    scores straddling the used-fraction cut (id order sets those labels; all-equal scores can score accuracy 1),
    or a threshold outside the scores' range (every image alike: a constant baseline's numbers)."""
    rule_given = used_fraction is not None or threshold is not None
    if rule_given and preds.scores is None:
        raise InputError(f"{preds_path}: a used fraction or threshold needs scores, "
                         f"but this file ({preds.format}) has none")
    if preds.labels is not None and not rule_given:
        return preds.labels, "labels from the file", []
    if used_fraction is not None:  # the option by its name, with the fractions that work for these scores
        require_number("used_fraction", used_fraction)
        used_count(used_fraction, len(preds.scores), name="--used-fraction")
    labels = decide(preds.scores, used_fraction=used_fraction, threshold=threshold, ids=preds.ids)
    if threshold is not None:
        return labels, f"score >= {threshold:g}", constant_labelling(preds.scores, labels, threshold)
    q = 0.5 if used_fraction is None else used_fraction
    default = "" if rule_given else " (default rule: the file has scores only)"
    return (labels, f"top {q:.0%} of the file's {len(preds.scores)} scores labelled used{default}",
            ties_at_the_cut(preds.scores, labels, None))


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


def _check_paths(preds_path, labels_path) -> None:
    """Both files named by a path: from Python a list or None failed inside pathlib, naming neither argument."""
    require_path("preds_path", preds_path)
    require_path("labels_path", labels_path)
    if _same_file(preds_path, labels_path):
        raise InputError(f"{preds_path}: given as both the predictions and the ground truth ({labels_path}); scored "
                         "against itself every metric is perfect: give the ground-truth labels second")


def _same_file(a, b) -> bool:
    """One file under two names (a slip of tab completion); a path that is missing is reported where it is read."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_rule(used_fraction, threshold) -> None:
    """The decision rule as `ganfp evaluate` takes it, before a file is read: one rule, numbers, and 0 < q < 1.
    From Python `used_fraction=1` (or 0) labelled every image alike and reported a constant answer's metrics as
    the file's, where the command refuses it."""
    if used_fraction is not None and threshold is not None:
        raise InputError("give either a used fraction or a threshold, not both")
    for name, value in (("threshold", threshold), ("used_fraction", used_fraction)):
        if value is not None:
            require_number(name, value)
    if used_fraction is not None and not 0 < used_fraction < 1:
        raise InputError(f"used_fraction={used_fraction:g}: must be between 0 and 1 (0 < q < 1); all used or none "
                         "used is a constant labelling, not a decision")


def evaluate_files(preds_path, labels_path, used_fraction: float | None = None,
                   threshold: float | None = None) -> EvaluationReport:
    """Metrics of a predictions file against a ground-truth file, with the two constant baselines.

    A headerless predictions file is held to the official rules against the ground-truth ids.
    `used_fraction` / `threshold` turn the file's scores into labels (see submission.decide).
    """
    _check_paths(preds_path, labels_path)
    _check_rule(used_fraction, threshold)
    truth = read_labels(labels_path)
    preds = read_predictions(preds_path, ids=truth.ids)
    index, unlabelled = _align(preds, preds_path, truth.ids, labels_path)
    all_labels, decision, ties = _predicted_labels(preds, preds_path, used_fraction, threshold)
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
        notes=(_unlabelled_notes(unlabelled, preds, labels_path) + ties
               + _notes(metrics, scores is not None, truth.labels)
               + ([f"{preds_path}: {BOM_REASON}"] if preds.bom else [])),
        y_true=truth.labels,
        y_pred=y_pred,
        scores=scores,
        ids=list(truth.ids),
        threshold=threshold,
    )


# --- Attribution (several classes) and clustering by generator ------------------------------------

TASKS = ("auto", "membership", "attribution", "clustering")


def detect_task(preds_path, labels_path) -> str:
    """clustering (a `cluster` column in the predictions), attribution (class names on both sides, or ground truth
    whose value column membership has no name for, such as `generator`) or membership.

    Else a file with 0/1 values or scores on either side is membership, whose reader names any problem;
    predictions that cannot be read as classes go by the ground truth alone, so a broken attribution
    file is reported by the attribution reader, not as ground truth that is not 0 or 1; and ground truth that
    cannot be read as classes goes to membership's reader unless the predictions hold class names.
    """
    from ganfp.attribution.files import CLUSTER_WORDS, SCORE_WORDS, read_class_table
    from ganfp.submission import LABEL_COLUMNS, SCORE_COLUMNS, read_lines

    lines = read_lines(preds_path)
    header = {t.strip().strip('"').lower() for t in (lines[0].lstrip("\ufeff").split(",") if lines else [])}
    if header.intersection(CLUSTER_WORDS):
        return "clustering"
    if header.intersection(SCORE_WORDS):
        return "membership"
    try:
        truth = read_class_table(labels_path)
    except InputError:  # membership's reader names the problem, unless the predictions are class names
        return "attribution" if _names_classes(preds_path) else "membership"
    if truth.columns and truth.columns[1].lower() not in LABEL_COLUMNS + SCORE_COLUMNS:
        # `id,generator`: the membership reader refuses that header, so it is no membership's ground truth (two
        # clusters without a header, 0 and 1, were read as membership and the message was about LABELS' header)
        return "attribution"
    values = [set(truth.values)]
    try:
        values.append(set(read_class_table(preds_path).values))
    except InputError:
        pass  # the ground truth decides; the predictions' own reader then names their problem
    return "membership" if any(v <= {"0", "1"} for v in values) else "attribution"


def _names_classes(path) -> bool:
    """Predictions whose values are names, not numbers: an attribution, whose ground truth the class reader refuses
    in its own words (`label,id`, the columns the other way round, was "label 'subset2' is not 0 or 1")."""
    from ganfp.attribution.files import read_class_table

    try:
        values = read_class_table(path).values
    except InputError:
        return False
    return not all(read_decimal(v) is not None for v in values)


NO_HEADER = "no header"  # the `format` of a class table without one (its first column holds ids)


@dataclass
class ClassReport:
    """Attribution predictions against the true classes, with the majority and random baselines."""

    preds: str
    labels: str
    classes: list[str]
    metrics: dict
    baselines: dict[str, dict]
    confusion: list[list[int]]  # rows: true class, columns: predicted class, in `classes` order
    format: str = NO_HEADER  # the predictions' header as read: its first two names, or NO_HEADER
    notes: list[str] = field(default_factory=list)  # what the metrics do not say by themselves

    def to_dict(self) -> dict:
        """What `--json` prints; `format` and `notes` as in a membership evaluation's."""
        return {"task": "attribution", "preds": self.preds, "labels": self.labels, "format": self.format,
                "n": self.metrics["n"], "classes": self.classes,
                "metrics": {k: v for k, v in self.metrics.items() if k != "confusion"},
                "baselines": self.baselines, "confusion": self.confusion, "notes": self.notes}


@dataclass
class ClusterReport:
    """A clustering against the true generators: ARI, NMI, matched accuracy, and the chance baselines."""

    preds: str
    labels: str
    classes: list[str]
    clusters: list[str]
    metrics: dict
    baselines: dict[str, dict]
    contingency: list[list[int]]  # rows: true class, columns: cluster
    format: str = NO_HEADER  # the predictions' header as read: its first two names, or NO_HEADER
    notes: list[str] = field(default_factory=list)  # what the metrics do not say by themselves

    def to_dict(self) -> dict:
        """What `--json` prints; `format` and `notes` as in a membership evaluation's."""
        return {"task": "clustering", "preds": self.preds, "labels": self.labels, "format": self.format,
                "n": self.metrics["n"], "classes": self.classes, "clusters": self.clusters, "metrics": self.metrics,
                "baselines": self.baselines, "contingency": self.contingency, "notes": self.notes}


def _table_format(table) -> str:
    """The header as read, as a membership file's `format` is: its first two names (the columns read), in lower
    case."""
    return ",".join(name.lower() for name in table.columns) if table.columns else NO_HEADER


def _class_notes(classes: list[str], predicted: list[str]) -> list[str]:
    """Classes never predicted (each counts with F1 0 in macro-F1), and ground truth of one class, which always
    answering that class scores perfectly."""
    if len(classes) == 1:
        return [f"the labels hold one class only ({classes[0]}): always answering it scores 1, as the majority class "
                "baseline does"]
    never = [c for c in classes if c not in set(predicted)]
    if not never:
        return []
    each = "each " if len(never) > 1 else ""
    return [f"never predicted: {', '.join(never)} ({len(never)} of the {len(classes)} classes, {each}with F1 0 in "
            "macro-F1)"]


def _cluster_notes(classes: list[str], clusters: list[str]) -> list[str]:
    """What ARI, NMI and the accuracy after matching cannot show: one cluster or one generator (ARI and NMI 0 for
    any answer), and a number of clusters other than of generators, whose unmatched images count as wrong."""
    k, c = len(clusters), len(classes)
    if c == 1:
        return [] if k == 1 else [f"the labels hold one generator only ({classes[0]}): ARI and NMI are 0 for any "
                                  "split into two clusters or more"]
    if k == 1:
        return ["every image in one cluster: ARI and NMI are 0, as the one cluster baseline's"]
    if k == c:
        return []
    extra, what, other = (k - c, "cluster", "generator") if k > c else (c - k, "generator", "cluster")
    return [f"{k} clusters for {c} generators: the images of {extra} {what}{'s' if extra > 1 else ''} matched to no "
            f"{other} count as wrong in the accuracy after matching"]


def _check_value_column(table, path, task: str) -> None:
    """A value column named as clusters or scores is not read as classes (nor scores as clusters): a forced --task
    would score cluster numbers as class names, or make every distinct score a cluster of its own."""
    from ganfp.attribution.files import CLUSTER_WORDS, SCORE_WORDS

    name = table.columns[1] if table.columns else ""
    misread = SCORE_WORDS + (CLUSTER_WORDS if task == "attribution" else ())
    if name.lower() in misread:
        clusters = name.lower() in CLUSTER_WORDS
        holds, other = ("clusters", "clustering") if clusters else ("membership scores", "membership")
        raise InputError(f"{path}:1: the {name!r} column holds {holds}, not "
                         f"{'classes' if task == 'attribution' else 'clusters'}; use --task {other}")


def _check_order(truth, preds, preds_path, labels_path) -> None:
    """Ground truth whose value column `ganfp attribute` names as its output (`predicted_class`, `cluster`) beside
    predictions whose column does not: the two files given the other way round. Scored so, macro-F1, the baselines
    and the confusion matrix were the predictions' (transposed), and a `cluster` column was sent to --task
    clustering, which then scored the swap."""
    from ganfp.attribution.files import PREDICTION_WORDS

    def says_predicted(table) -> bool:
        return table.columns is not None and table.columns[1].lower() in PREDICTION_WORDS

    if says_predicted(truth) and not says_predicted(preds):
        raise InputError(f"{labels_path}:1: the {truth.columns[1]!r} column holds predictions (what ganfp attribute "
                         "writes), not ground truth: evaluate takes PREDS first, then LABELS "
                         f"({shlex.join(['ganfp', 'evaluate', str(labels_path), str(preds_path)])})")


def _aligned_tables(preds_path, labels_path, task: str):
    """(truth, predictions, index of each truth id's prediction, notes) of two class tables matched by id."""
    _check_paths(preds_path, labels_path)
    from ganfp.attribution.files import read_class_table

    truth = read_class_table(labels_path)
    preds = read_class_table(preds_path)
    _check_order(truth, preds, preds_path, labels_path)
    for table, path in ((preds, preds_path), (truth, labels_path)):
        _check_value_column(table, path, task)
    index, unlabelled = _align(preds, preds_path, truth.ids, labels_path, _file_names_hint(truth, labels_path))
    return truth, preds, index, _unlabelled_notes(unlabelled, preds, labels_path)


def _file_names_hint(table, path) -> str:
    """Ground truth naming its images by file name (`unknown_0001.png`) in a column read as ids: `attribute` writes
    file names under `image_path`, whose cells are read without their extension, so the ids did not meet."""
    if table.columns is not None and table.columns[0].lower() in FILE_WORDS:
        return ""
    if not any(cell_id(i) != i for i in table.ids):
        return ""
    where = f"its id column {table.columns[0]!r}" if table.columns else "its first column (no header)"
    return f"; {path} names images by file name in {where}: name that column image_path to read them without extension"


def evaluate_classes(preds_path, labels_path) -> ClassReport:
    """Accuracy, macro-F1 and the confusion matrix of an attribution file.

    A class the labels lack is counted as wrong and named in a note (ground truth for part of the images may lack a
    generator the predictions name); when no labelled image is predicted as a class of the labels, the two files
    name their classes differently, an InputError.
    """
    from ganfp.metrics import class_baselines, class_metrics

    truth, preds, index, notes = _aligned_tables(preds_path, labels_path, "attribution")
    classes = sorted(set(truth.values))
    predicted = [preds.values[i] for i in index]
    if not set(predicted) & set(classes):
        clusters = "" if preds.columns else "; a clustering without a header needs --task clustering"
        raise InputError(f"{preds_path}:{preds.lines[index[0]]}: class {predicted[0]!r} is not a class of "
                         f"{labels_path} (classes: {', '.join(classes)}){clusters}")
    outside = sorted(set(predicted) - set(classes))
    names = classes + outside
    y_true = [classes.index(v) for v in truth.values]
    metrics = class_metrics(y_true, [names.index(v) for v in predicted], len(names))
    return ClassReport(str(preds_path), str(labels_path), names, metrics,
                       class_baselines(y_true, len(classes)), metrics["confusion"], _table_format(preds),
                       notes + _outside_notes(outside, predicted, labels_path, classes)
                       + _class_notes(classes, predicted))


def _outside_notes(outside: list[str], predicted: list[str], labels_path, classes: list[str]) -> list[str]:
    """Classes predicted that the labels lack, each with its count, and the labels' spelling when one is a typo away
    (`StyleGAN` for `stylegan`): counted as wrong, a misspelt class would pass for a poor method."""
    if not outside:
        return []
    counts = ", ".join(f"{c} ({predicted.count(c)}){did_you_mean(c, classes)}" for c in outside)
    return [f"predicted but not a class of {labels_path}: {counts}; counted as wrong"]


def evaluate_clusters(preds_path, labels_path) -> ClusterReport:
    """ARI, NMI and accuracy after matching of a clustering file against the true generators."""
    from ganfp.metrics import cluster_baselines, cluster_metrics

    truth, preds, index, notes = _aligned_tables(preds_path, labels_path, "clustering")
    predicted = [preds.values[i] for i in index]
    classes, clusters = sorted(set(truth.values)), sorted(set(predicted), key=lambda c: (len(c), c))
    table = np.zeros((len(classes), len(clusters)), dtype=np.int64)
    np.add.at(table, ([classes.index(v) for v in truth.values], [clusters.index(c) for c in predicted]), 1)
    return ClusterReport(str(preds_path), str(labels_path), classes, clusters,
                         cluster_metrics(truth.values, predicted), cluster_baselines(truth.values, len(clusters)),
                         table.tolist(), _table_format(preds), notes + _cluster_notes(classes, clusters))
