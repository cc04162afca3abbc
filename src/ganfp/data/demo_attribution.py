"""Demo data for the second subtasks: which training subset (2025), which generator (2024).

- `attribution-2025/`: one generator family (PCA + Gaussian mixture) fitted separately on five
  disjoint subsets of real slices, laid out like the 2025 archive: `real/<class>/`,
  `generated/<class>/` and a shuffled `generated_unknown/`, whose labels sit in `labels.csv`.
- `attribution-2024/`: generators of different families from the zoo (`ganfp.data.zoo`), all
  fitted on the same real slices, their samples mixed in one `generated/` folder; `labels.csv`
  names each image's generator. The zoo's quick settings keep the build within seconds.

Each folder is seeded, offline, built in seconds, and appears complete or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ganfp.data.adapters.demo import announce_build
from ganfp.data.demo import build_in_place, generate, real_slices
from ganfp.errors import InputError, require_seed
from ganfp.fileio import write_json, write_text

ATTRIBUTION_VERSION = 1
LABELS = "labels.csv"
SUBSETS_2025 = 5
PER_CLASS_2025 = {"real": 40, "generated": 60, "unknown": 20}
FAMILIES_2024 = ("pcagmm", "vae", "memoriser")
REAL_2024, PER_GENERATOR_2024 = 60, 80


def _save(folder: Path, prefix: str, images: np.ndarray, start: int = 1) -> list[str]:
    """PNG files `<prefix>_NNNN.png`; their ids in order."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i, img in enumerate(images, start):
        ids.append(f"{prefix}_{i:04d}")
        Image.fromarray(img).save(folder / f"{ids[-1]}.png", "PNG")
    return ids


def _write_labels(path: Path, column: str, ids: list[str], labels: list[str]) -> None:
    write_text(path, f"id,{column}\n" + "".join(f"{i},{lab}\n" for i, lab in zip(ids, labels)))


def build_2025(root: Path, seed: int) -> dict:
    """Five disjoint real subsets, one generator fitted on each; the unknown images are shuffled."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2025]))
    n = PER_CLASS_2025
    real = real_slices(rng, SUBSETS_2025 * n["real"])
    unknown, truth = [], []
    for c in range(SUBSETS_2025):
        cls = f"subset{c + 1}"
        subset = real[c * n["real"] : (c + 1) * n["real"]]
        samples = generate(subset, n["generated"] + n["unknown"], rng)
        _save(root / "real" / cls, f"real_{cls}", subset)
        _save(root / "generated" / cls, f"generated_{cls}", samples[: n["generated"]])
        unknown.append(samples[n["generated"] :])
        truth += [cls] * n["unknown"]
    order = rng.permutation(len(truth))  # ids must not reveal the class
    ids = _save(root / "generated_unknown", "unknown", np.concatenate(unknown)[order])
    _write_labels(root / LABELS, "label", ids, [truth[j] for j in order])
    return {"classes": SUBSETS_2025, **{f"{k} per class": v for k, v in n.items()}}


def build_2024(root: Path, seed: int) -> dict:
    """One generator per family, fitted on the same real slices; their samples shuffled together."""
    from ganfp.data.zoo import FAMILIES

    seeds = np.random.SeedSequence([seed, 2024]).generate_state(2 + 2 * len(FAMILIES_2024))
    rng = np.random.default_rng(seeds[0])
    real = real_slices(rng, REAL_2024)
    samples = []
    for g, name in enumerate(FAMILIES_2024):
        sampler = FAMILIES.get(name).quick().fit(real, int(seeds[2 + 2 * g]))
        samples.append(sampler.sample(PER_GENERATOR_2024, int(seeds[3 + 2 * g])))
    truth = [name for name in FAMILIES_2024 for _ in range(PER_GENERATOR_2024)]
    order = np.random.default_rng(seeds[1]).permutation(len(truth))  # ids must not reveal the generator
    ids = _save(root / "generated", "generated", np.concatenate(samples)[order])
    _write_labels(root / LABELS, "generator", ids, [truth[j] for j in order])
    return {"generators": list(FAMILIES_2024), "real training slices": REAL_2024, "per generator": PER_GENERATOR_2024}


BUILDERS: dict[str, Callable[[Path, int], dict]] = {"attribution-2025": build_2025, "attribution-2024": build_2024}


def ready(folder: Path, seed: int | None = None) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    current = meta.get("status") == "ready" and meta.get("version") == ATTRIBUTION_VERSION
    return current and seed in (None, meta.get("seed"))


def ensure_attribution_demo(name: str, data_root: Path, seed: int | None = None) -> Path:
    """`<data_root>/demo-<name>`, built first when absent, incomplete, outdated or of another seed."""
    if name not in BUILDERS:  # else a KeyError inside the build, after its staging folder was made
        raise InputError(f"unknown attribution demo {name!r}; choose one of: {', '.join(BUILDERS)}")
    if seed is not None:
        require_seed("seed", seed)
    target = Path(data_root) / f"demo-{name}"
    if not ready(target, seed):
        announce_build(target)
        build_in_place(target, lambda tmp: _build_into(tmp, name, 0 if seed is None else seed))
    return target


def _build_into(root: Path, name: str, seed: int) -> dict:
    meta = {"status": "ready", "seed": seed, "version": ATTRIBUTION_VERSION, "counts": BUILDERS[name](root, seed)}
    write_json(root / "meta.json", meta)  # last: its presence means the rest is complete
    return meta
