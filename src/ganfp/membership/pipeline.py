"""One (real, generated) pair of image sets scored by any method; shared work is done once.

Features, neighbour passes, the autoencoder and the classifier are each computed on first use,
so calibration can try every method and k on the dev set for the price of one pass per kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganfp.data.cache import cache_key
from ganfp.data.manifest import Manifest
from ganfp.errors import InputError
from ganfp.membership.autoencoder import AutoencoderConfig, cached_autoencoder, reconstruction_scores
from ganfp.membership.features import FeatureSpace, compute_features, downsample, load_checked
from ganfp.membership.fusion import fuse
from ganfp.membership.scorers import K_SCORERS, NEIGHBOUR_SCORERS, Neighbours
from ganfp.paths import cache_root

Progress = Callable[[str, int, int], None]
NEIGHBOUR_METHODS = tuple(NEIGHBOUR_SCORERS)
METHODS = NEIGHBOUR_METHODS + ("autoencoder", "classifier", "fusion")
FUSION_MEMBERS = ("knn", "retrieval", "density", "autoencoder")
DEFAULT_AUTOENCODER = AutoencoderConfig()


@dataclass
class ScoringSetup:
    features: FeatureSpace
    image_size: int | None  # every image resized to this; None only when the classifier (own size) runs alone
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 128
    data_root: str | Path | None = None
    checkpoint: str | Path | None = None  # None: the newest chain run (classifier, checkpoint features)
    runs_dir: str | Path | None = None
    seed: int = 0
    autoencoder: AutoencoderConfig | None = None  # None: DEFAULT_AUTOENCODER
    progress: Progress | None = None


def used_class_index(classes: list[str]) -> int:
    """The column of P(used): the class named "used" when there is one, else class 1."""
    return classes.index("used") if "used" in classes else 1


def classifier_scores(real: Manifest, setup: ScoringSetup) -> tuple[np.ndarray, dict]:
    """P(used) per real image from a ganfp checkpoint, and the checkpoint's metadata (plus its folder)."""
    from ganfp.checkpoint import load_checkpoint, resolve_checkpoint
    from ganfp.inference import predict_proba

    given = Path(setup.checkpoint) if setup.checkpoint else None
    stage = given if given is not None and given.is_file() else resolve_checkpoint(given, setup.runs_dir)
    model, meta = load_checkpoint(stage, setup.device)
    if meta.get("num_classes", 2) < 2:
        raise InputError(f"{stage}: the checkpoint has one class; P(used) needs two")
    images = load_checked(real, int(meta["image_size"]), setup.data_root, setup.progress, "decode real")
    probs = predict_proba(model, images, setup.batch_size, setup.device)
    return probs[:, used_class_index(list(meta.get("classes", [])))].astype(np.float64), {**meta, "stage": str(stage)}


class MembershipScorer:
    """Scores of every real image against one generated set; each piece of work runs once."""

    def __init__(self, real: Manifest, generated: Manifest | None, setup: ScoringSetup):
        self.real, self.generated, self.setup = real, generated, setup
        self.checkpoint_meta: dict | None = None
        self._neighbours: Neighbours | None = None
        self._cache: dict[tuple[str, int | None], np.ndarray] = {}

    def _need_generated(self) -> Manifest:
        if self.generated is None:
            raise InputError("the membership scorers compare real with generated images: pass --generated GEN_DIR")
        return self.generated

    def neighbours(self) -> Neighbours:
        if self._neighbours is None:
            if len(self.real) < 2:
                raise InputError(f"{self.real.name}: the neighbour scorers compare at least 2 real images, got {len(self.real)}")
            s = self.setup
            common = dict(image_size=s.image_size, device=s.device, batch_size=s.batch_size, data_root=s.data_root,
                          checkpoint=s.checkpoint, runs_dir=s.runs_dir, progress=s.progress)
            generated = compute_features(s.features, self._need_generated(), role="generated", **common)
            real = compute_features(s.features, self.real, role="real", **common)
            self._neighbours = Neighbours(real, generated, s.features.metric, s.device, s.progress)
        return self._neighbours

    def _autoencoder_scores(self) -> np.ndarray:
        s, cfg = self.setup, self.setup.autoencoder or DEFAULT_AUTOENCODER
        generated = self._need_generated()
        gen_small = downsample(load_checked(generated, s.image_size, s.data_root, s.progress, "decode generated"), cfg.size)
        real_small = downsample(load_checked(self.real, s.image_size, s.data_root, s.progress, "decode real"), cfg.size)
        on_step = (lambda: s.progress("train autoencoder", 1, cfg.steps)) if s.progress else None
        key = f"{cache_key(generated, s.image_size)}\0{generated.fingerprint(with_labels=False)}"
        model = cached_autoencoder(gen_small, key, cfg, s.seed, s.device, cache_root(s.data_root) / "autoencoders", on_step)
        return reconstruction_scores(model, real_small, s.device)

    def score(self, method: str, k: int) -> np.ndarray:
        """One scorer's scores (higher = more likely used); `k` matters to knn and density only."""
        key = (method, k if method in K_SCORERS else None)
        if key not in self._cache:
            if method in NEIGHBOUR_METHODS:
                self._cache[key] = NEIGHBOUR_SCORERS[method](self.neighbours(), k)
            elif method == "autoencoder":
                self._cache[key] = self._autoencoder_scores()
            elif method == "classifier":
                self._cache[key], self.checkpoint_meta = classifier_scores(self.real, self.setup)
            else:
                raise InputError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
        return self._cache[key]

    def members(self, method: str, k: int, fusion_members: tuple[str, ...] = FUSION_MEMBERS) -> dict[str, np.ndarray]:
        """The scorers behind `method`: its members for fusion, else the method alone."""
        names = fusion_members if method == "fusion" else (method,)
        return {name: self.score(name, k) for name in names}

    def final(self, method: str, k: int, weights: dict[str, float] | None = None,
              fusion_members: tuple[str, ...] = FUSION_MEMBERS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(decision score, every scorer computed for it)."""
        members = self.members(method, k, fusion_members)
        if method == "fusion":
            return fuse(members, weights), members
        return members[method], members
