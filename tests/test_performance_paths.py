"""The fast paths give the same results as the plain ones: a memory-mapped cache, batched inference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.images import write_class_folder, write_pngs

import ganfp.data.generated as generated_mod
import ganfp.device as device_mod
import ganfp.train as train_mod
from ganfp.data.adapters import load_manifest
from ganfp.data.cache import load_images
from ganfp.data.decode import image_header
from ganfp.data.generated import generated_manifest, image_headers
from ganfp.data.loader import iterate_batches, to_model_input
from ganfp.inference import embed, predict_proba
from ganfp.models import create_model
from ganfp.train import StageConfig, run_stage


SETTINGS = ["--model", "conv5", "--image-size", "16", "--batch-size", "8", "--epochs", "2", "--lr", "0.01", "--device", "cpu"]


def mapped_files(t: torch.Tensor) -> set[str]:
    """Files whose memory mapping holds the tensor's data (Linux /proc/self/maps)."""
    ptr, found = t.data_ptr(), set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        if lo <= ptr < hi and len(parts) == 6:
            found.add(parts[5].strip())
    return found


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc to see memory mappings")
def test_cache_over_the_budget_is_read_from_its_file_not_loaded(tmp_path):
    manifest = load_manifest(str(write_class_folder(tmp_path / "ds", 6, 16)), data_root=tmp_path)
    in_ram = load_images(manifest, 16, data_root=tmp_path)
    mapped = load_images(manifest, 16, data_root=tmp_path, memory_budget=in_ram.images.numel() - 1)
    assert mapped.memory_mapped and not in_ram.memory_mapped
    assert mapped_files(mapped.images) == {str(mapped.path)}  # the pixels live in the cache file's mapping
    assert str(in_ram.path) not in mapped_files(in_ram.images)
    order = np.random.default_rng(0).permutation(len(manifest))
    for (a, _), (b, _) in zip(iterate_batches(mapped.images, order, 5, torch.device("cpu")),
                              iterate_batches(in_ram.images, order, 5, torch.device("cpu"))):
        assert torch.equal(a, b)


