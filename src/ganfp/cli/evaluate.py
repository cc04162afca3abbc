"""Commands: evaluate."""

from __future__ import annotations

from typing import Optional

import typer

from ganfp import ui
from ganfp.cli.app import app
from ganfp.cli.options import (
    FILE_NAME,
    CheckpointOpt,
    DataRootOpt,
    HuOffsetOpt,
    IdFromOpt,
    JsonOpt,
    ReportNOpt,
    SlicesOpt,
    ThresholdOpt,
    UsedFractionOpt,
    WindowOpt,
    in_range,
    int_option,
    path_given,
)

METRICS = {
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "specificity": "specificity",
    "f1": "F1",
    "balanced_accuracy": "balanced accuracy",
    "kappa": "Cohen's kappa",
    "roc_auc": "ROC-AUC",
    "average_precision": "average precision",
}


def _print_report(report) -> None:
    """A row per metric: the predictions next to the two constant baselines they must beat."""
    names = list(report.baselines)
    used = int(report.y_true.sum())
    ui.print_table(
        f"{report.preds} vs {report.labels}",
        ["metric", "predictions", *names],
        [[label, report.metrics[key], *(report.baselines[name][key] for name in names)]
         for key, label in METRICS.items()],
        caption=(f"n = {report.n} ({used} used, {report.n - used} not used); positive class = used; "
        f"{' and '.join(names)}: constant baselines; predictions: {report.decision}; "
        f"file format: {report.format}" + "".join(f"\nnote: {note}" for note in report.notes)),
    )
    c = report.confusion
    ui.print_table(
        "Confusion matrix",
        ["", "predicted used", "predicted not used"],
        [["true used", c["tp"], c["fn"]], ["true not used", c["fp"], c["tn"]]],
    )


CLASS_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "balanced_accuracy": "balanced accuracy"}
CLUSTER_METRICS = {"ari": "adjusted Rand index", "nmi": "normalised mutual information",
                   "matched_accuracy": "accuracy after matching", "clusters": "clusters"}


def _print_classes(report, metrics: dict[str, str], table_title: str, matrix: list[list[int]],
                   columns: list[str], truth: str) -> None:
    """Attribution or clustering: a row per metric beside the baselines, then the class x prediction table; `truth`
    names what the ground truth holds (classes, or generators), as the notes do."""
    names = list(report.baselines)
    rows = [[label, report.metrics[key], *(report.baselines[name].get(key) for name in names)]
            for key, label in metrics.items()]
    held = [[cls, *row] for cls, row in zip(report.classes, matrix) if sum(row)]  # not a class only predicted
    caption = (f"n = {report.metrics['n']}, {len(held)} {truth}; random baselines: mean of 20 seeded draws; "
               f"file format: {report.format}" + "".join(f"\nnote: {note}" for note in report.notes))
    ui.print_table(f"{report.preds} vs {report.labels}", ["metric", "predictions", *names], rows, caption=caption)
    ui.print_table(table_title, ["true \\ predicted", *columns], held)


def _need_report(html_report: Optional[str], report_options: dict[str, object]) -> None:
    """The options that say what the report shows are refused without --report: ignored, a forgotten --report
    would pass silently."""
    from ganfp.errors import InputError

    given = [option for option, value in report_options.items() if value is not None]
    if html_report is None and given:
        verb = "describe" if len(given) > 1 else "describes"
        raise InputError(f"{', '.join(given)} {verb} the --report: give --report too")


def _check_membership_options(preds: str, labels: str, plot: Optional[str], html_report: Optional[str],
                              real: Optional[str], generated: Optional[str], used_fraction: Optional[float],
                              threshold: Optional[float], data_root: Optional[str], checkpoint: Optional[str]) -> None:
    """The decision rule and the outputs, checked before a file is read: detecting the task reads both files,
    which takes seconds on a large one, and a wrong option should not wait for it. What --plot and --report need
    (`_check_report_needs`) is asked once the task is known: on another task's files it is moot."""
    from ganfp.data.outputs import check_outputs
    from ganfp.errors import InputError

    if used_fraction is not None and threshold is not None:
        raise InputError("give --used-fraction or --threshold, not both")
    check_outputs({"--plot": plot, "--report": html_report}, (preds, labels, real, generated, checkpoint),
                  data_root=data_root)


def _refuse_membership_options(task: str, options: dict[str, object]) -> None:
    """The options of membership files, refused on another task's before anything they would need is asked for
    (the plots extra, --real, the checkpoint of --features checkpoint): "no chain run found" came first, and fixing
    it only led to this refusal."""
    from ganfp.errors import InputError

    given = [option for option, value in options.items() if value is not None]
    if given:
        verb = "apply" if len(given) > 1 else "applies"
        raise InputError(f"{', '.join(given)} {verb} to membership files only, not to {task} ones; drop "
                         f"{'them' if len(given) > 1 else 'it'}")


def _check_report_needs(plot: Optional[str], html_report: Optional[str], real: Optional[str],
                        features: Optional[str], checkpoint: Optional[str], image_size: Optional[int]) -> None:
    """What --plot and --report need, on membership files, before the predictions are scored or an image decoded:
    the plots extra, the real images and the model --features checkpoint reads."""
    from ganfp.errors import InputError

    if plot is not None:
        from ganfp.plots import require_matplotlib

        require_matplotlib(plot)
    if html_report is not None:
        from ganfp.report import report_checkpoint
        from ganfp.report import require_matplotlib as report_needs

        report_needs()
        if real is None:
            raise InputError("--report needs --real REAL: the real images the predictions are about")
        report_checkpoint(features, checkpoint, image_size)


