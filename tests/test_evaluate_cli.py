from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.submission import CASE_FILES, CASE_REASONS, REFERENCE

from ganfp.evaluation import evaluate_files
from ganfp.submission import write_scores


IDS = [f"real_unknown_{i:04d}" for i in range(1, 201)]
TRUTH = [i % 2 for i in range(1, 201)]


def assert_one_line_error(code, out, err, *fragments):
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def labels(tmp_path) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(IDS, TRUTH)))
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is absent")
@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.stem)
def test_official_cases_through_the_cli(case, labels, run_cli):
    code, out, err = run_cli("evaluate", str(case), str(labels))
    if case.name.startswith("00_"):
        assert code == 0, err
        assert "F1" in out and "all used" in out and "Confusion matrix" in out
    else:
        reason = next(r for key, r in CASE_REASONS.items() if case.stem.endswith(key))
        assert_one_line_error(code, out, err, f"{case.name}:", reason)


def test_table_and_json_give_the_same_numbers(tmp_path, labels, run_cli):
    rng = np.random.default_rng(0)
    scores = np.array(TRUTH) * 0.4 + rng.random(200)
    preds = tmp_path / "scores.csv"
    write_scores(preds, IDS, scores)
    code, out, _ = run_cli("evaluate", str(preds), str(labels), "--json")
    assert code == 0
    data = json.loads(out)
    report = evaluate_files(preds, labels)
    assert data["task"] == "membership"  # as attribution and clustering name theirs
    assert data["metrics"] == pytest.approx(report.metrics)
    assert data["baselines"]["all used"]["f1"] == pytest.approx(2 / 3)
    assert data["confusion"] == report.confusion
    assert data["metrics"]["roc_auc"] > 0.6
    assert data["decision"].startswith("top 50%")
    code, table, _ = run_cli("evaluate", str(preds), str(labels))
    assert code == 0
    for key in ("accuracy", "f1", "roc_auc", "kappa"):
        assert f"{data['metrics'][key]:.4f}" in table
    assert "0.6667" in table  # the "all used" F1 next to the method's


def test_ids_are_matched_by_name_not_line_order(tmp_path, labels):
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 2, 200)
    rows = [f"{i},{y}\n" for i, y in zip(IDS, pred)]
    ordered = write(tmp_path / "ordered.csv", "".join(rows))
    shuffled = write(tmp_path / "shuffled.csv", "".join(rng.permutation(rows)))
    assert evaluate_files(shuffled, labels).metrics == evaluate_files(ordered, labels).metrics


def test_decision_rules_on_scores(tmp_path, labels, run_cli):
    preds = tmp_path / "scores.csv"
    write_scores(preds, IDS, np.linspace(0, 1, 200))
    assert evaluate_files(preds, labels, threshold=0.9).y_pred.sum() == 20  # 180/199 .. 199/199
    assert sum(evaluate_files(preds, labels, used_fraction=0.25).y_pred) == 50
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--threshold", "0.5", "--used-fraction", "0.5")
    assert_one_line_error(code, out, err, "not both")


def test_a_used_fraction_labelling_every_image_alike_is_named_by_its_option(tmp_path, labels, run_cli):
    """It was "used fraction 0.001 labels none of the 200 images used", the option unnamed."""
    preds = tmp_path / "scores.csv"
    write_scores(preds, IDS, np.linspace(0, 1, 200))
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--used-fraction", "0.001")
    assert_one_line_error(code, out, err, "--used-fraction 0.001 labels none of the 200 images", "at least 0.0025")


def test_a_rule_without_scores_is_refused(tmp_path, labels, run_cli):
    preds = write(tmp_path / "sub.csv", "".join(f"{i},1\n" for i in IDS))
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--used-fraction", "0.3")
    assert_one_line_error(code, out, err, "sub.csv", "needs scores")


