"""`ganfp classify`: score every real image, turn scores into 0/1 by rank or threshold, write a valid submission.

Without generated images the score is a trained checkpoint's P(used) (the paper's method). With
them, a membership scorer compares each real image with the generated set (docs/membership.md).
Everything a user gets is checked first (ids, image sizes, unreadable files) and written atomically;
the submission is validated against the organisers' rules before the run counts as a success.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ganfp.data.manifest import UNLABELLED, Item, Manifest, image_files
from ganfp.errors import InputError
from ganfp.membership.calibrate import K_GRID, Candidate, Choice, choose
from ganfp.membership.features import parse_features
from ganfp.membership.pipeline import METHODS, NEIGHBOUR_METHODS, MembershipScorer, ScoringSetup
from ganfp.membership.scorers import K_SCORERS

DEFAULT_METHOD = "knn"  # with --generated: the strongest on the demo benchmark (docs/membership.md)
DEFAULT_FEATURES = "ssim64"
DEFAULT_K = 10
DEFAULT_USED_FRACTION = 0.5  # the 2023 test set: 100 used, 100 not used

Progress = Callable[[str, int, int], None]


@dataclass
class ClassifyResult:
    ids: list[str]
    labels: np.ndarray  # 0/1 as written
    score: np.ndarray  # the decision score, higher = used
    scorers: dict[str, np.ndarray]  # every scorer computed for it
    summary: dict = field(default_factory=dict)
    calibration: Choice | None = None


def _real_folder(path: Path) -> Manifest:
    """A folder of real images. The ImageCLEF test layout (`real_unknown_N/` beside `generated_N/`) is
    recognised: the real images are `real_unknown_N/`, the generated ones (unless --generated) `generated_N/`."""
    from ganfp.data.adapters import imageclef
    from ganfp.data.adapters.folder import folder_manifest
    from ganfp.data.manifest import list_folder

    subdirs = [p for p in list_folder(path) if p.is_dir() and not p.name.startswith(".")]
    tests = sorted(p.name for p in subdirs if imageclef.REAL_UNKNOWN.match(imageclef._norm(p.name)))
    if len(tests) > 1:
        raise InputError(f"{path}: holds several ImageCLEF test sets ({', '.join(tests)}); classify one, "
                         f"e.g. ganfp classify {path / tests[0]} --generated {path / tests[0].replace('real_unknown', 'generated')}")
    if tests:
        return imageclef.load_part(path, "test", f"folder:{path}", str(path))
    generated = tuple(p.name for p in subdirs if imageclef.GENERATED.match(imageclef._norm(p.name)))
    return folder_manifest(path, exclude=generated)


def read_real(spec: str, data_root=None) -> Manifest:
    """A folder of images (flat; used/ and not_used/; or real_unknown_N/ beside generated_N/; generated*/
    sub-folders are never real classes) or a dataset spec."""
    from ganfp.data.adapters import load_manifest

    path = Path(spec).expanduser()
    manifest = _real_folder(path) if path.is_dir() else load_manifest(spec, data_root)
    seen: dict[str, str] = {}
    for item in manifest.items:
        if item.id in seen:
            raise InputError(f"{item.path}: id {item.id!r} also belongs to {seen[item.id]} (ids are file names without extension)")
        seen[item.id] = item.path
    return manifest


def generated_manifest(path: str | Path) -> Manifest:
    """Every image under the generated folder (sub-folders included), unlabelled."""
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: the generated images must be a folder, this is a file")
    if not root.is_dir():
        raise InputError(f"{root}: generated images folder not found")
    files = image_files(root)
    if not files:
        raise InputError(f"{root}: the generated images folder holds no images")
    return Manifest(f"folder:{root}", [], [Item(str(p.resolve()), UNLABELLED, source="generated") for p in files], str(root))


def native_image_size(*manifests: Manifest) -> int:
    """The one square size all images share (read from file headers); otherwise ask for --image-size.

    Comparing pixels only makes sense at one resolution. Files of different sizes are not
    silently resized: the user decides, with --image-size N, that all are resized to N x N.
    """
    from ganfp.data.decode import image_size

    paths = [it.path for m in manifests for it in m.items]
    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(pool.map(image_size, paths))
    by_size = Counter(sizes)
    if len(by_size) > 1:
        example = {s: p for p, s in zip(paths, sizes)}
        listed = ", ".join(f"{w}x{h} ({n} files, e.g. {example[(w, h)]})" for (w, h), n in by_size.most_common())
        raise InputError(f"images have different sizes: {listed}; pass --image-size N to resize all to N x N")
    (w, h), = by_size
    if w != h:
        raise InputError(f"{paths[0]}: images are {w}x{h}, not square; pass --image-size N to resize all to N x N")
    return w


def check_ids(ids: list[str], ids_path) -> list[str]:
    """The listed ids, which must be exactly the images' ids."""
    from ganfp.submission import preview_ids, read_ids

    expected = read_ids(ids_path)
    have, want = set(ids), set(expected)
    missing = [i for i in expected if i not in have]
    extra = [i for i in ids if i not in want]
    if missing:
        raise InputError(f"{ids_path}: {len(missing)} listed ids have no image ({preview_ids(missing)})")
    if extra:
        raise InputError(f"{ids_path}: {len(extra)} images are not listed ({preview_ids(extra)})")
    return expected


