"""The stage trainer: outputs, determinism, early stopping, resume after a kill, pseudo-labels."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.checkpoints import flip_tensor_byte
from helpers.images import write_class_folder
from helpers.output import check_shown_once
from PIL import Image
from safetensors import SafetensorError

from ganfp.chain import train_stage
from ganfp.checkpoint import load_checkpoint, read_safetensors
from ganfp.errors import InputError
from ganfp.train import StageConfig, run_stage


TINY = dict(model="conv5", image_size=16, batch_size=8, epochs=3, lr=0.01)


def test_stage_writes_a_self_describing_checkpoint(class_folder, tmp_path):
    cfg = StageConfig(name="s", dataset=str(class_folder), **TINY)
    summary = run_stage(cfg, tmp_path / "s", data_root=tmp_path / "root")
    out = tmp_path / "s"
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "meta.json", "model.safetensors"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["model"] == "conv5" and meta["classes"] == ["a", "b"]
    assert meta["image_size"] == 16 and meta["seed"] == 0 and meta["config"]["lr"] == 0.01
    assert {"torch", "timm", "ganfp"} <= set(meta["versions"]) and len(meta["data_fingerprint"]) == 64
    assert summary.train_size + summary.val_size == 48 and summary.val_size == 10
    assert summary.best_val_accuracy > 0.8  # bright vs dark is learnable in three epochs
    model, file_meta = load_checkpoint(out)  # the safetensors file alone rebuilds the model
    assert file_meta["classes"] == ["a", "b"] and model(torch.zeros(1, 1, 16, 16)).shape == (1, 2)


def test_same_seed_gives_identical_history(class_folder, tmp_path):
    for run in ("one", "two"):
        run_stage(StageConfig(dataset=str(class_folder), **TINY), tmp_path / run, data_root=tmp_path / "root")
    one, two = ((tmp_path / r / "history.csv").read_text() for r in ("one", "two"))
    assert one == two and len(one.splitlines()) == 4
    run_stage(StageConfig(dataset=str(class_folder), seed=1, **TINY), tmp_path / "three", data_root=tmp_path / "root")
    assert (tmp_path / "three" / "history.csv").read_text() != one


def test_a_stage_leaves_the_callers_torch_rng_alone(class_folder, tmp_path):
    """The stage seeds torch's global RNG for its own draws and puts the caller's back: a notebook's later random
    numbers do not depend on whether it trained, and the stage's result not on what the caller drew before."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_stage(StageConfig(dataset=str(class_folder), **TINY), tmp_path / "one", data_root=tmp_path / "root")
    assert torch.equal(torch.rand(3), expected)
    torch.rand(1000)
    run_stage(StageConfig(dataset=str(class_folder), **TINY), tmp_path / "two", data_root=tmp_path / "root")
    one, two = ((tmp_path / r / "history.csv").read_text() for r in ("one", "two"))
    assert one == two


def test_a_stage_seeds_no_gpu_it_does_not_train_on(class_folder, tmp_path, monkeypatch):
    """torch.manual_seed seeds every GPU, and only the training device's RNG is put back after a stage: a notebook
    with two GPUs found the other one's random numbers reset to the stage's seed."""
    seeded_all = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded_all.append)
    run_stage(StageConfig(dataset=str(class_folder), **TINY), tmp_path / "one", data_root=tmp_path / "root")
    assert seeded_all == []


def test_a_deterministic_stage_leaves_torchs_settings_as_they_were(class_folder, tmp_path):
    assert not torch.are_deterministic_algorithms_enabled()
    cfg = StageConfig(dataset=str(class_folder), deterministic=True, **TINY)
    run_stage(cfg, tmp_path / "s", data_root=tmp_path / "root")
    assert not torch.are_deterministic_algorithms_enabled()


def test_early_stopping_stops_when_validation_loss_stops_improving(class_folder, tmp_path):
    cfg = StageConfig(dataset=str(class_folder), **{**TINY, "epochs": 50, "patience": 1, "lr": 0.5})
    summary = run_stage(cfg, tmp_path / "s", data_root=tmp_path / "root")
    assert summary.epochs_run < 50 and summary.epochs_run == summary.best_epoch + 1