def test_no_used_prediction_says_precision_is_zero(tmp_path, labels, run_cli):
    preds = write(tmp_path / "none.csv", "".join(f"{i},0\n" for i in IDS))
    code, out, err = run_cli("evaluate", str(preds), str(labels))
    assert code == 0 and err == ""
    assert "precision is 0" in out


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("id,label\n" + "".join(f"x{i},1\n" for i in range(200)), ["pred.csv:2: id 'x0' is not in"]),
        ("id,label\n" + "".join(f"test/{i}.png,1\n" for i in IDS),
         ["pred.csv:2: id 'test/real_unknown_0001.png' is not in", "it has 'real_unknown_0001'"]),
        ("".join(f"{i}.png,1\n" for i in IDS),  # headerless: the organisers' rules, and the same hint
         ["pred.csv:1: wrong figure id 'real_unknown_0001.png'", "it has 'real_unknown_0001'"]),
        ("id,label\n" + "".join(f"{i.upper()},1\n" for i in IDS),
         ["pred.csv:2: id 'REAL_UNKNOWN_0001' is not in", "it has 'real_unknown_0001'", "matched exactly"]),
        ("id,label\n" + "".join(f"{i},1\n" for i in IDS[:150]), ["pred.csv: 50 of the 200 ids", "have no prediction"]),
        ("id,label\n", ["pred.csv: header only"]),
        ("id,label\n" + "".join(f"{i},{2 if n == 7 else 1}\n" for n, i in enumerate(IDS)), ["pred.csv:9: label '2'"]),
        ("", ["pred.csv: empty file"]),
        ("id,score\n" + "".join(f"{i},0.5\n" for i in IDS[:3]) + f"{IDS[0]},0.1\n", ["pred.csv:5: id", "more than once"]),
    ],
)
def test_bad_prediction_files_exit_2_with_one_line(tmp_path, labels, run_cli, text, fragments):
    preds = write(tmp_path / "pred.csv", text)
    assert_one_line_error(*run_cli("evaluate", str(preds), str(labels)), *fragments)


def test_ground_truth_for_part_of_the_images_scores_those_and_says_how_many_were_left_out(tmp_path, labels, run_cli):
    """Scores of the whole test set against labels of its first half (a user who labelled a subset): refused
    before, though every labelled image had a score. The metrics are the labelled half's; the rule ranks the file."""
    rng = np.random.default_rng(0)
    everything = [*IDS, *(f"extra_{i:04d}" for i in range(200))]
    scores = np.concatenate([np.array(TRUTH) * 0.6 + rng.random(200), rng.random(200)])
    write_scores(tmp_path / "scores.csv", everything, scores)
    write_scores(tmp_path / "labelled.csv", IDS, scores[:200])
    code, out, err = run_cli("evaluate", str(tmp_path / "scores.csv"), str(labels), "--json")
    assert code == 0, err
    report = json.loads(out)
    alone = json.loads(run_cli("evaluate", str(tmp_path / "labelled.csv"), str(labels), "--json")[1])
    assert report["n"] == 200 and report["metrics"]["roc_auc"] == alone["metrics"]["roc_auc"]
    assert "200 of the 400 predictions" in report["notes"][0] and "extra_0000" in report["notes"][0]
    assert report["decision"].startswith("top 50% of the file's 400 scores")


def test_an_official_submission_with_ids_the_labels_lack_is_held_to_the_rules(tmp_path, labels, run_cli):
    """A headerless file is a submission: the organisers refuse an id outside the list, so evaluate does too."""
    preds = write(tmp_path / "sub.csv", "".join(f"{i},1\n" for i in [*IDS, "extra_0001"]))
    assert_one_line_error(*run_cli("evaluate", str(preds), str(labels)), "sub.csv:201: wrong figure id 'extra_0001'")


def test_an_id_in_another_unicode_form_is_named(tmp_path, run_cli):
    """`scan_é` typed (NFC) and `scan_é` in a file name copied from macOS (NFD) print alike: the bare message
    named an id that looked present in LABELS."""
    nfc, nfd = [f"scan_\xe9_{n}" for n in range(4)], [f"scan_e\u0301_{n}" for n in range(4)]
    truth = write(tmp_path / "truth.csv", "id,label\n" + "".join(f"{i},{n % 2}\n" for n, i in enumerate(nfc)))
    preds = write(tmp_path / "pred.csv", "id,score\n" + "".join(f"{i},0.{n}\n" for n, i in enumerate(nfd)))
    assert_one_line_error(*run_cli("evaluate", str(preds), str(truth)), f"it has {nfc[0]!r}")


def test_binary_files_exit_2_with_one_line(tmp_path, labels, run_cli):
    blob = tmp_path / "blob.csv"
    blob.write_bytes(bytes(range(256)) * 4)
    good = write(tmp_path / "sub.csv", "".join(f"{i},1\n" for i in IDS))
    assert_one_line_error(*run_cli("evaluate", str(blob), str(labels)), "blob.csv", "binary")
    assert_one_line_error(*run_cli("evaluate", str(good), str(blob)), "blob.csv", "binary")


