from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from ganfp.errors import InputError
from ganfp.metrics import baseline_rows, binary_metrics, class_metrics, cluster_metrics, confusion_counts
from ganfp.submission import write_scores


def sklearn_reference(y, p, s):
    both = y.min() != y.max()
    return {
        "accuracy": skm.accuracy_score(y, p),
        "precision": skm.precision_score(y, p, zero_division=0),
        "recall": skm.recall_score(y, p, zero_division=0),
        "specificity": skm.recall_score(1 - y, 1 - p, zero_division=0),
        "f1": skm.f1_score(y, p, zero_division=0),
        "kappa": skm.cohen_kappa_score(y, p, labels=[0, 1]),
        "roc_auc": skm.roc_auc_score(y, s) if both else None,
        "average_precision": skm.average_precision_score(y, s) if both else None,
    }


def test_random_inputs_match_scikit_learn():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        y = (rng.random(n) < rng.random()).astype(int)
        p = (rng.random(n) < rng.random()).astype(int)
        s = np.round(rng.random(n) + 0.5 * y, 1)  # rounded: ties in scores too
        got = binary_metrics(y, p, s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = sklearn_reference(y, p, s)
            ref["balanced_accuracy"] = skm.balanced_accuracy_score(y, p)
        tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
        assert (got["tp"], got["fp"], got["tn"], got["fn"]) == (tp, fp, tn, fn), trial
        for key, value in ref.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                assert got[key] is None, (trial, key)
            else:
                assert got[key] == pytest.approx(value, abs=1e-12), (trial, key)


def test_hand_computed_example():
    y = [1, 1, 1, 0, 0, 0, 0, 0]
    p = [1, 0, 0, 1, 0, 0, 0, 0]
    m = binary_metrics(y, p, scores=[0.9, 0.4, 0.3, 0.8, 0.2, 0.1, 0.35, 0.0])
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["n"]) == (1, 1, 4, 2, 8)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(2 / 5)
    assert m["balanced_accuracy"] == pytest.approx((1 / 3 + 4 / 5) / 2)
    # po = 5/8, pe = (2*3 + 6*5) / 64 = 36/64
    assert m["kappa"] == pytest.approx((5 / 8 - 36 / 64) / (1 - 36 / 64))
    # used scores 0.9, 0.4, 0.3 vs not used 0.8, 0.2, 0.1, 0.35, 0.0: 12 of 15 pairs ordered right
    assert m["roc_auc"] == pytest.approx(12 / 15)


def test_no_positive_predicted_is_zero_precision_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = binary_metrics([1, 0, 1, 0], [0, 0, 0, 0])
    assert m["precision"] == 0.0
    assert m["recall"] == 0.0
    assert m["f1"] == 0.0
    assert m["specificity"] == 1.0
    assert m["kappa"] == 0.0
    assert m["roc_auc"] is None and m["average_precision"] is None


def test_one_class_everywhere_leaves_kappa_and_auc_undefined():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = binary_metrics([0, 0, 0], [0, 0, 0], scores=[0.1, 0.2, 0.3])
    assert m["accuracy"] == 1.0
    assert m["balanced_accuracy"] == 1.0
    assert m["kappa"] is None
    assert m["roc_auc"] is None


def test_baselines_on_a_balanced_set():
    rows = baseline_rows([1, 0] * 100)
    used, unused = rows["all used"], rows["all not used"]
    assert used["f1"] == pytest.approx(2 / 3)
    assert used["accuracy"] == 0.5 and used["recall"] == 1.0 and used["specificity"] == 0.0
    assert unused["f1"] == 0.0 and unused["precision"] == 0.0 and unused["accuracy"] == 0.5
    assert used["roc_auc"] == 0.5 and unused["roc_auc"] == 0.5
    assert used["kappa"] == 0.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="only 0 and 1"):
        binary_metrics([0, 2], [0, 1])
    with pytest.raises(ValueError, match="y_pred has 1"):
        confusion_counts([0, 1], [1])
    with pytest.raises(ValueError, match="no samples"):
        binary_metrics([], [])
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics([0, 1], [0, 1], scores=[0.1, float("nan")])


def test_booleans_are_accepted():
    assert binary_metrics(np.array([True, False]), np.array([True, True]))["tp"] == 1
    assert binary_metrics([0, 1], [0, 1], np.array([0.2, 0.9], dtype=object))["roc_auc"] == 1.0  # numbers, boxed


