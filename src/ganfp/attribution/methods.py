"""Supervised attributors: each turns labelled generated images into class probabilities for unknown ones.

- `centroid`: the nearest class mean in the standardised feature space.
- `knn`: a distance-weighted vote of the k nearest labelled images.
- `linear`: multinomial logistic regression on the same features.
- `cnn`: a classifier trained with ganfp's own trainer (`ganfp.train.run_stage`) on the labelled
  generated images, the machinery the paper built for membership put to another task.
- `fusion`: the mean of the `knn` and `cnn` probabilities (one fast neighbour view, one learnt view).

A method is one registration: `@METHODS.register(name, needs=...)`, where `needs` says whether
it reads features (and so `--features` and `--k` matter) or trains on images.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ganfp.attribution.defaults import DEFAULT_EPOCHS, DEFAULT_MODEL
from ganfp.attribution.features import BlockScaler, FeatureContext, compute, decode, pair_space
from ganfp.data.manifest import Manifest
from ganfp.errors import plain_numbers
from ganfp.registry import Registry

METHODS = Registry("attribution method")
FUSION_MEMBERS = ("knn", "cnn")
KEPT_NEIGHBOURS = 3  # per class, what knn keeps of its neighbour pass for the report (its 3 nearest of any class)


@dataclass(frozen=True)
class TrainerSettings:
    """How the `cnn` method trains: a small net, few epochs, early stopping on a held-out fifth."""

    model: str | None = None  # None: DEFAULT_MODEL (see resolved); None also says --model was not given
    epochs: int | None = None  # None: DEFAULT_EPOCHS
    patience: int = 5
    batch_size: int = 32
    lr: float = 0.001  # the paper's; 0.01 stopped early at 0.70 accuracy on demo:attribution-2025, this reaches 0.95
    augment: bool = False  # flips and shifts: 0.32 instead of 0.70 on demo:attribution-2025 (at lr 0.01)
    runs_dir: str | None = None

    def __post_init__(self):
        plain_numbers(self)  # numpy's numbers as Python's, as the attribution configs'

    def resolved(self) -> TrainerSettings:
        """The defaults filled in, once the attribution config has checked which method reads these."""
        return replace(self, model=DEFAULT_MODEL if self.model is None else self.model,
                       epochs=DEFAULT_EPOCHS if self.epochs is None else self.epochs)

    def validate(self) -> None:
        """The model is known and the runs folder writable, before the first line of training is printed."""
        from ganfp.errors import InputError, require_text
        from ganfp.fileio import check_writable
        from ganfp.models import model_entry
        from ganfp.paths import runs_root

        require_text("model", self.model)  # `model=5` failed inside timm with an AttributeError
        try:
            model_entry(self.model)
        except InputError as exc:
            raise InputError(f"--model: {exc}") from None
        check_writable(runs_root(self.runs_dir), "--runs-dir", folder=True)


@dataclass(frozen=True)
class Measure:
    """How a knn pass compared images, in words: the report names the number it shows as the method measured it."""

    name: str  # e.g. "whitened NCC in white64"
    similarity: bool  # shown as 1 - distance (higher = more alike), the way NCC and SSIM are read

    def shown(self, distance: float) -> float:
        return 1.0 - distance if self.similarity else distance

    def words(self) -> str:
        return f"{self.name}, {'higher' if self.similarity else 'smaller'} = more alike"


@dataclass
class Neighbours:
    """What knn's one neighbour pass found: per unknown image and class, the nearest labelled images, nearest first.
    Kept so the report shows the neighbours the vote looked at instead of measuring others."""

    index: np.ndarray  # (n_unknown, n_classes, n): indices into the labelled images; -1 past a class's last image
    distance: np.ndarray  # the same shape: the method's distance (inf past a class's last image)
    measure: Measure

    def of_class(self, i: int, cls: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, distances) of unknown image `i`'s nearest labelled images of class `cls`."""
        keep = self.index[i, cls] >= 0
        return self.index[i, cls][keep], self.distance[i, cls][keep]


