"""One stage of the chain: fine-tune a model on one labelled dataset, with early stopping and resumable checkpoints.

Flat functions in the manner of torchvision's reference scripts: `train_one_epoch`, `evaluate`,
and `run_stage`, which reads setup -> build -> resume-or-start -> fit -> finish. The trainer
receives labelled images; pseudo-labelling an unlabelled set is the chain's work (`ganfp.chain`).
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import time
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ganfp import __version__, distributed
from ganfp.checkpoint import (
    HISTORY_FILE,
    META_FILE,
    MODEL_FILE,
    RESUME_FILE,
    altered_weights,
    load_checkpoint,
    load_resume,
    model_meta,
    resume_header,
    retrain_hint,
    save_model,
    save_resume,
    stage_status,
    weights_altered_once,
)

# The knn pseudo-labeler's defaults are the membership scorer's (ganfp.membership.recipe). Importing them here puts
# them in every stage's digest.
from ganfp.membership.recipe import DEFAULT_FEATURES, DEFAULT_K
from ganfp.membership.spaces import parse_features
from ganfp.data.adapters import load_manifest, parse_spec, spec_folders
from ganfp.data.augment import BatchAugment
from ganfp.data.cache import ImageSet, default_memory_budget, load_images
from ganfp.data.generated import depths_by_set, generated_manifest, high_depth_reading
from ganfp.data.loader import MEAN, STD, device_images, iterate_batches
from ganfp.data.manifest import UNLABELLED, Manifest
from ganfp.data.medical import (MedicalReading, hu_offset_problem, parse_window, window_problem, window_text,
                                with_window)
from ganfp.data.split import split_indices, split_problem
from ganfp.device import (
    autocast,
    configure,
    device_name,
    device_problem,
    freed_memory_kept,
    resolve_device,
    rng_untouched,
    seed_rng,
    settings_kept,
)
from ganfp.errors import (
    MAX_SEED,
    InputError,
    Interrupted,
    RuntimeFailure,
    StopSignal,
    count,
    plain_numbers,
    require_callable,
    require_flag,
    require_path,
)
from ganfp.fileio import (
    check_writable,
    file_sha256,
    sync_folder,
    utf8_writable,
    write_json,
    write_text,
    written_together,
)
from ganfp.metrics import confusion_metrics
from ganfp.models import create_model, image_size_problem, model_entry
from ganfp.models.factory import check_weights_reachable
from ganfp.pseudo import PSEUDO_LABELERS
from ganfp.stage_folder import (
    StageState,
    best_model_problem,
    early_stop_kept,
    early_stop_line,
    extension,
    model_file_epoch,
    resume_mismatch,
)

log = logging.getLogger(__name__)
# a stage's start warnings already logged for it (`said_before`): a chain logs its plan's before any stage trains
_said: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("ganfp_stage_warnings_said",
                                                                       default=frozenset())
# each stage's file list, by what it lists, while a chain checks its stages before the first trains (`listed_once`)
_listed: contextvars.ContextVar[dict | None] = contextvars.ContextVar("ganfp_stage_listings", default=None)

Observer = Callable[[str, dict], None]
OBSERVER_CALL = "(event, data)"  # what an Observer is called with
HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1", "lr"]
PSEUDO_NAMES = {
    "val_accuracy": "val_pseudo_agreement",
    "val_f1": "val_pseudo_f1",
}  # what those scores are on pseudo-labels
MIN_STEPS = 4  # fewer SGD steps per epoch than this and a stage learns next to nothing: say so
# An epoch that did not improve saves its resume state only while a stage's saves stay within this share of the
# time since its epochs began (this run's), plus SAVE_ALLOWANCE seconds: see `saves_epoch`.
SAVE_SHARE = 0.1
SAVE_ALLOWANCE = 5.0


def plain_name_problem(name: object) -> str | None:
    """Why `name` cannot name a folder of its own (path separators, `..`, empty), or None."""
    if not isinstance(name, str) or not name.strip():
        return "must be a non-empty name"
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name or name.startswith("-") or "\0" in name:
        return f"{name!r} is not a plain name (no path separators, no '..')"
    return None


@dataclass
class StageConfig:
    """Everything that defines a stage; the paper's hyper-parameters are the defaults."""

    name: str = "stage"
    dataset: str = "demo:casia"  # adapter spec, see ganfp.data.adapters
    model: str = "resnet18"
    init: str = "none"  # none | imagenet | a weights file | a ganfp stage folder / checkpoint
    image_size: int = 224
    batch_size: int = 256
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 200
    patience: int = 10  # early stopping: epochs without a lower validation loss
    val_fraction: float = 0.2
    seed: int = 0
    augment: bool = True
    skip_bad: bool = False
    window: str | None = None  # HU window of DICOM/NIfTI images: lung, mediastinum, bone, CENTER,WIDTH; None: lung (CT)
    hu_offset: int | None = None  # 16-bit grayscale PNG/TIFF store HU + this, read in `window`; None: stretched
    pseudo_labels: str | None = None  # unlabelled stage: "self" (the init model's predictions), "knn", ...
    pseudo_fraction: float = 0.25  # fraction of images labelled at each end of the score ranking
    pseudo_features: str = DEFAULT_FEATURES  # feature space of the "knn" pseudo-labeler
    pseudo_k: int = DEFAULT_K  # neighbours of the "knn" pseudo-labeler
    device: str = "auto"
    compile: bool = False
    deterministic: bool = False
    memory_budget: float | None = None  # GB of RAM for the image cache (per machine); larger caches stay memory-mapped
    extra: dict = field(default_factory=dict)  # options passed to the dataset adapter

    def __post_init__(self):
        """numpy's numbers as Python's, a torch.device as its name, a Path as its text (a stage's settings are text, as
        `stage_configs`' overrides'): `image_size=np.int64(16)`, `device=torch.device("cpu")` and
        `dataset=Path("scans")` were refused as not an integer, not a string, and had a numpy number passed, its
        digest (`default=str`) and meta.json would have held "16"."""
        plain_numbers(self)
        if isinstance(self.device, torch.device):
            self.device = str(self.device)
        for name in ("dataset", "init"):  # a folder as a Path is the folder's text, as the command line gives it
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))

    def identity(self) -> dict:
        """The fields that change results (not the device): a finished stage is reused only if they match."""
        d = dataclasses.asdict(self)
        for k in ("device", "compile", "deterministic", "memory_budget"):
            d.pop(k)
        if self.pseudo_labels is None:  # labelled stages keep the digests they had before these fields existed
            d.pop("pseudo_features")
            d.pop("pseudo_k")
        if self.window is None:  # stages read in the default window keep the digests they had before the field
            d.pop("window")
        elif self.window_text():
            d["window"] = self.window_text()  # "40,400" and "mediastinum" are one setting
        if self.hu_offset is None:  # likewise: stages without an offset keep their digests
            d.pop("hu_offset")
        return d

    def window_text(self) -> str | None:
        """The window as a checkpoint records it and classify reads it back (`window_text`)."""
        return window_text(self.window)

    def reading(self) -> MedicalReading:
        """How the stage's images are read: its window, and the HU offset of its 16-bit ones (after `validate`)."""
        return MedicalReading(window=parse_window(self.window) if self.window else None, hu_offset=self.hu_offset)

    def digest(self, init_id: str = "") -> str:
        blob = json.dumps([self.identity(), init_id], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def problems(self, check_init: bool = True) -> list[tuple[str, str]]:
        """(field, what is wrong) for every bad field: types first, then ranges and names.

        A rule is skipped when a field it reads has the wrong type (that field is reported instead).
        `check_init=False` skips the `init` rules, for a chain stage that starts from the stage before it.
        """
        found = type_problems(self)
        mistyped = {name for name, _ in found}
        for name, reads, rule in self._rules(check_init):
            why = None if mistyped & {name, *reads} else rule()
            if why:
                found.append((name, why))
        return found

    def _rules(self, check_init: bool):
        """(field, other fields read, rule returning what is wrong or None)."""

        def need(ok: bool, why: str) -> str | None:
            return None if ok else why

        rules = [
            ("name", (), lambda: plain_name_problem(self.name)),
            ("epochs", (), lambda: need(self.epochs >= 1, f"must be at least 1, got {self.epochs}")),
            (
                "patience",
                (),
                lambda: need(
                    self.patience >= 1,
                    f"must be at least 1 (epochs without a lower validation loss), got {self.patience}",
                ),
            ),
            ("batch_size", (), lambda: need(self.batch_size >= 1, f"must be at least 1, got {self.batch_size}")),
            ("batch_size", (), lambda: self.batch_size >= 1 and self._share_problem()),
            (
                "image_size",
                (),
                lambda: need(8 <= self.image_size <= 4096, f"must be 8 to 4096 pixels, got {self.image_size}"),
            ),
            ("lr", (), lambda: need(0 < self.lr < math.inf, f"must be a positive number, got {self.lr}")),
            (
                "momentum",
                (),
                lambda: need(0 <= self.momentum < 1, f"must be at least 0 and below 1, got {self.momentum}"),
            ),
            (
                "weight_decay",
                (),
                lambda: need(0 <= self.weight_decay < math.inf, f"must be 0 or more, got {self.weight_decay}"),
            ),
            (
                "val_fraction",
                (),
                lambda: need(0 < self.val_fraction < 1, f"must be above 0 and below 1, got {self.val_fraction}"),
            ),
            (
                "pseudo_fraction",
                (),
                lambda: need(
                    0 < self.pseudo_fraction <= 0.5, f"must be above 0 and at most 0.5, got {self.pseudo_fraction}"
                ),
            ),
            ("pseudo_labels", (), lambda: self.pseudo_labels and _problem(PSEUDO_LABELERS.entry, self.pseudo_labels)),
            ("pseudo_k", (), lambda: need(self.pseudo_k >= 1, f"must be at least 1, got {self.pseudo_k}")),
            ("pseudo_features", (), lambda: _problem(lambda spec: parse_features(spec, None), self.pseudo_features)),
            ("seed", (), lambda: need(0 <= self.seed <= MAX_SEED, f"must be 0 to {MAX_SEED}, got {self.seed}")),
            (
                "memory_budget",
                (),
                lambda: need(
                    self.memory_budget is None or 0 <= self.memory_budget < math.inf,
                    f"must be 0 or more (GB), got {self.memory_budget}",
                ),
            ),
            ("device", (), self._device_problem),
            ("model", (), lambda: _problem(model_entry, self.model)),
            ("image_size", ("model",), self._size_problem),
            ("dataset", (), lambda: _problem(parse_spec, self.dataset)),
            ("window", (), lambda: None if self.window is None else window_problem(self.window)),
            ("hu_offset", (), lambda: None if self.hu_offset is None else hu_offset_problem(self.hu_offset)),
        ]
        if check_init:
            rules += [
                ("init", ("model",), self._init_problem),
                (
                    "pseudo_labels",
                    ("init",),
                    lambda: need(
                        not self.pseudo_labels or self.init not in ("none", "imagenet"),
                        "pseudo-labels need a trained model to start from: a previous stage's folder as init "
                        "(train-stage: --init)",
                    ),
                ),
                ("pseudo_labels", ("init",), self._pseudo_init_problem),
            ]
        return rules

    def _pseudo_init_problem(self) -> str | None:
        """Pseudo-labels are the starting model's used / not used: it must be a ganfp stage of two classes, known
        from its header (it was found out after the images were decoded)."""
        if not self.pseudo_labels or self.init in ("none", "imagenet") or self._init_problem():
            return None  # no pseudo-labels, or reported as an init problem
        classes = init_classes(Path(self.init).expanduser())
        if classes is None:
            return f"pseudo-labels need a ganfp stage to start from; {self.init} is a plain weights file (no classes)"
        if len(classes) != 2:
            return (f"pseudo-labels need a two-class model to start from (used / not used); {self.init} has "
                    f"{len(classes)} classes ({', '.join(classes)})")
        return None

    def _device_problem(self) -> str | None:
        """A GPU the machine (or, under torchrun, this process) lacks, known now: a chain's stage 3 found it after
        stages 1 and 2 trained."""
        why = device_problem(self.device) or distributed.process_device_problem(str(self.device))
        return f"{why}, got {self.device!r}" if why else None

    def _share_problem(self) -> str | None:
        """Under torchrun, a batch the processes cannot split evenly, known before any stage decodes or trains."""
        why = distributed.batch_share_problem(self.batch_size)
        return f"{why}, got {self.batch_size}" if why else None

    def _size_problem(self) -> str | None:
        """An image the model cannot take (a ViT's fixed patch grid, poolings that leave nothing), known before
        any image is decoded: it failed with a torch traceback at the first batch."""
        if _problem(model_entry, self.model) or not 8 <= self.image_size <= 4096:
            return None  # reported as a model or range problem
        return image_size_problem(self.model, self.image_size)

    def _init_problem(self) -> str | None:
        if self.init == "none":
            return None
        if self.init == "imagenet":
            if _problem(model_entry, self.model) or model_entry(self.model).timm_name is not None:
                return None
            return f"{self.model} has no ImageNet weights; use none or a local weights file"
        path = Path(self.init).expanduser()
        if not path.exists():
            return f"{self.init}: no such weights file or stage folder (or: none, imagenet)"
        return _problem(lambda init: check_init_checkpoint(init, self.model), self.init)

    def validate(self, check_init: bool = True, options: bool = False) -> None:
        """Raise one InputError listing every bad setting, before any work starts.

        `options`: each setting named by the `ganfp train-stage` option that gave it (`--val-fraction`, `--data`),
        as `ganfp chain` names its overrides; the command said `stage o: val_fraction: ...`, a name it has no
        option for.
        """
        problems = self.problems(check_init)
        if problems and options:
            raise InputError("; ".join(option_problem(stage_option(name), getattr(self, name), why)
                                       for name, why in problems))
        if problems:
            label = self.name if not plain_name_problem(self.name) else repr(self.name)  # `stage '': name: ...`
            raise InputError(f"stage {label}: " + "; ".join(f"{name}: {why}" for name, why in problems))


def stage_option(field_name: str) -> str:
    """The train-stage option that sets a `StageConfig` field: `--data` for `dataset`, else the field in dashes."""
    return "--data" if field_name == "dataset" else f"--{field_name.replace('_', '-')}"


def option_problem(option: str, value, why: str) -> str:
    """A setting's problem said of its option: `--pseudo-features nope: not one of ...` for one led by the value the
    option gave, as `errors.of_option` says it, else `--epochs: must be at least 1, got 0`."""
    return f"{option} {why}" if why.startswith(f"{value}:") else f"{option}: {why}"


def check_init_checkpoint(init: str, model: str) -> None:
    """A ganfp checkpoint to start from must describe `model`, rebuildable by ganfp (its header), and a finished
    stage's model must be the file it finished with (hashed once per run: `weights_altered_once`); a plain state_dict
    must fit `model`. All known before any image is decoded: the load found them after minutes of decoding.
    Another model's checkpoint is said of `init` as given, so train-stage names its option and value (`--init c5:
    holds a conv5 model (c5/model.safetensors), not the resnet18 ...`), where it named the file after `--init:`."""
    from ganfp.checkpoint import check_model_meta, read_safetensors
    from ganfp.models.factory import check_weights_fit

    path = Path(init).expanduser()
    file = start_model_file(path)
    if file is None:
        check_weights_fit(path, model)  # a plain state_dict (.pth): read now (weights only), not after decoding
        return
    meta = read_safetensors(file, tensors=False)[1]
    if "model" not in meta:  # a plain safetensors state_dict
        check_weights_fit(file, model)
        return
    check_model_meta(file, meta)
    if meta["model"] != model:
        read = "" if file == path else f" ({file})"
        raise InputError(f"{init}: holds a {meta['model']} model{read}, not the {model} this stage trains")
    if weights_altered_once(file, stage_status(file.parent)):
        raise altered_weights(file, retrain_hint(file.parent, meta.get("stage")))


def init_classes(path: Path) -> list[str] | None:
    """The classes a ganfp checkpoint (stage folder or model file) was trained on, from its header; None for a
    plain weights file."""
    from ganfp.checkpoint import read_safetensors

    file = start_model_file(path)
    if file is None:
        return None
    classes = read_safetensors(file, tensors=False)[1].get("classes")
    return [str(c) for c in classes] if isinstance(classes, list) else None


def start_model_file(path: Path) -> Path | None:
    """The safetensors file a stage would start from: a stage folder's model (a run folder's last finished stage's),
    or the file itself; None for weights in another format (a .pth state_dict), which hold no header to read."""
    from ganfp.checkpoint import resolve_checkpoint

    if path.is_dir():
        return resolve_checkpoint(path) / MODEL_FILE
    return path if path.suffix == ".safetensors" else None


def start_identity(init: str) -> str:
    """What a stage starts from, for its digest: a finished stage's run id, else the weights file's content hash.

    The path alone is not enough: a stage retrained in the same folder, or a weights file rewritten, must not
    leave the stages trained from it looking current. ImageNet and random starts have no identity ("").
    """
    from ganfp.checkpoint import resolve_checkpoint

    if init in ("none", "imagenet"):
        return ""
    path = Path(init).expanduser()
    if path.is_dir():
        stage = resolve_checkpoint(path)
        done = stage_status(stage)
        if done and done.get("run_id"):
            return str(done["run_id"])
        path = stage / MODEL_FILE
    return file_sha256(path)[:32]


def _problem(check, value) -> str | None:
    """The InputError `check(value)` raises, as text; None when it passes."""
    try:
        check(value)
    except InputError as exc:
        return str(exc)
    return None


def type_problems(obj) -> list[tuple[str, str]]:
    """(field, problem) for every dataclass field whose value is not of its declared type (ints pass as floats)."""
    hints = typing.get_type_hints(type(obj))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             dict: "a table (of named options)"}
    out = []
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        allowed = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
        if value is None and type(None) in typing.get_args(hint):
            continue
        ok = any(_is_a(value, t) for t in allowed)
        if not ok:
            out.append((f.name, f"expected {' or '.join(names.get(t, t.__name__) for t in allowed)}, got {value!r}"))
    return out