@pytest.mark.parametrize("y_true, y_pred, scores, message", [
    ([0, 1, 1], [0, 1], None, r"y_true has 3 values but y_pred has 2"),
    ([0, 2], [0, 1], None, r"y_true must hold only 0 and 1"),
    ([1, 1], [1, 0], [0.5], r"scores has 1 values but y_true has 2"),  # one class: the scores were not looked at
    ([1, 1], [1, 0], [0.5, np.nan], r"scores must not contain NaN"),
    ([0, 1], [1, 0], [0.5, np.inf], r"scores must be finite"),
    ([0, 1], [1, 0], [[0.5], [0.2]], r"scores must be 1-D, got shape \(2, 1\)"),
    ([0, 1], [1, 0], ["a", "b"], r"scores must be numbers"),
    ([0, 1], [1, 0], ["0.2", "0.9"], r"scores must be numbers, got text"),  # a CSV column read as strings
    ([0, 1], [1, 0], [0.2, None], r"scores must not contain NaN"),  # None is a missing value, as in numpy
    ([0, 1], [1, 0], np.array([0.2, "0.9"], dtype=object), r"scores must be numbers, got text"),
    ([0, 1], [1, 0], [0.2, [0.9]], r"scores must be a flat list or a 1-D array of numbers, not a ragged one"),
    ([0, [1]], [1, 0], None, r"y_true must be a flat list or a 1-D array of 0/1 labels, not a ragged one"),
])
def test_binary_metrics_refuses_what_it_cannot_score(y_true, y_pred, scores, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(y_true, y_pred, scores)


@pytest.mark.parametrize("y_true, y_pred, n_classes, message", [
    ([0, 1, 1], [0, 1], 2, r"y_true has 3 values but y_pred has 2"),
    ([[0, 1]], [[0, 1]], 2, r"y_true must be 1-D, got shape \(1, 2\)"),
    ([0, 1], [0, [1]], 2, r"y_pred must be a flat list or a 1-D array of class indices, not a ragged one"),
    ([0, -1], [0, 1], 2, r"y_true must hold class indices 0 to 1, got -1 to 0"),  # counted as the last class
    ([0, 1], [0, 5], 2, r"y_pred must hold class indices 0 to 1, got 0 to 5"),
    ([0, 1.7], [0, 1], 2, r"y_true must hold class indices \(whole numbers\)"),  # counted as class 1
    ([0, 1], [0, 1], 2.0, r"n_classes must be a whole number"),
])
def test_class_metrics_refuses_what_is_no_class_index(y_true, y_pred, n_classes, message):
    with pytest.raises(ValueError, match=message):
        class_metrics(y_true, y_pred, n_classes)


BAD_ARRAY_CASES = {
    "y_true=None": (lambda tmp: binary_metrics(None, [0, 1]),
                    r"^y_true=None: must be a list or a 1-D array of 0/1 labels, not NoneType$"),
    "y_pred generator": (lambda tmp: binary_metrics([0, 1], (v for v in [0, 1])),
                         r"^y_pred=<generator object .*: must be a list or a 1-D array of 0/1 labels, not generator$"),
    "scores number": (lambda tmp: binary_metrics([0, 1], [0, 1], 0.5),
                      r"^scores=0.5: must be a list or a 1-D array of numbers, not float$"),
    "baseline set": (lambda tmp: baseline_rows({0, 1}), r"^y_true=\{0, 1\}: must be a list .*, not set$"),
    "class_metrics None": (lambda tmp: class_metrics([0, 1], None, 2),
                           r"^y_pred=None: must be a list or a 1-D array of class indices"),
    "labels 2": (lambda tmp: binary_metrics([0, 2], [0, 1]), r"^y_true must hold only 0 and 1$"),
    "write_scores NaN": (lambda tmp: write_scores(tmp / "s.csv", ["a"], [float("nan")]), r"scores must be finite"),
}


@pytest.mark.parametrize("case", list(BAD_ARRAY_CASES))
def test_a_bad_array_is_an_input_error_that_is_still_a_value_error(case, tmp_path):
    """From a notebook a bad argument is an InputError, one line naming it; it stays the ValueError these raised, and
    None or a generator is named as such, not as an array of "shape ()"."""
    call, message = BAD_ARRAY_CASES[case]
    with pytest.raises(InputError, match=message) as raised:
        call(tmp_path)
    assert isinstance(raised.value, ValueError) and "\n" not in str(raised.value)
    assert not (tmp_path / "s.csv").exists()


def test_class_and_cluster_metrics_check_shapes():
    assert class_metrics([0.0, 1.0, 2.0], [0, 1, 1], 3)["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"must be 1-D, got shapes \(1, 2\) and \(1, 2\)"):
        cluster_metrics([[0, 1]], [[1, 0]])


def test_every_baseline_row_of_every_task_says_its_n():
    """`evaluate --json` of an attribution file gave `n` in the majority-class row but not in the random-class row,
    where every other baseline row (membership, clustering) has it: a script reading rows alike hit a KeyError."""
    from ganfp.metrics import class_baselines, cluster_baselines

    y = np.array([0, 1, 2, 2, 1, 0, 2])
    tables = (baseline_rows(y % 2), class_baselines(y, 3), cluster_baselines(y, 3))
    for rows in tables:
        for name, row in rows.items():
            assert row["n"] == y.size, (name, row)
