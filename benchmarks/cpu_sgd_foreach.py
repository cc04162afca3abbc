"""SGD steps on the CPU with torch's `foreach=False` (its CPU default) and `foreach=True`, alternating in one process.

    python benchmarks/cpu_sgd_foreach.py [--models conv5 resnet18 vgg11 --image-size 64 --batch 16 --rounds 10]

First, whether the two give the same weights: two copies of one seeded model train `--check-steps` steps on the same
batches, one optimizer of each kind, and every weight, buffer and momentum is compared with `torch.equal`. Then the
optimizer's step alone is timed (the gradients of one batch, kept), `--steps` steps of each kind per round in
alternating order, keeping freed memory as a CPU stage does; the ratio is the median of the per-round ratios (docs/performance.md, "Where the demo chain's
time goes on a CPU"). Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F

from ganfp import ui
from ganfp.device import freed_memory_kept
from ganfp.models import create_model

SETTINGS = {"lr": 0.003, "momentum": 0.9, "weight_decay": 0.0}  # the demo chain's


def batch(args, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(args.batch, 1, args.image_size, args.image_size, generator=gen),
            torch.randint(0, 2, (args.batch,), generator=gen))


def trained(model, foreach: bool, args) -> tuple[dict, list]:
    """The weights and momenta after `--check-steps` steps of one optimizer kind on seeded batches."""
    optimizer = torch.optim.SGD(model.parameters(), foreach=foreach, **SETTINGS)
    for step in range(args.check_steps):
        x, y = batch(args, step)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.state_dict(), [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]


def same_weights(model, args) -> bool:
    (w1, m1), (w2, m2) = trained(copy.deepcopy(model), False, args), trained(copy.deepcopy(model), True, args)
    return all(torch.equal(w1[k], w2[k]) for k in w1) and all(torch.equal(a, b) for a, b in zip(m1, m2))


def step_time(optimizer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps


def measure(name: str, args) -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, image_size=args.image_size, weights="none")
    same = same_weights(model, args)
    x, y = batch(args, 0)
    F.cross_entropy(model(x), y).backward()  # the gradients every timed step applies
    optimizers = {kind: torch.optim.SGD(model.parameters(), foreach=kind, **SETTINGS) for kind in (False, True)}
    for optimizer in optimizers.values():
        step_time(optimizer, 1)  # momentum buffers made
    times = {False: [], True: []}
    for r in range(args.rounds):
        for kind in (False, True) if r % 2 == 0 else (True, False):
            times[kind].append(step_time(optimizers[kind], args.steps))
    return {"bit_identical": same, "ms_loop": 1000 * statistics.median(times[False]),
            "ms_foreach": 1000 * statistics.median(times[True]),
            "speedup": statistics.median(a / b for a, b in zip(times[False], times[True]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["conv5", "resnet18", "vgg11"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--check-steps", type=int, default=3)
    args = parser.parse_args()
    with freed_memory_kept(torch.device("cpu")):  # as the trainer runs a CPU stage
        results = {name: measure(name, args) for name in args.models}
    ui.print_table(f"CPU SGD steps at {args.image_size} px, batch {args.batch}, {torch.get_num_threads()} threads",
                   ["model", "same weights", "ms/step foreach=False", "foreach=True", "False/True"],
                   [[name, r["bit_identical"], f"{r['ms_loop']:.1f}", f"{r['ms_foreach']:.1f}", f"{r['speedup']:.2f}"]
                    for name, r in results.items()])
    print(json.dumps({"threads": torch.get_num_threads(), **results}))


if __name__ == "__main__":
    main()