@dataclass
class Job:
    """One attribution: the labelled references, the images to attribute, and how to compare them."""

    train: Manifest  # labelled: generated/<class> (plus real/<class> with use_real)
    unknown: Manifest
    train_spec: str  # the dataset spec the trainer loads (the labelled generated images)
    features: str
    k: int
    ctx: FeatureContext
    trainer: TrainerSettings
    seed: int = 0
    message: Callable[[str], None] = lambda text: None
    window: str | None = None  # the HU window of DICOM/NIfTI images (`window_name`), which the cnn trains in too
    hu_offset: int | None = None  # 16-bit grayscale images store HU + this (read in `window`), the cnn's too
    _vectors: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    neighbours: Neighbours | None = field(default=None, repr=False)  # knn's, per class; None for other methods

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(train, unknown) features, standardised on the training images; computed once per job."""
        if self._vectors is None:
            train, widths = compute(self.features, self.train, self.ctx)
            unknown, _ = compute(self.features, self.unknown, self.ctx)
            scaler = BlockScaler().fit(train, widths)
            self._vectors = scaler.transform(train), scaler.transform(unknown)
        return self._vectors

    def computed_vectors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The (train, unknown) vectors if the method compared in them; None when it compared otherwise (in pairs,
        or by a trained network): the report then shows knn's own neighbours, or measures them in pixels (cnn)."""
        return self._vectors


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


@METHODS.register("centroid", needs="features")
def centroid(job: Job) -> np.ndarray:
    """Softmax of minus the distance to each class mean, in units of the typical within-class distance."""
    train, unknown = job.vectors()
    y = job.train.labels
    means = np.stack([train[y == c].mean(0) for c in range(len(job.classes))])
    spread = np.median(np.linalg.norm(train - means[y], axis=1)) + 1e-12
    squared = (unknown**2).sum(1)[:, None] + (means**2).sum(1)[None] - 2 * unknown @ means.T  # no (N, C, D) array
    distances = np.sqrt(np.maximum(squared, 0))
    return _softmax(-distances / spread)


@METHODS.register("knn", needs="features", uses_k=True, pairs=True)
def knn(job: Job) -> np.ndarray:
    """A distance-weighted vote of the k nearest labelled images, found class by class in one pass, which `job`
    keeps (`Job.neighbours`) for the report."""
    space = pair_space(job.features)
    unknown, train, metric, measure = _pair_inputs(job, space) if space is not None else _vector_inputs(job)
    neighbours = _class_neighbours(job, unknown, train, metric, measure)
    job.neighbours = neighbours
    return _distance_vote(*_overall(neighbours, job.k), job.train.labels, len(job.classes))


@METHODS.register("linear", needs="features")
def linear(job: Job) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    train, unknown = job.vectors()
    model = LogisticRegression(max_iter=2000, random_state=job.seed).fit(train, job.train.labels)
    return _in_class_order(model.predict_proba(unknown), model.classes_, len(job.classes))


def _pair_inputs(job: Job, space) -> tuple:
    """knn where each unknown image is compared with each labelled one in pairs, by membership's neighbour pass.

    A memoriser's outputs are its training slices warped, shifted and re-contrasted: far apart as vectors, but
    the shifted correlation of whitened images (`white`) finds an unknown copy's sibling among the labelled
    copies, or its source among `real/<class>/` (docs/attribution.md). The whitening is fitted to the labelled
    images as membership fits it to the generated ones.
    """
    from ganfp.device import resolve_device
    from ganfp.membership.features import paired_features

    at, unknown, train = paired_features(space, job.unknown, job.train,
                                         image_size=job.ctx.image_size, device=resolve_device(job.ctx.device),
                                         batch_size=job.ctx.batch_size, data_root=job.ctx.data_root)
    return unknown, train, at.metric, pair_measure(at.kind, at.metric.name, job.features)


def pair_measure(kind: str, metric: str, features: str) -> Measure:
    """The words for a pair space's number: NCC and SSIM are read as similarities, wstd as a distance."""
    if metric == "ncc":
        whitened = "whitened " if kind == "white" else ""
        return Measure(f"{whitened}NCC, the best over small shifts, in {features}", similarity=True)
    if metric == "ssim":
        return Measure(f"SSIM in {features}", similarity=True)
    return Measure(f"Euclidean distance between the whitened images in {features}", similarity=False)


def _vector_inputs(job: Job) -> tuple:
    """knn in a vector space: the standardised vectors, compared by the same neighbour pass as the pair spaces."""
    import torch

    from ganfp.membership.distances import Euclidean

    train, unknown = job.vectors()
    measure = Measure(f"Euclidean distance in {job.features}, standardised", similarity=False)
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x))  # noqa: E731
    return as_tensor(unknown), as_tensor(train), Euclidean(), measure


