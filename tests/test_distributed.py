"""Multi-process training (torchrun + DDP, gloo on CPU) computes what one process computes.

The end-to-end test uses timm's tiny `test_vit`, which has no batch norm: with it two ranks of
half a batch each must reproduce the single-process run to float rounding (1e-4). Models with
batch norm (conv5, resnet18) normalise each rank's half batch with its own statistics, so their
results differ from one process by more than rounding; the sharding logic they share is checked
below without a model.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.images import write_class_folder

from ganfp import distributed
from ganfp.checkpoint import read_safetensors
from ganfp.data.augment import BatchAugment
from ganfp.errors import InputError
from ganfp.train import StageConfig, even_batches, rank_shard, run_stage


TOLERANCE = 1e-4  # float rounding: two half-batch gradients averaged vs one full-batch gradient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def history(path: Path) -> list[dict]:
    with open(path / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def as_world(monkeypatch, world: int, rank: int) -> None:
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    monkeypatch.setattr(distributed, "rank", lambda: rank)


def test_two_processes_train_like_one_and_write_one_set_of_files(tmp_path):
    if not __import__("timm").is_model("test_vit"):
        pytest.skip("this timm has no test_vit (a tiny ViT without batch norm)")
    data = write_class_folder(tmp_path / "ds", n_per_class=20, size=16)
    settings = dict(model="test_vit", image_size=16, batch_size=8, epochs=2, lr=0.01)
    run_stage(StageConfig(name="s", dataset=str(data), device="cpu", **settings), tmp_path / "one", data_root=tmp_path / "root")

    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "ganfp", "train-stage", "--data", str(data), "--out", str(out),
           "--name", "s", "--device", "cpu", "--data-root", str(tmp_path / "root"), "--json",
           *[f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "meta.json", "model.safetensors"]
    assert json.loads((out / "meta.json").read_text())["world_size"] == 2
    assert json.loads((tmp_path / "one" / "meta.json").read_text())["world_size"] == 1
    assert len(json.loads(done.stdout)) == 1  # one summary: only rank 0 prints
    assert done.stderr.count("s epoch   1 ") == 1  # and only rank 0 reports progress

    one, two = history(tmp_path / "one"), history(out)
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        assert a == pytest.approx(b, abs=TOLERANCE)
    weights_one, weights_two = read_safetensors(tmp_path / "one" / "model.safetensors")[0], read_safetensors(out / "model.safetensors")[0]
    assert weights_one.keys() == weights_two.keys()
    for name, w in weights_one.items():
        assert torch.allclose(w, weights_two[name], rtol=TOLERANCE, atol=TOLERANCE), name


@pytest.mark.parametrize("n", [24, 25, 26, 27, 29, 31])
def test_ranks_get_equal_shares_of_every_global_batch(monkeypatch, n):
    batch, world = 8, 2
    as_world(monkeypatch, world, 0)
    order = even_batches(np.random.default_rng(n).permutation(n), batch)
    shares = []
    for rank in range(world):
        as_world(monkeypatch, world, rank)
        share = rank_shard(order, batch)
        shares.append([share[i : i + batch // world] for i in range(0, len(share), batch // world)])
    assert len(shares[0]) == len(shares[1])  # the same number of steps, or DDP would hang
    for a, b in zip(*shares):
        assert len(a) == len(b) >= 2  # equal halves (a mean of means is the global mean), never one image
    global_batches = [np.sort(order[i : i + batch]) for i in range(0, len(order), batch)]
    assert all(np.array_equal(np.sort(np.concatenate([a, b])), g) for a, b, g in zip(*shares, global_batches))
    assert len(order) >= n - 3  # only the last global batch is ever cut


def test_one_process_drops_only_a_last_batch_of_one():
    assert len(even_batches(np.arange(25), 8)) == 24
    assert len(even_batches(np.arange(26), 8)) == 26
    assert len(even_batches(np.arange(27), 8)) == 27


def test_ranks_augment_their_share_as_one_process_would():
    x = torch.randn(6, 1, 12, 12)
    whole = BatchAugment(seed=5)(x)
    for rank in range(2):
        share = BatchAugment(seed=5, rank=rank, world=2)(x[rank::2])
        assert torch.equal(share, whole[rank::2])


def test_batch_size_must_split_evenly_over_the_processes(monkeypatch, class_folder, tmp_path):
    as_world(monkeypatch, 2, 0)
    with pytest.raises(InputError, match=r"batch_size: not a multiple of the 2 processes.*\(e\.g\. 6 or 8\), got 7"):
        run_stage(StageConfig(dataset=str(class_folder), model="conv5", image_size=16, batch_size=7, device="cpu"),
                  tmp_path / "s", data_root=tmp_path / "root")
    assert not (tmp_path / "s").exists()


def torchrun_env(monkeypatch, world: int, local: int, gpus: int | None = None) -> list:
    """The environment torchrun gives a process, on a machine with `gpus` CUDA devices (None: no CUDA); returns
    the list that records every GPU chosen or process group joined, which a refused process must leave empty."""
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("LOCAL_RANK", str(local))
    monkeypatch.setenv("RANK", str(local))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus is not None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus or 0)
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: calls.append(("join", kw["backend"])))
    monkeypatch.setattr(distributed.atexit, "register", lambda fn: None)
    return calls


def test_a_process_beyond_the_gpus_is_refused_before_its_images_are_decoded(monkeypatch, class_folder, tmp_path):
    calls = torchrun_env(monkeypatch, world=4, local=2, gpus=2)
    cfg = StageConfig(name="s", dataset=str(class_folder), model="conv5", image_size=16, batch_size=8)
    with pytest.raises(InputError, match=r"LOCAL_RANK=2, but the machine shows 2 CUDA devices.*nproc_per_node=2"):
        run_stage(cfg, tmp_path / "s", data_root=tmp_path / "root")
    assert calls == []
    assert not (tmp_path / "s").exists() and not (tmp_path / "root").exists()


def test_a_gpu_named_under_torchrun_must_be_the_process_own(monkeypatch):
    torchrun_env(monkeypatch, world=2, local=0, gpus=2)
    assert distributed.process_device_problem("cuda:0") is None
    assert "uses the GPU of its LOCAL_RANK (this one: cuda:0)" in distributed.process_device_problem("cuda:1")
    with pytest.raises(InputError, match=r"stage s: device: under torchrun"):
        StageConfig(name="s", dataset="demo:casia", model="conv5", device="cuda:1").validate(check_init=False)


def test_setup_returns_the_process_own_gpu_also_once_the_group_is_joined(monkeypatch):
    calls = torchrun_env(monkeypatch, world=2, local=1, gpus=2)
    assert distributed.setup("auto") == "cuda:1"
    assert calls == [("set_device", 1), ("join", "nccl")]
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert distributed.setup("auto") == distributed.setup("cuda") == "cuda:1"  # a chain's later stage
    assert len(calls) == 2  # joined once


def test_processes_without_cuda_train_on_the_cpu(monkeypatch):
    calls = torchrun_env(monkeypatch, world=2, local=1)
    assert distributed.process_device_problem("auto") is None
    assert distributed.setup("auto") == "cpu"
    assert calls == [("join", "gloo")]


def test_a_chain_stage_whose_batch_cannot_be_shared_is_refused_before_the_first_stage(monkeypatch, tmp_path):
    from ganfp.chain import load_chain, stage_configs

    torchrun_env(monkeypatch, world=4, local=0)
    chain = tmp_path / "c.toml"
    chain.write_text('[[stages]]\ndataset = "demo:casia"\nbatch_size = 8\n\n'
                     '[[stages]]\ndataset = "demo:covid-ctset"\nbatch_size = 2\n')
    with pytest.raises(InputError, match=r"c.toml:7: stage 2 batch_size: smaller than the 4 processes.*, got 2"):
        stage_configs(load_chain(str(chain)), "conv5")
    with pytest.raises(InputError, match=r"--batch-size: not a multiple of the 4 processes"):
        stage_configs(load_chain(str(chain)), "conv5", {"batch_size": 10})


def test_mps_under_torchrun_is_refused_not_swapped_for_the_cpu(monkeypatch):
    """Each process fell back to the CPU without a word, where the user had asked for the Apple GPU."""
    torchrun_env(monkeypatch, world=2, local=0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(InputError, match=r"stage s: device: under torchrun ganfp trains on CUDA GPUs .* or the CPU"):
        StageConfig(name="s", dataset="demo:casia", model="conv5", device="mps").validate(check_init=False)


def test_a_rank_that_is_no_number_is_named(monkeypatch):
    """A hand-set RANK ended the chain's run-folder lock in a ValueError traceback."""
    monkeypatch.setenv("RANK", "first")
    with pytest.raises(InputError, match=r"RANK='first': not a whole number"):
        distributed.launched_as_main()


def test_a_world_size_that_is_no_number_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match=r"WORLD_SIZE='two': not a whole number"):
        StageConfig(name="s", dataset="demo:casia", model="conv5").validate(check_init=False)


def test_a_training_split_smaller_than_the_processes_is_refused_before_decoding(monkeypatch, tmp_path):
    """Two training images for four processes: every batch was cut to nothing, no step trained, and the stage
    failed on a NaN validation loss after the decoding."""
    calls = torchrun_env(monkeypatch, world=4, local=0)
    data = write_class_folder(tmp_path / "ds", n_per_class=2, size=16)
    cfg = StageConfig(name="s", dataset=str(data), model="conv5", image_size=16, batch_size=8, device="cpu")
    with pytest.raises(InputError, match=r"ds: 2 training images for 4 processes \(torchrun\), so some would train"):
        run_stage(cfg, tmp_path / "s", data_root=tmp_path / "root")
    assert calls == [("join", "gloo")] and not (tmp_path / "s").exists()
    assert not [p for p in tmp_path.joinpath("root").rglob("*") if p.is_file()]  # no image decoded, none cached
