"""What a stage's output folder holds, and what a new run may do with it: keep, continue, extend or refuse.

A finished or interrupted stage can be hours of training. These rules decide, before any image is decoded, whether
`train-stage` or a chain re-run keeps a stage, continues it from `last.safetensors` (with more epochs or another
patience too, as the run that had them from the start would have), or refuses to train over it; `StageState` is
what an interrupted run saved. `ganfp.train` runs the stage itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ganfp.checkpoint import (
    HISTORY_FILE,
    META_FILE,
    MODEL_FILE,
    RESUME_FILE,
    read_safetensors,
    resume_header,
    stage_status,
)
from ganfp.data.medical import window_text
from ganfp.errors import InputError

if TYPE_CHECKING:
    from ganfp.train import StageConfig


@dataclass
class StageState:
    """Where training stands: the epoch, the best epoch so far and the patience count, plus the history."""

    digest: str
    dataset_fingerprint: str = ""  # the images it trains on (`dataset_fingerprint`); "" in an older ganfp's file
    config: dict = field(default_factory=dict)  # the settings (`identity()`): a refused --resume names those changed
    epoch: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    extended: list[dict] = field(default_factory=list)  # resumes that raised epochs or changed patience (meta.json)

    def update(self, val_loss: float) -> bool:
        """Count one more finished epoch; True when its validation loss is the lowest so far (NaN never is)."""
        self.epoch += 1
        improved = math.isfinite(val_loss) and val_loss < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    def stop(self, patience: int) -> bool:
        return self.bad_epochs >= patience

    def ends(self, epochs: int, patience: int) -> bool:
        """Whether training ends here: `epochs` done, or `patience` epochs without a lower validation loss. The epoch
        loop stops on it, and the last epoch is saved by it."""
        return self.epoch >= epochs or self.stop(patience)

    @property
    def best_row(self) -> dict:
        return self.history[self.best_epoch - 1]


def check_out_dir(cfg: StageConfig, out_dir: Path, init_id: str, resume: bool) -> None:
    """Refuse to train over a stage already in `out_dir` (train-stage without --force), before any work.

    A finished stage can be hours of training: it is kept (reported with --resume) when its settings
    match, and otherwise only replaced on request; an interrupted one continues only with --resume (with more
    epochs or another patience too, see `extension`).
    """
    why = _occupied(cfg, Path(out_dir), init_id, resume)
    if why:
        raise InputError(f"--out {out_dir}: {why}")


def _occupied(cfg: StageConfig, out_dir: Path, init_id: str, resume: bool) -> str | None:
    """What is in `out_dir` that this run would train over, or None when nothing would be lost."""
    done = stage_status(out_dir)
    if done is not None:
        return _finished_here(done, cfg, out_dir, init_id, resume)
    state = resume_header(out_dir / RESUME_FILE)
    if state is None and (out_dir / RESUME_FILE).exists():
        return (f"holds an interrupted stage whose {RESUME_FILE} cannot be read (damaged or cut short), so it "
                f"cannot be continued; add --force to start over (its {MODEL_FILE} is the best epoch so far)")
    if state is None:
        return _foreign_files(out_dir)
    return _interrupted_here(state, cfg, out_dir, init_id, resume)


def _finished_here(done: dict, cfg: StageConfig, out_dir: Path, init_id: str, resume: bool) -> str | None:
    """Why a finished stage in `out_dir` stands in the way, or None when --resume keeps it."""
    if done.get("digest") != cfg.digest(init_id):
        kept = early_stop_kept(done, cfg, init_id)
        if kept and resume:
            return None
        if kept:
            return f"already holds this stage, finished: {kept}; add --resume to keep it, or --force to train it again"
        if extension(done, cfg, init_id) is not None:
            return _finished_extension(done, cfg, out_dir)
        changes = setting_changes(done.get("config") or {}, cfg) or "the --init it started from has changed since"
        return (f"holds a stage finished with other settings ({changes}); "
                "choose another --out, or add --force to replace it")
    if resume:
        return None
    return ("already holds this stage, finished with the same settings; "
            "add --resume to keep it, or --force to train it again")


def _interrupted_here(state: dict, cfg: StageConfig, out_dir: Path, init_id: str, resume: bool) -> str | None:
    """Why an interrupted stage in `out_dir` stands in the way, or None when --resume continues it: with more
    epochs or another patience too, as the run that had them from the start (`extension`)."""
    epoch = state.get("epoch")
    if state.get("digest") != cfg.digest(init_id) and extension(state, cfg, init_id) is not None:
        why = extension_problem(state, cfg)
        if why:
            return f"holds a stage interrupted, saved after epoch {epoch}, which {why}"
        if not resume:
            return (f"holds a stage interrupted, saved after epoch {epoch}, with other settings "
                    f"({setting_changes(state['config'], cfg)}); add --resume to continue it with them, or --force "
                    "to start over")
    elif state.get("digest") != cfg.digest(init_id):
        recorded = state.get("config")  # absent in an older ganfp's file: then the settings go unnamed
        changes = (setting_changes(recorded, cfg) or "the --init it started from has changed since") if recorded else ""
        return (f"holds a stage interrupted, saved after epoch {epoch}, with other settings"
                f"{f' ({changes})' if changes else ''}; choose another --out, or add --force to start over")
    if resume:
        why = best_model_problem(out_dir, state)  # known before any image is decoded
        return f"{RESUME_FILE} {why}; add --force to start over" if why else None
    return (f"holds a stage interrupted, saved after epoch {epoch}; add --resume to continue it, or --force to start "
            "over")


def _foreign_files(out_dir: Path) -> str | None:
    """The files a stage writes, found in a folder that holds no ganfp stage: a user's own weights or notes, which
    training would silently replace."""
    found = [name for name in (MODEL_FILE, META_FILE, HISTORY_FILE) if (out_dir / name).exists()]
    if not found:
        return None
    files = found[0] if len(found) == 1 else f"{', '.join(found[:-1])} and {found[-1]}"
    them = "it" if len(found) == 1 else "them"
    return (f"holds {files} but no stage that ganfp finished or interrupted, and training would replace {them}; "
            f"choose another --out, or add --force to replace {them}")


def setting_changes(old: dict, cfg: StageConfig) -> str:
    """`epochs 5 -> 2, lr 0.01 -> 0.003`: the settings that differ from a finished stage's recorded config.

    The window and the HU offset are recorded only when given, so a missing one is the default (None), on either side.
    """
    new = cfg.identity()
    before = {**old, "window": window_text(old.get("window")), "hu_offset": old.get("hu_offset")}
    after = {"window": None, "hu_offset": None, **new}
    keys = [*new, *(k for k in ("window", "hu_offset") if k not in new)]
    return ", ".join(f"{k} {before[k]!r} -> {after[k]!r}" for k in keys if k in before and before[k] != after[k])


EXTENDABLE = ("epochs", "patience")  # no schedule or other setting is derived from them: see `extension`


def extension(saved: dict, cfg: StageConfig, init_id: str) -> dict | None:
    """{setting: [before, now]} for the `EXTENDABLE` settings a stage's record (`last.safetensors`'s state or a
    finished meta.json) differs from `cfg` in, when they are all it differs in; else None.

    Epochs and patience only bound the loop: the learning rate is constant and every epoch's draws come from
    (seed, epoch), so a run continued with a larger bound is the uninterrupted run with that bound, bit for bit.
    """
    old = saved.get("config")
    if not isinstance(old, dict) or not all(isinstance(old.get(k), int) for k in EXTENDABLE):
        return None  # an older ganfp's record: its settings cannot be told apart
    if dataclasses.replace(cfg, **{k: old[k] for k in EXTENDABLE}).digest(init_id) != saved.get("digest"):
        return None
    return {k: [old[k], getattr(cfg, k)] for k in EXTENDABLE if old[k] != getattr(cfg, k)}


def extension_problem(state: dict, cfg: StageConfig) -> str | None:
    """Why an interrupted run cannot go on with `cfg`'s epochs and patience as the run that had them from the
    start would have, or None: fewer epochs than it has done, or a patience it already ran out of earlier."""
    done = state["epoch"]
    if cfg.epochs < done:
        return f"has done {done} epochs, more than --epochs {cfg.epochs}; give --epochs {done} or more to continue it"
    replay, needed = StageState(digest=""), 1
    for row in state["history"][:-1]:  # an uninterrupted run checks patience before each epoch after the first
        replay.update(row.get("val_loss", math.nan))
        needed = max(needed, replay.bad_epochs + 1)
    if cfg.patience < needed:
        return (f"went {needed - 1} epochs without a lower validation loss before epoch {done}, so a run with "
                f"--patience {cfg.patience} would have stopped earlier; give --patience {needed} or more to continue "
                "it")
    return None


def early_stop_kept(done: dict, cfg: StageConfig, init_id: str) -> str | None:
    """Why a finished stage that differs from `cfg` only in `epochs` is kept as it is, or None when it is not.

    Its patience had run out when it ended (no lower validation loss in its last `patience` epochs): a run with any
    larger max (or a smaller one it reached) stops after the same epoch with the same numbers, since nothing but the
    loop's bound depends on `epochs` (see `extension`). Retraining it would only repeat hours of the same epochs.
    Its meta.json keeps the old `epochs`: a later run with either value comes here, or matches its digest.
    """
    changed = extension(done, cfg, init_id)
    metrics = done.get("metrics") or {}
    ran, best = metrics.get("epochs_run"), metrics.get("best_epoch")
    if not changed or set(changed) != {"epochs"} or not all(type(n) is int for n in (ran, best)):
        return None
    patience = done["config"]["patience"]
    if ran - best < patience or cfg.epochs < ran:
        return None
    return (f"early stopping ended it after epoch {ran} (best epoch {best}, patience {patience}), so epochs "
            f"{changed['epochs'][0]} -> {cfg.epochs} change nothing")


def early_stop_line(cfg: StageConfig, out_dir: Path, init_id: str) -> str | None:
    """The info line for a finished stage kept by `early_stop_kept`, or None when it is kept for its digest."""
    done = stage_status(out_dir)
    if not done or done.get("digest") == cfg.digest(init_id):
        return None
    kept = early_stop_kept(done, cfg, init_id)
    return f"kept {cfg.name} in {out_dir}: {kept}" if kept else None


def _finished_extension(done: dict, cfg: StageConfig, out_dir: Path) -> str:
    """The refusal of more epochs (or another patience) for a finished stage, whose resume state is gone."""
    metrics = done.get("metrics") or {}
    ran, had = metrics.get("epochs_run"), (done.get("config") or {}).get("epochs")
    how = "it stopped early" if isinstance(ran, int) and isinstance(had, int) and ran < had else "it ran all its epochs"
    return (f"holds stage {cfg.name} finished after {ran} epochs ({how}), with other settings "
            f"({setting_changes(done.get('config') or {}, cfg)}); a finished stage cannot be continued (its "
            f"{RESUME_FILE} is gone): train a new stage from it (--init {out_dir} and another --out), or add --force "
            "to train it again from the start")


def best_model_problem(out_dir: Path, saved: dict) -> str | None:
    """Why the stage cannot end with the weights of the best epoch that `last.safetensors` records, or None.

    When that epoch is its last, `last.safetensors` holds its weights, and a resume rewrites `model.safetensors`
    from them (`train.restore_best_model`): a kill between `save_epoch`'s renames leaves the model an epoch behind.
    Otherwise the model file must be that epoch's: missing, of another epoch (removed or replaced since) or one
    epoch ahead (a ganfp 0.1 stopped while saving: it renamed the model first), the stage would end with weights
    its meta.json does not describe, the best epoch's being lost.
    """
    best, last = saved["best_epoch"], saved["epoch"]
    epoch = model_file_epoch(out_dir / MODEL_FILE)
    if best in (last, epoch):
        return None
    if epoch == last + 1:
        return (f"was written after epoch {last}, but the {MODEL_FILE} beside it is of epoch {epoch} (ganfp 0.1 "
                f"was stopped between saving the two), so the weights of its best epoch {best} are lost")
    found = f"of epoch {epoch}" if isinstance(epoch, int) else "that is missing or unreadable"
    return (f"was written after epoch {last}, whose best epoch {best} is not the "
            f"{MODEL_FILE} beside it (one {found}: removed or replaced since)")


def model_file_epoch(model_file: Path) -> int | None:
    """The epoch a stage's `model.safetensors` was saved after, from its header; None when it is missing or
    unreadable."""
    try:
        epoch = read_safetensors(model_file, tensors=False)[1].get("epoch")
    except InputError:
        return None
    return epoch if isinstance(epoch, int) else None


def resume_mismatch(saved: dict, fresh: StageState, cfg: StageConfig, init_id: str) -> str | None:
    """Why an interrupted run cannot be continued as `fresh`'s: other settings (but epochs and patience it can go
    on with), or epochs on other images.

    A file from a ganfp that did not record the images is continued, as it was then.
    """
    if saved.get("digest") != fresh.digest:
        if extension(saved, cfg, init_id) is None:
            return "was written with other settings"
        why = extension_problem(saved, cfg)
        if why:
            return f"was written by a run that {why}"
    if saved.get("dataset_fingerprint", fresh.dataset_fingerprint) != fresh.dataset_fingerprint:
        return "was written on other images (the dataset changed since)"
    return None