def test_killed_stage_resumes_and_matches_an_uninterrupted_run(tmp_path):
    data = write_class_folder(tmp_path / "ds", n_per_class=40, size=24)
    args = ["--data", data, "--model", "conv5", "--image-size", "24", "--batch-size", "4", "--epochs", "6",
            "--lr", "0.01", "--data-root", tmp_path / "root", "--device", "cpu"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ganfp", "train-stage", *map(str, args)]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume_file = killed / "last.safetensors"
    deadline = time.time() + 120
    while not resume_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert resume_file.exists() and not (killed / "meta.json").exists(), "the stage must be killed mid-training"
    assert read_safetensors(killed / "model.safetensors")[1]["model"] == "conv5"  # never half-written
    done = subprocess.run([*cmd, "--out", str(killed), "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    full = tmp_path / "full"
    subprocess.run([*cmd, "--out", str(full)], env=env, check=True, capture_output=True)
    assert (killed / "history.csv").read_text() == (full / "history.csv").read_text()
    assert not resume_file.exists()


def test_unlabelled_stage_self_trains_from_the_previous_stage(class_folder, tmp_path):
    run_stage(StageConfig(dataset=str(class_folder), **TINY), tmp_path / "s1", data_root=tmp_path / "root")
    flat = tmp_path / "unlabelled"
    flat.mkdir()
    for p in sorted(class_folder.rglob("*.png"))[::2]:
        (flat / p.name).write_bytes(p.read_bytes())
    cfg = StageConfig(name="self", dataset=str(flat), init=str(tmp_path / "s1"), pseudo_labels="self", pseudo_fraction=0.25, **TINY)
    summary = train_stage(cfg, tmp_path / "s2", data_root=tmp_path / "root")
    assert summary.train_size + summary.val_size == 12  # a quarter of 24 at each end
    assert summary.classes == ["a", "b"] and summary.best_val_accuracy > 0.6
    assert summary.val_labels == "pseudo:self" and "best_val_accuracy" not in summary.to_dict()
    assert summary.to_dict()["best_val_pseudo_agreement"] == summary.best_val_accuracy
    assert "val_pseudo_agreement" in (tmp_path / "s2" / "history.csv").read_text().splitlines()[0]
    with pytest.raises(InputError, match="no labels"):
        run_stage(StageConfig(dataset=str(flat), **TINY), tmp_path / "s3", data_root=tmp_path / "root")


def test_a_pseudo_labelled_stage_never_calls_its_scores_accuracy(class_folder, tmp_path, run_cli):
    """Its validation labels are its own pseudo-labels: the epoch lines and the table say agreement, not accuracy."""
    run_stage(StageConfig(dataset=str(class_folder), **TINY), tmp_path / "s1", data_root=tmp_path / "root")
    flat = tmp_path / "unlabelled"
    flat.mkdir()
    for p in sorted(class_folder.rglob("*.png"))[::2]:
        (flat / p.name).write_bytes(p.read_bytes())
    code, out, err = run_cli("train-stage", "--data", flat, "--init", tmp_path / "s1", "--pseudo-labels", "self",
                             "--out", tmp_path / "s2", "--model", "conv5", "--image-size", "16", "--batch-size", "8",
                             "--epochs", "2", "--lr", "0.01", "--data-root", tmp_path / "root")
    assert code == 0, err
    epochs = [line for line in err.splitlines() if " epoch " in line and "train loss" in line]
    assert len(epochs) == 2 and all("val pseudo-agreement" in e and "val pseudo-F1" in e for e in epochs), err
    assert "val acc" not in err + out and "val F1" not in err + out
    assert "val pseudo-agreement" in out and "val pseudo-F1" in out and "(pseudo)" not in out


def test_a_labelled_stage_reports_accuracy(class_folder, tmp_path, run_cli):
    code, out, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model", "conv5",
                             "--image-size", "16", "--batch-size", "8", "--epochs", "1", "--data-root", tmp_path / "root")
    assert code == 0, err
    assert "val acc" in err and "val F1" in err and "val acc" in out and "pseudo" not in err + out


def test_a_stage_whose_images_mix_bit_depths_warns_naming_the_dataset_and_counts(tmp_path, run_cli):
    """classify and attribute warned of 16-bit images beside 8-bit ones; train-stage trained on the two contrasts
    without a word. The depths are found as the images decode, so a run that reuses the decode cache warns too."""
    data = write_class_folder(tmp_path / "ds", 8, 16)
    for i in range(2):
        Image.fromarray(np.full((16, 16), 3000 + i, np.uint16)).save(data / "b" / f"b{i:03d}.png")  # 16-bit
    args = ["train-stage", "--data", data, "--model", "conv5", "--image-size", "16", "--batch-size", "8", "--epochs",
            "1", "--data-root", tmp_path / "root", "--json"]
    for out in ("s1", "s2"):  # decoded, then read from the decode cache
        code, stdout, err = run_cli(*args, "--out", tmp_path / out)
        assert code == 0, err
        (warning,) = [w for w in json.loads(stdout)[0]["warnings"] if "bit depths" in w]
        assert warning.startswith(f"{data}: the images mix bit depths (class a 8-bit (8), class b 8-bit (6) and "
                                  "16-bit (2)): 16-bit, 32-bit and float images are stretched"), warning


def test_a_decode_cache_built_before_depths_were_recorded_still_warns_of_a_mix(tmp_path, run_cli):
    """A cache an older ganfp built has no "depths" in its record, and its key is unchanged: a stage reusing it
    trained on two contrasts without the warning. The depths are read from the headers and kept in the record."""
    data = write_class_folder(tmp_path / "ds", 8, 16)
    Image.fromarray(np.full((16, 16), 3000, np.uint16)).save(data / "b" / "b000.png")  # 16-bit
    args = ["train-stage", "--data", data, "--model", "conv5", "--image-size", "16", "--batch-size", "8", "--epochs",
            "1", "--data-root", tmp_path / "root", "--json"]
    code, _, err = run_cli(*args, "--out", tmp_path / "s1")
    assert code == 0, err
    (record,) = (tmp_path / "root" / "cache" / "images").glob("*.json")
    old = json.loads(record.read_text())
    del old["depths"]
    record.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")  # as ganfp wrote it before 634e2b5
    code, stdout, err = run_cli(*args, "--out", tmp_path / "s2")
    assert code == 0, err
    (warning,) = [w for w in json.loads(stdout)[0]["warnings"] if "bit depths" in w]
    assert warning.startswith(f"{data}: the images mix bit depths (class a 8-bit (8), class b 8-bit (7) and 16-bit "
                              "(1)):"), warning
    assert json.loads(record.read_text()) == {**old, "depths": ["8-bit"] * 8 + ["16-bit"] + ["8-bit"] * 7}


def test_a_chain_table_marks_its_pseudo_labelled_stage(capsys):
    """Labelled and pseudo-labelled stages share the columns: the pseudo one's scores are marked and explained."""
    from ganfp.cli.train import print_results
    from ganfp.train import StageSummary

    common = dict(model="conv5", classes=["a", "b"], class_counts={}, train_size=8, val_size=2, epochs_run=1,
                  best_epoch=1, best_val_loss=0.5, best_val_f1=0.5, seconds=1.0)
    print_results("chain", [StageSummary("dev", "d", best_val_accuracy=0.25, **common),
                            StageSummary("test", "t", best_val_accuracy=0.75, val_labels="pseudo:self", **common)], False)
    out = capsys.readouterr().out
    assert "val acc" in out and "0.250 " in out and "0.750 (pseudo)" in out and "pseudo-agreement" in out


def test_resume_with_other_settings_is_refused(class_folder, tmp_path):
    out = tmp_path / "s"
    run_stage(StageConfig(dataset=str(class_folder), **{**TINY, "epochs": 1}), out, data_root=tmp_path / "root")
    (out / "meta.json").unlink()  # pretend it was interrupted: rebuild a resume file by a 1-epoch run
    from ganfp.checkpoint import save_resume
    from ganfp.models import create_model

    model = create_model("conv5", 2, 16)
    state = {"digest": "other", "epoch": 1, "best_epoch": 1, "bad_epochs": 0, "best_val_loss": 0.5, "history": [{}]}
    save_resume(out / "last.safetensors", model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), state)
    with pytest.raises(InputError, match="other settings"):
        run_stage(StageConfig(dataset=str(class_folder), **TINY), out, resume=True, data_root=tmp_path / "root")


def test_knn_pseudo_labels_come_from_the_generated_set(demo_root, tmp_path):
    import csv

    from ganfp.data.adapters import load_manifest
    from ganfp.pseudo import PSEUDO_LABELERS, PseudoContext, PseudoSettings, rank_labels

    manifest = load_manifest("demo:gans-test", demo_root)
    settings = PseudoSettings("knn", 0.25, "ssim64", 10, seed=0, batch_size=8)
    ctx = PseudoContext(settings, None, ["not_used", "used"], manifest, None, torch.device("cpu"), demo_root)
    idx, labels = rank_labels(PSEUDO_LABELERS.get("knn")(ctx), 0.25, used=1)
    with open(manifest.info["labels"]) as f:
        truth = {row["id"]: int(row["label"]) for row in csv.DictReader(f)}
    agree = np.mean([truth[manifest.items[i].id] == lab for i, lab in zip(idx, labels)])
    assert len(idx) == 50 and agree > 0.8  # the membership scorer labels far better than chance
    run_stage(StageConfig(name="dev", dataset="demo:gans-dev", **TINY), tmp_path / "dev", data_root=demo_root)
    cfg = StageConfig(name="self", dataset="demo:gans-test", pseudo_labels="knn", init=str(tmp_path / "dev"), **TINY)
    summary = train_stage(cfg, tmp_path / "self", data_root=demo_root)
    assert summary.train_size + summary.val_size == 50 and summary.classes == ["not_used", "used"]
    # the knn settings are the stage's: changing k changes its digest, so a finished stage is not reused
    assert dataclasses.replace(cfg, pseudo_k=3).digest() != cfg.digest()
    assert dataclasses.replace(cfg, pseudo_features="pixels32").digest() != cfg.digest()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])  # Ctrl-C; kill or a time limit
def test_ctrl_c_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, sig, code):
    data = write_class_folder(tmp_path / "ds", n_per_class=40, size=24)
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "ganfp", "train-stage", "--data", str(data), "--model", "conv5", "--image-size", "24",
           "--batch-size", "4", "--epochs", "50", "--data-root", str(tmp_path / "root"), "--device", "cpu", "--out", str(out)]
    # as in a terminal: a test run started in the background (`pytest &`) inherits SIGINT ignored, and Python keeps that
    restore_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore_ctrl_c)
    deadline = time.time() + 120
    while not (out / "last.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and "Traceback" not in err, err
    assert "last good checkpoint" in err and "--resume" in err
    assert read_safetensors(out / "last.safetensors", tensors=False)[1]["state"]["epoch"] >= 1


@pytest.mark.parametrize("option, value, words", [
    ("--epochs", "0", "epochs: must be at least 1"),
    ("--patience", "0", "patience: must be at least 1"),
    ("--batch-size", "0", "'--batch-size': 0 is below the minimum 1"),  # the shared option's range (cli/options.py)
    ("--image-size", "0", "'--image-size': 0 is below the minimum 8"),
    ("--lr", "nan", "lr: must be a positive number"),
    ("--lr", "-1", "lr: must be a positive number"),
    ("--momentum", "1", "momentum: must be at least 0 and below 1"),
    ("--val-fraction", "1.5", "--val-fraction: must be above 0 and below 1"),
    ("--pseudo-fraction", "0.3", "--pseudo-fraction 0.3: only used with --pseudo-labels"),  # else ignored
    ("--pseudo-k", "3", "--pseudo-k 3: only used with --pseudo-labels"),
    ("--out", "", "--out '': an empty path"),  # else trained into the current folder
    ("--seed", "-1", "'--seed': -1 is below the minimum 0"),
    ("--seed", "4294967296", "'--seed': 4294967296 is above the maximum 4294967295"),  # numpy's seed range
    ("--name", "../../x", "is not a plain name"),
    ("--init", "imagenet", "conv5 has no ImageNet weights"),
    ("--init", "missing.safetensors", "--init missing.safetensors: no such weights file or stage folder"),
    ("--pseudo-labels", "self", "start from: a previous stage's folder as init (train-stage: --init)"),
])
def test_bad_numbers_are_refused_before_any_work(class_folder, tmp_path, run_cli, option, value, words):
    code, out, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model", "conv5",
                             "--data-root", tmp_path / "root", option, value)
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists() and not (tmp_path / "root").exists()  # nothing decoded, nothing written


def test_the_seed_option_allows_exactly_the_seeds_training_takes():
    from ganfp.cli.options import MAX_SEED
    from ganfp.train import MAX_SEED as TRAIN_MAX_SEED

    assert MAX_SEED == TRAIN_MAX_SEED


def test_nan_validation_loss_from_the_start_fails_without_a_complete_meta(class_folder, tmp_path, run_cli, monkeypatch):
    import ganfp.train as train_mod

    monkeypatch.setattr(train_mod, "evaluate", lambda *a, **kw: {"loss": float("nan"), "accuracy": 0.5, "f1": 0.0})
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model", "conv5",
                           "--image-size", "16", "--batch-size", "8", "--epochs", "3", "--data-root", tmp_path / "root")
    assert code == 1 and "validation loss is nan from the first epoch" in err and "Traceback" not in err
    assert not (tmp_path / "s" / "meta.json").exists() and not (tmp_path / "s" / "model.safetensors").exists()