def _is_a(value, t) -> bool:
    if t is bool or isinstance(value, bool):
        return t is bool and isinstance(value, bool)
    if t is float:
        return isinstance(value, (int, float))
    if t is dict:  # a table's keys are option names: `extra={1: 2}` failed as "keywords must be strings"
        return isinstance(value, dict) and all(isinstance(key, str) for key in value)
    return isinstance(value, t)


@dataclass
class StageSummary:
    """One stage's result. `val_labels` says what validation scores compare with: "true" labels, or
    "pseudo:METHOD", the stage's own pseudo-labels, where accuracy is only agreement with them."""

    stage: str
    dataset: str
    model: str
    classes: list[str]
    class_counts: dict[str, int]
    train_size: int
    val_size: int
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float
    best_val_f1: float
    seconds: float
    val_labels: str = "true"
    status: str = "trained"  # trained | skipped (finished earlier with the same settings and images)
    reason: str = ""  # why a chain trained a finished stage again ("images changed", ...); "" otherwise
    window: str | None = None  # the HU window its DICOM/NIfTI (and HU) images were read in; None: none given (lung)
    hu_offset: int | None = None  # its 16-bit grayscale images were read as HU + this; None: stretched per image
    warnings: list[str] = field(default_factory=list)

    @property
    def pseudo(self) -> bool:
        return self.val_labels != "true"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if self.pseudo:  # never printed as accuracy: on pseudo-labels it is agreement with them
            d["best_val_pseudo_agreement"] = d.pop("best_val_accuracy")
            d["best_val_pseudo_f1"] = d.pop("best_val_f1")
        return d

    @classmethod
    def from_dict(cls, d: dict, **changes) -> "StageSummary":
        d = {**d}
        d.setdefault("best_val_accuracy", d.pop("best_val_pseudo_agreement", None))
        d.setdefault("best_val_f1", d.pop("best_val_pseudo_f1", None))
        known = {f.name for f in dataclasses.fields(cls)}
        return dataclasses.replace(cls(**{k: v for k, v in d.items() if k in known}), **changes)


