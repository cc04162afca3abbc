"""Training images/s: ganfp's stage trainer vs the model's own limit vs a torchvision ImageFolder script.

    python benchmarks/train_throughput.py --model resnet18 --image-size 64 --batch 64

Three variants train copies of the same model with the same optimizer and precision (bf16 autocast
and channels-last on CUDA, fp32 on CPU), in the same process, interleaved round by round:

- trainer: `ganfp.train.train_one_epoch` over the uint8 cache that `load_images` builds from PNG
  files (batches gathered from the cache, normalised and augmented on the device): the path
  `run_stage` takes every epoch.
- bare: forward/backward/step on one random batch already on the device: the limit.
- imagefolder: torchvision ImageFolder over the same PNG files, per-image transforms with the same
  augmentation, DataLoader with 4 workers: what a user would write.
- pipeline only: the trainer's input path without the model (gather, copy, normalise, augment);
  bare/pipeline is the share of a step the input costs at most.

Warm-up steps are excluded. Prints one table and one JSON line.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    count_syncs, emit, imagefolder_loader, interleave, limit_cpus, loader_batches, machine, paired_ratio,
    print_summary, quiet_worker_warning, summarise, throughput_parser, timed, write_png_folder,
)

from ganfp import ui  # noqa: E402
from ganfp.data.adapters.folder import folder_manifest  # noqa: E402
from ganfp.data.augment import BatchAugment  # noqa: E402
from ganfp.data.cache import load_images  # noqa: E402
from ganfp.data.loader import device_images, iterate_batches  # noqa: E402
from ganfp.device import autocast, configure, resolve_device  # noqa: E402
from ganfp.models import create_model  # noqa: E402
from ganfp.train import train_one_epoch  # noqa: E402


def parse_args(argv=None):
    p = throughput_parser(__doc__, batch=64, steps=4, rounds=9, unit="steps")
    p.add_argument("--chunk", type=int, default=1, help="steps per turn when trainer and bare alternate (GPU: use --steps)")
    p.add_argument("--compile", action="store_true", help="torch.compile every variant's model")
    p.add_argument("--memory-budget", type=float, default=None, help="GB for the cache (0: memory-mapped)")
    return p.parse_args(argv)


def step_fn(net, optimizer, device):
    def step(x, y):
        with autocast(device):
            loss = F.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv=None) -> dict:
    args = parse_args(argv)
    limit_cpus(args.cpus)
    quiet_worker_warning()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    device = resolve_device(args.device)
    configure(device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    base = create_model(args.model, num_classes=2, image_size=args.image_size)
    loader_warmup = args.warmup + 2  # 4 workers need about two steps to fill their queues of 8 batches
    n_images = args.batch * loader_batches(args.workers, loader_warmup, args.steps)

    def fresh():
        model = copy.deepcopy(base).to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        net = torch.compile(model) if args.compile else model
        return net, torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)

    with tempfile.TemporaryDirectory() as tmp:
        ui.info(f"writing {n_images} PNG files ({args.source_size}px)")
        folder = write_png_folder(Path(args.png_dir or Path(tmp) / "png"), n_images, args.source_size)
        manifest = folder_manifest(folder)
        started = time.perf_counter()
        budget = None if args.memory_budget is None else int(args.memory_budget * 1e9)
        imageset = load_images(manifest, args.image_size, Path(tmp) / "root", memory_budget=budget)
        cache_s = time.perf_counter() - started
        images = device_images(imageset.images, device)
        labels = torch.as_tensor(imageset.manifest.labels)
        labels = labels.to(device) if cuda else labels
        rng = np.random.default_rng(0)

        net_t, opt_t = fresh()

        def trainer(steps: int) -> None:
            order = rng.permutation(len(labels))[: steps * args.batch]
            train_one_epoch(net_t, opt_t, images, labels, order, args.batch, device, BatchAugment(seed=0), None, cuda)

        def pipeline(steps: int) -> None:
            """The trainer's input path alone: gather, copy, normalise, augment."""
            order = rng.permutation(len(labels))[: steps * args.batch]
            for _ in iterate_batches(images, order, args.batch, device, labels, BatchAugment(seed=0), cuda):
                pass

        net_b, opt_b = fresh()
        step_b = step_fn(net_b, opt_b, device)
        x_b = torch.randn(args.batch, 1, args.image_size, args.image_size, device=device)
        x_b = x_b.contiguous(memory_format=torch.channels_last) if cuda else x_b
        y_b = torch.randint(0, 2, (args.batch,), device=device)

        def bare(steps: int) -> None:
            net_b.train()
            for _ in range(steps):
                step_b(x_b, y_b)

        net_f, opt_f = fresh()
        step_f = step_fn(net_f, opt_f, device)
        loader = imagefolder_loader(folder, args.image_size, args.batch, args.workers, train=True, pin=cuda)

        def imagefolder_steps(batches, steps: int) -> None:
            for _ in range(steps):
                x, y = next(batches)
                x = x.to(device, non_blocking=True)
                x = x.contiguous(memory_format=torch.channels_last) if cuda else x
                step_f(x, y.to(device, non_blocking=True))

        def run_imagefolder():
            net_f.train()
            batches = iter(loader)  # fresh workers each round: they fill their queues during the warm-up
            imagefolder_steps(batches, loader_warmup)
            result = (args.steps * args.batch, timed(device, lambda: imagefolder_steps(batches, args.steps)))
            del batches
            return result

        ui.info("first steps (compilation, allocator, kernel choice), untimed")
        trainer(2)
        bare(2)
        run_imagefolder()
        ui.info(f"{args.rounds} rounds of {args.steps} timed steps per variant")
        runs = interleave(device, {"trainer": trainer, "bare": bare, "pipeline only": pipeline}, {"imagefolder": run_imagefolder},
                          args.rounds, args.steps, args.warmup, args.batch, args.chunk)
        syncs = count_syncs(device, lambda: trainer(args.steps))

    summary = summarise(runs, "bare")
    ratios = {"trainer/bare": paired_ratio(runs, "trainer", "bare"),
              "trainer/imagefolder": paired_ratio(runs, "trainer", "imagefolder"),
              "imagefolder/bare": paired_ratio(runs, "imagefolder", "bare"),
              "trainer/bare by CPU time": paired_ratio(runs, "bare", "trainer", "cpu_ms_per_image"),
              "pipeline share of a bare step": paired_ratio(runs, "bare", "pipeline only")}
    print_summary(f"training {args.model} {args.image_size}px batch {args.batch} on {device}" + (" (compiled)" if args.compile else ""),
                  summary, ratios, args, f"cache built in {cache_s:.1f} s")
    result = {"benchmark": "train_throughput", "model": args.model, "image_size": args.image_size, "batch": args.batch,
              "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "workers": args.workers,
              "source_size": args.source_size, "compile": args.compile, "memory_mapped": imageset.memory_mapped,
              "cache_build_s": round(cache_s, 2),
              "cache_mib": round(imageset.images.numel() / 2**20), "cache_on_gpu": bool(images.is_cuda),
              "trainer_syncs_per_epoch_of_steps": syncs, "ratios": {k: round(v, 4) for k, v in ratios.items()},
              "variants": summary, "machine": {**machine(device), "load_at_start": load_at_start}}
    emit(result)
    return result


if __name__ == "__main__":
    main()