def test_one_class_folder_names_the_missing_class(tmp_path, run_cli):
    data = write_class_folder(tmp_path / "ds", n_per_class=8, size=16)
    for p in (data / "b").iterdir():
        p.unlink()
    (data / "b").rmdir()
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "s", "--model", "conv5",
                           "--image-size", "16", "--epochs", "1", "--data-root", tmp_path / "root")
    assert code == 2 and "only one class ('a')" in err and "missing class" in err
    assert not (tmp_path / "s" / "meta.json").exists()


def test_stage_keeps_the_best_epoch_not_the_last(class_folder, tmp_path, monkeypatch):
    import ganfp.train as train_mod

    losses, weights = iter([0.9, 0.4, 0.7, 0.8]), []
    real_evaluate = train_mod.evaluate

    def scripted(model, *a, **kw):  # real metrics, scripted losses: epoch 2 is the best, epoch 4 the last
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {**real_evaluate(model, *a, **kw), "loss": next(losses)}

    monkeypatch.setattr(train_mod, "evaluate", scripted)
    summary = run_stage(StageConfig(dataset=str(class_folder), **{**TINY, "epochs": 4, "patience": 5}), tmp_path / "s",
                        data_root=tmp_path / "root")
    assert summary.best_epoch == 2 and summary.epochs_run == 4 and summary.best_val_loss == 0.4
    saved, meta = read_safetensors(tmp_path / "s" / "model.safetensors")
    assert meta["epoch"] == 2
    assert all(torch.equal(saved[k], weights[1][k]) for k in saved)
    assert not all(torch.equal(saved[k], weights[3][k]) for k in saved)  # the last epoch's weights differ


def test_new_classes_keep_every_backbone_tensor(class_folder, tmp_path):
    from ganfp.train import build_model

    run_stage(StageConfig(dataset=str(class_folder), **{**TINY, "epochs": 1}), tmp_path / "s1", data_root=tmp_path / "root")
    before = read_safetensors(tmp_path / "s1" / "model.safetensors")[0]
    cfg = StageConfig(dataset=str(class_folder), init=str(tmp_path / "s1"), **TINY)
    model, _ = build_model(cfg, ["x", "y", "z"], torch.device("cpu"))
    after = model.state_dict()
    heads = [k for k in after if model.is_head_key(k)]
    assert heads and all(after[k].shape[0] == 3 for k in heads)  # a fresh head for three classes
    for key, tensor in before.items():
        if not model.is_head_key(key):
            assert torch.equal(after[key], tensor), key


def test_split_is_stratified_on_both_sides(tmp_path):
    from ganfp.data.manifest import Item, Manifest
    from ganfp.data.split import split_indices

    counts = {"a": 60, "b": 15, "c": 25}
    labels = [i for i, n in enumerate(counts.values()) for _ in range(n)]
    manifest = Manifest("m", list(counts), [Item(f"/x/{i}.png", lab) for i, lab in enumerate(labels)])
    for seed in range(5):
        train, val = split_indices(manifest, 0.2, seed)
        assert len(val) == 20 and sorted(np.concatenate([train, val])) == list(range(100))
        y = np.array(labels)
        assert np.bincount(y[val], minlength=3).tolist() == [12, 3, 5]  # 8:2 of every class
        assert np.bincount(y[train], minlength=3).tolist() == [48, 12, 20]


def _manifest_of(counts: dict):
    from ganfp.data.manifest import Item, Manifest

    labels = [i for i, n in enumerate(counts.values()) for _ in range(n)]
    return Manifest("m", list(counts), [Item(f"/x/{i}.png", lab) for i, lab in enumerate(labels)])


@pytest.mark.parametrize("counts", [{"a": 2, "b": 100}, {"a": 3, "b": 2, "c": 200}, {"a": 2, "b": 2, "c": 90}])
def test_a_small_class_has_an_image_on_each_side_of_the_split(counts):
    """{a: 2, b: 100} at 0.2 put both `a` images in training: validation said nothing about `a`."""
    from ganfp.data.split import split_indices

    manifest = _manifest_of(counts)
    for seed in range(5):
        train, val = split_indices(manifest, 0.2, seed)
        assert sorted(np.concatenate([train, val])) == list(range(len(manifest)))
        assert len(val) == max(len(counts), round(0.2 * len(manifest)))  # the sizes stay the 8:2 split's
        for side in (train, val):
            assert (np.bincount(manifest.labels[side], minlength=len(counts)) >= 1).all(), (seed, side)


@pytest.mark.parametrize("counts", [{"a": 60, "b": 15, "c": 25}, {"a": 12, "b": 12}, {"a": 3, "b": 40, "c": 7},
                                    {"a": 5, "b": 100}, {"a": 2, "b": 2}])
def test_a_split_with_every_class_on_both_sides_is_the_one_recorded_runs_used(counts):
    """Runs trained (and interrupted runs resumed) on scikit-learn's split keep it wherever it covered every class."""
    from sklearn.model_selection import train_test_split

    from ganfp.data.split import split_indices

    manifest = _manifest_of(counts)
    n_val = max(len(counts), round(0.2 * len(manifest)))
    for seed in range(10):
        old_train, old_val = train_test_split(np.arange(len(manifest)), test_size=n_val, stratify=manifest.labels,
                                              random_state=seed)
        assert len(set(manifest.labels[old_val])) == len(counts)  # the case this test is about
        train, val = split_indices(manifest, 0.2, seed)
        assert train.tolist() == sorted(old_train) and val.tolist() == sorted(old_val)


@pytest.mark.parametrize("counts", [{"a": 2, "b": 2}, {"a": 12, "b": 12}, {"a": 3, "b": 40, "c": 7}])
def test_a_validation_share_too_large_is_refused_with_one_that_splits(counts):
    """--val-fraction 0.99 ended in scikit-learn's traceback after the images were decoded; the largest share the
    message offers must split."""
    import re

    from ganfp.data.manifest import Item, Manifest
    from ganfp.data.split import split_indices, split_problem

    labels = [i for i, n in enumerate(counts.values()) for _ in range(n)]
    manifest = Manifest("m", list(counts), [Item(f"/x/{i}.png", lab) for i, lab in enumerate(labels)])
    why = split_problem(manifest, 0.99)
    assert why is not None and "use at most" in why
    with pytest.raises(InputError, match="val_fraction 0.99"):
        split_indices(manifest, 0.99, 0)
    largest = float(re.search(r"use at most ([0-9.]+)", why).group(1))
    assert split_problem(manifest, largest) is None
    train, val = split_indices(manifest, largest, 0)
    assert len(train) >= len(counts) and len(val) >= len(counts)


def test_a_batch_as_large_as_the_split_warns_and_says_what_to_do(class_folder, tmp_path, run_cli):
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model", "conv5",
                           "--image-size", "16", "--batch-size", "256", "--epochs", "1", "--data-root", tmp_path / "root")
    assert code == 0
    assert "batch size 256 is not smaller than the 38 training images" in err and "single SGD step" in err
    assert "e.g. --batch-size 4 (batch_size = 4 in a chain file)" in " ".join(err.split())


def test_each_stage_start_warning_is_shown_once_before_the_epochs_and_is_in_the_json(tmp_path, run_cli):
    """A stage's warnings (images of mixed bit depths, a batch as large as the split) were shown twice: as
    `WARNING: ...` progress lines when it started, then as `warning:` lines below the results (its summary's). Each is
    one `warning:` line now, before the first epoch, with --json or without, and in the --json "warnings"."""
    data = write_class_folder(tmp_path / "ds", 8, 16)
    Image.fromarray(np.full((16, 16), 3000, np.uint16)).save(data / "b" / "b000.png")  # 16-bit
    args = ["train-stage", "--data", data, "--name", "st", "--model", "conv5", "--image-size", "16", "--epochs", "1",
            "--data-root", tmp_path / "root"]  # the paper's batch, 256: every epoch is a single SGD step
    code, out, err = run_cli(*args, "--out", tmp_path / "s1", "--json")
    assert code == 0, err
    warnings = json.loads(out)[0]["warnings"]
    assert [any("bit depths" in w for w in warnings), any("single SGD step" in w for w in warnings)] == [True, True]
    check_shown_once(err, warnings, dict.fromkeys(warnings, "st epoch 1 train loss"))
    code, out, err = run_cli(*args, "--out", tmp_path / "s2")
    assert code == 0, err
    check_shown_once(err, warnings, dict.fromkeys(warnings, "st epoch 1 train loss"))


