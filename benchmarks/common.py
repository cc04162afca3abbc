"""Shared pieces of the benchmarks: test images on disk, the ImageFolder baseline, interleaved timing.

Every benchmark compares variants run in the same process, in many short rounds; within a round the
single-process variants alternate step by step, so a machine whose load changes over time slows
them alike. The median of the per-round ratios is the reported figure.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ganfp.data.loader import MEAN, STD


def write_png_folder(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """`n` grayscale PNGs in two class folders: smooth blobs plus noise, like scans more than static.

    Files already there are kept, so benchmarks can share one folder (and then use all its files).
    """
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
    noise = rng.integers(-12, 13, (n, size, size))

    def write(i: int) -> None:
        cls = "a" if i % 2 else "b"
        path = root / cls / f"{cls}{i:06d}.png"
        if path.exists():
            return
        smooth = np.asarray(Image.fromarray(coarse[i]).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int64)
        pixels = np.clip(smooth + noise[i] + (40 if cls == "b" else 0), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)

    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n)))
    return root


def loader_batches(workers: int, warmup: int, steps: int) -> int:
    """Batches the ImageFolder files must hold so its timed window is steady state.

    Workers decode ahead (2 batches each, DataLoader's default). If the files ran out during the
    window, batches decoded before it would be timed for free; with this many, the queue is full
    at both ends of the window and the window pays for as many batches as it takes.
    """
    return warmup + steps + 2 * workers + 1


def imagefolder_loader(root: Path, image_size: int, batch: int, workers: int, train: bool, pin: bool, seed: int = 0):
    """What a user would write: torchvision ImageFolder, per-image transforms, DataLoader workers.

    Training batches get the same augmentation as ganfp's (horizontal flip, 4-pixel reflected shift).
    """
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    steps = [transforms.Grayscale(1), transforms.Resize((image_size, image_size))]
    if train:
        steps += [transforms.RandomHorizontalFlip(), transforms.RandomCrop(image_size, padding=4, padding_mode="reflect")]
    steps += [transforms.ToTensor(), transforms.Normalize([MEAN], [STD])]
    dataset = datasets.ImageFolder(str(root), transforms.Compose(steps))
    return DataLoader(dataset, batch_size=batch, shuffle=train, num_workers=workers, pin_memory=pin,
                      drop_last=train, generator=torch.Generator().manual_seed(seed))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(device: torch.device, stepped: dict[str, Callable[[int], None]], blocks: dict[str, Callable[[], tuple[int, dict]]],
               rounds: int, steps: int, warmup: int, images_per_step: int, chunk: int = 1) -> dict[str, list[dict]]:
    """Per round: the `stepped` variants alternate `chunk` steps at a time (their ratio then sees the
    same load), and each `block` variant runs once (a DataLoader must run uninterrupted: its
    workers work ahead).

    A stepped variant is fn(n_steps); a block returns (images, `timed`'s dict) with its own warm-up.
    """
    runs: dict[str, list[dict]] = {name: [] for name in [*stepped, *blocks]}

    def record(name: str, images: int, t: dict) -> None:
        runs[name].append({"images_per_s": images / t["seconds"], "cpu_ms_per_image": 1000 * t["cpu_seconds"] / images, **t})

    def run_blocks() -> None:
        for name, block in blocks.items():
            record(name, *block())

    for r in range(rounds):
        if r % 2:
            run_blocks()
        for fn in stepped.values():
            fn(warmup)
        totals = {name: {"seconds": 0.0, "cpu_seconds": 0.0, "peak_gpu_mib": None} for name in stepped}
        for i, start in enumerate(range(0, steps, chunk)):
            names = list(stepped) if (r + i) % 2 == 0 else list(reversed(stepped))
            for name in names:
                t = timed(device, lambda: stepped[name](min(chunk, steps - start)))
                acc = totals[name]
                acc["seconds"] += t["seconds"]
                acc["cpu_seconds"] += t["cpu_seconds"]
                if t["peak_gpu_mib"] is not None:
                    acc["peak_gpu_mib"] = max(acc["peak_gpu_mib"] or 0.0, t["peak_gpu_mib"])
        for name, acc in totals.items():
            record(name, steps * images_per_step, acc)
        if r % 2 == 0:
            run_blocks()
    return runs


def timed(device: torch.device, fn: Callable[[], None]) -> dict:
    """Wall seconds of `fn` (the GPU's work included), this process's CPU seconds, peak GPU MiB.

    CPU seconds hardly depend on what else runs on the machine, wall seconds do: on a loaded
    machine the CPU figure is the steadier measure of a single-process loop's own cost.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_gpu_mib": peak}


def summarise(runs: dict[str, list[dict]], reference: str) -> dict:
    """Median images/s per variant, and the median over rounds of each variant's ratio to `reference`."""
    out = {}
    for name, rs in runs.items():
        speeds = [r["images_per_s"] for r in rs]
        ratios = [r["images_per_s"] / b["images_per_s"] for r, b in zip(rs, runs[reference])]
        peaks = [r["peak_gpu_mib"] for r in rs if r["peak_gpu_mib"] is not None]
        out[name] = {"median": statistics.median(speeds), "min": min(speeds), "max": max(speeds),
                     "ratio_to_" + reference: statistics.median(ratios), "peak_gpu_mib": max(peaks) if peaks else None,
                     "cpu_ms_per_image": statistics.median(r["cpu_ms_per_image"] for r in rs),
                     "runs": [round(s, 2) for s in speeds]}
    return out


def paired_ratio(runs: dict[str, list[dict]], a: str, b: str, key: str = "images_per_s") -> float:
    """Median over rounds of a/b, each pair measured in the same round."""
    return statistics.median(x[key] / y[key] for x, y in zip(runs[a], runs[b]))


def print_summary(title: str, summary: dict, ratios: dict, args, note: str = "") -> None:
    """One table: a row per variant, the ratios in the caption."""
    from ganfp import ui

    rows = [[name, f"{v['median']:.1f}", f"{v['min']:.1f}", f"{v['max']:.1f}", f"{v['ratio_to_bare']:.3f}",
             f"{v['cpu_ms_per_image']:.2f}", None if v["peak_gpu_mib"] is None else round(v["peak_gpu_mib"])]
            for name, v in summary.items()]
    caption = ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
    caption += f" (medians of per-round ratios; {args.rounds} rounds x {args.steps} steps, {args.warmup} warm-up)"
    ui.print_table(title, ["variant", "images/s", "min", "max", "vs bare", "CPU ms/img", "GPU MiB"], rows, caption=caption + (f"; {note}" if note else ""))


def quiet_worker_warning() -> None:
    """torch warns when DataLoader workers outnumber cores; the baseline uses 4 workers on purpose."""
    import warnings

    warnings.filterwarnings("ignore", message="This DataLoader will create")


def count_syncs(device: torch.device, fn: Callable[[], None]) -> int | None:
    """How many times `fn` makes the host wait for the GPU (CUDA's sync debug mode); None on CPU."""
    if device.type != "cuda":
        return None
    import warnings

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


def machine(device: torch.device) -> dict:
    """The facts a reader needs to compare numbers: CPU, cores, load, GPU, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "cores_used": usable_cores(), "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def emit(result: dict) -> None:
    """The final machine-readable line (and a copy in $OUT when set, for the GPU script)."""
    line = json.dumps(result, default=str)
    print(line, flush=True)
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def throughput_parser(doc: str, batch: int, steps: int, rounds: int, unit: str):
    """The options both throughput benchmarks share; each script adds its own."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--steps", type=int, default=steps, help=f"timed {unit} per variant and round")
    p.add_argument("--warmup", type=int, default=1, help=f"untimed {unit} before each timed run (ImageFolder: 2 more)")
    p.add_argument("--rounds", type=int, default=rounds, help="many short rounds: the median resists a changing load")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the ImageFolder baseline")
    p.add_argument("--source-size", type=int, default=256, help="side of the PNG files (resized to --image-size)")
    p.add_argument("--png-dir", default=None, help="folder for the PNG files, kept and shared between runs (default: temporary)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cpus", type=int, default=0,
                   help="run on the first N cores only (this process and its DataLoader workers): a host with few cores")
    return p


def usable_cores() -> int:
    """The cores this process may run on (its affinity; macOS and Windows have none to read: all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def limit_cpus(n: int) -> None:
    """Pin this process, and the workers it will start, to the first `n` cores, with `n` torch threads.

    A GPU machine lends 16 cores; many hosts that feed a GPU have 4. Pinning shows whether the input
    path, not the GPU, becomes the limit there (0: no limit).
    """
    if n <= 0:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit(f"--cpus {n}: this system cannot pin a process to cores (Linux can)")
    cores = sorted(os.sched_getaffinity(0))
    if n > len(cores):
        raise SystemExit(f"--cpus {n}: this process may run on {len(cores)} cores")
    os.sched_setaffinity(0, cores[:n])
    torch.set_num_threads(n)
