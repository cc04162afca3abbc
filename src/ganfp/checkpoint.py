"""Checkpoints: safetensors files that describe themselves, written atomically.

- `model.safetensors`: the weights, with the model's name, classes and image size in the
  file's own metadata (so a lone file can be loaded), beside a human-readable `meta.json` that records the file's
  SHA-256 (`weights_sha256`): a finished stage's model replaced or corrupted since is refused, not loaded.
- `last.safetensors`: model and optimiser tensors plus the epoch and early-stopping state in the
  metadata, replaced after every epoch that improved, after the stage's last, and after others while the saves stay
  within a share of the stage's time (`train.saves_epoch`), so `--resume` always finds one consistent checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ganfp.errors import GanfpError, InputError, RuntimeFailure
from ganfp.fileio import OutputBatch, atomic_path, file_sha256, writer_of

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
HISTORY_FILE = "history.csv"
RESUME_FILE = "last.safetensors"
CHAIN_FILE = "chain.json"


def tensors_of(module_state: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().to("cpu").contiguous() for k, v in module_state.items()}


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict,
                      batch: OutputBatch | None = None) -> None:
    """Write `path` whole, or with `batch`'s other files when it commits (`fileio.written_together`)."""
    with atomic_path(path, batch) as tmp:
        mode = stat.S_IMODE(tmp.stat().st_mode)  # the umask's; save_file writes a 0600 file of its own over tmp
        try:
            save_file(tensors, str(tmp), metadata={"ganfp": json.dumps(meta, default=str)})
        except SafetensorError as exc:
            failure = _as_os_error(exc)
            if failure is None:
                raise
            raise failure from exc
        os.chmod(tmp, mode)


def _as_os_error(exc: Exception) -> OSError | None:
    """safetensors reports a full disk as `SafetensorError(... I/O error: No space left on device (os error 28))`,
    not an OSError: as the OSError it is, `atomic_path` ends it in one line (and removes the temporary file) instead
    of a traceback."""
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return OSError(int(found.group(1)), os.strerror(int(found.group(1)))) if found else None


def read_safetensors(path: str | os.PathLike, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, ganfp metadata); with tensors=False only the header is read."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = json.loads((f.metadata() or {}).get("ganfp", "{}"))
            return ({k: f.get_tensor(k) for k in f.keys()} if tensors else {}), meta
    except FileNotFoundError as exc:
        raise InputError(f"{path}: checkpoint not found") from exc
    except Exception as exc:
        raise InputError(f"{path}: not a readable safetensors checkpoint ({type(exc).__name__})") from exc


def save_model(path: str | os.PathLike, model: torch.nn.Module, meta: dict, batch: OutputBatch | None = None) -> None:
    write_safetensors(path, tensors_of(model.state_dict(), ""), meta, batch)


def model_meta(model, classes: list[str], image_size: int, **extra) -> dict:
    """What it takes to rebuild the model without knowing where it came from, and to feed it."""
    mean, std = model.norm
    return {"model": model.name, "num_classes": model.num_classes, "classes": classes, "image_size": image_size,
            "mean": mean, "std": std, **extra}


LEGACY_NORM = (0.449, 0.226)  # checkpoints written before `mean`/`std` were recorded were trained with this