@dataclass
class StageData:
    """Labelled images for a stage; `val_labels` is "pseudo:METHOD" when the labels are pseudo-labels."""

    manifest: Manifest
    images: torch.Tensor
    val_labels: str = "true"
    dataset_fingerprint: str = ""  # the dataset as listed, before bad files were dropped or pseudo-labels drawn
    warnings: list[str] = field(default_factory=list)  # about the images, said with the stage's own


@dataclass
class Fit:
    """What the epoch loop works with, built once per stage."""

    cfg: StageConfig
    device: torch.device
    model: torch.nn.Module
    net: torch.nn.Module  # the model as trained (DDP, compiled)
    eval_net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    images: torch.Tensor
    labels: torch.Tensor
    train_idx: np.ndarray
    val_idx: np.ndarray
    classes: list[str]
    batch_size: int  # global batch: every rank takes batch_size // world of it
    channels_last: bool
    pseudo: bool = False  # labels are the stage's own pseudo-labels: its val scores are agreement, not accuracy


def train_one_epoch(
    model,
    optimizer,
    images,
    labels,
    indices,
    batch_size,
    device,
    augment=None,
    observer=None,
    channels_last=False,
    norm=(MEAN, STD),
) -> dict:
    """One pass over `indices`; returns mean loss and accuracy over all ranks."""
    model.train()
    totals = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
    batches = iterate_batches(images, indices, batch_size, device, labels, augment, channels_last, norm=norm)
    for step, (x, y) in enumerate(batches):
        with autocast(device):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = y.shape[0]  # running sums stay on the device: no host round trip, so no GPU stall per step
        totals[0] += loss.detach().double() * n
        totals[1] += (logits.argmax(-1) == y).sum()
        totals[2] += n
        if observer and (device.type == "cpu" or step % 20 == 0):
            observer(
                "batch", {"loss": float(loss.detach()), "advance": 1 if device.type == "cpu" else min(20, step + 1)}
            )
    distributed.all_reduce_sum(totals)
    loss_sum, correct, count = totals.tolist()
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