def test_a_python_caller_gets_a_stages_warnings_logged_once_before_the_epochs(class_folder, tmp_path, caplog):
    """The library logs a stage's warnings under "ganfp" as it starts, as it logs every other (Python prints them on
    stderr, the CLI as `warning:` lines), and returns them in the summary; the observer no longer gets them as
    `WARNING: ...` messages, which the CLI printed besides the summary's."""
    events = []

    def observer(event: str, data: dict) -> None:
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        events.append((event, data.get("text", ""), warned))

    cfg = StageConfig(name="st", dataset=str(class_folder), model="conv5", image_size=16, epochs=1, device="cpu")
    with caplog.at_level(logging.WARNING, logger="ganfp"):
        summary = train_stage(cfg, tmp_path / "s", data_root=tmp_path / "root", observer=observer)
    (warning,) = summary.warnings
    assert "single SGD step" in warning
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [warning]
    assert [warned for event, _, warned in events if event == "epoch_start"] == [[warning]]
    assert not any("WARNING" in text for _, text, _ in events), events


def test_imagenet_weights_out_of_reach_are_found_before_any_image_is_decoded(class_folder, tmp_path, run_cli,
                                                                             monkeypatch):
    """Offline, `--init imagenet` failed when the model was built: after every image of the dataset was decoded."""
    from huggingface_hub import constants

    import ganfp.train as train_mod

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    decoded, real_load = [], train_mod.load_stage_images
    monkeypatch.setattr(train_mod, "load_stage_images", lambda *a, **k: decoded.append(1) or real_load(*a, **k))
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--init", "imagenet",
                           "--image-size", "16", "--epochs", "1", "--data-root", tmp_path / "root")
    assert code == 1 and "ImageNet weights for resnet18 are not cached and HF_HUB_OFFLINE is set" in err, err
    assert decoded == [] and not (tmp_path / "s").exists()


def test_a_timm_model_too_small_for_the_images_is_refused_before_any_image_is_decoded(class_folder, tmp_path,
                                                                                      run_cli):
    """An unregistered timm model had no known minimum: a fixed patch grid or poolings that leave nothing of a
    16-pixel image failed with a torch traceback at the first batch, after the images were decoded."""
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model",
                           "convnext_atto", "--image-size", "16", "--data-root", tmp_path / "root")
    assert code == 2 and "--image-size: convnext_atto needs at least 32 pixels, got 16" in err, err
    assert not (tmp_path / "root").exists() and not (tmp_path / "s").exists()
    chain = tmp_path / "c.toml"
    chain.write_text(f'[[stages]]\nname = "one"\ndataset = "{class_folder}"\n')
    code, _, err = run_cli("chain", "--chain", chain, "--model", "beit_base_patch16_224", "--image-size", "64",
                           "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "root")
    assert code == 2 and "Traceback" not in err, err
    assert "--image-size: beit_base_patch16_224 takes only 224-pixel images (its input size is fixed), got 64" in err
    assert not (tmp_path / "root").exists() and not (tmp_path / "runs" / "c-beit_base_patch16_224").exists()


def test_settings_a_model_or_adapter_cannot_take_are_one_line(class_folder, tmp_path, run_cli):
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model", "vit_b_32",
                           "--image-size", "16", "--data-root", tmp_path / "root")
    assert code == 2 and "--image-size: vit_b_32 needs at least 32 pixels, got 16" in err
    # 48 pixels built a 1x1 patch grid: the patch convolution dropped the last 16 rows and columns, silently
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model", "vit_b_32",
                           "--image-size", "48", "--epochs", "1", "--data-root", tmp_path / "root")
    assert code == 2 and ("--image-size: vit_b_32 cuts images into 32-pixel patches, so 48 pixels would leave the "
                          "last 16 rows and columns unseen; use a multiple of 32 (32 or 64)") in err, err
    assert not (tmp_path / "root").exists() and not (tmp_path / "s").exists()
    chain = tmp_path / "extra.toml"
    chain.write_text(f'[[stages]]\nname = "one"\ndataset = "folder:{class_folder}"\nextra = {{oops = 1}}\n')
    code, _, err = run_cli("chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "root")
    assert code == 2 and "unknown option(s) oops" in err and "Traceback" not in err


def test_epoch_metrics_come_from_ganfp_metrics():
    from ganfp.metrics import binary_metrics, confusion_metrics, used_class_index

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    cm = np.zeros((2, 2))
    np.add.at(cm, (y, p), 1)
    m = confusion_metrics(cm, ["not_used", "used"])
    assert m["f1"] == pytest.approx(binary_metrics(y, p)["f1"]) and m["accuracy"] == pytest.approx(np.mean(y == p))
    assert confusion_metrics(cm[::-1, ::-1], ["used", "not_used"])["f1"] == pytest.approx(m["f1"])  # "used" by name
    assert used_class_index(["used", "not_used"]) == 0 and used_class_index(["covid", "normal"]) == 1


def test_a_stage_already_in_out_is_never_trained_over_unasked(class_folder, tmp_path, run_cli):
    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "1", "--data-root", tmp_path / "root"]
    assert run_cli(*args)[0] == 0
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    for extra, words in [((), "finished with the same settings; add --resume to keep it, or --force"),
                         (("--epochs", "2"), "finished after 1 epochs (it ran all its epochs), with other settings "
                                             "(epochs 1 -> 2); a finished stage cannot be continued"),
                         (("--epochs", "2", "--resume"), "other settings (epochs 1 -> 2)"),
                         (("--force", "--resume"), "--force and --resume: choose one")]:
        code, _, err = run_cli(*args, *extra)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == finished  # nothing lost, nothing half-written
    code, stdout, err = run_cli(*args, "--resume")
    assert code == 0 and "skipped" in stdout
    code, _, err = run_cli(*args, "--epochs", "2", "--force")
    assert code == 0 and json.loads((out / "meta.json").read_text())["config"]["epochs"] == 2


def test_an_interrupted_stage_continues_only_with_resume(class_folder, tmp_path, run_cli):
    from ganfp.checkpoint import save_resume
    from ganfp.models import create_model

    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "2", "--data-root", tmp_path / "root"]
    digest = StageConfig(name="s", dataset=str(class_folder), model="conv5", image_size=16, batch_size=8,
                         epochs=2).digest()
    model = create_model("conv5", 2, 16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    save_resume(out / "last.safetensors", model, optimizer, {"digest": digest, "epoch": 1, "history": [{}],
                                                             "best_epoch": 1, "bad_epochs": 0, "best_val_loss": 0.5})
    before = (out / "last.safetensors").read_bytes()
    code, _, err = run_cli(*args)
    refusal = "interrupted, saved after epoch 1; add --resume to continue it, or --force to start over"
    assert code == 2 and refusal in err
    code, _, err = run_cli(*args, "--lr", "0.5")
    assert code == 2 and "interrupted, saved after epoch 1, with other settings" in err
    assert (out / "last.safetensors").read_bytes() == before
    code, _, err = run_cli(*args, "--force")
    assert code == 0 and not (out / "last.safetensors").exists()
    assert json.loads((out / "meta.json").read_text())["metrics"]["epochs_run"] == 2


def test_an_interrupted_stage_whose_images_changed_is_not_continued(class_folder, tmp_path, run_cli, monkeypatch):
    """Its epochs so far saw other images (and another split): continuing would pass them off as this data's."""
    from PIL import Image

    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "2", "--data-root", tmp_path / "root"]
    _interrupt_in_epoch_2(run_cli, args, monkeypatch)
    assert (out / "last.safetensors").is_file()
    Image.fromarray(np.full((32, 32), 7, dtype=np.uint8)).save(class_folder / "a" / "a999.png")  # one image more
    code, _, err = run_cli(*args, "--resume")
    assert code == 2 and "was written on other images" in err and "--force" in err
    code, _, err = run_cli(*args, "--force")
    assert code == 0 and json.loads((out / "meta.json").read_text())["metrics"]["epochs_run"] == 2


def _interrupt_in_epoch_2(run_cli, args, monkeypatch, stop_at: int = 2) -> str:
    """Run `ganfp ARGS` and stop it by Ctrl-C in its second epoch (or `stop_at`), as a user would: last.safetensors
    holds the epoch before (or, over the save budget, the last one saved). Returns its stderr."""
    import ganfp.train

    run_epoch = ganfp.train.run_epoch

    def stop_in_epoch_2(fit, epoch, observer):
        if epoch == stop_at:
            raise KeyboardInterrupt
        return run_epoch(fit, epoch, observer)

    monkeypatch.setattr(ganfp.train, "run_epoch", stop_in_epoch_2)
    code, _, err = run_cli(*args)
    assert code == 130, err
    monkeypatch.undo()
    return err


