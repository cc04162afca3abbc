"""Commands: train-stage, chain."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ganfp import ui
from ganfp.cli.app import app
from ganfp.cli.options import (
    BatchSizeOpt,
    DataRootOpt,
    DeviceOpt,
    HuOffsetOpt,
    ImageSizeOpt,
    JsonOpt,
    MemoryBudgetOpt,
    ModelOpt,
    RunsDirOpt,
    SeedOpt,
    WindowOpt,
    float_option,
    int_option,
    path_given,
)

# ganfp.pseudo.PSEUDO_LABELERS and ganfp.chain.builtin_chains(), written out: reading either imports torch, which
# `ganfp --help` must not; tests/test_cli.py checks that they agree
PSEUDO_SOURCES = ("self", "knn")
BUILTIN_CHAINS = ("paper", "demo")
# what an empty --init or --chain is told to give instead
INIT_GIVE = "none, imagenet, a weights file or a stage folder"
CHAIN_GIVE = f"a built-in chain ({', '.join(BUILTIN_CHAINS)}) or a TOML file"
PSEUDO_CAPTION = ("(pseudo): val pseudo-agreement / pseudo-F1, agreement with the stage's own pseudo-labels, "
                  "not accuracy on true labels")


def observer_for(stage_name: str):
    from ganfp import distributed

    return ui.TrainProgress(stage_name, verbose=distributed.is_main()) if distributed.is_main() else None


def print_results(title: str, summaries: list, as_json: bool) -> None:
    """The stage summaries as a table (or JSON), then any warnings they carry."""
    from ganfp import distributed

    if not distributed.is_main():
        return
    if as_json:
        ui.print_json(ui.stage_warnings([s.to_dict() for s in summaries]))
    else:
        only_pseudo = bool(summaries) and all(s.pseudo for s in summaries)
        mark = not only_pseudo and any(s.pseudo for s in summaries)
        read = [_reading(s.window, s.hu_offset) for s in summaries]
        shown = any(read)  # no column where no stage was given a window or an offset: plain images read as saved
        ui.print_table(
            title + " (val scores: the best epoch's, by validation loss)",
            ["stage", "dataset", *(["read as"] if shown else []), "train", "val", "epochs",
             *_score_headers(only_pseudo), "time (s)", "status"],
            [_row(s, mark and s.pseudo, [how] if shown else []) for s, how in zip(summaries, read)],
            caption=PSEUDO_CAPTION if mark else None,
        )
    for s in summaries:
        for text in s.warnings:
            ui.warn_once(text)


def print_plan(title: str, rows: list[dict], as_json: bool, warnings: list[str]) -> None:
    """What a chain run would do with each stage (`--dry-run`), as a table or JSON, then its warnings."""
    if as_json:
        ui.print_json(ui.stage_warnings(rows, warnings))
    else:
        read = [_reading(r["window"], r["hu_offset"]) for r in rows]
        shown = any(read)  # as the results table: only where a stage is given a window or an offset
        ui.print_table(f"{title} (dry run: nothing trained)",
                       ["stage", "dataset", *(["read as"] if shown else []), "epochs", "action", "why"],
                       [[r["stage"], r["dataset"], *([how] if shown else []), r["epochs"], r["action"], r["why"]]
                        for r, how in zip(rows, read)])
    for text in warnings:
        ui.warn_once(text)


def _row(s, mark: bool, read: list[str]) -> list:
    """A stage's table row; `mark` notes pseudo-agreement sitting in a column that others fill with accuracy; `read`:
    the "read as" cell, if the table has that column."""
    scores = [_score(s.best_val_accuracy, mark), _score(s.best_val_f1, mark)]
    return [s.stage, s.dataset, *read, s.train_size, s.val_size, s.epochs_run, *scores, f"{s.seconds:.1f}",
            _status(s)]


def _reading(window: str | None, hu_offset: int | None) -> str:
    """How a stage read its images, in a table cell: its HU window and the offset of its 16-bit images, each only
    when given ("" for neither), as meta.json and chain.json record them."""
    parts = ([f"{window} window"] if window else []) + ([f"HU + {hu_offset}"] if hu_offset is not None else [])
    return ", ".join(parts)


def _status(summary) -> str:
    """`trained (images changed)`: a stage a chain trained again says why."""
    return f"{summary.status} ({summary.reason})" if summary.reason else summary.status


def _score_headers(only_pseudo: bool) -> list[str]:
    """Stages trained on their own pseudo-labels only (train-stage --pseudo-labels) never see "acc" in the header."""
    return ["val pseudo-agreement", "val pseudo-F1"] if only_pseudo else ["val acc", "val F1"]


def _score(value: float | None, pseudo: bool) -> str:
    text = "-" if value is None else f"{value:.3f}"
    return f"{text} (pseudo)" if pseudo else text


@app.command("train-stage")
def train_stage(
    dataset: str = typer.Option(
        ..., "--data", callback=path_given("--data", "a dataset spec or a folder"),
        help="Dataset spec: ADAPTER[:ARG] (demo:casia, folder:PATH, casia, ...) or a folder.",
    ),
    out: str = typer.Option(..., "--out", callback=path_given("--out"),
                            help="Output folder of the stage (model.safetensors, meta.json, history.csv)."),
    model: ModelOpt = "resnet18",
    init: str = typer.Option("none", callback=path_given("--init", INIT_GIVE),
                             help="Start from: none, imagenet, a weights file, or a previous stage folder."),
    name: Optional[str] = typer.Option(None, help="Stage name (default: the output folder's name)."),
    image_size: ImageSizeOpt = 224,
    batch_size: BatchSizeOpt = 256,
    lr: float = float_option(0.001, help="SGD learning rate (the paper: 0.001)."),
    momentum: float = float_option(0.9, help="SGD momentum (the paper: 0.9)."),
    weight_decay: float = float_option(0.0, help="SGD weight decay."),
    epochs: int = int_option(200, help="Maximum epochs (the paper: 200)."),
    patience: int = int_option(10, help="Early stopping: epochs without a lower validation loss."),
    val_fraction: float = float_option(0.2, help="Validation share of the stratified split (the paper: 8:2)."),
    seed: SeedOpt = 0,
    augment: bool = typer.Option(True, help="Random flips and shifts on training batches."),
    pseudo_labels: Optional[str] = typer.Option(
        None, help=f"Unlabelled data: pseudo-label source ({', '.join(PSEUDO_SOURCES)})."
    ),
    pseudo_fraction: Optional[float] = float_option(
        None, help="Share of images pseudo-labelled at each end of the ranking (default: 0.25)."
    ),
    pseudo_features: Optional[str] = typer.Option(None, help="Feature space of the knn pseudo-labeler (default: classify's)."),
    pseudo_k: Optional[int] = int_option(None, help="Neighbours of the knn pseudo-labeler (default: classify's)."),
    skip_bad: bool = typer.Option(False, "--skip-bad",
                                  help="Skip (and list) unreadable and multi-frame images instead of stopping."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the interrupted stage in --out from its last saved epoch, with more --epochs "
        "or another --patience if given (a finished one is kept)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Train over a stage already in --out (finished or interrupted); refused without it."
    ),
    device: DeviceOpt = "auto",
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic kernels (slower on CUDA)."),
    memory_budget: MemoryBudgetOpt = None,
    data_root: DataRootOpt = None,
    as_json: JsonOpt = False,
    window: WindowOpt = None,
    hu_offset: HuOffsetOpt = None,
) -> None:
    """Train one stage: a dataset, a starting point, a fresh head, early stopping."""
    from ganfp import distributed
    from ganfp.chain import train_stage as run
    from ganfp.data.medical import MedicalReading
    from ganfp.train import StageConfig

    MedicalReading.parse(window, hu_offset=hu_offset)  # a bad --window in classify's words, before anything else
    pseudo = {"pseudo_fraction": pseudo_fraction, "pseudo_features": pseudo_features, "pseudo_k": pseudo_k}
    cfg = StageConfig(
        name=Path(out).expanduser().resolve().name if name is None else name, dataset=dataset, model=model,
        init=init, image_size=image_size, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
        epochs=epochs, patience=patience, val_fraction=val_fraction, seed=seed, augment=augment, skip_bad=skip_bad,
        pseudo_labels=pseudo_labels, window=window, hu_offset=hu_offset, device=device, compile=compile,
        deterministic=deterministic, memory_budget=memory_budget, **{k: v for k, v in pseudo.items() if v is not None},
    )
    observer = observer_for(cfg.name)
    with observer if observer is not None else ui.progress(transient=True):
        summary = run(cfg, out, resume=resume, data_root=data_root, observer=observer, force=force, options=True)
    print_results(f"stage {cfg.name} ({model})", [summary], as_json)
    if distributed.is_main() and not as_json:
        ui.info(f"checkpoint: {Path(out) / 'model.safetensors'}")


@app.command("chain")
def chain(
    model: ModelOpt = "resnet18",
    chain_name: str = typer.Option(
        "paper", "--chain", callback=path_given("--chain", CHAIN_GIVE),
        help=f"Built-in chain ({', '.join(BUILTIN_CHAINS)}) or a TOML file.",
    ),
    from_stage: Optional[str] = typer.Option(None, "--from-stage", help="Retrain from this stage on, even if finished."),
    init: Optional[str] = typer.Option(
        None, callback=path_given("--init", INIT_GIVE),
        help="Override the first stage's start: none, imagenet, a weights file or a stage folder.",
    ),
    epochs: Optional[int] = int_option(
        None, help="Override every stage's maximum epochs, a stage's own in the chain file too (to change one "
        "stage's, set epochs in its [[stages]] table)."
    ),
    patience: Optional[int] = int_option(None, help="Override every stage's early-stopping patience."),
    image_size: ImageSizeOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: Optional[float] = float_option(None, help="Override every stage's learning rate."),
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    memory_budget: MemoryBudgetOpt = None,
    runs_dir: RunsDirOpt = None,
    data_root: DataRootOpt = None,
    as_json: JsonOpt = False,
    window: WindowOpt = None,
    hu_offset: HuOffsetOpt = None,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Run every check a chain run makes before training (chain file, options, datasets, "
        "starting weights, run folder), print what each stage would do and why, and exit without training."
    ),
) -> None:
    """Run a chain of stages, each starting from the previous stage's best checkpoint.

    --epochs, --patience, --image-size, --batch-size, --lr, --seed, --device, --compile, --memory-budget, --window
    and --hu-offset override every stage's value (else the chain file's, else the default: auto, no compile, lung
    window, 16-bit images stretched per image);
    --init overrides the first stage's start (each later stage starts from the one before it).
    """
    from ganfp.chain import check_model, load_chain, plan_chain, run_chain
    from ganfp.data.medical import MedicalReading
    from ganfp.paths import runs_root

    MedicalReading.parse(window, hu_offset=hu_offset)  # a bad --window in classify's words, before anything else
    check_model(model)
    spec = load_chain(chain_name)
    overrides = {"init": init, "epochs": epochs, "patience": patience, "image_size": image_size, "batch_size": batch_size,
                 "lr": lr, "seed": seed, "device": device, "compile": compile, "memory_budget": memory_budget,
                 "window": window, "hu_offset": hu_offset}
    if dry_run:
        plan = plan_chain(spec, model, runs_root(runs_dir), data_root, overrides, from_stage)
        print_plan(f"chain {spec.name} ({model}): {plan.run_dir}", plan.rows(), as_json, plan.warnings)
        return
    run_dir, rows = run_chain(spec, model, runs_root(runs_dir), data_root, overrides, from_stage, lambda cfg: observer_for(cfg.name))
    print_results(f"chain {spec.name} ({model}): {run_dir}", rows, as_json)