@torch.no_grad()
def evaluate(
    model, images, labels, indices, batch_size, device, classes, channels_last=False, norm=(MEAN, STD)
) -> dict:
    """Loss, accuracy and F1 (`ganfp.metrics.confusion_metrics`) over all ranks."""
    model.eval()
    n = len(classes)
    loss_sum = torch.zeros(1, device=device, dtype=torch.float64)
    confusion = torch.zeros(n, n, device=device, dtype=torch.float64)
    for x, y in iterate_batches(images, indices, batch_size, device, labels, channels_last=channels_last, norm=norm):
        with autocast(device):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        ids = torch.arange(n, device=y.device)
        one_hot_true, one_hot_pred = (y[:, None] == ids).double(), (logits.argmax(-1)[:, None] == ids).double()
        confusion += one_hot_true.T @ one_hot_pred  # bincount would wait for the GPU at every batch
    distributed.all_reduce_sum(loss_sum)
    distributed.all_reduce_sum(confusion)
    cm = confusion.cpu().numpy()
    return {"loss": float(loss_sum.item() / max(cm.sum(), 1)), **confusion_metrics(cm, classes)}


def rank_shard(indices: np.ndarray, batch_size: int) -> np.ndarray:
    """This rank's share of every global batch, so N processes see the same batches as one."""
    world, rank = distributed.world_size(), distributed.rank()
    if world == 1:
        return indices
    parts = [indices[s : s + batch_size][rank::world] for s in range(0, len(indices), batch_size)]
    return np.concatenate(parts) if parts else indices


def even_batches(order: np.ndarray, batch_size: int) -> np.ndarray:
    """`order` cut so that every rank gets the same number of equal batches, none of one image.

    The last global batch is cut to a multiple of the world size (DDP averages the ranks' mean
    losses, which equals the global mean only for equal shares) and dropped when a rank's share
    would be a single image, which breaks batch norm. On one process: only a last batch of one goes.
    """
    world = distributed.world_size()
    tail = len(order) % batch_size
    keep = tail - tail % world
    if keep == world and len(order) > world:
        keep = 0
    return order[: len(order) - tail + keep]


def build_model(cfg: StageConfig, classes: list[str], device):
    """The stage's starting model: from a previous stage's checkpoint or from `create_model`.

    A fresh head replaces the old one unless the previous stage had the same classes
    (self-training on the task it was trained for keeps its head).
    """
    init = Path(cfg.init)
    if cfg.init not in ("none", "imagenet") and (init.is_dir() or (init.suffix == ".safetensors" and _has_meta(init))):
        model, meta = load_checkpoint(init)
        if meta["model"] != cfg.model:
            raise InputError(f"{cfg.init}: holds a {meta['model']} model, not {cfg.model}")
        if meta["classes"] != classes:
            model.reset_head(len(classes))
        if meta["image_size"] != cfg.image_size and hasattr(model, "net") and hasattr(model.net, "set_input_size"):
            model.net.set_input_size(img_size=cfg.image_size)
        model.image_size = cfg.image_size
        return model.to(device), meta
    return create_model(cfg.model, num_classes=len(classes), image_size=cfg.image_size, weights=cfg.init).to(
        device
    ), None


def _has_meta(path: Path) -> bool:
    from ganfp.checkpoint import read_safetensors

    return path.is_file() and "model" in read_safetensors(path, tensors=False)[1]


def setup_device(cfg: StageConfig) -> torch.device:
    """Join the process group (under torchrun), pick the device and its fast settings (the config is validated:
    the batch splits evenly over the processes, each has its own GPU)."""
    device = resolve_device(distributed.setup(device_name(cfg.device)))
    configure(device, cfg.deterministic)
    return device


def load_stage_images(cfg: StageConfig, data_root, observer: Observer | None = None,
                      manifest: Manifest | None = None) -> StageData:
    """The stage's manifest (given, when the caller checked it first) and its images decoded at the stage's size."""
    if manifest is None:
        manifest = stage_manifest(cfg, data_root)
    if manifest.labelled or not cfg.pseudo_labels:
        check_labels(cfg, manifest)  # missing labels or a missing class are known before a single image is decoded
    fingerprint = dataset_fingerprint(cfg, manifest)  # before decoding: an image rewritten meanwhile reads as changed
    budget = default_memory_budget() if cfg.memory_budget is None else int(cfg.memory_budget * 1e9)
    with distributed.main_first():  # rank 0 decodes; the other ranks then read its cache
        imageset = load_images(
            manifest,
            cfg.image_size,
            data_root,
            skip_bad=cfg.skip_bad,
            memory_budget=budget // distributed.local_world_size(),
            on_image=lambda: _notify(observer, "decode", {"task": f"decode {cfg.dataset}", "total": len(manifest)}),
        )
    # said after decoding, so that a bad image's error is the only line a user sees
    how = "read from the decode cache" if imageset.reused else "decoded and cached for the next run"
    _notify(observer, "message", {"text": f"{cfg.dataset}: {len(manifest)} images at {cfg.image_size}px, {how}"})
    if imageset.memory_mapped:
        _notify(
            observer,
            "message",
            {"text": f"image cache over the memory budget: batches are read memory-mapped from {imageset.path}"},
        )
    for path, reason in imageset.bad:
        _notify(observer, "message", {"text": f"skipped {path}: {reason}"})
    return StageData(imageset.manifest, imageset.images, dataset_fingerprint=fingerprint,
                     warnings=depth_warnings(cfg, imageset))


def depth_warnings(cfg: StageConfig, imageset: ImageSet) -> list[str]:
    """A warning when the stage's images mix bit depths, with each class's counts: a 16-bit image is stretched
    between its own percentiles and an 8-bit one read as it is, so a class saved at another depth differs in
    contrast, which the network can learn instead of the class. The depths come from the decode cache's record,
    found as each image was decoded: no pass over the files (a cache an older ganfp built gets them from the headers,
    once)."""
    if imageset.depths is None:
        return []
    manifest = imageset.manifest
    sets = [f"class {manifest.classes[it.label]}" if it.label != UNLABELLED else "the images" for it in manifest.items]
    listed = depths_by_set(sets, imageset.depths)
    if not listed:
        return []
    return [f"{cfg.dataset}: the images mix bit depths ({listed}): {high_depth_reading(cfg.reading())}, 8-bit ones "
            "read as they are, so the network may tell them apart by their file format; save every image at one bit "
            "depth"]


def _trained_on_other_images(cfg: StageConfig, out_dir: Path, data_root) -> bool:
    """A finished stage whose dataset lists other files now (train-stage --resume; a chain plans this itself).

    A stage an older ganfp finished recorded no images: it is taken as it is, as it was then.
    """
    recorded = (stage_status(out_dir) or {}).get("dataset_fingerprint")
    return recorded is not None and recorded != dataset_fingerprint(cfg, stage_manifest(cfg, data_root))


def stage_manifest(cfg: StageConfig, data_root) -> Manifest:
    """The stage's images as its adapter lists them, its DICOM and NIfTI ones (and, with an HU offset, its 16-bit
    ones) read in the stage's window: the window and the offset are in every image's cache key and file fingerprint,
    so a stage read otherwise decodes and trains anew. Within `listed_once`, a dataset listed before is not listed
    again (nor is one that could not be: the same error)."""
    listings = _listed.get()
    if listings is None:
        return _list_stage(cfg, data_root)
    key = (cfg.dataset, json.dumps(cfg.extra, sort_keys=True, default=str), cfg.window, cfg.hu_offset, str(data_root))
    if key not in listings:
        try:
            listings[key] = _list_stage(cfg, data_root)
        except InputError as exc:
            listings[key] = exc
    if isinstance(listings[key], InputError):
        raise listings[key]
    return listings[key]