def test_an_interrupted_stage_names_the_settings_a_resume_changed(class_folder, tmp_path, run_cli, monkeypatch):
    """"with other settings" alone left the user to guess which of a dozen options differed (a finished stage's
    refusal names them)."""
    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "3", "--data-root", tmp_path / "root"]
    _interrupt_in_epoch_2(run_cli, args, monkeypatch)
    code, _, err = run_cli(*args, "--resume", "--lr", "0.01", "--epochs", "5")
    words = "interrupted, saved after epoch 1, with other settings (lr 0.001 -> 0.01, epochs 3 -> 5)"
    assert code == 2 and words in err
    code, _, err = run_cli(*args, "--resume")
    assert code == 0 and json.loads((out / "meta.json").read_text())["metrics"]["epochs_run"] == 3, err


def test_a_damaged_resume_file_is_not_trained_over_unasked(class_folder, tmp_path, run_cli, monkeypatch):
    """A last.safetensors cut short (a full disk, a copy) read as "nothing to resume": the stage started over,
    with or without --resume, replacing the best epoch so far."""
    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "2", "--data-root", tmp_path / "root"]
    _interrupt_in_epoch_2(run_cli, args, monkeypatch)
    last = out / "last.safetensors"
    last.write_bytes(last.read_bytes()[:1000])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for extra in ((), ("--resume",)):
        code, _, err = run_cli(*args, *extra)
        assert code == 2 and "last.safetensors cannot be read (damaged or cut short)" in err and "--force" in err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run_cli(*args, "--force")[0] == 0 and not last.exists()


def _edit_resume_state(out, **changes) -> None:
    """Rewrite last.safetensors's training state: a key set to None is removed."""
    from ganfp.checkpoint import write_safetensors

    tensors, meta = read_safetensors(out / "last.safetensors")
    meta["state"] = {k: v for k, v in {**meta["state"], **changes}.items() if v is not None}
    write_safetensors(out / "last.safetensors", tensors, meta)


def _drop_model_tensors(out) -> None:
    from ganfp.checkpoint import write_safetensors

    tensors, meta = read_safetensors(out / "last.safetensors")
    write_safetensors(out / "last.safetensors", {k: v for k, v in tensors.items() if "model." not in k}, meta)


@pytest.mark.parametrize("damage, words", [
    (lambda out: _edit_resume_state(out, epoch=None), "last.safetensors cannot be read"),  # trained epochs 1.. again
    (lambda out: _edit_resume_state(out, history=None), "last.safetensors cannot be read"),  # IndexError at the end
    (lambda out: _edit_resume_state(out, best_epoch=None), "last.safetensors cannot be read"),
    (lambda out: _edit_resume_state(out, history="x"), "last.safetensors cannot be read"),  # AttributeError
    (_drop_model_tensors, "tensors do not fit this stage's model"),  # a torch RuntimeError traceback
], ids=["no-epoch", "no-history", "no-best-epoch", "history-not-a-list", "no-model-tensors"])
def test_an_interrupted_stage_missing_what_a_resume_needs_is_refused_in_one_line(class_folder, tmp_path, run_cli,
                                                                                 monkeypatch, damage, words):
    """A last.safetensors lacking a key of its state (an older or edited file) was continued wrong or crashed with a
    traceback; one beside no best model ended "complete" with the best epoch's weights lost."""
    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "2", "--data-root", tmp_path / "root"]
    _interrupt_in_epoch_2(run_cli, args, monkeypatch)
    damage(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run_cli(*args, "--resume")
    assert code == 2 and words in err and "--force" in err and "Traceback" not in err, err
    assert [line.startswith("error:") for line in err.strip().splitlines()][-1:] == [True]  # one line, the last
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _set_model_epoch(out, epoch: int) -> None:
    from ganfp.checkpoint import write_safetensors

    tensors, meta = read_safetensors(out / "model.safetensors")
    write_safetensors(out / "model.safetensors", tensors, {**meta, "epoch": epoch})


@pytest.mark.parametrize("damage", [
    lambda out: _set_model_epoch(out, 2),  # a ganfp 0.1 killed between its renames: the model renamed first
    lambda out: (out / "model.safetensors").unlink(),
], ids=["one-epoch-ahead", "removed"])
def test_a_best_model_beside_a_state_whose_best_epoch_is_its_last_is_rewritten_from_it(class_folder, tmp_path,
                                                                                      run_cli, monkeypatch, damage):
    """last.safetensors holds the weights of its last epoch, which are the best epoch's: the resume writes them to
    model.safetensors, and the stage ends as an uninterrupted run does."""
    args = ["train-stage", "--data", class_folder, "--model", "conv5", "--image-size", "16", "--batch-size", "8",
            "--epochs", "2", "--data-root", tmp_path / "root", "--device", "cpu"]
    out, full = tmp_path / "s", tmp_path / "full" / "s"  # one name: the stage is named by its folder
    _interrupt_in_epoch_2(run_cli, [*args, "--out", out], monkeypatch)
    damage(out)
    code, _, err = run_cli(*args, "--out", out, "--resume")
    assert code == 0 and "rewritten with the weights of the best epoch 1 from last.safetensors" in err, err
    assert run_cli(*args, "--out", full)[0] == 0
    _assert_same_stage(out, full)


def _assert_same_stage(out: Path, full: Path) -> None:
    """`out` ended with a model file of the best epoch its meta.json names, and as `full` did, bit for bit."""
    (mine, header), (ref, ref_header) = (read_safetensors(d / "model.safetensors") for d in (out, full))
    assert header["epoch"] == json.loads((out / "meta.json").read_text())["metrics"]["best_epoch"]
    assert header == ref_header and (out / "history.csv").read_text() == (full / "history.csv").read_text()
    assert mine.keys() == ref.keys() and all(torch.equal(t, ref[k]) for k, t in mine.items())


@pytest.mark.parametrize("damage, words", [
    (lambda out: _set_model_epoch(out, 4), "the model.safetensors beside it is of epoch 4 (ganfp 0.1 was stopped "
                                           "between saving the two), so the weights of its best epoch 2 are lost"),
    (lambda out: _set_model_epoch(out, 3), "best epoch 2 is not the model.safetensors beside it (one of epoch 3"),
    (lambda out: (out / "model.safetensors").unlink(), "best epoch 2 is not the model.safetensors beside it (one "
                                                       "that is missing"),
], ids=["one-epoch-ahead", "another-epoch", "removed"])
def test_a_best_model_lost_beside_a_state_whose_best_epoch_is_earlier_is_refused(tmp_path, run_cli, monkeypatch,
                                                                                damage, words):
    """Only the best epoch's own file can end the stage: last.safetensors holds the weights of a later epoch. A
    model one epoch ahead (ganfp 0.1 renamed it before the state) was taken, that epoch trained again: where it was
    judged otherwise the second time, the stage ended with weights its meta.json does not describe."""
    data = write_class_folder(tmp_path / "ds", 12, 16, seed=1)  # lr 0.1: epoch 3 is worse than epoch 2
    out = tmp_path / "s"
    args = ["train-stage", "--data", data, "--out", out, "--model", "conv5", "--image-size", "16", "--batch-size",
            "8", "--lr", "0.1", "--epochs", "4", "--data-root", tmp_path / "root", "--device", "cpu"]
    _interrupt_in_epoch_2(run_cli, args, monkeypatch, stop_at=4)
    state = read_safetensors(out / "last.safetensors", tensors=False)[1]["state"]
    assert (state["epoch"], state["best_epoch"]) == (3, 2), "the state's best epoch must be before its last"
    damage(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run_cli(*args, "--resume")
    line = " ".join(err.split())
    assert code == 2 and words in line and "add --force to start over" in line and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


class _Killed(BaseException):
    """kill -9 within the test's process: nothing in ganfp catches it, and no later rename of its batch runs."""


def _killed_between_the_renames_of(epoch: int):
    """An `os.replace` that renames the first of the two files saved after `epoch` and dies before the second."""
    real_replace, renamed = os.replace, []

    def replace(src, dst):
        if renamed:
            raise _Killed
        real_replace(src, dst)
        header = read_safetensors(dst, tensors=False)[1] if str(dst).endswith(".safetensors") else {}
        if header.get("epoch", header.get("state", {}).get("epoch")) == epoch:  # model, or last.safetensors
            renamed.append(dst)

    return replace


def test_a_kill_between_an_epochs_renames_ends_with_the_weights_its_meta_json_describes(class_folder, tmp_path,
                                                                                       monkeypatch):
    """The best model was renamed before the resume state: killed between the two, it was an epoch ahead, and the
    resume trained that epoch again. Judged otherwise the second time (a GPU's sums need not repeat), the stage
    ended with the killed run's weights beside a meta.json and history.csv naming an earlier best epoch."""
    import ganfp.train
    from ganfp import fileio

    cfg, root = StageConfig(dataset=str(class_folder), **TINY), tmp_path / "root"
    best = run_stage(cfg, tmp_path / "full", data_root=root).best_epoch
    assert best >= 2, "an epoch after the first must improve, for its model to be saved beside an earlier one"
    out = tmp_path / "s"
    monkeypatch.setattr(fileio.os, "replace", _killed_between_the_renames_of(best))
    with pytest.raises(_Killed):
        run_stage(cfg, out, data_root=root)
    monkeypatch.undo()
    real_epoch = ganfp.train.run_epoch

    def judged_worse_when_trained_again(fit, epoch, observer):
        row = real_epoch(fit, epoch, observer)
        return {**row, "val_loss": row["val_loss"] + 1} if epoch <= best else row

    monkeypatch.setattr(ganfp.train, "run_epoch", judged_worse_when_trained_again)
    run_stage(cfg, out, resume=True, data_root=root)
    _assert_same_stage(out, tmp_path / "full")


def test_a_resume_state_with_keys_of_a_newer_ganfp_is_continued(class_folder, tmp_path, run_cli, monkeypatch):
    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "2", "--data-root", tmp_path / "root"]
    _interrupt_in_epoch_2(run_cli, args, monkeypatch)
    _edit_resume_state(out, scheduler={"step": 1})  # a TypeError traceback from StageState(**state)
    code, _, err = run_cli(*args, "--resume")
    assert code == 0 and json.loads((out / "meta.json").read_text())["metrics"]["epochs_run"] == 2, err


@pytest.mark.parametrize("failure, code, words", [
    (OSError(errno.ENOSPC, "No space left on device"), 1, "epoch 2 was not saved"),  # a full disk
    # how safetensors itself reports a full disk: not an OSError, so it was a traceback
    (SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"), 1,
     "epoch 2 was not saved: "),
    (KeyboardInterrupt(), 130, "interrupted in epoch 2"),  # as a kill there leaves it: model renamed, last not
], ids=["disk-full", "disk-full-safetensors", "interrupted"])
def test_a_failed_epoch_save_keeps_the_best_model_and_state_of_the_epoch_before(class_folder, tmp_path, run_cli,
                                                                                 monkeypatch, failure, code, words):
    """The best model was renamed into place before last.safetensors was written: a full disk or a stop while it
    was written left model.safetensors of epoch 2 beside a state whose best epoch is 1."""
    import ganfp.checkpoint

    args = ["train-stage", "--data", class_folder, "--model", "conv5", "--image-size", "16", "--batch-size", "8",
            "--epochs", "3", "--lr", "0.01", "--data-root", tmp_path / "root", "--device", "cpu"]
    assert run_cli(*args, "--out", tmp_path / "full")[0] == 0
    full = json.loads((tmp_path / "full" / "meta.json").read_text())["metrics"]
    assert full["best_epoch"] >= 2, "epoch 2 must improve for the best model to be written with its state"
    real_save, writes = ganfp.checkpoint.save_file, []

    def fail_at_second_resume_write(tensors, path, metadata=None):
        writes.append(path)
        if sum("last.safetensors" in w for w in writes) == 2:
            raise failure
        real_save(tensors, path, metadata=metadata)

    out = tmp_path / "s"
    monkeypatch.setattr(ganfp.checkpoint, "save_file", fail_at_second_resume_write)
    got, _, err = run_cli(*args, "--out", out)
    monkeypatch.undo()
    line = " ".join(err.split())
    assert got == code and words in line and f"last good checkpoint is {out / 'last.safetensors'}" in line, err
    state = read_safetensors(out / "last.safetensors", tensors=False)[1]["state"]
    assert state["epoch"] == 1 and read_safetensors(out / "model.safetensors")[1]["epoch"] == state["best_epoch"]
    assert run_cli(*args, "--out", out, "--resume")[0] == 0
    done, whole = (read_safetensors(d / "model.safetensors")[0] for d in (out, tmp_path / "full"))
    assert all(torch.equal(done[k], whole[k]) for k in whole)
    assert (out / "history.csv").read_text() == (tmp_path / "full" / "history.csv").read_text()


def test_a_full_disk_while_meta_json_is_written_says_that_resume_finishes_the_stage(class_folder, tmp_path, run_cli,
                                                                                     monkeypatch):
    """The line named only meta.json: nothing said that last.safetensors was kept and --resume finishes the stage."""
    import ganfp.train
    from ganfp.fileio import write_failure

    def full_disk(path, obj):
        raise write_failure(Path(path), OSError(errno.ENOSPC, "No space left on device"))

    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "2", "--data-root", tmp_path / "root"]
    monkeypatch.setattr(ganfp.train, "write_json", full_disk)
    code, _, err = run_cli(*args)
    monkeypatch.undo()
    assert code == 1 and "No space left on device" in err and "plus --resume" in " ".join(err.split()), err
    code, _, err = run_cli(*args, "--resume")
    assert code == 0 and json.loads((out / "meta.json").read_text())["metrics"]["epochs_run"] == 2, err


