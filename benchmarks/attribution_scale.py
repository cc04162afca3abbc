"""A synthetic attribution set of the 2025 task's shape, for timing `ganfp attribute` at scale.

    python benchmarks/attribution_scale.py OUT [--classes 5] [--real 100] [--generated 500] [--unknown 400]

Writes OUT/real/<class>/, OUT/generated/<class>/, OUT/generated_unknown/ (shuffled, --unknown per
class) and OUT/labels.csv: 256x256 8-bit palette PNGs, as the 2025 archive has them. Each class is
the demo's PCA + Gaussian-mixture generator fitted on its own real subset (demo:attribution-2025
at 256 px and larger counts). The set is for wall time and memory, not accuracy: measure with

    /usr/bin/time -v ganfp attribute OUT/generated_unknown --train OUT --out a.csv --data-root CACHE
    /usr/bin/time -v ganfp attribute OUT/generated --clusters auto --out c.csv --data-root CACHE
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ganfp.data.demo import generate, real_slices

SIZE = 256
GREY_PALETTE = [v for i in range(256) for v in (i, i, i)]


def save(folder: Path, prefix: str, images: np.ndarray) -> list[str]:
    """Palette ("P") PNGs with a grey ramp, like the organisers' files; their ids in order."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"{prefix}_{i + 1:05d}" for i in range(len(images))]

    def one(i: int) -> None:
        img = Image.frombytes("P", (SIZE, SIZE), images[i].tobytes())
        img.putpalette(GREY_PALETTE)
        img.save(folder / f"{ids[i]}.png", "PNG")

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, range(len(images))))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--real", type=int, default=100, help="real images per class")
    parser.add_argument("--generated", type=int, default=500, help="labelled generated images per class")
    parser.add_argument("--unknown", type=int, default=400, help="unknown generated images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    unknown, truth = [], []
    for c in range(args.classes):
        cls = f"subset{c + 1}"
        subset = real_slices(rng, args.real, SIZE)
        samples = generate(subset, args.generated + args.unknown, rng)
        save(args.out / "real" / cls, f"real_{cls}", subset)
        save(args.out / "generated" / cls, f"generated_{cls}", samples[: args.generated])
        unknown.append(samples[args.generated :])
        truth += [cls] * args.unknown
    order = rng.permutation(len(truth))  # ids must not reveal the class
    ids = save(args.out / "generated_unknown", "unknown", np.concatenate(unknown)[order])
    rows = "".join(f"{i},{truth[j]}\n" for i, j in zip(ids, order))
    (args.out / "labels.csv").write_text("id,label\n" + rows)
    print(f"{args.out}: {args.classes} classes, {args.real} real, {args.generated} generated and "
          f"{args.unknown} unknown images per class, {SIZE}x{SIZE}")


if __name__ == "__main__":
    main()