def test_bad_label_files_exit_2_with_one_line(tmp_path, run_cli):
    good = write(tmp_path / "sub.csv", "a,1\nb,0\n")
    cases = {
        "id,label\n": "header only",
        "id,label\na,2\nb,0\n": "truth.csv:2: label '2' is not 0 or 1",
        "id,label\na,1\na,0\n": "truth.csv:3: id 'a' more than once",
        "id,score\na,0.1\nb,0.2\n": "ground truth needs an id and a label column",
        "id,label,score\na,1,0.1\nb,0,0.2\n": "evaluate takes PREDS first, then LABELS",  # the two swapped
    }
    for text, fragment in cases.items():
        truth = write(tmp_path / "truth.csv", text)
        assert_one_line_error(*run_cli("evaluate", str(good), str(truth)), fragment)
    assert_one_line_error(*run_cli("evaluate", str(good), str(tmp_path / "nope.csv")), "no such file")


def test_plot_without_matplotlib_names_the_extra(tmp_path, labels, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    preds = write(tmp_path / "sub.csv", "".join(f"{i},1\n" for i in IDS))
    out_png = tmp_path / "fig.png"
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--plot", str(out_png))
    assert_one_line_error(code, out, err, "ganfp[plots]")
    assert not out_png.exists()


def test_plot_draws_a_png(tmp_path, labels, run_cli):
    pytest.importorskip("matplotlib")
    preds = tmp_path / "scores.csv"
    write_scores(preds, IDS, np.random.default_rng(2).random(200))
    out_png = tmp_path / "fig.png"
    code, _, err = run_cli("evaluate", str(preds), str(labels), "--plot", str(out_png))
    assert code == 0, err
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--plot", str(tmp_path / "fig.xyz"))
    assert_one_line_error(code, out, err, "fig.xyz", "cannot draw")
    for bare in ("fig", "fig."):  # it said "cannot draw a .? file"
        code, out, err = run_cli("evaluate", str(preds), str(labels), "--plot", str(tmp_path / bare))
        assert_one_line_error(code, out, err, f"--plot {tmp_path / bare}: has no suffix to say the image type", ".png")


def test_a_full_disk_while_the_plot_is_written_is_one_line_and_keeps_the_old_figure(tmp_path, labels, run_cli,
                                                                                     monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def savefig_on_a_full_disk(self, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig_on_a_full_disk)
    preds = tmp_path / "scores.csv"
    write_scores(preds, IDS, np.random.default_rng(3).random(200))
    figure = write(tmp_path / "fig.png", "the figure of an earlier run")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--plot", str(figure))
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [f"error: {figure}: cannot write it (No space left on device); "
                                        "nothing was replaced"]
    assert figure.read_text() == "the figure of an earlier run"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary file left


def test_equal_scores_split_by_id_order_at_the_cut_are_said_so(tmp_path, run_cli):
    """All-equal scores label the first half of the ids used: against a truth listing its used images first, that
    is accuracy 1 from scores that tell nothing apart, and only the note says the labels came from id order."""
    truth = write(tmp_path / "truth.csv", "id,label\n" + "".join(f"{i},{int(n < 100)}\n" for n, i in enumerate(IDS)))
    preds = tmp_path / "flat.csv"
    write_scores(preds, IDS, np.full(200, 0.5))
    code, out, err = run_cli("evaluate", str(preds), str(truth), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["metrics"]["accuracy"] == 1.0 and data["metrics"]["roc_auc"] == 0.5
    assert any("200 images share the score at the cut" in n and "order of their ids" in n for n in data["notes"])
    code, table, _ = run_cli("evaluate", str(preds), str(truth))
    assert code == 0 and "note: 200 images share the score at the cut, 0.5" in table
    distinct = tmp_path / "distinct.csv"
    write_scores(distinct, IDS, np.linspace(0, 1, 200))
    assert not any("share the score" in n for n in evaluate_files(distinct, truth).notes)


def test_a_threshold_outside_the_scores_is_said_to_label_every_image_alike(tmp_path, labels, run_cli):
    """Scores on another scale than the threshold (distances against a probability cut) label every image used:
    F1 0.667, the "all used" baseline's, which looks like a result unless a note says why."""
    preds = tmp_path / "scores.csv"
    write_scores(preds, IDS, np.linspace(3, 10, 200))
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--threshold", "0.5", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["metrics"]["f1"] == pytest.approx(2 / 3)
    assert "--threshold 0.5 labels all 200 images used: the scores run from 3 to 10" in data["notes"][0]
    assert not evaluate_files(preds, labels, threshold=6.5).notes


def test_blank_lines_at_the_end_pass_where_the_official_rules_allow_them(tmp_path, labels, run_cli):
    """A scores file or ground truth saved by Excel ends in blank lines: read; a headerless submission ending so is
    refused, as the organisers refuse it, with the line and why."""
    scores = write(tmp_path / "scores.csv", "id,score\n" + "".join(f"{i},{n}\n" for n, i in enumerate(IDS)) + "\n\n")
    truth = write(tmp_path / "truth.csv", labels.read_text() + "\n")
    code, out, err = run_cli("evaluate", str(scores), str(truth), "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 200
    sub = write(tmp_path / "sub.csv", "".join(f"{i},1\n" for i in IDS) + "\n")
    assert_one_line_error(*run_cli("evaluate", str(sub), str(truth)), "sub.csv:201: empty line at the end",
                          "organisers' validator refuses it")


def test_a_file_name_column_names_the_ids(tmp_path, labels, run_cli):
    """`filename,score` with the images' file names, as attribute writes and other tools name the column."""
    preds = write(tmp_path / "p.csv", "filename,score\n" + "".join(f"{i}.png,{n}\n" for n, i in enumerate(IDS)))
    code, out, err = run_cli("evaluate", str(preds), str(labels), "--json")
    assert code == 0, err
    assert json.loads(out)["format"] == "filename,score"


@pytest.mark.parametrize("kind", ["official", "attribution", "clustering"])
def test_one_file_given_as_both_predictions_and_truth_is_refused(tmp_path, run_cli, kind):
    """Tab completion gives the submission twice: every metric came out perfect, exit 0, without a word."""
    text = {"official": "".join(f"{i},{y}\n" for i, y in zip(IDS, TRUTH)),
            "attribution": "id,label\n" + "".join(f"{i},{'ab'[y]}\n" for i, y in zip(IDS, TRUTH)),
            "clustering": "id,cluster\n" + "".join(f"{i},{y}\n" for i, y in zip(IDS, TRUTH))}[kind]
    sub = write(tmp_path / "sub.csv", text)
    (tmp_path / "dir").mkdir()
    code, out, err = run_cli("evaluate", str(sub), str(tmp_path / "dir" / ".." / "sub.csv"))
    assert_one_line_error(code, out, err, f"{sub}: given as both the predictions and the ground truth",
                          "give the ground-truth labels second")


@pytest.mark.parametrize("kind, task", [("attribution", "auto"), ("clustering", "auto"),
                                        ("attribution", "attribution")])
def test_a_report_on_another_tasks_files_is_refused_before_what_it_needs_is_asked_for(tmp_path, run_cli, monkeypatch,
                                                                                        kind, task):
    """--report on attribution files said "--report needs --real", then "no finished chain run" (--features
    checkpoint looked for its model first): fixing either only led to the refusal that was the real problem."""
    monkeypatch.setenv("GANFP_RUNS", str(tmp_path / "no-runs"))
    truth = write(tmp_path / "truth.csv", "id,label\n" + "".join(f"{i},{'ab'[y]}\n" for i, y in zip(IDS, TRUTH)))
    column, value = ("cluster", str) if kind == "clustering" else ("label", lambda y: "ab"[1 - y])
    preds = write(tmp_path / "preds.csv", f"id,{column}\n" + "".join(f"{i},{value(y)}\n" for i, y in zip(IDS, TRUTH)))
    report = ["--report", tmp_path / "r.html", "--task", task]
    for more in ([], ["--real", tmp_path, "--features", "checkpoint"], ["--plot", tmp_path / "p.png"]):
        code, out, err = run_cli("evaluate", preds, truth, *report, *more)
        assert_one_line_error(code, out, err, f"membership files only, not to {kind} ones; drop ")
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "p.png").exists()


def test_a_report_on_membership_files_asks_for_what_it_needs_before_scoring(tmp_path, labels, run_cli, monkeypatch):
    """The real images and the model of --features checkpoint, once the files are known to be membership ones."""
    monkeypatch.setenv("GANFP_RUNS", str(tmp_path / "no-runs"))
    preds = tmp_path / "scores.csv"
    write_scores(preds, IDS, np.array(TRUTH) * 0.5)
    code, out, err = run_cli("evaluate", preds, labels, "--report", tmp_path / "r.html")
    assert_one_line_error(code, out, err, "--report needs --real REAL")
    code, out, err = run_cli("evaluate", preds, labels, "--report", tmp_path / "r.html", "--real", tmp_path,
                             "--features", "checkpoint")
    assert_one_line_error(code, out, err, "no finished chain run in ")
