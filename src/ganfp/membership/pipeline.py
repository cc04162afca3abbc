"""One (real, generated) pair of image sets scored by any recipe; shared work is done once.

Features and neighbour passes (per feature space), the autoencoder and the classifier are each
computed on first use, so calibration can try every (space, method, k) on the dev set for the
price of one pass per space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganfp.data.cache import cache_key
from ganfp.data.generated import MIN_IMAGE_SIZE
from ganfp.data.manifest import Manifest
from ganfp.device import resolve_device, rng_untouched
from ganfp.errors import InputError, plain_numbers, require_int, require_paths, require_seed
from ganfp.membership.autoencoder import AutoencoderConfig, cached_autoencoder, reconstruction_scores
from ganfp.membership.features import downsample, load_checked, paired_features
from ganfp.membership.fusion import add_log_ratios, fuse
from ganfp.membership.recipe import DEFAULT_ENSEMBLE, DEFAULT_FEATURES, DEFAULT_K, DEFAULT_METHOD, FUSION_MEMBERS, Recipe
from ganfp.membership.scorers import SCORERS, Neighbours
from ganfp.membership.spaces import FeatureSpace, parse_features
from ganfp.paths import cache_root

Progress = Callable[[str, int, int], None]
DEFAULT_AUTOENCODER = AutoencoderConfig()


@dataclass
class ScoringSetup:
    image_size: int | None  # every image resized to this; None only when the classifier (own size) runs alone
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 128
    data_root: str | Path | None = None
    checkpoint: str | Path | None = None  # None: the newest chain run (classifier, checkpoint features)
    runs_dir: str | Path | None = None
    seed: int = 0
    autoencoder: AutoencoderConfig | None = None  # None: DEFAULT_AUTOENCODER
    progress: Progress | None = None

    def __post_init__(self):
        """Checked before any image is decoded, as the CLI's options are; a device may be named (`"cpu"`, `"auto"`).

        From Python, `image_size=0` failed inside PIL with a ZeroDivisionError, `image_size=5` inside the shifted
        NCC, and `device="cpu"` with an AttributeError at the first neighbour pass.
        """
        if self.image_size is not None:
            require_int("ScoringSetup image_size", self.image_size, low=MIN_IMAGE_SIZE)
        self.device = resolve_device(self.device, "ScoringSetup device")  # cuda:5 on a one-GPU machine too
        require_int("ScoringSetup batch_size", self.batch_size, low=1)
        require_seed("ScoringSetup seed", self.seed)  # scikit-learn's random_state takes no more than 2**32 - 1
        require_paths({}, {"ScoringSetup data_root": self.data_root, "ScoringSetup checkpoint": self.checkpoint,
                           "ScoringSetup runs_dir": self.runs_dir})
        if self.autoencoder is not None and not isinstance(self.autoencoder, AutoencoderConfig):
            raise InputError(f"ScoringSetup autoencoder={self.autoencoder!r}: must be an AutoencoderConfig or None")
        if self.progress is not None and not callable(self.progress):
            raise InputError(f"ScoringSetup progress={self.progress!r}: must be callable (task, advance, total)")
        plain_numbers(self)


class MembershipScorer:
    """Scores of every real image against one generated set; each piece of work runs once."""

    def __init__(self, real: Manifest, generated: Manifest | None, setup: ScoringSetup):
        check_sets(real, generated, setup)
        self.real, self.generated, self.setup = real, generated, setup
        self.checkpoint_meta: dict | None = None
        self._neighbours: dict[str, Neighbours] = {}
        self._cache: dict[Recipe, np.ndarray] = {}
        self._decoded: dict[str, torch.Tensor] = {}
        self._small: dict[tuple[str, int], torch.Tensor] = {}

    def need_generated(self) -> Manifest:
        if self.generated is None:
            raise InputError("the membership scorers compare real with generated images: pass --generated GEN_DIR")
        return self.generated

    def images(self, role: str) -> torch.Tensor:
        """uint8 (N, size, size) of the real or generated images at the scoring size, decoded once.

        The evidence report shows these same arrays: decoding them again for it held a second copy
        of 10,000 generated images of 256 px.
        """
        if role not in self._decoded:
            manifest = self.real if role == "real" else self.need_generated()
            s = self.setup
            self._decoded[role] = load_checked(manifest, s.image_size, s.data_root, s.progress, f"decode {role}")
        return self._decoded[role]

    def small_images(self, role: str, side: int) -> torch.Tensor:
        """The real or generated images area-averaged to `side`: each set decoded once for all spaces.

        The default ensemble's three spaces work at two sides: without this, 10,000 images of 256 px
        were read from the decode cache three times and averaged to 32 px twice (classify with a warm
        decode cache on 2 cores: 14 s, now 10 s, and a lower peak memory). A side is kept only while
        its floats take no more room than the decoded bytes (half the decoded size or less), so a
        full-size space never holds a second float copy of every image.
        """
        if (role, side) in self._small:
            return self._small[role, side]
        small = downsample(self.images(role), side)
        if 2 * side <= self.setup.image_size:
            self._small[role, side] = small
        return small

    def neighbours(self, space: FeatureSpace) -> Neighbours:
        key = space.at_most(self.setup.image_size).label  # std and std32, or white64 on 32 px images and white32, share work
        if key not in self._neighbours:
            if len(self.real) < 2:
                raise InputError(f"{self.real.name}: the neighbour scorers compare at least 2 real images, got {len(self.real)}")
            s = self.setup
            common = dict(image_size=s.image_size, device=s.device, batch_size=s.batch_size, data_root=s.data_root,
                          checkpoint=s.checkpoint, runs_dir=s.runs_dir, progress=s.progress,
                          pixels=lambda manifest, side, role: self.small_images(role, side))
            at, real, generated = paired_features(space, self.real, self.need_generated(), **common)
            self._neighbours[key] = Neighbours(real, generated, at.metric, s.device, s.progress)
        return self._neighbours[key]

    def score(self, recipe: Recipe) -> np.ndarray:
        """One recipe's scores (higher = more likely used), computed once."""
        check_recipe(recipe)
        if self.setup.image_size is None and SCORERS.entry(recipe.method).meta["needs"] != "checkpoint":
            raise InputError("ScoringSetup image_size=None: the membership scorers compare images at one size; give "
                             "image_size (ganfp.data.generated.native_image_size(real, generated) reads the images' own)")
        recipe = canonical(recipe)
        if recipe not in self._cache:
            entry = SCORERS.entry(recipe.method)
            if recipe.with_default:
                default = default_recipe()
                self._cache[recipe] = fuse({default.label: self.score(default), recipe.own.label: self.score(recipe.own)})
            elif entry.meta["needs"] == "neighbours":
                space = parse_features(recipe.features)
                if entry.meta.get("vectors_only") and not space.vectors:
                    raise InputError(f"--method {recipe.method} fits feature vectors: choose --features pixels[N], "
                                     f"std[N] or a deep space, not {space.label}")
                self._cache[recipe] = entry.obj(self.neighbours(space), recipe.k)
            else:
                self._cache[recipe] = entry.obj(self, recipe)
        return self._cache[recipe]

    def members(self, recipe: Recipe) -> dict[str, np.ndarray]:
        """The scores behind `recipe`, by label: its members for fusion, else itself."""
        return {r.label: self.score(r) for r in member_recipes(recipe)}

    def final(self, recipe: Recipe) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(decision score, every scorer computed for it, by label)."""
        return self.score(recipe), self.members(recipe)


def check_sets(real, generated, setup) -> None:
    """The scorer's arguments are of the kinds it reads: a folder name given for a manifest failed at the first
    decode with an AttributeError."""
    how = "ganfp.data.real.read_real(FOLDER) or ganfp.data.generated.generated_manifest(FOLDER)"
    for name, value in (("real", real), ("generated", generated)):
        if not isinstance(value, Manifest) and not (name == "generated" and value is None):
            raise InputError(f"MembershipScorer {name}={value!r}: must be a Manifest, as {how} returns")
    if not isinstance(setup, ScoringSetup):
        raise InputError(f"MembershipScorer setup={setup!r}: must be a ScoringSetup, e.g. ScoringSetup(image_size=64)")


def check_recipe(recipe) -> None:
    """A known method, and no space or k it would not read: `canonical` drops those, so a
    `Recipe("ensemble", "std32", 5)` would score the default while its caller believed it chose a space and k
    (the CLI refuses `--features`/`--k` there too)."""
    if not isinstance(recipe, Recipe):
        raise InputError(f"recipe={recipe!r}: must be a Recipe, e.g. Recipe(\"knn\", \"std32\", 5)")
    meta = SCORERS.entry(recipe.method).meta
    for name, value, key in (("features", recipe.features, "uses_features"), ("k", recipe.k, "uses_k")):
        if value is not None and not meta[key]:
            readers = ", ".join(SCORERS.names(**{key: True}))
            raise InputError(f"Recipe {recipe.method!r} does not read {name}={value!r}; {name} is read by {readers}")


def canonical(recipe: Recipe) -> Recipe:
    """The recipe with defaults filled in and what its method ignores dropped, so equal work runs once."""
    meta = SCORERS.entry(recipe.method).meta
    features = (recipe.features or DEFAULT_FEATURES) if meta["uses_features"] else None
    k = (recipe.k or meta.get("default_k", DEFAULT_K)) if meta["uses_k"] else None
    return Recipe(recipe.method, features, k, recipe.with_default)


def default_recipe() -> Recipe:
    """The label-free default, in canonical form (what calibration keeps unless beaten)."""
    return canonical(Recipe(DEFAULT_METHOD))


def member_recipes(recipe: Recipe) -> tuple[Recipe, ...]:
    """The recipes a combined method averages (fusion's methods in its space, the ensemble's list), else itself."""
    if recipe.with_default:
        return tuple(dict.fromkeys(member_recipes(default_recipe()) + member_recipes(recipe.own)))
    if recipe.method == "ensemble":
        return tuple(r for r, _ in DEFAULT_ENSEMBLE)
    if recipe.method == "fusion":
        return tuple(canonical(Recipe(m, recipe.features, recipe.k)) for m in FUSION_MEMBERS)
    return (canonical(recipe),)


@SCORERS.register("autoencoder", needs="generated", uses_k=False, uses_features=False,
                  description="minus the reconstruction error of an autoencoder trained on the generated images")
def autoencoder_scores(scorer: MembershipScorer, recipe: Recipe) -> np.ndarray:
    s, cfg = scorer.setup, scorer.setup.autoencoder or DEFAULT_AUTOENCODER
    generated = scorer.need_generated()
    gen_small, real_small = scorer.small_images("generated", cfg.size), scorer.small_images("real", cfg.size)
    on_step = (lambda: s.progress("train autoencoder", 1, cfg.steps)) if s.progress else None
    key = f"{cache_key(generated, s.image_size)}\0{generated.fingerprint(with_labels=False)}"
    model = cached_autoencoder(gen_small, key, cfg, s.seed, s.device, cache_root(s.data_root) / "autoencoders", on_step)
    return reconstruction_scores(model, real_small, s.device)


@SCORERS.register("classifier", needs="checkpoint", uses_k=False, uses_features=False,
                  description="P(used) from the paper's chain classifier (ignores the generated images)")
def classifier_scores(scorer: MembershipScorer, recipe: Recipe) -> np.ndarray:
    """P(used) per real image from a ganfp checkpoint; its metadata (plus its folder) lands on the scorer."""
    from ganfp.checkpoint import load_checkpoint, resolve_checkpoint
    from ganfp.inference import predict_proba

    setup = scorer.setup
    given = Path(setup.checkpoint) if setup.checkpoint else None
    stage = given if given is not None and given.is_file() else resolve_checkpoint(given, setup.runs_dir)
    with rng_untouched():  # the model's random init before its weights load is not the caller's to lose
        model, meta = load_checkpoint(stage, setup.device)
    classes = list(meta["classes"])
    # a tampering or covid stage's class 1 is not P(used), nor is a third class's softmax column: refused, not misread
    if len(classes) != 2 or "used" not in classes:
        raise InputError(f"{stage}: a classifier of {', '.join(classes) or 'unnamed classes'}, not of used / not_used; "
                         "P(used) needs a stage trained on used and not_used images (a chain's gans-dev or gans-test)")
    images = load_checked(scorer.real, int(meta["image_size"]), setup.data_root, setup.progress, "decode real")
    probs = predict_proba(model, images, setup.batch_size, setup.device)
    scorer.checkpoint_meta = {**meta, "stage": str(stage)}
    return probs[:, classes.index("used")]  # float32, as computed: --scores writes it at that precision


@SCORERS.register("fusion", needs="members", uses_k=True, uses_features=True,
                  description="rank average of knn, retrieval, density and autoencoder in one feature space")
def fusion_scores(scorer: MembershipScorer, recipe: Recipe) -> np.ndarray:
    return fuse(scorer.members(recipe))


@SCORERS.register("ensemble", needs="members", uses_k=False, uses_features=False, log_ratio=True,
                  description="the default: weighted mean of the log closeness scores of "
                              + ", ".join(f"{r.label} (weight {w:g})" for r, w in DEFAULT_ENSEMBLE))
def ensemble_scores(scorer: MembershipScorer, recipe: Recipe) -> np.ndarray:
    return add_log_ratios(scorer.members(recipe), {r.label: w for r, w in DEFAULT_ENSEMBLE})

