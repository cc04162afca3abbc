"""Inference images/s (what `ganfp classify` runs): ganfp's batched path vs the model's limit vs ImageFolder.

    python benchmarks/infer_throughput.py --model resnet18 --image-size 64 --batch 256

Variants, interleaved round by round in one process, same model, same precision:

- predict_proba: `ganfp.inference.predict_proba` over the uint8 cache that `load_images` builds
  from PNG files, handed over in host memory as `classify` does (the copy to the GPU is timed).
- predict_proba (cache on GPU): the same with the cache already on the device (CUDA only), which
  separates the loop's own cost from the one copy of the images.
- bare: forward and softmax on one random batch already on the device: the limit.
- imagefolder: torchvision ImageFolder over the same PNG files, DataLoader with 4 workers,
  probabilities collected batch by batch: what a user would write.

Each round the single-process variants take turns, one call of --steps batches each; warm-up
batches are excluded. Prints one table and one JSON line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    count_syncs, emit, imagefolder_loader, interleave, limit_cpus, loader_batches, machine, paired_ratio,
    print_summary, quiet_worker_warning, summarise, throughput_parser, timed, write_png_folder,
)

from ganfp import ui  # noqa: E402
from ganfp.data.adapters.folder import folder_manifest  # noqa: E402
from ganfp.data.cache import load_images  # noqa: E402
from ganfp.device import autocast, configure, resolve_device  # noqa: E402
from ganfp.inference import predict_proba  # noqa: E402
from ganfp.models import create_model  # noqa: E402


def parse_args(argv=None):
    return throughput_parser(__doc__, batch=256, steps=8, rounds=7, unit="batches").parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    limit_cpus(args.cpus)
    quiet_worker_warning()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    device = resolve_device(args.device)
    configure(device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=2, image_size=args.image_size).to(device).eval()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    loader_warmup = args.warmup + 2  # 4 workers need about two batches to fill their queues

    with tempfile.TemporaryDirectory() as tmp:
        n_images = args.batch * loader_batches(args.workers, loader_warmup, args.steps)
        ui.info(f"writing {n_images} PNG files ({args.source_size}px)")
        folder = write_png_folder(Path(args.png_dir or Path(tmp) / "png"), n_images, args.source_size)
        started = time.perf_counter()
        imageset = load_images(folder_manifest(folder), args.image_size, Path(tmp) / "root")
        cache_s = time.perf_counter() - started
        host_images = imageset.images

        def ganfp(images):
            def run(steps: int) -> None:
                predict_proba(model, images[: steps * args.batch], args.batch, device)

            return run

        x_b = torch.randn(args.batch, 1, args.image_size, args.image_size, device=device)
        x_b = x_b.contiguous(memory_format=torch.channels_last) if cuda else x_b

        @torch.no_grad()
        def bare(steps: int) -> None:
            for _ in range(steps):
                with autocast(device):
                    model(x_b).float().softmax(-1)

        loader = imagefolder_loader(folder, args.image_size, args.batch, args.workers, train=False, pin=cuda)

        @torch.no_grad()
        def imagefolder(batches, steps: int) -> list:
            probs = []
            for _ in range(steps):
                x, _ = next(batches)
                x = x.to(device, non_blocking=True)
                x = x.contiguous(memory_format=torch.channels_last) if cuda else x
                with autocast(device):
                    probs.append(model(x).float().softmax(-1).cpu())
            return probs

        def run_imagefolder():
            batches = iter(loader)  # one pass over all files: its first batches are the warm-up
            imagefolder(batches, loader_warmup)
            result = (args.steps * args.batch, timed(device, lambda: imagefolder(batches, args.steps)))
            del batches
            return result

        stepped = {"predict_proba": ganfp(host_images), "bare": bare}
        if cuda:
            stepped["predict_proba (cache on GPU)"] = ganfp(host_images.to(device))
        ui.info("first passes, untimed")
        for fn in stepped.values():
            fn(2)
        run_imagefolder()
        ui.info(f"{args.rounds} rounds of {args.steps} batches per variant")
        runs = interleave(device, stepped, {"imagefolder": run_imagefolder}, args.rounds, args.steps, args.warmup,
                          args.batch, chunk=args.steps)
        syncs = count_syncs(device, lambda: stepped["predict_proba"](args.steps))

    summary = summarise(runs, "bare")
    ratios = {"predict_proba/bare": paired_ratio(runs, "predict_proba", "bare"),
              "predict_proba/imagefolder": paired_ratio(runs, "predict_proba", "imagefolder"),
              "imagefolder/bare": paired_ratio(runs, "imagefolder", "bare")}
    print_summary(f"inference {args.model} {args.image_size}px batch {args.batch} on {device}", summary, ratios, args,
                  f"cache built in {cache_s:.1f} s")
    result = {"benchmark": "infer_throughput", "model": args.model, "image_size": args.image_size, "batch": args.batch,
              "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "workers": args.workers,
              "source_size": args.source_size, "cache_build_s": round(cache_s, 2), "predict_proba_syncs_per_call": syncs,
              "ratios": {k: round(v, 4) for k, v in ratios.items()}, "variants": summary,
              "machine": {**machine(device), "load_at_start": load_at_start}}
    emit(result)
    return result


if __name__ == "__main__":
    main()