def dev_sets(spec: str, data_root=None) -> tuple[Manifest, Manifest]:
    """(labelled real, generated) of a calibration set: DEV_DIR with used/, not_used/, generated/, or a spec."""
    from ganfp.data.adapters import load_manifest
    from ganfp.data.adapters.folder import folder_manifest

    path = Path(spec).expanduser()
    if path.is_dir():
        real = folder_manifest(path, classes=["not_used", "used"], name=f"folder:{path}", exclude=("generated",))
        return real, generated_manifest(path / "generated")
    real = load_manifest(spec, data_root)
    if not real.labelled or "generated" not in real.info:
        raise InputError(f"{spec}: a calibration set needs labelled used/not_used images and generated images")
    if "used" not in real.classes:
        raise InputError(f"{spec}: no class named 'used' (classes: {', '.join(real.classes)})")
    return real, generated_manifest(real.info["generated"])


def calibration_candidates(scorer: MembershipScorer, methods: list[str], ks: list[int]) -> list[Candidate]:
    candidates = []
    for method in methods:
        for k in (ks if method in K_SCORERS or method == "fusion" else [None]):
            candidates.append(Candidate(method, k, scorer.members(method, k or DEFAULT_K)))
    return candidates


def calibrate(spec: str, setup: ScoringSetup, method: str | None, k: int | None, image_size: int | None,
              has_checkpoint: bool) -> Choice:
    """Pick method, k, weights and used fraction on a labelled dev set (scored against its own generated images)."""
    real, generated = dev_sets(spec, setup.data_root)
    size = image_size or native_image_size(real, generated)
    dev_setup = ScoringSetup(**{**setup.__dict__, "image_size": size})
    y = (real.labels == real.classes.index("used")).astype(np.int64)
    methods = [method] if method else [m for m in METHODS if m != "classifier" or has_checkpoint]
    scorer = MembershipScorer(real, generated, dev_setup)
    return choose(calibration_candidates(scorer, methods, [k] if k else list(K_GRID)), y, seed=setup.seed)


def decision_rule(used_fraction: float | None, threshold: float | None) -> str:
    if threshold is not None:
        return f"score >= {threshold:g}"
    return f"top {used_fraction:.1%} by rank"


def check_options(method, k, used_fraction, threshold, image_size) -> None:
    if used_fraction is not None and threshold is not None:
        raise InputError("give --used-fraction or --threshold, not both")
    if method is not None and method not in METHODS:
        raise InputError(f"--method {method}: choose one of: {', '.join(METHODS)}")
    if k is not None and k < 1:
        raise InputError(f"--k {k}: must be at least 1")
    if image_size is not None and not 8 <= image_size <= 4096:
        raise InputError(f"--image-size {image_size}: must be between 8 and 4096")


def classify(real: str, out, *, generated: str | None = None, method: str | None = None, features: str | None = None,
             checkpoint: str | None = None, used_fraction: float | None = None, threshold: float | None = None,
             scores_path=None, ids_path=None, calibrate_on: str | None = None, k: int | None = None,
             device: str = "auto", batch_size: int = 128, data_root=None, runs_dir=None, seed: int = 0,
             image_size: int | None = None, progress: Progress | None = None) -> ClassifyResult:
    """Score, decide, write `out` (validated) and optionally the scores CSV; return what was done."""
    from ganfp.device import resolve_device
    from ganfp.submission import decide, write_scores, write_submission

    started = time.perf_counter()
    check_options(method, k, used_fraction, threshold, image_size)
    manifest = read_real(real, data_root)
    expected = check_ids(manifest.ids, ids_path) if ids_path else None
    gen_dir = generated or manifest.info.get("generated")
    gen = generated_manifest(gen_dir) if gen_dir else None
    if gen is None and method not in (None, "classifier"):
        raise InputError(f"--method {method} compares real with generated images: pass --generated GEN_DIR")
    if gen is None and calibrate_on:
        raise InputError("--calibrate chooses among the membership scorers: pass --generated GEN_DIR too")
    space = parse_features(features or DEFAULT_FEATURES)
    membership = gen is not None and method != "classifier"
    size = image_size or (native_image_size(manifest, gen) if membership else None)
    setup = ScoringSetup(space, size, resolve_device(device), batch_size, data_root, checkpoint, runs_dir, seed,
                         progress=progress)

    choice = None
    if calibrate_on:
        choice = calibrate(calibrate_on, setup, method, k, image_size, has_checkpoint=checkpoint is not None)
        method, k = choice.method, choice.k
        if used_fraction is None and threshold is None:
            used_fraction = choice.used_fraction
    method = method or (DEFAULT_METHOD if gen is not None else "classifier")
    k = k or DEFAULT_K
    if used_fraction is None and threshold is None:
        used_fraction = DEFAULT_USED_FRACTION

    scorer = MembershipScorer(manifest, gen, setup)
    score, scorers = scorer.final(method, k, choice.weights if choice else None)
    labels = decide(score, used_fraction=used_fraction, threshold=threshold)
    write_submission(out, manifest.ids, labels, expected_ids=expected)
    if scores_path:
        write_scores(scores_path, manifest.ids, score, columns=scorers)
    summary = {
        "images": len(labels),
        "generated": len(gen) if gen is not None and method != "classifier" else None,
        "method": method,
        "scorers": list(scorers),
        "features": space.label if any(m in NEIGHBOUR_METHODS for m in scorers) else None,
        "k": k if any(m in K_SCORERS for m in scorers) else None,
        "weights": choice.weights if choice else None,
        "checkpoint": scorer.checkpoint_meta["stage"] if scorer.checkpoint_meta else None,
        "decision": decision_rule(used_fraction, threshold),
        "used_fraction": used_fraction,
        "threshold": threshold,
        "labelled_used": int(labels.sum()),
        "labelled_not_used": int(len(labels) - labels.sum()),
        "out": str(out),
        "scores": str(scores_path) if scores_path else None,
        "calibration": choice.describe() if choice else None,
        "device": str(setup.device),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return ClassifyResult(manifest.ids, labels, score, scorers, summary, choice)
