"""The attribution demo sets end to end: built offline on first use, attributed, scored against their labels."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest

from ganfp.data.adapters import load_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


def labels_of(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return dict(rows[1:])


def test_2025_demo_has_the_archive_layout(data_root):
    unknown = load_manifest("demo:attribution-2025", data_root)
    train = load_manifest("demo:attribution-2025-train", data_root)
    real = load_manifest("demo:attribution-2025-real", data_root)
    classes = [f"subset{i}" for i in range(1, 6)]
    assert train.classes == real.classes == classes and not unknown.labelled
    assert train.class_counts() == {c: 60 for c in classes} and real.class_counts() == {c: 40 for c in classes}
    truth = labels_of(Path(unknown.info["labels"]))
    assert sorted(truth) == sorted(unknown.ids) and sorted(set(truth.values())) == classes
    assert {Path(it.path).parent.name for it in unknown.items} == {"generated_unknown"}
    meta = json.loads((data_root / "demo-attribution-2025" / "meta.json").read_text())
    assert meta["status"] == "ready" and meta["seed"] == 0


def test_2025_acceptance_attribute_then_evaluate(data_root, tmp_path, run_cli):
    out = tmp_path / "a.csv"
    code, stdout, err = run_cli("attribute", "demo:attribution-2025", "--out", out, "--data-root", data_root,
                                "--device", "cpu")
    assert code == 0, err
    labels = data_root / "demo-attribution-2025" / "labels.csv"
    assert f"ganfp evaluate {out} {labels}" in err  # where the ground truth is, printed
    code, stdout, err = run_cli("evaluate", out, labels, "--json")
    report = json.loads(stdout)
    assert report["metrics"]["accuracy"] > 0.9 and report["baselines"]["majority class"]["accuracy"] == 0.2


def test_2024_acceptance_cluster_then_evaluate(data_root, tmp_path, run_cli):
    mixed = load_manifest("demo:attribution-2024", data_root)
    truth = labels_of(Path(mixed.info["labels"]))
    assert sorted(truth) == sorted(mixed.ids) and len(set(truth.values())) >= 3
    out = tmp_path / "c.csv"
    code, stdout, err = run_cli("attribute", "demo:attribution-2024", "--clusters", "auto", "--out", out,
                                "--data-root", data_root, "--device", "cpu")
    assert code == 0, err
    assert f"K = {len(set(truth.values()))}" in err
    code, stdout, err = run_cli("evaluate", out, mixed.info["labels"], "--json")
    report = json.loads(stdout)
    assert report["task"] == "clustering" and report["metrics"]["ari"] > 0.8
    assert report["metrics"]["matched_accuracy"] > report["baselines"]["one cluster"]["matched_accuracy"] + 0.3


@pytest.mark.parametrize("columns,task", [([], ""), (["--columns", "none"], " --task clustering")])
def test_2024_the_printed_evaluate_line_adds_task_only_without_a_header(data_root, tmp_path, run_cli, columns, task):
    """`--task clustering` is needed only when no header names the cluster column; printed always, it read as a
    step every clustering needs, which the docs' own evaluate line (without it) contradicted."""
    out = tmp_path / "my clusters.csv"  # quoted in the line: pasted, `my` and `clusters.csv` were two arguments
    code, _, err = run_cli("attribute", "demo:attribution-2024", "--clusters", "3", "--out", out, *columns,
                           "--data-root", data_root, "--device", "cpu")
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("score it with: "))
    labels = data_root / "demo-attribution-2024" / "labels.csv"
    assert line == f"score it with: ganfp evaluate '{out}' {shlex.quote(str(labels))}{task}"
    code, stdout, err = run_cli(*shlex.split(line.removeprefix("score it with: ganfp ")), "--json")
    assert code == 0, err
    assert json.loads(stdout)["task"] == "clustering"


def test_2025_training_and_real_parts_name_no_ground_truth(data_root, tmp_path, run_cli):
    """labels.csv names the unknown images only: attributing `demo:attribution-2025-real` printed an evaluate line
    with it, which failed on the first id (`real_subset1_0001` is not in labels.csv)."""
    for part in ("attribution-2025-train", "attribution-2025-real"):
        assert "labels" not in load_manifest(f"demo:{part}", data_root).info
    code, _, err = run_cli("attribute", "demo:attribution-2025-real", "--method", "centroid", "--features", "pixels8",
                           "--out", tmp_path / "a.csv", "--data-root", data_root, "--device", "cpu")
    assert code == 0, err
    assert "score it with" not in err and "ground truth" not in err