@contextlib.contextmanager
def listed_once(listings: dict) -> Iterator[None]:
    """Within it, `stage_manifest` lists each stage's dataset once, keeping it in `listings`: a chain's checks before
    its first stage trains (what its window reaches, its plan, its batch warning, an interrupted run's fingerprint)
    listed a dataset up to four times, about a second each per 20,000 files. A stage still lists its images afresh
    when it starts to train (hours later, maybe), outside it."""
    token = _listed.set(listings)
    try:
        yield
    finally:
        _listed.reset(token)


def _list_stage(cfg: StageConfig, data_root) -> Manifest:
    """`stage_manifest`, listed now."""
    manifest = load_manifest(cfg.dataset, data_root, **cfg.extra)
    if cfg.window is None and cfg.hu_offset is None:
        return manifest
    reading = cfg.reading()
    return with_window(manifest, reading.window, reading.hu_offset)


def check_window_read(cfg: StageConfig, data_root) -> None:
    """A window given to a stage whose images hold no DICOM or NIfTI file (nor, with an HU offset, a 16-bit one),
    or an offset given to one without 16-bit images, would change nothing: refused, as classify refuses it."""
    if cfg.window is not None or cfg.hu_offset is not None:
        paths = [it.path for it in stage_manifest(cfg, data_root).items]
        cfg.reading().check_read(paths)


def dataset_fingerprint(cfg: StageConfig, manifest: Manifest) -> str:
    """What a chain re-run compares to tell whether a finished stage's images changed, without decoding one.

    Each file's path, size and mtime with its label (`Manifest.fingerprint`, as the decode cache keys images),
    the class names, and the groups and fixed splits that the 8:2 split is drawn from (its seed is a setting);
    for a pseudo-label source that scores against them (`reads_generated`), the generated images as well.
    """
    h = hashlib.sha256(manifest.fingerprint().encode())
    h.update(json.dumps([manifest.classes, manifest.groups, [it.split for it in manifest.items]]).encode())
    generated = manifest.info.get("generated")
    if cfg.pseudo_labels and generated and PSEUDO_LABELERS.entry(cfg.pseudo_labels).meta.get("reads_generated"):
        h.update(generated_manifest(generated).fingerprint(with_labels=False).encode())
    return h.hexdigest()


def check_labels(cfg: StageConfig, manifest: Manifest) -> None:
    """A stage learns a distinction: it needs labels, images of at least two classes, and enough of them to split
    (`split_problem`)."""
    if not len(manifest):
        raise InputError(f"{cfg.dataset}: no readable images left to train on")
    if not manifest.labelled:
        raise InputError(
            f'{cfg.dataset}: images have no labels; give the stage pseudo_labels (e.g. "self") or a labelled dataset'
        )
    _check_class_names(manifest)
    counts = manifest.class_counts()
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise InputError(
            f"{cfg.dataset}: no images of class {', '.join(map(repr, empty))} (classes: {', '.join(counts)}); "
            "a stage needs images of every class"
        )
    if len(counts) < 2:
        raise InputError(
            f"{cfg.dataset}: only one class ({', '.join(map(repr, counts))}); a stage needs at least two: "
            "add a sub-folder of images for the missing class"
        )
    why = split_problem(manifest, cfg.val_fraction)
    if why:
        raise InputError(f"{cfg.dataset}: {why}")
    _check_train_share(cfg, manifest)


def _check_train_share(cfg: StageConfig, manifest: Manifest) -> None:
    """Under torchrun every process needs a training image: with fewer, each batch is cut to nothing and the
    stage trains no step, then fails on a validation loss of NaN, after the decoding."""
    world = distributed.launch_world_size()
    if world <= 1:
        return
    n_train = len(split_indices(manifest, cfg.val_fraction, cfg.seed)[0])
    if n_train < world:
        raise InputError(f"{cfg.dataset}: {count(n_train, 'training image')} for {world} processes (torchrun), so "
                         "some would train on none; start fewer processes, or add images")


def _check_class_names(manifest: Manifest) -> None:
    """A class folder named in another encoding than UTF-8 (Latin-1 bytes on Linux) reaches Python with surrogates,
    which went into meta.json and the checkpoint as escapes no other tool reads back as the folder's name."""
    for cls in manifest.classes:
        if not utf8_writable(cls):
            shown = os.fsencode(Path(manifest.root) / cls).decode("utf-8", "backslashreplace")  # the bytes, as \xe9
            raise InputError(f"{shown}: class folder name is not UTF-8 (named in another encoding, e.g. Latin-1), "
                             "and a stage writes its class names into meta.json and the checkpoint; rename the "
                             "folder in UTF-8")


