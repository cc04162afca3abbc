"""Commands: classify."""

from __future__ import annotations

from typing import Optional

import typer

from ganfp import ui
from ganfp.cli.app import app
from ganfp.cli.options import (
    FILE_NAME,
    OFFLINE_FEATURES_HINT,
    BatchSizeOpt,
    CheckpointOpt,
    DataRootOpt,
    DeviceOpt,
    HuOffsetOpt,
    IdFromOpt,
    ImageSizeOpt,
    JsonOpt,
    KOpt,
    ReportNOpt,
    ReportOpt,
    RunsDirOpt,
    SeedOpt,
    SlicesOpt,
    ThresholdOpt,
    UsedFractionOpt,
    WindowOpt,
    path_given,
)


class ProgressBars:
    """Turns the library's (task, advance, total) calls into one rich bar per task."""

    def __init__(self, progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, task: str, advance: int, total: int) -> None:
        if task not in self.tasks:
            self.tasks[task] = self.progress.add_task(task, total=total, status="")
        self.progress.update(self.tasks[task], advance=advance)


def print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        ui.print_json(summary)
        return
    rows = [
        ("images", summary["images"]),
        ("generated images", summary["generated"]),
        ("recipe", summary["recipe"]),
        ("scorers", ", ".join(summary["scorers"])),
        ("checkpoint", summary["checkpoint"]),
        ("HU offset (16-bit images)", summary["hu_offset"]),
        ("decision rule", summary["decision"]),
        ("labelled used", summary["labelled_used"]),
        ("labelled not used", summary["labelled_not_used"]),
        ("submission", summary["out"]),
        ("scores", summary["scores"]),
        ("report", summary.get("report")),
        ("device", summary["device"]),
        ("time (s)", f"{summary['seconds']:.1f}"),
    ]
    ui.print_table("classify", ["", "value"], [r for r in rows if r[1] is not None])


@app.command("classify")
def classify(
    real: str = typer.Argument(
        ..., callback=path_given("REAL", "a folder or dataset spec"),
        help=(
            "Real images: a folder (ids = file names without extension) or a dataset spec such as "
            "demo:gans-test."
        ),
    ),
    out: str = typer.Option(..., "--out", callback=path_given("--out", FILE_NAME),
                            help="Submission file to write (official format: <id>,<0|1>, no header)."),
    generated: Optional[str] = typer.Option(
        None, "--generated", callback=path_given("--generated"),
        help=(
            "Folder of generated images: enables the membership scorers (default for a dataset spec: its "
            "own generated set)."
        ),
    ),
    method: Optional[str] = typer.Option(
        None, "--method",
        help=(
            "ensemble, local, knn, retrieval, density, autoencoder, fusion or classifier (default: ensemble "
            "with --generated, else classifier; docs/membership.md)."
        ),
    ),
    features: Optional[str] = typer.Option(
        None, "--features",
        help=(
            "Feature space of a single neighbour method or fusion: pixels[N], std[N], ncc[N], white[N], wstd[N], ssim[N], "
            "checkpoint, or a model name with ImageNet weights (default: std32)."
        ),
    ),
    checkpoint: CheckpointOpt = None,
    used_fraction: UsedFractionOpt = None,
    threshold: ThresholdOpt = None,
    scores: Optional[str] = typer.Option(None, "--scores", callback=path_given("--scores", FILE_NAME),
                                         help="Also write a CSV: id,score,<one column per scorer>."),
    ids: Optional[str] = typer.Option(
        None, "--ids", callback=path_given("--ids", "a file"),
        help="File of expected ids, one per line: every one must have an image, and no other.",
    ),
    calibrate: Optional[str] = typer.Option(
        None, "--calibrate", callback=path_given("--calibrate", "a folder or dataset spec"),
        help=(
            "Labelled dev folder (used/, not_used/, generated/) or spec: choose feature space, method and k "
            "by cross-validated ROC-AUC (each rank-averaged with the default unless --method is given), "
            "keeping the default unless leaving it is expected to gain over 0.02 on dev images the choice did "
            "not see; the used fraction becomes the dev prevalence unless --used-fraction is given."
        ),
    ),
    k: KOpt = None,
    image_size: ImageSizeOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 128,
    data_root: DataRootOpt = None,
    runs_dir: RunsDirOpt = None,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    window: WindowOpt = None,
    id_from: IdFromOpt = None,
    slices: SlicesOpt = None,
    hu_offset: HuOffsetOpt = None,
    report: ReportOpt = None,
    report_n: ReportNOpt = None,
) -> None:
    """Label each real image used (1) or not used (0) and write a validated submission file."""
    from ganfp.classify import classify as run
    from ganfp.data.medical import MedicalReading
    from ganfp.data.outputs import check_outputs
    from ganfp.errors import weights_hint

    reading = MedicalReading.parse(window, id_from, slices, hu_offset)
    check_outputs({"--out": out, "--scores": scores, "--report": report},
                  (real, generated, calibrate, ids, checkpoint), data_root=data_root)
    with ui.progress(transient=True) as bars, weights_hint(OFFLINE_FEATURES_HINT):
        result = run(
            real, out, generated=generated, method=method, features=features, checkpoint=checkpoint,
            used_fraction=used_fraction, threshold=threshold, scores_path=scores, ids_path=ids,
            calibrate_on=calibrate, k=k, device=device, batch_size=batch_size, data_root=data_root,
            runs_dir=runs_dir, seed=seed, image_size=image_size, progress=ProgressBars(bars), reading=reading,
            report=report, report_n=report_n,
        )
    print_summary(result.summary, as_json)  # the library logged what calibration chose, and every warning
    labels = result.summary.get("labels")
    if labels and not as_json:
        preds = result.summary["scores"] or result.summary["out"]  # scores give evaluate its ROC-AUC too
        ui.how_to_score(preds, labels)
