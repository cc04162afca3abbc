"""Training steps on the CPU with and without `ganfp.device.freed_memory_kept`, alternating in one process.

    python benchmarks/cpu_freed_memory.py [--models vgg11 conv5 resnet18 --image-size 64 --batch 16 --steps 4]

Each round runs `--steps` SGD steps (after one untimed step) once with glibc's defaults and once keeping freed
memory, in alternating order; the ratios are medians of the per-round ratios (docs/performance.md, "Where the demo
chain's time goes on a CPU"). Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from ganfp import ui
from ganfp.device import freed_memory_kept
from ganfp.models import create_model

CPU = torch.device("cpu")


def one_round(model, optimizer, x, y, steps: int, kept: bool) -> tuple[float, float, float]:
    """(wall s, CPU s, minor page faults) per step, the first step of the round untimed."""
    with freed_memory_kept(CPU) if kept else contextlib.nullcontext():
        for step in range(steps + 1):
            if step == 1:
                before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall / steps, cpu / steps, (after.ru_minflt - before.ru_minflt) / steps


def measure(name: str, args) -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, image_size=args.image_size, weights="none")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9)
    x, y = torch.randn(args.batch, 1, args.image_size, args.image_size), torch.randint(0, 2, (args.batch,))
    rows = {False: [], True: []}
    for r in range(args.rounds):
        for kept in (False, True) if r % 2 == 0 else (True, False):
            rows[kept].append(one_round(model, optimizer, x, y, args.steps, kept))
    median = lambda kept, i: statistics.median(row[i] for row in rows[kept])  # noqa: E731
    ratio = lambda i: statistics.median(a[i] / b[i] for a, b in zip(rows[False], rows[True]))  # noqa: E731
    return {"faults_before": median(False, 2), "faults_after": median(True, 2),
            "cpu_ms_before": 1000 * median(False, 1), "cpu_ms_after": 1000 * median(True, 1),
            "cpu_ratio": ratio(1), "wall_ratio": ratio(0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg11", "conv5", "resnet18"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    results = {name: measure(name, args) for name in args.models}
    ui.print_table(f"CPU training steps at {args.image_size} px, batch {args.batch}, {torch.get_num_threads()} threads",
                   ["model", "page faults/step before", "after", "CPU ms/step before", "after", "CPU before/after",
                    "wall before/after"],
                   [[name, f"{r['faults_before']:.0f}", f"{r['faults_after']:.0f}", f"{r['cpu_ms_before']:.0f}",
                     f"{r['cpu_ms_after']:.0f}", f"{r['cpu_ratio']:.2f}", f"{r['wall_ratio']:.2f}"]
                    for name, r in results.items()])
    print(json.dumps({"threads": torch.get_num_threads(), **results}))


if __name__ == "__main__":
    main()
