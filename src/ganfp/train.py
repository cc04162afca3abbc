"""One stage of the chain: fine-tune a model on one dataset, with early stopping and resumable checkpoints.

Flat functions in the manner of torchvision's reference scripts: `train_one_epoch`, `evaluate`,
and `run_stage`, which ties them to a dataset, a checkpoint folder and the progress display.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ganfp import __version__, distributed
from ganfp.checkpoint import HISTORY_FILE, META_FILE, MODEL_FILE, RESUME_FILE, load_checkpoint, load_resume, model_meta, save_model, save_resume
from ganfp.data.adapters import load_manifest
from ganfp.data.augment import BatchAugment
from ganfp.data.cache import default_memory_budget, load_images
from ganfp.data.loader import device_images, iterate_batches
from ganfp.data.split import split_indices
from ganfp.device import autocast, configure, resolve_device
from ganfp.errors import GanfpError, InputError, RuntimeFailure
from ganfp.fileio import write_json, write_text
from ganfp.models import create_model

Observer = Callable[[str, dict], None]
HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1", "lr"]


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
    pseudo_labels: str | None = None  # unlabelled stage: "self" (the init model's predictions), ...
    pseudo_fraction: float = 0.25  # fraction of images labelled at each end of the score ranking
    device: str = "auto"
    compile: bool = False
    deterministic: bool = False
    memory_budget: float | None = None  # GB of RAM for the image cache (per machine); larger caches stay memory-mapped
    extra: dict = field(default_factory=dict)  # options passed to the dataset adapter

    def identity(self) -> dict:
        """The fields that change results (not the device): a finished stage is reused only if they match."""
        d = dataclasses.asdict(self)
        for k in ("device", "compile", "deterministic", "memory_budget"):
            d.pop(k)
        return d

    def digest(self, init_id: str = "") -> str:
        blob = json.dumps([self.identity(), init_id], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Interrupted(GanfpError):
    exit_code = 130


def train_one_epoch(model, optimizer, images, labels, indices, batch_size, device, augment=None, observer=None, channels_last=False) -> dict:
    """One pass over `indices`; returns mean loss and accuracy over all ranks."""
    model.train()
    totals = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
    for step, (x, y) in enumerate(iterate_batches(images, indices, batch_size, device, labels, augment, channels_last)):
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
            observer("batch", {"loss": float(loss.detach()), "advance": 1 if device.type == "cpu" else min(20, step + 1)})
    distributed.all_reduce_sum(totals)
    loss_sum, correct, count = totals.tolist()
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


@torch.no_grad()
def evaluate(model, images, labels, indices, batch_size, device, num_classes, channels_last=False) -> dict:
    """Loss, accuracy and F1 (class 1 for two classes, macro otherwise) over all ranks."""
    model.eval()
    loss_sum = torch.zeros(1, device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes, num_classes, device=device, dtype=torch.float64)
    for x, y in iterate_batches(images, indices, batch_size, device, labels, channels_last=channels_last):
        with autocast(device):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        classes = torch.arange(num_classes, device=y.device)
        one_hot_true, one_hot_pred = (y[:, None] == classes).double(), (logits.argmax(-1)[:, None] == classes).double()
        confusion += one_hot_true.T @ one_hot_pred  # bincount would wait for the GPU at every batch
    distributed.all_reduce_sum(loss_sum)
    distributed.all_reduce_sum(confusion)
    cm = confusion.cpu().numpy()
    count = cm.sum()
    tp = np.diag(cm)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {
        "loss": float(loss_sum.item() / max(count, 1)),
        "accuracy": float(tp.sum() / max(count, 1)),
        "f1": float(f1[1] if num_classes == 2 else f1.mean()),
    }


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
    return create_model(cfg.model, num_classes=len(classes), image_size=cfg.image_size, weights=cfg.init).to(device), None


def _has_meta(path: Path) -> bool:
    from ganfp.checkpoint import read_safetensors

    return path.is_file() and "model" in read_safetensors(path, tensors=False)[1]


def stage_data(cfg: StageConfig, data_root, device, observer):
    """The stage's images, labels and class names; pseudo-labels for an unlabelled stage."""
    manifest = load_manifest(cfg.dataset, data_root, **cfg.extra)
    _notify(observer, "message", {"text": f"{cfg.dataset}: {len(manifest)} images, decoding once at {cfg.image_size}px (cached)"})
    budget = default_memory_budget() if cfg.memory_budget is None else int(cfg.memory_budget * 1e9)
    with distributed.main_first():  # rank 0 decodes; the other ranks then read its cache
        imageset = load_images(manifest, cfg.image_size, data_root, skip_bad=cfg.skip_bad,
                               memory_budget=budget // distributed.local_world_size())
    if imageset.memory_mapped:
        _notify(observer, "message", {"text": f"image cache over the memory budget: batches are read memory-mapped from {imageset.path}"})
    for path, reason in imageset.bad:
        _notify(observer, "message", {"text": f"skipped {path}: {reason}"})
    manifest, images = imageset.manifest, imageset.images
    if cfg.pseudo_labels:
        if cfg.init in ("none", "imagenet"):
            raise InputError(f"stage {cfg.name}: pseudo-labels need a trained model to start from (init = a previous stage)")
        model, meta = load_checkpoint(cfg.init, device)
        ctx = {"model": model, "images": images, "batch_size": cfg.batch_size, "device": device, "manifest": manifest, "config": cfg, "data_root": data_root}
        from ganfp.pseudo import pseudo_labels

        idx, labels = distributed.broadcast_object(pseudo_labels(cfg.pseudo_labels, ctx, cfg.pseudo_fraction))
        manifest = manifest.subset(idx).with_labels(labels, meta["classes"])
        images = images[torch.as_tensor(idx)]
    elif not manifest.labelled:
        raise InputError(f"{cfg.dataset}: images have no labels; give the stage pseudo_labels (e.g. \"self\") or a labelled dataset")
    return manifest, images


def _notify(observer: Observer | None, event: str, data: dict) -> None:
    if observer and distributed.is_main():
        observer(event, data)


def write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def run_stage(cfg: StageConfig, out_dir: str | Path, resume: bool = False, data_root=None, observer: Observer | None = None, init_id: str = "", strict_resume: bool = True) -> dict:
    """Train one stage into `out_dir` (model.safetensors, meta.json, history.csv); returns the summary.

    `resume` continues from `last.safetensors`; one written with other settings is an error when
    `strict_resume`, else (the chain) it is ignored and the stage starts over.
    """
    out_dir = Path(out_dir)
    device = resolve_device(distributed.setup(cfg.device))
    if cfg.batch_size % distributed.world_size():
        raise InputError(f"--batch-size {cfg.batch_size}: not a multiple of the {distributed.world_size()} processes, which take equal shares of each batch")
    configure(device, cfg.deterministic)
    torch.manual_seed(cfg.seed)
    manifest, images = stage_data(cfg, data_root, device, observer)
    classes = manifest.classes
    labels = torch.as_tensor(manifest.labels)
    train_idx, val_idx = split_indices(manifest, cfg.val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    model, _ = build_model(cfg, classes, device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    world = distributed.world_size()
    net = eval_net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
        eval_net = net if world == 1 else torch.compile(model)
    images = device_images(images, device)
    if device.type == "cuda":
        labels = labels.to(device)

    digest = cfg.digest(init_id)
    done = stage_status(out_dir)
    if resume and done and done.get("digest") == digest:
        _notify(observer, "message", {"text": f"{cfg.name} already complete in {out_dir}"})
        return done["metrics"]
    state = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0, "history": [], "digest": digest, "seconds": 0.0}
    resume_path = out_dir / RESUME_FILE
    saved = resume_digest(resume_path) if resume else None
    if saved is not None and saved != digest and strict_resume:
        raise InputError(f"{resume_path}: was written with other settings; run without --resume to start over")
    if saved == digest:
        state = load_resume(resume_path, model, optimizer)
        _notify(observer, "message", {"text": f"resuming {cfg.name} after epoch {state['epoch']}"})
    else:
        if resume and strict_resume:
            _notify(observer, "message", {"text": f"nothing to resume in {out_dir}; starting fresh"})
        if distributed.is_main():
            (out_dir / META_FILE).unlink(missing_ok=True)  # an old result must not look like this run's

    batch_size = max(world, min(cfg.batch_size, len(train_idx)) // world * world)  # global batch
    shard = batch_size // world
    meta_base = model_meta(model, classes, cfg.image_size, stage=cfg.name, dataset=cfg.dataset, seed=cfg.seed)
    epoch = state["epoch"]
    try:
        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            if state["bad_epochs"] >= cfg.patience:
                break
            started = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout etc.: same numbers after a resume
            rng = np.random.default_rng([cfg.seed, epoch])
            order = rank_shard(even_batches(rng.permutation(train_idx), batch_size), batch_size)
            augment = BatchAugment(seed=cfg.seed * 1_000_003 + epoch, rank=distributed.rank(), world=world) if cfg.augment else None
            _notify(observer, "epoch_start", {"epoch": epoch, "epochs": cfg.epochs, "batches": math.ceil(len(order) / shard)})
            train = train_one_epoch(net, optimizer, images, labels, order, shard, device, augment, _main_only(observer), channels_last)
            distributed.broadcast_buffers(model)  # every rank evaluates the batch-norm statistics rank 0 saves
            val = evaluate(eval_net, images, labels, rank_shard(val_idx, batch_size), shard, device, len(classes), channels_last)
            if not math.isfinite(train["loss"]):
                raise RuntimeFailure(f"stage {cfg.name}: training diverged in epoch {epoch} (loss {train['loss']}); lower --lr")
            row = {"epoch": epoch, "train_loss": train["loss"], "train_accuracy": train["accuracy"], "val_loss": val["loss"], "val_accuracy": val["accuracy"], "val_f1": val["f1"], "lr": cfg.lr}
            improved = val["loss"] < state["best_val_loss"]
            state["history"].append(row)
            state["epoch"] = epoch
            state["seconds"] += time.perf_counter() - started
            if improved:
                state.update(best_val_loss=val["loss"], best_epoch=epoch, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            if distributed.is_main():
                if improved:
                    save_model(out_dir / MODEL_FILE, model, {**meta_base, "epoch": epoch})
                save_resume(resume_path, model, optimizer, state)
            _notify(observer, "epoch_end", {"row": {**row, "seconds": time.perf_counter() - started}, "improved": improved})
    except KeyboardInterrupt:
        raise Interrupted(f"stage {cfg.name} interrupted in epoch {epoch}; the last good checkpoint is {resume_path}; "
                          "continue with the same command plus --resume (a chain continues when simply re-run)") from None

    best = state["history"][state["best_epoch"] - 1] if state["best_epoch"] else {}
    summary = {
        "stage": cfg.name,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "classes": classes,
        "class_counts": manifest.class_counts(),
        "train_size": int(len(train_idx)),
        "val_size": int(len(val_idx)),
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val_loss": best.get("val_loss"),
        "best_val_accuracy": best.get("val_accuracy"),
        "best_val_f1": best.get("val_f1"),
        "seconds": round(state["seconds"], 2),
    }
    if distributed.is_main():
        write_history(out_dir / HISTORY_FILE, state["history"])
        write_json(out_dir / META_FILE, {
            **meta_base,
            "status": "complete",
            "run_id": uuid.uuid4().hex,
            "digest": digest,
            "config": dataclasses.asdict(cfg),
            "metrics": summary,
            "data_fingerprint": manifest.fingerprint(),
            "versions": package_versions(),
            "device": str(device),
            "world_size": distributed.world_size(),
        })
        resume_path.unlink(missing_ok=True)
    distributed.barrier()
    return summary


def resume_digest(path: Path) -> str | None:
    from ganfp.checkpoint import read_safetensors

    if not path.is_file():
        return None
    try:
        return read_safetensors(path, tensors=False)[1]["state"]["digest"]
    except (GanfpError, KeyError):
        return None  # a damaged resume file is as good as none


def _main_only(observer):
    return observer if distributed.is_main() else None


def package_versions() -> dict:
    import platform

    import timm

    return {"ganfp": __version__, "torch": torch.__version__, "timm": timm.__version__, "numpy": np.__version__, "python": platform.python_version()}


def stage_status(out_dir: str | Path) -> dict | None:
    """The finished stage's meta.json, or None when it has not completed."""
    try:
        meta = json.loads((Path(out_dir) / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("status") == "complete" and (Path(out_dir) / MODEL_FILE).is_file() else None
