"""The generator zoo: build every family's dev and test split and measure how much each one leaks.

    python benchmarks/zoo.py [--out DIR] [--families NAME ...] [--seed N] [--write] [--cache DIR]

Dev splits have the 2023 development shape (80 used / 80 not used / 500 generated), test splits
the test shape (100 / 100 / 2,000); each has its own seed (`shape_seed`), so different real slices
and a different fit. Splits are cached under --cache (default: the ganfp cache folder), so a rerun
is instant; "build s" is then the load time. --write also writes DIR/<family>/dev (used/ not_used/
generated/) and DIR/<family>/test (real_unknown_1/ generated_1/ labels.csv). The GAN-Leaks column
scores a real image by minus the raw-pixel L2 distance to its nearest generated image (ROC-AUC of
used vs not used): leaking families should sit between 0.65 and 0.85, the control near 0.5.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import emit, machine
from sklearn.metrics import roc_auc_score

from ganfp import ui
from ganfp.data.zoo import FAMILIES, SHAPES, MembershipSplit, build_split, shape_seed, write_split
from ganfp.paths import cache_root


def gan_leaks_auc(split: MembershipSplit) -> float:
    """ROC-AUC of -(L2 distance to the nearest generated image), raw pixels."""
    real = torch.from_numpy(np.concatenate([split.used, split.not_used]).reshape(-1, split.size**2).astype(np.float32))
    gen = torch.from_numpy(split.generated.reshape(len(split.generated), -1).astype(np.float32))
    nearest = torch.cdist(real, gen).min(dim=1).values.numpy()
    labels = np.r_[np.ones(len(split.used)), np.zeros(len(split.not_used))]
    return float(roc_auc_score(labels, -nearest))


def measure(name: str, seed: int, cache: Path, out: Path | None) -> dict:
    row = {"family": name, "size": FAMILIES.entry(name).meta["size"], "leaks": FAMILIES.entry(name).meta["leaks"]}
    for shape, counts in SHAPES.items():
        start = time.perf_counter()
        split = build_split(name, shape_seed(seed, shape), **counts, cache=cache)
        row[f"{shape}_build_s"] = round(time.perf_counter() - start, 2)
        row[f"{shape}_gan_leaks_auc"] = round(gan_leaks_auc(split), 3)
        if out is not None:
            write_split(split, out / name / shape, layout=shape)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("zoo"), help="where --write puts the PNG folders")
    parser.add_argument("--families", nargs="+", default=FAMILIES.names(), choices=FAMILIES.names())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write each split's PNG folders under --out")
    parser.add_argument("--cache", type=Path, default=cache_root() / "zoo", help="folder of built splits (.npz)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = [measure(name, args.seed, args.cache, args.out if args.write else None) for name in args.families]
    ui.print_table(f"generator zoo, seed {args.seed}: GAN-Leaks ROC-AUC (used vs not used)",
                   ["family", "size", "leaks", "dev build s", "test build s", "dev AUC", "test AUC"],
                   [[r["family"], r["size"], r["leaks"], r["dev_build_s"], r["test_build_s"], r["dev_gan_leaks_auc"],
                     r["test_gan_leaks_auc"]] for r in rows],
                   caption="dev 80/80/500, test 100/100/2000; build s is a cache load when the split was built before")
    emit({"benchmark": "zoo", "seed": args.seed, "rows": rows, "machine": machine(torch.device("cpu")),
          "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