def _class_neighbours(job: Job, unknown, train, metric, measure: Measure) -> Neighbours:
    """Each unknown image's max(k, KEPT_NEIGHBOURS) nearest labelled images of every class, in one pass that compares
    every pair once (the labelled images grouped by class); the k nearest overall are among them."""
    import torch

    from ganfp.device import resolve_device
    from ganfp.membership.distances import nearest_in_groups

    labels = np.asarray(job.train.labels)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(job.classes) + 1)).tolist()
    distance, index = nearest_in_groups(unknown, train[torch.from_numpy(order)], max(job.k, KEPT_NEIGHBOURS), metric,
                                        resolve_device(job.ctx.device), bounds)
    index = index.numpy()
    return Neighbours(np.where(index >= 0, order[index], -1), distance.double().numpy(), measure)


def _overall(neighbours: Neighbours, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of the k nearest labelled images of any class, nearest first, from the per-class lists."""
    distance = neighbours.distance.reshape(len(neighbours.distance), -1)
    index = neighbours.index.reshape(len(distance), -1)
    k = min(k, int((index[0] >= 0).sum()))
    order = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distance, order, 1), np.take_along_axis(index, order, 1)


def _distance_vote(distances: np.ndarray, index: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Each neighbour votes for its class with weight 1 / distance; an exact match (distance 0) takes every vote,
    as scikit-learn's `weights="distance"` does."""
    exact = distances <= 0
    weights = np.where(exact.any(1, keepdims=True), exact.astype(float), 1 / np.maximum(distances, 1e-300))
    votes = np.zeros((len(distances), n_classes))
    np.add.at(votes, (np.arange(len(distances))[:, None], np.asarray(labels)[index]), weights)
    return votes / votes.sum(1, keepdims=True)


def _in_class_order(probs: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(probs), n_classes))
    out[:, present] = probs
    return out


def _kept_model_line(cfg, out_dir: Path, train_spec: str) -> str:
    """What the cnn method does in its folder: reuse the model finished there with these settings, or train one.
    A kept model whose file changed since is refused here: the trainer's refusal named train-stage's --force and
    --resume, which attribute has not."""
    from ganfp.checkpoint import MODEL_FILE, altered_weights, stage_status, weights_altered_once
    from ganfp.train import completed

    if completed(cfg, out_dir) is None:
        return f"training {cfg.model} on {train_spec} into {out_dir}"
    if weights_altered_once(out_dir / MODEL_FILE, stage_status(out_dir)):
        raise altered_weights(out_dir / MODEL_FILE, f"delete {out_dir} to train it again, or restore the file")
    return f"reusing the {cfg.model} model trained on {train_spec} with these settings in {out_dir}"


@METHODS.register("cnn", needs="images")
def cnn(job: Job) -> np.ndarray:
    """Train (or reuse, when the same images and settings were trained before) a classifier; its probabilities."""
    from ganfp import inference
    from ganfp.checkpoint import load_checkpoint
    from ganfp.device import resolve_device, rng_untouched
    from ganfp.errors import InputError
    from ganfp.fileio import folder_lock
    from ganfp.paths import runs_root
    from ganfp.train import StageConfig, run_stage, stage_manifest

    t = job.trainer
    cfg = StageConfig(name="attribution", dataset=job.train_spec, model=t.model, init="none",
                      image_size=job.ctx.image_size, batch_size=t.batch_size, lr=t.lr, epochs=t.epochs,
                      patience=t.patience, seed=job.seed, augment=t.augment, device=job.ctx.device, window=job.window,
                      hu_offset=job.hu_offset)
    seen = stage_manifest(cfg, job.ctx.data_root)  # what the trainer loads: generated/<class> only, in its window
    out_dir = Path(runs_root(t.runs_dir)) / "attribute" / f"{t.model}-{seen.fingerprint()[:12]}"
    with folder_lock(out_dir, str(out_dir), "", wait=True):  # a second attribute run waits, then reuses the model
        job.message(_kept_model_line(cfg, out_dir, job.train_spec))
        run_stage(cfg, out_dir, resume=True, strict_resume=False, data_root=job.ctx.data_root)
    device = resolve_device(job.ctx.device)
    with rng_untouched():  # the net built to load the weights into drew its random init from the caller's RNG
        model, meta = load_checkpoint(out_dir, device)
    if sorted(meta["classes"]) != sorted(job.classes):
        raise InputError(f"{job.train_spec}: the trainer saw classes {meta['classes']}, not {job.classes}")
    probs = inference.predict_proba(model, decode(job.unknown, job.ctx), job.ctx.batch_size, device)
    return probs[:, [meta["classes"].index(c) for c in job.classes]]


@METHODS.register("fusion", needs="both", uses_k=True, pairs=True, members=FUSION_MEMBERS)
def fusion(job: Job) -> np.ndarray:
    return np.mean([METHODS.get(name)(job) for name in FUSION_MEMBERS], axis=0)
