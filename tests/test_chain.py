"""Chains: TOML presets and files, stage-to-stage initialisation, skipping finished stages, --from-stage."""

from __future__ import annotations

import json

import pytest

from ganfp.chain import builtin_chains, load_chain, run_chain, stage_configs
from ganfp.errors import InputError
from ganfp.models import list_models

from conftest import write_class_folder


def write_chain(tmp_path, first, second) -> str:
    path = tmp_path / "mine.toml"
    path.write_text(f"""
name = "mine"
[defaults]
model = "ignored"
image_size = 16
batch_size = 8
epochs = 1
lr = 0.01
[[stages]]
name = "first"
dataset = "{first}"
[[stages]]
name = "second"
dataset = "{second}"
[[stages]]
name = "self"
dataset = "{second}/a"
pseudo_labels = "self"
""")
    return str(path)


@pytest.fixture
def two_datasets(tmp_path):
    return write_class_folder(tmp_path / "d1", 12, 16, seed=1), write_class_folder(tmp_path / "d2", 12, 16, seed=2)


def test_builtin_chains_follow_the_paper():
    assert {"paper", "demo"} <= set(builtin_chains())
    paper = stage_configs(load_chain("paper"), "resnet18")
    assert [c.dataset for c in paper] == ["casia", "covid-ctset", "imageclef-gans-2023:dev", "imageclef-gans-2023:test"]
    first = paper[0]
    assert (first.batch_size, first.lr, first.momentum, first.epochs, first.val_fraction) == (256, 0.001, 0.9, 200, 0.2)
    assert paper[-1].pseudo_labels == "self" and first.init == "imagenet"
    assert stage_configs(load_chain("paper"), "conv5")[0].init == "none"  # no ImageNet conv5 exists


def test_chain_runs_each_stage_from_the_previous_and_skips_finished_ones(tmp_path, two_datasets):
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    run_dir, rows = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r["status"] for r in rows] == ["trained"] * 3
    record = json.loads((run_dir / "chain.json").read_text())
    assert [s["status"] for s in record["stages"]] == ["complete"] * 3
    second = json.loads((run_dir / "02-second" / "meta.json").read_text())
    assert second["config"]["init"] == str(run_dir / "01-first")
    _, again = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r["status"] for r in again] == ["skipped"] * 3
    _, partly = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", from_stage="second")
    assert [r["status"] for r in partly] == ["skipped", "trained", "trained"]
    _, changed = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", overrides={"epochs": 2})
    assert [r["status"] for r in changed] == ["trained"] * 3  # new settings are not mistaken for finished work


def test_bad_chains_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="unknown chain 'nope'; choose one of: demo, paper"):
        load_chain("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[stages]]\ndataset = 'x'\nlearning_rate = 3\n")
    with pytest.raises(InputError, match=r"unknown keys \['learning_rate'\]"):
        load_chain(str(bad))
    bad.write_text("[[stages\n")
    with pytest.raises(InputError, match="bad.toml: invalid TOML"):
        load_chain(str(bad))
    with pytest.raises(InputError, match="--from-stage 'x'"):
        run_chain(load_chain("demo"), "conv5", tmp_path / "runs", tmp_path / "root", from_stage="x")


@pytest.mark.parametrize("model", list_models())
def test_every_model_completes_the_demo_chain(tmp_path, model, run_cli, demo_root):
    code, out, err = run_cli("chain", "--model", model, "--chain", "demo", "--epochs", "1", "--image-size", "32", "--batch-size", "64",
                             "--runs-dir", tmp_path / "runs", "--data-root", demo_root, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["stage"] for r in rows] == ["casia", "covid", "gans-dev", "gans-test"]
    assert all(r["epochs_run"] == 1 and r["status"] == "trained" for r in rows)
    assert rows[-1]["classes"] == ["not_used", "used"]


def test_paper_chain_runs_all_four_stages_on_real_layout_fixtures(tmp_path, run_cli):
    from test_adapters_layouts import build_paper_fixtures

    root = build_paper_fixtures(tmp_path / "data", tmp_path / "work")
    code, out, err = run_cli("chain", "--model", "resnet18", "--chain", "paper", "--init", "none", "--epochs", "1",
                             "--image-size", "32", "--batch-size", "16", "--data-root", root, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["dataset"] for r in rows] == ["casia", "covid-ctset", "imageclef-gans-2023:dev", "imageclef-gans-2023:test"]
    assert all(r["status"] == "trained" for r in rows)