@pytest.mark.parametrize("edit", [lambda m: m.pop("metrics"), lambda m: m["metrics"].pop("best_epoch"),
                                  lambda m: m.update(metrics="x")], ids=["no-metrics", "no-best-epoch", "not-a-table"])
def test_a_finished_stage_whose_metrics_cannot_be_read_is_refused_in_one_line(class_folder, tmp_path, run_cli, edit):
    """--resume over a finished stage whose meta.json lacked its metrics (edited, or damaged) was a KeyError or
    TypeError traceback."""
    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "1", "--data-root", tmp_path / "root"]
    assert run_cli(*args)[0] == 0
    meta = json.loads((out / "meta.json").read_text())
    edit(meta)
    (out / "meta.json").write_text(json.dumps(meta))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run_cli(*args, "--resume")
    line = " ".join(err.split())
    assert code == 2 and "meta.json: says stage s finished, but its metrics cannot be read" in line, err
    assert "train-stage --force" in line and {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_files_of_the_users_own_are_not_trained_over_unasked(class_folder, tmp_path, run_cli):
    """--out named a folder holding a model.safetensors (or meta.json, history.csv) that no ganfp stage wrote,
    e.g. the very weights given to --init: training replaced it without a word."""
    out = tmp_path / "weights"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "1", "--data-root", tmp_path / "root"]
    assert run_cli(*args)[0] == 0
    (out / "meta.json").unlink()  # a model.safetensors alone: the user's own weights file
    (out / "history.csv").unlink()
    own = (out / "model.safetensors").read_bytes()
    code, _, err = run_cli(*args, "--init", out / "model.safetensors")
    assert code == 2 and "holds model.safetensors but no stage that ganfp finished or interrupted" in err, err
    assert (out / "model.safetensors").read_bytes() == own
    assert run_cli(*args, "--force")[0] == 0


def test_resume_refuses_a_finished_stage_whose_images_changed(class_folder, tmp_path, run_cli):
    """--resume keeps a finished stage; one trained on other images than the dataset holds now is not the result."""
    from PIL import Image

    out = tmp_path / "s"
    args = ["train-stage", "--data", class_folder, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "1", "--data-root", tmp_path / "root"]
    assert run_cli(*args)[0] == 0
    code, _, err = run_cli(*args, "--resume")
    assert code == 0, err  # the same images: kept
    Image.fromarray(np.full((32, 32), 7, dtype=np.uint8)).save(class_folder / "a" / "a999.png")  # one image more
    code, _, err = run_cli(*args, "--resume")
    assert code == 2 and "finished on other images" in err and "--force" in err


def test_the_dataset_fingerprint_follows_what_the_stage_trains_on(tmp_path):
    """Files, labels, groups and fixed splits; the generated images only for a pseudo-label source that reads them."""
    from ganfp.data.manifest import Item, Manifest
    from ganfp.train import dataset_fingerprint

    write_class_folder(tmp_path / "gen", 2, 8)
    real = [str(write_class_folder(tmp_path / "real", 2, 8) / "a" / f"a00{i}.png") for i in range(2)]
    manifest = Manifest("x", ["not_used", "used"], [Item(p, label=i) for i, p in enumerate(real)],
                        info={"generated": str(tmp_path / "gen")})
    knn, own = StageConfig(pseudo_labels="knn"), StageConfig(pseudo_labels="self")
    before = {cfg.pseudo_labels: dataset_fingerprint(cfg, manifest) for cfg in (knn, own)}
    assert dataset_fingerprint(knn, manifest.with_labels([1, 0])) != before["knn"]
    regrouped = dataclasses.replace(manifest, items=[dataclasses.replace(it, group="p1") for it in manifest.items])
    assert dataset_fingerprint(own, regrouped) != before["self"]
    (tmp_path / "gen" / "b" / "b000.png").unlink()
    assert dataset_fingerprint(knn, manifest) != before["knn"] and dataset_fingerprint(own, manifest) == before["self"]