def check_model_meta(file: Path, meta: dict) -> None:
    """The metadata `load_checkpoint` needs, each with a usable value, or one line naming the file."""
    from ganfp.models import model_entry

    if "model" not in meta:
        raise InputError(f"{file}: no ganfp metadata (model name, classes); a plain weights file can only start a stage: --init FILE")
    checks = {
        "num_classes": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "image_size": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "classes": lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
    }
    for key, ok in checks.items():
        if key not in meta:
            raise InputError(f"{file}: checkpoint metadata lacks {key!r}; it was not written by ganfp, or was edited")
        if not ok(meta[key]):
            raise InputError(f"{file}: checkpoint metadata has an invalid {key!r}: {meta[key]!r}")
    for key in ("mean", "std"):  # optional: older checkpoints lack them
        if key in meta and not (isinstance(meta[key], (int, float)) and 0 <= meta[key] < 10 and (key == "mean" or meta[key] > 0)):
            raise InputError(f"{file}: checkpoint metadata has an invalid {key!r}: {meta[key]!r}")
    if len(meta["classes"]) != meta["num_classes"]:
        raise InputError(f"{file}: checkpoint metadata names {len(meta['classes'])} classes but num_classes is {meta['num_classes']}")
    try:
        model_entry(str(meta["model"]))
    except InputError as exc:
        raise InputError(f"{file}: checkpoint holds an {exc}") from None


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model, meta) from a stage folder, a chain run folder or a `model.safetensors` file."""
    from ganfp.models import create_model
    from ganfp.models.factory import fit_weights

    path = Path(path)
    file = path if path.suffix == ".safetensors" else resolve_checkpoint(path) / MODEL_FILE
    tensors, meta = read_unchanged(file)
    check_model_meta(file, meta)
    model = create_model(meta["model"], num_classes=meta["num_classes"], image_size=meta["image_size"])
    state = fit_weights(model, file, tensors)
    check_head(file, model, state, meta["num_classes"])
    model.load_state_dict(state)
    model.norm = (float(meta["mean"]), float(meta["std"])) if "mean" in meta and "std" in meta else LEGACY_NORM
    return model.to(device).eval(), meta


def check_head(file: Path, model, state: dict[str, torch.Tensor], num_classes: int) -> None:
    """The checkpoint's own head, of the classes its metadata names: `fit_weights` lets a starting model's head be
    fresh (a new stage's classes), but a checkpoint loaded as a classifier with a random head scores noise."""
    missing = [key for key in model.state_dict() if model.is_head_key(key) and key not in state]
    if missing:
        raise InputError(f"{file}: holds no classifier head for the {num_classes} classes its metadata names "
                         f"({missing[0]} missing or of another shape); it was not written by ganfp, or was edited")


def read_unchanged(file: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """`read_safetensors`, refusing a stage that began training again while it was read, and a finished stage's
    model file that is not the one it finished with (`weights_altered`).

    A trainer deletes meta.json before it writes a new model file and writes it again after the last one,
    so the same finished run (`run_id`) before and after the read means the tensors are that run's. The file is
    hashed before the second look, so a retrain that began meanwhile is named as such, not as a replaced file.
    """
    before = stage_status(file.parent)
    read = read_safetensors(file)
    altered = weights_altered(file, before)
    after = stage_status(file.parent)
    if before is not None and (after or {}).get("run_id") != before.get("run_id"):
        raise RuntimeFailure(f"{file}: stage {file.parent} started training again while it was read; "
                             "wait for that run to finish, or pass another checkpoint")
    if altered:
        raise altered_weights(file, retrain_hint(file.parent, read[1].get("stage")))
    return read


def weights_altered(file: Path, done: dict | None) -> bool:
    """Whether `file`, the model of the finished stage whose meta.json is `done`, differs from the SHA-256 that
    meta.json recorded: a file copied in from another run, or flipped bits, still loads without a word.

    A meta.json of an older ganfp records none, and other files (a lone weights file) have none: they pass.
    """
    recorded = (done or {}).get("weights_sha256")
    if recorded is None or file.name != MODEL_FILE:
        return False
    try:
        return file_sha256(file) != recorded
    except OSError as exc:
        raise InputError(f"{file}: cannot be read to check it against its meta.json ({exc.strerror or exc})") from exc


_UNALTERED: set[tuple] = set()  # (file's stat, recorded digest) that `weights_altered_once` found matching


def weights_altered_once(file: Path, done: dict | None) -> bool:
    """`weights_altered`, hashing a file once while it stays the same (inode, size, modification and change times):
    each validation of a stage's settings checks its start (the command's, then the stage's own; a chain's plan, then
    its stages), and a model file can be hundreds of MB. `load_checkpoint` hashes what it loads regardless."""
    try:
        info = file.stat()
    except OSError:
        return weights_altered(file, done)  # refused in one line, naming why
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
           (done or {}).get("weights_sha256"))
    if key in _UNALTERED:
        return False
    altered = weights_altered(file, done)
    if not altered:
        _UNALTERED.add(key)
    return altered


def altered_weights(file: Path, fix: str) -> InputError:
    return InputError(f"{file}: does not match the weights_sha256 in its meta.json (replaced or corrupted after the "
                      f"stage finished); {fix}")


def retrain_hint(stage: Path, name: object) -> str:
    """How to go on from a finished stage whose model is lost: a chain run's stage retrains with --from-stage."""
    if (stage.parent / CHAIN_FILE).is_file() and isinstance(name, str):
        return f"train the stage again (ganfp chain --from-stage {name}) or restore the file"
    return "train the stage again (--force) or restore the file"


def save_resume(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                batch: OutputBatch | None = None) -> None:
    """Model, optimiser and training state in one file, so the three can never disagree."""
    opt = optimizer.state_dict()
    tensors = tensors_of(model.state_dict(), "model.")
    opt_scalars = {}
    for pid, pstate in opt["state"].items():
        for k, v in pstate.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer.{pid}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                opt_scalars[f"{pid}.{k}"] = v
    meta = {"state": state, "param_groups": opt["param_groups"], "optimizer_scalars": opt_scalars}
    write_safetensors(path, tensors, meta, batch)


def load_resume(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load model and optimiser from `save_resume`'s file; returns the training state. A file whose tensors do not
    fit (missing, or of another shape) is one InputError naming it, not a torch traceback."""
    tensors, meta = read_safetensors(path)
    why = resume_problem(meta)
    if why:
        raise InputError(f"{path}: cannot be continued ({why})")
    try:
        return _load_resume(tensors, meta, model, optimizer)
    except (KeyError, ValueError, RuntimeError):
        raise InputError(f"{path}: cannot be continued (its tensors do not fit this stage's model and optimiser: "
                         "missing, or of another shape)") from None


def _load_resume(tensors: dict, meta: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta["optimizer_scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta["state"]


def resume_header(path: Path) -> dict | None:
    """The training state in `last.safetensors`'s header (digest, epoch, ...), read without its tensors; None when
    the file is missing, damaged or lacks what a resume needs (`resume_problem`)."""
    if not path.is_file():
        return None
    try:
        meta = read_safetensors(path, tensors=False)[1]
    except GanfpError:
        return None  # a damaged resume file is as good as none
    return None if resume_problem(meta) else meta["state"]


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def resume_problem(meta: dict) -> str | None:
    """What a `last.safetensors` header lacks for a resume, or None.

    A state missing a key was continued wrong, not refused: without `epoch` the stage trained its epochs again
    from 1 on the loaded weights; without `history` it crashed at the end with an IndexError.
    """
    state = meta.get("state") if isinstance(meta, dict) else None
    if not isinstance(state, dict):
        return "no training state"
    if not isinstance(meta.get("param_groups"), list) or not isinstance(meta.get("optimizer_scalars"), dict):
        return "no optimiser state"
    if not isinstance(state.get("digest"), str) or not all(_count(state.get(k)) for k in
                                                           ("epoch", "best_epoch", "bad_epochs")):
        return "no digest or epoch counts"
    history, epoch, best = state.get("history"), state["epoch"], state["best_epoch"]
    if not isinstance(history, list) or len(history) != epoch or not all(isinstance(r, dict) for r in history):
        return f"a history of other than its {epoch} epochs"
    if not 1 <= best <= epoch or not isinstance(state.get("best_val_loss"), (int, float)):
        return "no best epoch"
    return None


def stage_status(out_dir: str | os.PathLike) -> dict | None:
    """The finished stage's meta.json, or None when it has not completed."""
    try:
        meta = json.loads((Path(out_dir) / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("status") == "complete" and (Path(out_dir) / MODEL_FILE).is_file() else None


def check_finished(stage: Path) -> None:
    """Refuse a stage whose training stopped midway, or that a ganfp run is training now: its model file is only
    the best epoch so far, not the result."""
    writer = None if (stage / CHAIN_FILE).is_file() else writer_of(stage)  # a run folder: its stages are checked
    if writer is not None:
        raise RuntimeFailure(f"{stage}: {writer} is training this stage now, so its {MODEL_FILE} is only the best "
                             "epoch so far (or about to be replaced); wait for it to finish")
    if not (stage / RESUME_FILE).is_file() or stage_status(stage) is not None:
        return  # finished, or a folder holding a model file alone: nothing says it is unfinished
    epoch = (resume_header(stage / RESUME_FILE) or {}).get("epoch")
    when = f"interrupted, saved after epoch {epoch}" if epoch else "interrupted"
    if (stage.parent / CHAIN_FILE).is_file():
        finish = (f"re-run its ganfp chain command to finish it, or pass the run folder {stage.parent} for its "
                  "last finished stage")
    else:
        finish = "finish it with the same ganfp train-stage command plus --resume"
    raise InputError(f"{stage}: stage {when} (or still training), so its {MODEL_FILE} is only the best epoch so "
                     f"far; {finish}")


def last_complete_stage(run_dir: Path) -> Path | None:
    try:
        record = json.loads((run_dir / CHAIN_FILE).read_text())
    except (OSError, ValueError):
        return None
    done = [s for s in record.get("stages", []) if s.get("status") == "complete"]
    return run_dir / done[-1]["dir"] if done else None


def resolve_checkpoint(path: str | os.PathLike | None = None, runs_root: str | os.PathLike | None = None,
                       instead: str = "or pass --checkpoint") -> Path:
    """The stage folder to load: a stage folder, a chain run's last finished stage, or the newest chain run's.

    A stage folder that training left unfinished is refused (`check_finished`), not loaded as if it were done.

    `instead` ends the message when no run is found: what the calling command offers besides a chain run.
    """
    from ganfp.paths import runs_root as resolve_runs

    if path is None:
        root = resolve_runs(runs_root)
        runs = sorted((p.parent for p in root.glob(f"*/{CHAIN_FILE}")), key=lambda p: (p / CHAIN_FILE).stat().st_mtime)
        for run in reversed(runs):
            stage = last_complete_stage(run)
            if stage is not None:
                check_finished(stage)
                return stage
        raise InputError(f"no finished chain run in {root}; train one with: ganfp chain --model resnet18 --chain demo, "
                         f"{instead}")
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        check_finished(path.parent)
        return path.parent
    check_finished(path)
    if (path / MODEL_FILE).is_file():
        return path
    if (path / CHAIN_FILE).is_file():
        stage = last_complete_stage(path)
        if stage is None:
            raise InputError(f"{path}: chain run has no finished stage yet")
        check_finished(stage)
        return stage
    raise InputError(f"{path}: not a checkpoint (expected a stage folder with {MODEL_FILE}, or a chain run folder)")