def test_stage_trains_from_a_cache_over_the_memory_budget(tmp_path, run_cli, monkeypatch):
    data = write_class_folder(tmp_path / "ds", n_per_class=16, size=16)
    seen = []
    real_load = train_mod.load_images
    monkeypatch.setattr(train_mod, "load_images", lambda *a, **kw: seen.append(real_load(*a, **kw)) or seen[-1])
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "mapped", "--memory-budget", "0",
                           "--data-root", tmp_path / "root", *SETTINGS)
    assert code == 0, err
    assert seen[-1].memory_mapped and "memory-mapped" in err
    meta = json.loads((tmp_path / "mapped" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["config"]["memory_budget"] == 0

    run_stage(StageConfig(name="mapped", dataset=str(data), model="conv5", image_size=16, batch_size=8, epochs=2, lr=0.01, device="cpu"),
              tmp_path / "in-ram", data_root=tmp_path / "root")
    assert not seen[-1].memory_mapped
    assert (tmp_path / "mapped" / "history.csv").read_text() == (tmp_path / "in-ram" / "history.csv").read_text()

    # the budget changes where pixels are read from, not the results: a finished stage is not retrained
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "mapped", "--memory-budget", "64",
                           "--data-root", tmp_path / "root", "--resume", *SETTINGS)
    assert code == 0 and "already complete" in err


# run in a fresh process, as the CLI runs a stage: in the suite's long-lived process (CI, after 2,000 other tests) each
# fill still faulted 16,384 times during the stage, while a fresh process, several stages in a row included, reuses
# the memory (glibc maps a block anew whatever mallopt says when it serves the thread from an arena other than the main
# one, whose heaps hold at most 64 MB: the likely cause, not proven)
FAULTS_DURING_AND_AFTER_A_STAGE = """
import json, resource, sys
import torch
from ganfp.train import StageConfig, run_stage

def faults_of_a_large_tensor():
    torch.ones(16 * 2**20)  # 64 MB, freed at once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

data, out, root = sys.argv[1:]
during = []
# the least of three probes a batch: a thread of the stage allocating between a probe's free and its next tensor
# can take the freed block (one probe in three faulted in full on a 2-core machine); unreused, every probe faults
observer = lambda event, _: event == "batch" and during.append(min(faults_of_a_large_tensor() for _ in range(3)))
run_stage(StageConfig(name="s", dataset=data, model="conv5", image_size=16, batch_size=4, epochs=1, device="cpu"),
          out, data_root=root, observer=observer)
print(json.dumps({"during": during, "after": faults_of_a_large_tensor()}))
"""


@pytest.mark.skipif(device_mod._glibc() is None, reason="glibc's malloc settings only")
@pytest.mark.skipif("[always]" in (Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
                                   if Path("/sys/kernel/mm/transparent_hugepage/enabled").exists() else ""),
                    reason="huge pages fault 512 times less: the counts would not tell")
def test_cpu_training_reuses_freed_memory_and_gives_it_back_after(tmp_path):
    """vgg11's 411 MB gradient was new kernel pages every step (as much CPU time in page faults as in its sums).
    Filling a fresh 64 MB tensor just after one of the same size was freed: 16,384 minor faults when glibc maps it
    anew (4 KB pages), none when the freed memory is reused."""
    data = write_class_folder(tmp_path / "ds", n_per_class=8, size=16)
    done = subprocess.run([sys.executable, "-c", FAULTS_DURING_AND_AFTER_A_STAGE, str(data), str(tmp_path / "stage"),
                           str(tmp_path / "root")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    faults = json.loads(done.stdout.strip().splitlines()[-1])
    assert faults["during"] and max(faults["during"]) < 1024  # the freed 64 MB was reused: no new pages
    assert faults["after"] > 4096  # glibc's defaults are back once the stage is done


def test_batched_inference_matches_the_model_image_by_image():
    torch.manual_seed(0)
    model = create_model("conv5", num_classes=3, image_size=16).eval()
    images = torch.randint(0, 256, (7, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        expected = torch.cat([model(to_model_input(images[i : i + 1])).softmax(-1) for i in range(7)])
        features = torch.cat([model.embed(to_model_input(images[i : i + 1])) for i in range(7)])
    probs = predict_proba(model, images, batch_size=3)  # a last batch of one
    assert probs.shape == (7, 3) and np.allclose(probs, expected.numpy(), atol=1e-5)
    assert torch.allclose(embed(model, images, batch_size=4), features, atol=1e-5)


def test_augmentation_is_a_flip_then_a_reflected_shift():
    import torch.nn.functional as F

    from ganfp.data.augment import BatchAugment

    x = torch.randn(8, 2, 10, 9)
    g = torch.Generator().manual_seed(7)  # the draws BatchAugment(seed=7) makes, in its order
    flips, offsets = torch.rand(8, generator=g) < 0.5, torch.randint(0, 9, (2, 8), generator=g)
    flipped = torch.where(flips[:, None, None, None], x.flip(-1), x)
    padded = F.pad(flipped, (4, 4, 4, 4), mode="reflect")
    expected = torch.stack([padded[i, :, r : r + 10, c : c + 9] for i, (r, c) in enumerate(offsets.T.tolist())])
    assert torch.equal(BatchAugment(seed=7)(x), expected)


def test_headers_are_read_once_each_in_runs_of_files_not_a_pool_task_per_file(tmp_path, monkeypatch):
    """A pool task per file cost more than the header it read: 5,200 files took 2-4x longer than on one thread."""
    sizes = np.random.default_rng(0).integers(8, 12, size=300)
    for n, size in enumerate(sizes):
        write_pngs(tmp_path / "gen", f"g{n:03d}_", np.zeros((1, size, size), np.uint8))
    manifest = generated_manifest(tmp_path / "gen")
    opened, tasks = [], []
    monkeypatch.setattr(generated_mod, "image_header", lambda path: opened.append(path) or image_header(path))

    class CountingPool(generated_mod.ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            tasks.append(fn)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(generated_mod, "ThreadPoolExecutor", CountingPool)
    headers = image_headers(manifest)
    assert [h.size for h in headers] == [(s, s) for s in sizes]  # in the manifest's order
    assert sorted(opened) == sorted(it.path for it in manifest.items)  # each file once
    assert len(tasks) <= len(manifest) / 8  # runs of files, not a task per file