def batch_warnings(cfg: StageConfig, n_train: int) -> list[str]:
    """A loud note when each epoch is too few SGD steps to learn anything (a batch as large as the split)."""
    steps = math.ceil(n_train / min(cfg.batch_size, n_train))
    if steps >= MIN_STEPS:
        return []
    suggest = max(1, 2 ** int(math.log2(max(1, n_train // 8))))
    what = (
        f"batch size {cfg.batch_size} is not smaller than the {n_train} training images, "
        "so every epoch is a single SGD step"
        if steps == 1
        else f"batch size {cfg.batch_size} gives only {steps} SGD steps per epoch over {n_train} training images"
    )
    # the batch size may come from --batch-size or from a chain file (`batch_size`): both ways are named
    return [
        f"stage {cfg.name}: {what} and the model will barely learn; use a smaller batch, e.g. --batch-size {suggest} "
        f"(batch_size = {suggest} in a chain file), and perhaps a larger learning rate, e.g. --lr 0.003"
    ]


def prepare_fit(cfg: StageConfig, data: StageData, device: torch.device) -> Fit:
    """Split, build the starting model, its optimiser and its parallel/compiled wrappers."""
    manifest = data.manifest
    check_labels(cfg, manifest)
    train_idx, val_idx = split_indices(manifest, cfg.val_fraction, cfg.seed)
    seed_rng(cfg.seed, device)
    model, _ = build_model(cfg, manifest.classes, device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    world = distributed.world_size()
    net = eval_net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)
        eval_net = net if world == 1 else torch.compile(model)
    labels = torch.as_tensor(manifest.labels)
    batch_size = max(world, min(cfg.batch_size, len(train_idx)) // world * world)
    return Fit(
        cfg,
        device,
        model,
        net,
        eval_net,
        optimizer,
        device_images(data.images, device),
        labels.to(device) if device.type == "cuda" else labels,
        train_idx,
        val_idx,
        manifest.classes,
        batch_size,
        channels_last,
        pseudo=data.val_labels != "true",
    )


def completed(cfg: StageConfig, out_dir: Path, init_id: str = "") -> StageSummary | None:
    """The summary of a stage already finished in `out_dir` with these settings and this starting point."""
    done = stage_status(out_dir)
    if not done or (done.get("digest") != cfg.digest(init_id) and early_stop_kept(done, cfg, init_id) is None):
        return None
    try:
        return StageSummary.from_dict(done["metrics"], status="skipped", window=window_text(done.get("window")),
                                      hu_offset=done.get("hu_offset"))  # as it read its images, then
    except (KeyError, TypeError):  # a meta.json edited or damaged by hand: it was a traceback
        raise InputError(f"{out_dir / META_FILE}: says stage {cfg.name} finished, but its metrics cannot be read "
                         f"(edited or damaged); train it again: train-stage --force, or chain --from-stage {cfg.name}"
                         ) from None


def check_request(cfg: StageConfig, out_dir: str | Path, resume: bool, force: bool, data_root=None) -> None:
    """What a single stage (`train-stage`) refuses besides its settings, before any work: an --out it cannot write
    or that lies inside its data, --force with --resume, and pseudo-label settings it would ignore."""
    check_writable(out_dir, "--out", folder=True)
    _check_out_outside_data(out_dir, cfg, data_root)
    if force and resume:
        raise InputError("--force and --resume: choose one (--resume continues the stage in --out, --force starts it "
                         "over)")
    _check_pseudo_settings(cfg)


def _check_out_outside_data(out_dir: str | Path, cfg: StageConfig, data_root) -> None:
    """--out inside a folder of the dataset: its lock folder read as a class without images (or, in a flat folder,
    as a sub-folder beside the images), and a finished stage's files would sit among the data. Refused by name."""
    folder = data_folder_holding(out_dir, cfg, data_root)
    if folder is not None:
        where = "" if parse_spec(cfg.dataset)[0] == "folder" else f" (its folder {folder})"
        raise InputError(f"--out {out_dir}: is inside the dataset --data {cfg.dataset}{where}, where the stage's "
                         "files would become part of the data; choose a folder outside it")


def data_folder_holding(out_dir: str | Path, cfg: StageConfig, data_root) -> Path | None:
    """The folder of the stage's dataset that `out_dir` is or lies in, else None; train-stage's --out and a chain's
    stage folders are checked by it. Every spec's folders count (`spec_folders`, with the adapter's options): only a
    folder spec's were, so a stage went into the synthetic slices of `covid-ctset` (`generated=FOLDER`) or a demo
    part's folder."""
    target = Path(out_dir).expanduser().resolve()
    for folder in spec_folders(cfg.dataset, data_root, **cfg.extra):
        data = folder.expanduser().resolve()
        if target == data or data in target.parents:
            return folder
    return None


def _check_pseudo_settings(cfg: StageConfig) -> None:
    """Refuse a pseudo-label setting the stage would ignore: one set without pseudo_labels, or one the chosen
    source does not read (`settings` in its registration); they were accepted and had no effect."""
    defaults = StageConfig()
    for name in ("pseudo_fraction", "pseudo_features", "pseudo_k"):
        value = getattr(cfg, name)
        if value == getattr(defaults, name):
            continue
        option = f"--{name.replace('_', '-')} {value}"
        if cfg.pseudo_labels is None:
            raise InputError(f"{option}: only used with --pseudo-labels (on an unlabelled dataset); drop it")
        if name == "pseudo_fraction":
            continue
        if name not in PSEUDO_LABELERS.entry(cfg.pseudo_labels).meta.get("settings", ()):
            readers = [e.name for e in PSEUDO_LABELERS if name in e.meta.get("settings", ())]
            raise InputError(f"{option}: --pseudo-labels {cfg.pseudo_labels} does not use it (only "
                             f"{', '.join(readers)} does); drop it")


def start_or_resume(fit: Fit, out_dir: Path, fresh: StageState, resume: bool, strict_resume: bool,
                    observer, init_id: str = "") -> StageState:
    """The state to train from: `last.safetensors` when resuming with the same settings and images, else `fresh`.

    One that cannot be continued is refused when `strict_resume` (train-stage --resume), else (the chain) the
    stage starts over, saying why.
    """
    resume_path = out_dir / RESUME_FILE
    saved = resume_header(resume_path) if resume else None
    why = None
    if saved is not None:
        why = resume_mismatch(saved, fresh, fit.cfg, init_id) or best_model_problem(out_dir, saved)
    if why is None and saved is not None:
        try:
            return _resumed(fit, resume_path, fresh, extension(saved, fit.cfg, init_id), observer)
        except InputError as exc:
            why = str(exc).removeprefix(f"{resume_path}: ")
    if why is None and resume and resume_path.is_file():  # the chain started over from it without a word
        why = "cannot be read (damaged or cut short)"
    if why and strict_resume:
        raise InputError(f"{resume_path}: {why}; add --force instead of --resume to start over")
    if why:
        _notify(observer, "message", {"text": f"{resume_path}: {why}; {fit.cfg.name} starts over"})
    elif resume and strict_resume:
        _notify(observer, "message", {"text": f"nothing to resume in {out_dir}; starting fresh"})
    if distributed.is_main():
        (out_dir / META_FILE).unlink(missing_ok=True)  # an old result must not look like this run's
    return fresh


def _resumed(fit: Fit, resume_path: Path, fresh: StageState, extended: dict | None, observer) -> StageState:
    """`fresh` as training left it in `resume_path`: model and optimiser loaded, the state's fields read (keys a
    newer ganfp added are left out). Its settings and digest are `fresh`'s, which differ only in `extended`."""
    known = {f.name for f in dataclasses.fields(StageState)}
    model_before = {k: v.clone() for k, v in fit.model.state_dict().items()}
    optimizer_before = fit.optimizer.state_dict()
    try:
        saved = load_resume(resume_path, fit.model, fit.optimizer)
    except InputError:  # torch loads what fits before it raises: a chain starting over must start from the start
        fit.model.load_state_dict(model_before)
        fit.optimizer.load_state_dict(optimizer_before)
        raise
    state = dataclasses.replace(fresh, **{k: v for k, v in saved.items() if k in known - {"config", "digest"}})
    changed = ""
    if extended:
        state.extended = [*state.extended, {"after_epoch": state.epoch, **extended}]
        changed = " with " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in extended.items())
    _notify(observer, "message", {"text": f"resuming {fit.cfg.name} after epoch {state.epoch}{changed}"})
    return state


def restore_best_model(fit: Fit, state: StageState, out_dir: Path, meta: dict, observer) -> None:
    """Rewrite `model.safetensors` from the resumed weights when they are the best epoch's and the file is not.

    A kill between `save_epoch`'s renames leaves the state of an epoch that improved beside the model of an earlier
    one; the weights `last.safetensors` holds are then the best epoch's (`best_model_problem` refused the rest).
    """
    model_file = out_dir / MODEL_FILE
    if not state.epoch or state.best_epoch != state.epoch or model_file_epoch(model_file) == state.epoch:
        return
    if distributed.is_main():
        save_model(model_file, fit.model, {**meta, "epoch": state.epoch})
    _notify(observer, "message", {"text": f"{model_file}: rewritten with the weights of the best epoch "
                                          f"{state.epoch} from {RESUME_FILE} (it held another epoch's, or none)"})


def run_epoch(fit: Fit, epoch: int, observer) -> dict:
    """Train one epoch and evaluate it; returns its history row."""
    cfg, world = fit.cfg, distributed.world_size()
    shard = fit.batch_size // world
    seed_rng(cfg.seed * 1_000_003 + epoch, fit.device)  # dropout etc.: same numbers after a resume
    rng = np.random.default_rng([cfg.seed, epoch])
    order = rank_shard(even_batches(rng.permutation(fit.train_idx), fit.batch_size), fit.batch_size)
    augment = (
        BatchAugment(seed=cfg.seed * 1_000_003 + epoch, rank=distributed.rank(), world=world) if cfg.augment else None
    )
    _notify(observer, "epoch_start", {"epoch": epoch, "epochs": cfg.epochs, "batches": math.ceil(len(order) / shard)})
    norm = fit.model.norm
    train = train_one_epoch(
        fit.net,
        fit.optimizer,
        fit.images,
        fit.labels,
        order,
        shard,
        fit.device,
        augment,
        _main_only(observer),
        fit.channels_last,
        norm,
    )
    distributed.broadcast_buffers(fit.model)  # every rank evaluates the batch-norm statistics rank 0 saves
    val = evaluate(
        fit.eval_net,
        fit.images,
        fit.labels,
        rank_shard(fit.val_idx, fit.batch_size),
        shard,
        fit.device,
        fit.classes,
        fit.channels_last,
        norm,
    )
    if not math.isfinite(train["loss"]):
        raise RuntimeFailure(f"stage {cfg.name}: training diverged in epoch {epoch} (loss {train['loss']}); lower --lr")
    return {
        "epoch": epoch,
        "train_loss": train["loss"],
        "train_accuracy": train["accuracy"],
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "val_f1": val["f1"],
        "lr": cfg.lr,
    }


def saves_epoch(improved: bool, final: bool, save_seconds: float, elapsed: float) -> bool:
    """Whether an epoch's `save_epoch` runs: always when it improved or is the stage's last, else only while the
    seconds this run spent saving are at most `SAVE_SHARE` of the `elapsed` seconds since its epochs began, plus
    `SAVE_ALLOWANCE`.

    vgg11's resume state is 1.03 GB: on a GPU an epoch of a few hundred images takes a fraction of a second, and
    writing it after every epoch was most of a stage's time. Skipping a non-improving epoch's save changes no file a
    later save leaves (that epoch never writes model.safetensors), and a resume from an earlier state trains the
    skipped epochs again with the same draws (`run_epoch` seeds them from the seed and the epoch). A small model's
    saves take milliseconds, under the allowance: it still saves every epoch.
    """
    return improved or final or save_seconds <= SAVE_SHARE * elapsed + SAVE_ALLOWANCE


@dataclass
class SaveClock:
    """The seconds this run spent in `save_epoch`, against those since its epochs began, for `saves_epoch`."""

    began: float = field(default_factory=time.perf_counter)
    spent: float = 0.0

    def save_if_due(self, improved: bool, final: bool, save: Callable[[], None]) -> None:
        if saves_epoch(improved, final, self.spent, time.perf_counter() - self.began):
            started = time.perf_counter()
            save()
            self.spent += time.perf_counter() - started


def fit_epochs(fit: Fit, state: StageState, out_dir: Path, meta: dict, observer) -> None:
    """Epochs until `epochs` or `patience` runs out (`StageState.ends`); the best epoch's weights are saved as they
    come, and the resume state with them, after the last epoch, and after others as `saves_epoch` allows."""
    cfg, clock = fit.cfg, SaveClock()
    epoch = state.epoch
    try:
        while not state.ends(cfg.epochs, cfg.patience):
            epoch = state.epoch + 1
            started = time.perf_counter()
            row = run_epoch(fit, epoch, observer)
            improved = state.update(row["val_loss"])
            if not state.best_epoch:
                raise RuntimeFailure(
                    f"stage {cfg.name}: the validation loss is {row['val_loss']} from the first epoch, "
                    "so there is no model worth keeping; lower --lr or check the validation images"
                )
            state.history.append(row)
            state.seconds += time.perf_counter() - started
            if distributed.is_main():  # rank 0 alone saves, and alone decides when: no collective
                best_meta = {**meta, "epoch": epoch} if improved else None
                clock.save_if_due(improved, state.ends(cfg.epochs, cfg.patience),
                                  lambda: save_epoch(fit, state, out_dir, best_meta))
            _notify(
                observer,
                "epoch_end",
                {"row": named_row({**row, "seconds": time.perf_counter() - started}, fit.pseudo), "improved": improved},
            )
    except (KeyboardInterrupt, StopSignal) as exc:  # Ctrl-C, or the CLI's SIGINT/SIGTERM (its exit code is kept)
        raise interrupted(cfg, out_dir, f"in epoch {epoch}", exc) from None


def save_epoch(fit: Fit, state: StageState, out_dir: Path, best_meta: dict | None) -> None:
    """The epoch's resume state and best model (when it improved), renamed into place together, the state first.

    A kill (or a power cut) between the two renames cannot be undone, so it must leave files a resume can put
    right: the state of an epoch that improved holds that epoch's weights, which `restore_best_model` writes to a
    model file left behind. Renamed the other way round, the model was an epoch ahead of a state that had not
    seen it; the resume trained that epoch again, and where it was judged otherwise (a GPU's sums need not repeat)
    the stage ended with weights its meta.json does not describe. A failed write says how to go on from the files
    kept.
    """
    try:
        with written_together() as batch:
            save_resume(out_dir / RESUME_FILE, fit.model, fit.optimizer, dataclasses.asdict(state), batch)
            if best_meta is not None:
                save_model(out_dir / MODEL_FILE, fit.model, best_meta, batch)
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"stage {fit.cfg.name}: epoch {state.epoch} was not saved: {exc}; "
                             f"{saved_line(out_dir)}") from None


def interrupted(cfg: StageConfig, out_dir: Path, when: str, exc: BaseException) -> Interrupted:
    """The one line a stopped stage ends with: what is saved, and the command that goes on from it."""
    return Interrupted(f"stage {cfg.name} interrupted {when}; {saved_line(out_dir)}", getattr(exc, "exit_code", 130))


def saved_line(out_dir: Path) -> str:
    """What a stopped stage left in `out_dir`, and the command that goes on from it."""
    resume_path = out_dir / RESUME_FILE
    if resume_path.is_file():
        saved = resume_header(resume_path)
        after = f", saved after epoch {saved['epoch']}" if saved else ""  # the epochs after it are trained again
        return (f"the last good checkpoint is {resume_path}{after}; continue with the same command plus --resume "
                "(a chain continues when simply re-run)")
    if stage_status(out_dir) is not None:
        return f"it had finished: its model and meta.json are in {out_dir}"
    return "no epoch had finished, so nothing was saved; run the same command again"


def finish(
    fit: Fit, data: StageData, state: StageState, out_dir: Path, meta: dict, warnings: list[str]
) -> StageSummary:
    """Write history.csv and the "complete" meta.json (rank 0); returns the summary."""
    cfg, best = fit.cfg, state.best_row
    summary = StageSummary(
        stage=cfg.name,
        dataset=cfg.dataset,
        model=cfg.model,
        classes=fit.classes,
        class_counts=data.manifest.class_counts(),
        train_size=int(len(fit.train_idx)),
        val_size=int(len(fit.val_idx)),
        epochs_run=state.epoch,
        best_epoch=state.best_epoch,
        best_val_loss=best["val_loss"],
        best_val_accuracy=best["val_accuracy"],
        best_val_f1=best["val_f1"],
        seconds=round(state.seconds, 2),
        val_labels=data.val_labels,
        window=cfg.window_text(),
        hu_offset=cfg.hu_offset,
        warnings=warnings,
    )
    if distributed.is_main():
        write_history(out_dir / HISTORY_FILE, state.history, summary.pseudo)
        write_json(
            out_dir / META_FILE,
            {
                **meta,
                "status": "complete",
                "run_id": uuid.uuid4().hex,
                "digest": state.digest,
                "weights_sha256": file_sha256(out_dir / MODEL_FILE),  # the file this run finished with
                "config": dataclasses.asdict(cfg),
                "metrics": summary.to_dict(),
                "data_fingerprint": data.manifest.fingerprint(),
                "dataset_fingerprint": data.dataset_fingerprint,
                "versions": package_versions(),
                "device": str(fit.device),
                "world_size": distributed.world_size(),
                **({"extended": state.extended} if state.extended else {}),  # resumed with more epochs, say
            },
        )
        (out_dir / RESUME_FILE).unlink(missing_ok=True)
        sync_folder(out_dir)  # else a power cut may bring the resume state back beside the complete meta.json
    distributed.barrier()
    return summary


def run_stage(
    cfg: StageConfig,
    out_dir: str | Path,
    resume: bool = False,
    data_root=None,
    observer: Observer | None = None,
    init_id: str = "",
    strict_resume: bool = True,
    data: StageData | None = None,
) -> StageSummary:
    """Train one stage into `out_dir` (model.safetensors, meta.json, history.csv); returns the summary.

    `data` is the labelled images (the chain passes pseudo-labelled ones); without it the stage's
    dataset is loaded and must be labelled. `resume` continues from `last.safetensors`; one written
    with other settings is an error when `strict_resume`, else (the chain) the stage starts over.

    Torch's global RNG is seeded from `cfg.seed` for the stage's draws and put back after (`rng_untouched`), so a
    caller's later random numbers do not depend on whether it trained; so are torch's global settings
    (`settings_kept`: deterministic algorithms, TF32) and, on the CPU, glibc's malloc settings (`freed_memory_kept`).
    """
    if not isinstance(cfg, StageConfig):  # else an AttributeError on `.validate`
        raise InputError(f"cfg={cfg!r}: must be a StageConfig")
    require_path("out_dir", out_dir)
    require_flag("resume", resume)
    require_callable("observer", observer, OBSERVER_CALL)
    cfg.validate()
    with settings_kept():
        device = setup_device(cfg)
        with rng_untouched(device), freed_memory_kept(device):
            return _run_stage(cfg, Path(out_dir).expanduser(), device, resume, data_root, observer, init_id,
                              strict_resume, data)


def check_imagenet_reachable(cfg: StageConfig) -> None:
    """ImageNet weights neither cached nor downloadable, known in a second: the model is built after the images are
    decoded, so offline `--init imagenet` failed only after minutes of decoding a real dataset."""
    timm_name = model_entry(cfg.model).timm_name if cfg.init == "imagenet" else None
    if timm_name is not None:
        check_weights_reachable(timm_name)


def _run_stage(cfg: StageConfig, out_dir: Path, device: torch.device, resume: bool, data_root,
               observer: Observer | None, init_id: str, strict_resume: bool, data: StageData | None) -> StageSummary:
    """`run_stage` within its own RNG: reuse a finished stage, else load, fit and finish it."""
    done = _kept(cfg, out_dir, data_root, observer, init_id, strict_resume, data) if resume else None
    if done is not None:
        return done
    check_imagenet_reachable(cfg)
    seed_rng(cfg.seed, device)
    if data is None:
        data = load_stage_images(cfg, data_root, observer)
    fit = prepare_fit(cfg, data, device)
    fresh = StageState(digest=cfg.digest(init_id), dataset_fingerprint=data.dataset_fingerprint,
                       config=cfg.identity())
    read = {"window": cfg.window_text()} if cfg.window is not None else {}  # classify reads its images so too
    read |= {"hu_offset": cfg.hu_offset} if cfg.hu_offset is not None else {}
    meta = model_meta(fit.model, fit.classes, cfg.image_size, stage=cfg.name, dataset=cfg.dataset, seed=cfg.seed,
                      **read)
    state = start_or_resume(fit, out_dir, fresh, resume, strict_resume, observer, init_id)
    restore_best_model(fit, state, out_dir, meta, observer)
    warnings = data.warnings + batch_warnings(cfg, len(fit.train_idx))
    _warn_at_start(warnings)
    if data.val_labels != "true":
        _notify(
            observer,
            "message",
            {
                "text": "this stage validates on its own pseudo-labels: val pseudo-agreement and pseudo-F1 "
                "measure agreement with them, not accuracy on true labels"
            },
        )
    fit_epochs(fit, state, out_dir, meta, observer)
    try:
        return finish(fit, data, state, out_dir, meta, warnings)
    except (KeyboardInterrupt, StopSignal) as exc:  # its files are written whole or not at all: --resume finishes it
        raise interrupted(cfg, out_dir, f"while its files were written, after epoch {state.epoch}", exc) from None
    except RuntimeFailure as exc:  # a full disk: last.safetensors is kept, and --resume finishes the stage
        raise RuntimeFailure(f"stage {cfg.name}: {exc}; {saved_line(out_dir)}") from None


def _kept(cfg: StageConfig, out_dir: Path, data_root, observer: Observer | None, init_id: str, strict_resume: bool,
          data: StageData | None) -> StageSummary | None:
    """The summary of a finished stage that --resume keeps (`completed`), said so; refused when it is no longer what
    finished: trained on other images than its dataset lists now, or its model file replaced or corrupted since (the
    next stage would start from those weights, and classify score with them)."""
    done = completed(cfg, out_dir, init_id)
    if done is None:
        return None
    if strict_resume and data is None and _trained_on_other_images(cfg, out_dir, data_root):
        raise InputError(f"--out {out_dir}: holds a stage finished on other images (its dataset changed since); add "
                         "--force instead of --resume to train it again")
    if weights_altered_once(out_dir / MODEL_FILE, stage_status(out_dir)):  # a chain's plan hashed it
        raise altered_weights(out_dir / MODEL_FILE, "add --force instead of --resume to train it again, or restore "
                              "the file")
    line = early_stop_line(cfg, out_dir, init_id) or f"{cfg.name} already complete in {out_dir}"
    _notify(observer, "message", {"text": line})
    return done


def _warn_at_start(warnings: list[str]) -> None:
    """The stage's warnings, logged before its first epoch (a user may stop it and change the batch or the images),
    as the library logs every other: sent to the observer as `WARNING: ...` progress lines, the CLI showed each a
    second time as a `warning:` line below the results, from the summary that carries them. One logged already
    (`said_before`) is not logged again; the summary still carries it."""
    if distributed.is_main():
        for text in warnings:
            if text not in _said.get():
                log.warning(text)


@contextlib.contextmanager
def said_before(texts: Iterable[str]) -> Iterator[None]:
    """Within it, a stage does not log again when it starts a warning of `texts`: a chain logs each stage's warnings
    that its plan knows (a batch too large for the split) before the first stage trains, so a user need not wait
    hours for them, and hears each once."""
    token = _said.set(_said.get() | frozenset(texts))
    try:
        yield
    finally:
        _said.reset(token)


def _notify(observer: Observer | None, event: str, data: dict) -> None:
    if observer and distributed.is_main():
        observer(event, data)


def named_row(row: dict, pseudo: bool) -> dict:
    """An epoch's scores under the names they deserve: on pseudo-labels, accuracy and F1 are only agreement."""
    rename = PSEUDO_NAMES if pseudo else {}
    return {rename.get(k, k): v for k, v in row.items()}


def write_history(path: Path, history: list[dict], pseudo: bool = False) -> None:
    """history.csv, its columns named as `named_row` names them."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(named_row(dict.fromkeys(HISTORY_COLUMNS), pseudo)), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in named_row(row, pseudo).items()})
    write_text(path, buf.getvalue())


def _main_only(observer):
    return observer if distributed.is_main() else None


def package_versions() -> dict:
    """The versions a stage records; timm's read from its installed metadata, not by importing it (2-3 s that a
    conv5 stage has no other use for)."""
    import importlib.metadata
    import platform

    return {
        "ganfp": __version__,
        "torch": torch.__version__,
        "timm": importlib.metadata.version("timm"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
