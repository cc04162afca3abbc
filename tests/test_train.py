"""The stage trainer: outputs, determinism, early stopping, resume after a kill, pseudo-labels."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganfp.checkpoint import load_checkpoint, read_safetensors
from ganfp.errors import InputError
from ganfp.chain import train_stage
from ganfp.train import StageConfig, run_stage

from conftest import write_class_folder

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


def test_resume_with_other_settings_is_refused(class_folder, tmp_path):
    out = tmp_path / "s"
    run_stage(StageConfig(dataset=str(class_folder), **{**TINY, "epochs": 1}), out, data_root=tmp_path / "root")
    (out / "meta.json").unlink()  # pretend it was interrupted: rebuild a resume file by a 1-epoch run
    from ganfp.checkpoint import save_resume
    from ganfp.models import create_model

    model = create_model("conv5", 2, 16)
    save_resume(out / "last.safetensors", model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), {"digest": "other"})
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


def test_ctrl_c_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path):
    data = write_class_folder(tmp_path / "ds", n_per_class=40, size=24)
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "ganfp", "train-stage", "--data", str(data), "--model", "conv5", "--image-size", "24",
           "--batch-size", "4", "--epochs", "50", "--data-root", str(tmp_path / "root"), "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "last.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "last good checkpoint" in err and "--resume" in err
    assert read_safetensors(out / "last.safetensors", tensors=False)[1]["state"]["epoch"] >= 1