def _evaluate_classes(task: str, preds: str, labels: str, json_out: bool) -> None:
    """Attribution or clustering: score and print (the membership options were refused already)."""
    from ganfp.evaluation import evaluate_classes, evaluate_clusters

    report = evaluate_classes(preds, labels) if task == "attribution" else evaluate_clusters(preds, labels)
    if json_out:
        ui.print_json(report.to_dict())
    elif task == "attribution":
        _print_classes(report, CLASS_METRICS, "Confusion matrix", report.confusion, report.classes, "classes")
    else:
        _print_classes(report, CLUSTER_METRICS, "Images per cluster", report.contingency,
                       [f"cluster {c}" for c in report.clusters], "generators")


@app.command("evaluate")
def evaluate(
    preds: str = typer.Argument(
        ..., metavar="PREDS", callback=path_given("PREDS", "a file"),
        help="Predictions: the official submission format, or a CSV with a header id,label | id,score | "
        "id,label,score | image_path,predicted_class (0/1 or class names) | id,cluster.",
    ),
    labels: str = typer.Argument(
        ..., metavar="LABELS", callback=path_given("LABELS", "a file"),
        help="Ground truth: a CSV with header id,label (0/1, class or generator names), or the official format; "
        "it may label part of PREDS' images (the others are left out, with a note).",
    ),
    json_out: JsonOpt = False,
    plot: Optional[str] = typer.Option(None, "--plot", callback=path_given("--plot", FILE_NAME),
                                       help="Also draw ROC curve, confusion matrix and score histograms to this "
                                       "image (needs ganfp[plots])."),
    used_fraction: UsedFractionOpt = None,
    threshold: ThresholdOpt = None,
    html_report: Optional[str] = typer.Option(None, "--report", callback=path_given("--report", FILE_NAME),
                                              help="Also write an HTML evidence report of the real "
                                              "images (needs --real and ganfp[plots]); DICOM/NIfTI images are read "
                                              "as --window, --id-from and --slices say, 16-bit PNG/TIFF as "
                                              "--hu-offset says: give classify's."),
    real: Optional[str] = typer.Option(None, "--real", callback=path_given("--real", "a folder or dataset spec"),
                                       help="With --report: the real images (folder or dataset spec)."),
    generated: Optional[str] = typer.Option(None, "--generated", callback=path_given("--generated"),
                                            help="With --report: the generated images (default: the --real "
                                            "folder's generated/ or generated_N/ sub-folder, or the dataset spec's "
                                            "own; one beside the --real folder is named in a warning, not read)."),
    features: Optional[str] = typer.Option(None, "--features", help="With --report: the feature space of the "
                                           "nearest generated images (default: classify's)."),
    checkpoint: CheckpointOpt = None,
    report_n: ReportNOpt = None,
    image_size: Optional[int] = int_option(None, "--image-size", callback=in_range(8, 4096), help="With --report: "
                                             "compare the images at N x N (8 to 4096), as classify --image-size N "
                                             "did (default: their own size when all share one, else 128)."),
    window: WindowOpt = None,
    id_from: IdFromOpt = None,
    slices: SlicesOpt = None,
    hu_offset: HuOffsetOpt = None,
    data_root: DataRootOpt = None,
    task: str = typer.Option("auto", "--task", help="membership (0/1 labels), attribution (class names) or "
                             "clustering (an id,cluster file); auto tells them apart by the files."),
) -> None:
    """Score predictions against ground truth: membership, attribution or clustering metrics beside baselines."""
    from ganfp.data.medical import MedicalReading
    from ganfp.errors import InputError
    from ganfp.evaluation import TASKS, detect_task, evaluate_files
    from ganfp.fileio import written_together

    if task not in TASKS:
        raise InputError(f"--task {task}: choose one of: {', '.join(TASKS)}")
    reading = MedicalReading.parse(window, id_from, slices, hu_offset)
    _need_report(html_report, {"--real": real, "--generated": generated, "--features": features,
                               "--checkpoint": checkpoint, "--image-size": image_size, "--window": window,
                               "--id-from": id_from, "--slices": slices, "--hu-offset": hu_offset,
                               "--report-n": report_n})
    _check_membership_options(preds, labels, plot, html_report, real, generated, used_fraction, threshold, data_root,
                              checkpoint)
    task = detect_task(preds, labels) if task == "auto" else task
    if task != "membership":
        _refuse_membership_options(task, {"--plot": plot, "--report": html_report, "--used-fraction": used_fraction,
                                          "--threshold": threshold})
        _evaluate_classes(task, preds, labels, json_out)
        return
    _check_report_needs(plot, html_report, real, features, checkpoint, image_size)
    report = evaluate_files(preds, labels, used_fraction=used_fraction, threshold=threshold)
    with written_together() as outputs:  # --report and --plot both replaced, or neither
        if html_report is not None:
            from ganfp.report import DEFAULT_ROWS, evaluation_report

            evaluation_report(html_report, report, real, features, generated, report_n or DEFAULT_ROWS, data_root,
                              reading, batch=outputs, image_size=image_size, checkpoint=checkpoint)
        if plot is not None:
            from ganfp.plots import plot_report

            plot_report(report, plot, batch=outputs)
    if json_out:
        ui.print_json(report.to_dict() | ({"plot": str(plot)} if plot is not None else {})
                      | ({"report": str(html_report)} if html_report is not None else {}))
        return
    _print_report(report)
    if plot is not None:
        ui.info(f"figure written to {plot}")
    if html_report is not None:
        ui.info(f"report written to {html_report}")
