"""The benchmark scripts' own logic, on made-up inputs: a benchmark that crashes after minutes of training is a bug."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest
from helpers.docs import ROOT


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_chain_reads_the_pseudo_labelled_stage_as_agreement():
    stages = [{"stage": "gans-dev", "best_val_accuracy": 0.5},
              {"stage": "gans-test", "best_val_pseudo_agreement": 0.9, "val_labels": "pseudo:self"}]
    assert load("demo_chain").best_scores(stages) == {"best_val_accuracy": {"gans-dev": 0.5},
                                                      "best_val_pseudo_agreement": {"gans-test": 0.9}}


def test_knn_scale_refuses_a_malformed_case_before_running_any():
    knn_scale = load("knn_scale")
    assert knn_scale.parse_args(["--cases", "10x20x4,5x6x7"]).cases == ["10x20x4", "5x6x7"]
    for bad in ("10x20x4,1e6x3x4", "10x20", "0x5x5", "10x20x4,"):
        with pytest.raises(SystemExit):
            knn_scale.parse_args(["--cases", bad])


def test_membership_refuses_a_run_with_nothing_to_do():
    with pytest.raises(SystemExit):
        load("membership").parse_args(["--device", "cpu"])


def run_gpu_all(tmp_path, exit_code: int, **env):
    """gpu_all.sh with a stand-in Python that records each step's argv and exits `exit_code` (the import check: 0)."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\n[ "$1" = -c ] && exit 0\necho "$@" >> "{tmp_path}/argv"\nexit {exit_code}\n')
    fake.chmod(0o755)
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_all.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": str(fake), "OUT": str(out), **env})
    return done, (tmp_path / "argv").read_text().splitlines(), (out / "summary.txt").read_text()


def test_gpu_all_fails_when_a_step_fails(tmp_path):
    done, _, summary = run_gpu_all(tmp_path, 3, GPU_ALL_ONLY="knn_cuda")
    assert done.returncode == 1
    assert "knn_cuda: exit 3" in summary and "failed: knn_cuda" in summary