def test_a_stage_is_not_current_once_the_stage_it_started_from_is_retrained(class_folder, tmp_path, run_cli):
    tiny = ["--model", "conv5", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
            "--data-root", tmp_path / "root"]
    first = ["train-stage", "--data", class_folder, "--out", tmp_path / "s1", *tiny]
    second = ["train-stage", "--data", class_folder, "--out", tmp_path / "s2", "--init", tmp_path / "s1", *tiny]
    assert run_cli(*first)[0] == 0 and run_cli(*second)[0] == 0
    code, stdout, _ = run_cli(*second, "--resume")
    assert code == 0 and "skipped" in stdout
    assert run_cli(*first, "--seed", "1", "--force")[0] == 0  # s1 retrained in place
    code, _, err = run_cli(*second, "--resume")  # s2 was trained from the old s1: not reported as finished
    assert code == 2 and "the --init it started from has changed since" in err


def test_a_finished_stages_model_file_changed_since_is_refused_not_loaded(class_folder, tmp_path, run_cli):
    """Nothing tied meta.json to the model file: one copied in from another run, or with flipped bits (it still
    loads), was kept by --resume and loaded by --init and classify as the stage's result. meta.json records the
    file's SHA-256; a file alone (no meta.json beside it) and an older meta.json without one load as before."""
    tiny = ["--model", "conv5", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
            "--data-root", tmp_path / "root"]
    out, file = tmp_path / "s1", tmp_path / "s1" / "model.safetensors"
    first = ["train-stage", "--data", class_folder, "--out", out, *tiny]
    assert run_cli(*first)[0] == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["weights_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    load_checkpoint(out)
    flip_tensor_byte(file)
    damaged = file.read_bytes()
    words = (f"{file}: does not match the weights_sha256 in its meta.json (replaced or corrupted after the stage "
             "finished)")
    for given in (out, file):
        with pytest.raises(InputError, match=re.escape(f"{words}; train the stage again (--force)")):
            load_checkpoint(given)
    for args in (first + ["--resume"], ["train-stage", "--data", class_folder, "--out", tmp_path / "s2", "--init",
                                        out, *tiny]):
        code, stdout, err = run_cli(*args)
        errors = [line for line in err.splitlines() if "Traceback" in line or line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and words in errors[0] and "--force" in errors[0], err
    assert file.read_bytes() == damaged and not (tmp_path / "s2" / "meta.json").exists()  # refused, not built on
    (tmp_path / "lone.safetensors").write_bytes(damaged)
    load_checkpoint(tmp_path / "lone.safetensors")  # no meta.json beside it: nothing to check it against
    del meta["weights_sha256"]
    (out / "meta.json").write_text(json.dumps(meta))  # as an older ganfp wrote it
    load_checkpoint(out)
    code, stdout, err = run_cli(*first, "--resume")
    assert code == 0 and "skipped" in stdout, err


def test_an_init_stage_whose_model_file_changed_is_refused_before_any_image_is_read(class_folder, tmp_path, run_cli,
                                                                                    monkeypatch):
    """--init's model file was checked against its meta.json only when loaded: after the stage's images were decoded,
    minutes on a big dataset. The check before work hashes it, once a run (each validation of the settings asks)."""
    import ganfp.checkpoint
    import ganfp.train

    tiny = ["--model", "conv5", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
            "--data-root", tmp_path / "root"]
    out, file = tmp_path / "s1", tmp_path / "s1" / "model.safetensors"
    assert run_cli("train-stage", "--data", class_folder, "--out", out, *tiny)[0] == 0
    read, hashed = [], []
    load_images, file_sha256 = ganfp.train.load_images, ganfp.checkpoint.file_sha256
    monkeypatch.setattr(ganfp.train, "load_images", lambda *a, **kw: read.append(a) or load_images(*a, **kw))
    monkeypatch.setattr(ganfp.checkpoint, "file_sha256", lambda p: hashed.append(Path(p)) or file_sha256(p))
    assert run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s2", "--init", out, *tiny)[0] == 0
    assert read and hashed.count(file) == 2  # once before work, once as loaded
    flip_tensor_byte(file)
    read.clear()
    words = (f"{file}: does not match the weights_sha256 in its meta.json (replaced or corrupted after the stage "
             "finished); train the stage again (--force) or restore the file")
    for given, said in ((out, f"--init: {words}"), (file, f"--init {words}")):  # the file given leads its problem
        code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s3", "--init", given, *tiny)
        assert code == 2 and err.strip().splitlines() == [f"error: {said}"], err
    assert read == [] and not (tmp_path / "s3").exists()  # refused before its images were read or --out touched


def test_the_decode_line_says_whether_the_images_were_decoded_or_read_from_the_cache(class_folder, tmp_path):
    from ganfp.train import load_stage_images

    cfg = StageConfig(name="s", dataset=str(class_folder), **TINY)
    said = []

    def observer(event, data):
        if event == "message":
            said.append(data["text"])

    for _ in range(2):
        load_stage_images(cfg, tmp_path / "root", observer)
    assert [t.split("px, ")[1] for t in said] == ["decoded and cached for the next run", "read from the decode cache"]


@pytest.mark.skipif(sys.platform != "linux", reason="a file name in Latin-1 bytes: Linux file systems keep them")
def test_a_class_folder_named_in_latin1_is_refused_by_name_before_decoding(tmp_path, run_cli):
    """`caf\\xe9/` went into meta.json and the checkpoint as the surrogate escape "caf\\udce9"."""
    data = write_class_folder(tmp_path / "ds", 6, 16)
    os.rename(data / "a", os.fsencode(data) + b"/caf\xe9")
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "s", "--model", "conv5",
                           "--image-size", "16", "--data-root", tmp_path / "root", "--device", "cpu")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{data}/caf\\xe9: class folder name is not UTF-8" in " ".join(err.split()) and "rename" in err
    assert not (tmp_path / "s").exists() and not (tmp_path / "root").exists()  # nothing written, nothing decoded


@pytest.mark.parametrize("out, changes, options, words", [
    ("s", {"pseudo_k": 3}, {}, "--pseudo-k 3: only used with --pseudo-labels"),
    ("ds/run", {}, {}, "is inside the dataset --data"),
    ("s", {}, {"force": True, "resume": True}, "--force and --resume: choose one"),
    ("afile/s", {}, {}, "is a file, not a folder"),
])
def test_a_python_caller_gets_the_checks_of_the_train_stage_command(tmp_path, out, changes, options, words):
    """They lived in the command, so `train_stage` from Python trained an --out inside its data, or ignored a
    setting, where `ganfp train-stage` refused."""
    data = write_class_folder(tmp_path / "ds", 6, 16)
    (tmp_path / "afile").write_text("not a folder")
    cfg = StageConfig(name="s", dataset=str(data), device="cpu", **TINY, **changes)
    with pytest.raises(InputError, match=words):
        train_stage(cfg, tmp_path / out, data_root=tmp_path / "root", **options)
    assert not (tmp_path / "root").exists() and not (tmp_path / "s").exists() and not (data / "run").exists()


@pytest.mark.parametrize("dataset, extra, out", [
    ("covid-ctset:real-vs-generated", {"generated": "{gen}"}, "gen/run"),
    ("covid-ctset:real-vs-generated={gen}", {}, "gen/run"),
    ("covid-ctset", {}, "root/covid-ctset/run"),
    ("demo:covid", {}, "root/demo/covid/run"),
])
def test_an_out_inside_a_dataset_specs_folders_is_refused(tmp_path, dataset, extra, out):
    """Only a folder spec's folder was checked: a stage went into covid-ctset's synthetic slices (the spec's
    FOLDER, or the adapter option generated=FOLDER of a stage built from Python or a chain file), the fetched copy or
    a demo part's folder, and its files sat among the data."""
    gen = tmp_path / "gen"
    gen.mkdir()
    dataset, extra = dataset.format(gen=gen), {key: value.format(gen=gen) for key, value in extra.items()}
    cfg = StageConfig(name="s", dataset=dataset, extra=extra, device="cpu", **TINY)
    with pytest.raises(InputError, match=r"--out .*run: is inside the dataset --data .* \(its folder "):
        train_stage(cfg, tmp_path / out, data_root=tmp_path / "root")
    assert not (tmp_path / out).exists() and not (tmp_path / "root").exists() and not list(gen.iterdir())


def test_a_python_caller_of_run_chain_gets_the_runs_dir_check(tmp_path):
    from ganfp.chain import load_chain, run_chain

    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(InputError, match="--runs-dir .*runs: is a file, not a folder"):
        run_chain(load_chain("demo"), "conv5", tmp_path / "runs", tmp_path / "root", overrides={"epochs": 1})
    assert not (tmp_path / "root").exists()


def test_a_resume_with_more_epochs_matches_a_run_started_with_them(class_folder, tmp_path, run_cli, monkeypatch):
    """A run going well can be extended: refused as a changed setting, the user had to start over and lose it."""
    args = ["train-stage", "--data", class_folder, "--model", "conv5", "--image-size", "16", "--batch-size", "8",
            "--lr", "0.01", "--data-root", tmp_path / "root", "--device", "cpu"]
    out, full = tmp_path / "s", tmp_path / "full" / "s"  # one name: the stage is named by its folder
    _interrupt_in_epoch_2(run_cli, [*args, "--out", out, "--epochs", "3"], monkeypatch, stop_at=3)
    code, _, err = run_cli(*args, "--out", out, "--epochs", "4")
    assert code == 2 and "(epochs 3 -> 4); add --resume to continue it with them" in err
    code, _, err = run_cli(*args, "--out", out, "--epochs", "1", "--resume")
    assert code == 2 and "has done 2 epochs, more than --epochs 1; give --epochs 2 or more" in err, err
    code, _, err = run_cli(*args, "--out", out, "--epochs", "4", "--patience", "12", "--resume")
    assert code == 0 and "resuming s after epoch 2 with epochs 3 -> 4, patience 10 -> 12" in err, err
    assert run_cli(*args, "--out", full, "--epochs", "4", "--patience", "12")[0] == 0
    assert (out / "history.csv").read_text() == (full / "history.csv").read_text()
    mine, ref_tensors = (read_safetensors(d / "model.safetensors")[0] for d in (out, full))
    assert mine.keys() == ref_tensors.keys() and all(torch.equal(t, ref_tensors[k]) for k, t in mine.items())
    meta, ref = (json.loads((d / "meta.json").read_text()) for d in (out, full))
    assert meta["digest"] == ref["digest"] and meta["config"] == ref["config"]
    assert meta["extended"] == [{"after_epoch": 2, "epochs": [3, 4], "patience": [10, 12]}] and "extended" not in ref
    code, _, err = run_cli(*args, "--out", out, "--epochs", "6", "--patience", "12", "--resume")
    assert code == 2 and "finished after 4 epochs (it ran all its epochs)" in err and f"--init {out}" in err, err


def test_a_resume_refuses_a_patience_the_run_already_ran_out_of():
    """Continued with it, the run would differ from one that had it from the start, which stopped earlier."""
    from ganfp.stage_folder import extension_problem

    state = {"epoch": 4, "history": [{"val_loss": v} for v in (1.0, 2.0, 3.0, 0.5)]}
    assert "went 2 epochs without a lower validation loss before epoch 4" in extension_problem(
        state, StageConfig(epochs=5, patience=2))
    assert extension_problem(state, StageConfig(epochs=5, patience=3)) is None
    assert extension_problem(state, StageConfig(epochs=4, patience=3)) is None  # it finishes at once, as that run
    assert "more than --epochs 3" in extension_problem(state, StageConfig(epochs=3, patience=3))


def test_train_stage_keeps_an_early_stopped_stage_given_more_epochs(tmp_path, run_cli):
    """More --epochs over a stage that early stopping ended were refused as other settings (or trained again with
    --force): it would stop after the same epoch with the same weights, so --resume keeps it, saying why."""
    data = write_class_folder(tmp_path / "ds", 12, 16, seed=1)
    out = tmp_path / "s"
    args = ["train-stage", "--data", data, "--out", out, "--model", "conv5", "--image-size", "16", "--batch-size",
            "8", "--lr", "0.1", "--patience", "1", "--data-root", tmp_path / "root", "--device", "cpu"]
    assert run_cli(*args, "--epochs", "4")[0] == 0
    metrics = json.loads((out / "meta.json").read_text())["metrics"]
    assert (metrics["epochs_run"], metrics["best_epoch"]) == (3, 2)  # it did stop early
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    kept = "early stopping ended it after epoch 3 (best epoch 2, patience 1), so epochs 4 -> 10 change nothing"
    code, _, err = run_cli(*args, "--epochs", "10")
    assert code == 2 and kept in " ".join(err.split()) and "add --resume to keep it" in err, err
    code, stdout, err = run_cli(*args, "--epochs", "10", "--resume")
    assert code == 0 and "skipped" in stdout and f"kept s in {out}: {kept}" in " ".join(err.split()), err
    for extra, words in [(("--epochs", "2"), "other settings (epochs 4 -> 2)"),  # it would stop after epoch 2
                         (("--epochs", "10", "--patience", "2"), "other settings (epochs 4 -> 10, patience 1 -> 2)")]:
        code, _, err = run_cli(*args, *extra, "--resume")
        assert code == 2 and words in " ".join(err.split()), err
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == files
    assert run_cli(*args, "--epochs", "3", "--out", tmp_path / "ref" / "s")[0] == 0  # stops at its max, the same
    assert (out / "history.csv").read_text() == (tmp_path / "ref" / "s" / "history.csv").read_text()


def test_an_epoch_is_saved_when_it_improved_or_ends_the_stage_else_only_within_the_save_budget():
    from ganfp.train import SAVE_ALLOWANCE, SAVE_SHARE, saves_epoch

    budget = SAVE_SHARE * 100 + SAVE_ALLOWANCE  # seconds of saves allowed 100 s after the epochs began
    assert saves_epoch(False, False, budget, 100)
    assert not saves_epoch(False, False, budget + 0.01, 100)
    assert saves_epoch(True, False, budget + 0.01, 100) and saves_epoch(False, True, budget + 0.01, 100)
    assert saves_epoch(False, False, budget + 0.01, 200)  # more epochs since: within the budget again


def _count_saves(monkeypatch) -> list[int]:
    """The epochs `save_epoch` saves from now on, listed as it is called."""
    import ganfp.train

    real, saved = ganfp.train.save_epoch, []

    def save_epoch(fit, state, out_dir, best_meta):
        saved.append(state.epoch)
        real(fit, state, out_dir, best_meta)

    monkeypatch.setattr(ganfp.train, "save_epoch", save_epoch)
    return saved


def _no_save_budget(monkeypatch) -> None:
    """Saves over budget from the first one on: an epoch that did not improve and is not the last is not saved."""
    monkeypatch.setattr("ganfp.train.SAVE_SHARE", 0.0)
    monkeypatch.setattr("ganfp.train.SAVE_ALLOWANCE", 0.0)


def test_epochs_over_the_save_budget_are_not_saved_and_a_resume_still_ends_as_the_run_saving_every_epoch(
        tmp_path, run_cli, monkeypatch):
    """vgg11's resume state is 1.03 GB, written after every epoch: on a GPU most of a stage's time. An epoch that did
    not improve is saved only within a budget; the stage's files, and a resume from an earlier epoch, are unchanged."""
    data = write_class_folder(tmp_path / "ds", 12, 16, seed=1)  # lr 0.1: epochs 1, 2 and 6 of 8 improve
    args = ["train-stage", "--data", data, "--model", "conv5", "--image-size", "16", "--batch-size", "8", "--lr",
            "0.1", "--epochs", "8", "--data-root", tmp_path / "root", "--device", "cpu"]
    out, full, killed = tmp_path / "s", tmp_path / "full" / "s", tmp_path / "killed" / "s"  # one name: by folder
    every = _count_saves(monkeypatch)
    assert run_cli(*args, "--out", full)[0] == 0
    assert every == list(range(1, 9)), "a tiny stage's saves are within the budget: every epoch is saved"
    _no_save_budget(monkeypatch)
    saved = _count_saves(monkeypatch)
    assert run_cli(*args, "--out", out)[0] == 0
    losses = [row["val_loss"] for row in _history_rows(full)]
    assert [i for i, loss in enumerate(losses, 1) if loss < min(losses[:i - 1], default=np.inf)] == [1, 2, 6]
    assert saved == [1, 2, 6, 8]  # the improving epochs and the last
    _assert_same_stage(out, full)
    saved.clear()
    assert run_cli(*args, "--out", tmp_path / "early", "--patience", "2")[0] == 0
    assert saved == [1, 2, 4]  # the last is the epoch early stopping ends after
    monkeypatch.undo()
    _no_save_budget(monkeypatch)
    err = _interrupt_in_epoch_2(run_cli, [*args, "--out", killed], monkeypatch, stop_at=5)  # epochs 3, 4 not saved
    assert read_safetensors(killed / "last.safetensors", tensors=False)[1]["state"]["epoch"] == 2
    assert (f"interrupted in epoch 5; the last good checkpoint is {killed / 'last.safetensors'}, saved after epoch 2; "
            "continue with the same command plus --resume") in " ".join(err.split()), err  # not "after epoch 4"
    _no_save_budget(monkeypatch)
    code, _, err = run_cli(*args, "--out", killed, "--resume")
    assert code == 0 and "resuming s after epoch 2" in err, err
    _assert_same_stage(killed, full)


def _history_rows(out: Path) -> list[dict]:
    header, *lines = (out / "history.csv").read_text().splitlines()
    return [dict(zip(header.split(","), map(float, line.split(",")))) for line in lines]
