"""The benchmark scripts' own logic, on made-up inputs: a benchmark that crashes after minutes of training is a bug."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess

import pytest
from helpers.docs import ROOT

from ganfp.models import image_size_problem, list_models


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


def gpu_all_steps() -> dict[str, list[str]]:
    """name -> argv (script first) of every `step` line in gpu_all.sh, continuation lines joined."""
    text = (ROOT / "benchmarks" / "gpu_all.sh").read_text().replace("\\\n", " ")
    steps = {}
    for line in text.splitlines():
        if line.startswith("step "):
            _, name, _limit, *argv = shlex.split(line)
            steps[name] = argv
    return steps


def gpu_all_small() -> dict[str, list[str]]:
    """name -> the options a rehearsal appends to that step (SMALL, with $TINY expanded)."""
    text = (ROOT / "benchmarks" / "gpu_all.sh").read_text()
    tiny = re.search(r'^TINY="([^"]*)"', text, re.M).group(1)
    block = re.search(r"^declare -A SMALL=\((.*?)^\)", text, re.S | re.M).group(1)
    return {name: shlex.split(opts.replace("$TINY", tiny)) for name, opts in re.findall(r'\[(\w+)\]="([^"]*)"', block)}


def test_gpu_all_names_every_step_once_with_a_rehearsal_entry():
    text = (ROOT / "benchmarks" / "gpu_all.sh").read_text()
    listed = re.search(r'^STEPS="([^"]*)"', text, re.M).group(1).split()
    assert sorted(listed) == sorted(gpu_all_steps()) == sorted(gpu_all_small())


@pytest.mark.parametrize("name", sorted(gpu_all_steps()))
def test_gpu_all_step_options_parse_for_the_real_run_and_the_rehearsal(name):
    """A renamed option or a misspelt value must fail here, not a minute into a GPU lease (argparse exits 2)."""
    script, *argv = gpu_all_steps()[name]
    path = ROOT / script
    assert path.parent == ROOT / "benchmarks" and path.is_file(), script
    parse_args = load(path.stem).parse_args
    real, rehearsal = parse_args(argv), parse_args(argv + gpu_all_small()[name])
    assert (real.device, rehearsal.device) == ("cuda", "cpu")
    for args in (real, rehearsal):
        if hasattr(args, "model"):  # a model name is checked only when the model is built: minutes in
            assert args.model in list_models() and image_size_problem(args.model, args.image_size) is None


def test_knn_scale_refuses_a_malformed_case_before_running_any():
    knn_scale = load("knn_scale")
    assert knn_scale.parse_args(["--cases", "10x20x4,5x6x7"]).cases == ["10x20x4", "5x6x7"]
    for bad in ("10x20x4,1e6x3x4", "10x20", "0x5x5", "10x20x4,"):
        with pytest.raises(SystemExit):
            knn_scale.parse_args(["--cases", bad])


def test_membership_refuses_a_run_with_nothing_to_do():
    with pytest.raises(SystemExit):
        load("membership").parse_args(["--device", "cpu"])


def test_membership_ceiling_fusion_finds_only_what_the_scores_carry():
    """The labelled fusion is the ceiling quoted for the recipes: it must read a column that carries the labels, and
    nothing from noise (a leak of the held-out folds' labels would read noise above chance)."""
    import numpy as np

    ceiling = load("membership_ceiling")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    noise = rng.normal(size=(80, 6))
    assert min(ceiling.supervised_fusion(y, noise + np.c_[2.0 * y, np.zeros((80, 5))], repeats=1, folds=5)) > 0.8
    assert abs(np.mean(ceiling.supervised_fusion(y, noise, repeats=2, folds=5)) - 0.5) < 0.15


def test_membership_ceiling_inversion_finds_an_image_the_decoder_makes():
    """Latent inversion: an image the decoder draws is found (distance near 0), one it cannot draw is not."""
    import torch
    from torch import nn

    from ganfp.data.zoo.nets import DecoderSampler

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4)))
    drawn = net(torch.tensor([[0.5, -1.0]])).detach()
    away = torch.rand(1, 1, 4, 4)
    distance = load("membership_ceiling").nearest_output(DecoderSampler(net, 2, 4), torch.cat([drawn, away]), 4, 300, 0)
    assert distance[0] < 0.02 < distance[1]


def run_gpu_all(tmp_path, exit_code: int, **env):
    """gpu_all.sh with a stand-in Python that records each step's argv and exits `exit_code` (the import check: 0)."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\n[ "$1" = -c ] && exit 0\necho "$@" >> "{tmp_path}/argv"\nexit {exit_code}\n')
    fake.chmod(0o755)
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_all.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": str(fake), "OUT": str(out), **env})
    return done, (tmp_path / "argv").read_text().splitlines(), (out / "summary.txt").read_text()


def test_gpu_all_rehearsal_appends_the_small_options_to_the_real_ones(tmp_path):
    done, argv, _ = run_gpu_all(tmp_path, 0, GPU_ALL_REHEARSE="1", GPU_ALL_ONLY="knn_cuda membership_timing")
    assert done.returncode == 0, done.stderr
    real, small = gpu_all_steps(), gpu_all_small()
    assert argv == [" ".join(real[n] + small[n]) for n in ("knn_cuda", "membership_timing")]


def test_gpu_all_fails_when_a_step_fails(tmp_path):
    done, _, summary = run_gpu_all(tmp_path, 3, GPU_ALL_REHEARSE="1", GPU_ALL_ONLY="knn_cuda")
    assert done.returncode == 1
    assert "knn_cuda: exit 3" in summary and "failed: knn_cuda" in summary


def test_gpu_all_refuses_a_full_run_into_an_earlier_runs_folder(tmp_path):
    """results.jsonl and summary.txt are appended to, so a second full run there mixed two runs' numbers."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").write_text('{"earlier": 1}\n')
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_all.sh")], capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path / "out"), "GPU_ALL_REHEARSE": "1"})
    assert done.returncode == 2 and "holds an earlier run's results" in done.stderr
    assert (tmp_path / "out" / "results.jsonl").read_text() == '{"earlier": 1}\n'
    rerun, _, _ = run_gpu_all(tmp_path, 0, GPU_ALL_REHEARSE="1", GPU_ALL_ONLY="knn_cuda")  # a rerun adds to it
    assert rerun.returncode == 0, rerun.stderr
