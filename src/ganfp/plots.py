"""Figures of an evaluation: ROC curve, confusion matrix, score histograms per class.

matplotlib is the optional extra `ganfp[plots]`; nothing else in ganfp needs it. Figures are drawn
on a bare `Figure` (no pyplot), so no global backend state is touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganfp.data.outputs import check_outputs
from ganfp.errors import InputError, require_path
from ganfp.evaluation import EvaluationReport
from ganfp.fileio import OutputBatch, atomic_path

MISSING = "--plot needs matplotlib, which is not installed: pip install 'ganfp[plots]'"


NEEDS_LATEX = {"pgf"}  # matplotlib draws these through a TeX install ganfp does not require


def require_matplotlib(out_path: str | Path | None = None) -> None:
    """Fail early, before any work, when the extra is absent or cannot draw `out_path`'s file type."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(MISSING) from None
    if out_path is not None:
        _check_suffix(Path(out_path))


def _check_suffix(out_path: Path) -> str:
    from matplotlib.backend_bases import FigureCanvasBase

    kind = out_path.suffix.lower().lstrip(".")
    supported = set(FigureCanvasBase.get_supported_filetypes()) - NEEDS_LATEX
    if kind not in supported:
        # no suffix (`--plot fig`, `--plot fig.`): it was "cannot draw a .? file"; the suffix chooses the image type
        problem = f"cannot draw a .{kind} file" if kind else "has no suffix to say the image type"
        raise InputError(f"--plot {out_path}: {problem}; use one of: {', '.join(sorted('.' + k for k in supported))}")
    return kind


def _roc(ax, report: EvaluationReport) -> None:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(report.y_true, report.scores)
    ax.plot(fpr, tpr, label=f"predictions (AUC {report.metrics['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (AUC 0.5)")
    m = report.metrics
    ax.plot([1 - m["specificity"]], [m["recall"]], "o", color="black", label="the 0/1 predictions")
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (recall)",
           title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")


def _confusion(ax, report: EvaluationReport) -> None:
    c = report.confusion
    matrix = np.array([[c["tp"], c["fn"]], [c["fp"], c["tn"]]])
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks([0, 1], ["used", "not used"])
    ax.set_yticks([0, 1], ["used", "not used"])
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion (F1 {report.metrics['f1']:.3f})")


def _histograms(ax, report: EvaluationReport) -> None:
    bins = np.histogram_bin_edges(report.scores, bins=20)
    for label, name in ((1, "used"), (0, "not used")):
        ax.hist(report.scores[report.y_true == label], bins=bins, alpha=0.6, label=name)
    ax.set(xlabel="score", ylabel="images", title="scores per true class")
    ax.legend()


def plot_report(report: EvaluationReport, out_path, batch: OutputBatch | None = None) -> None:
    """Write the figure atomically; panels that need scores are drawn only when there are scores."""
    if not isinstance(report, EvaluationReport):
        raise InputError(f"report={report!r}: must be an EvaluationReport, as ganfp.evaluation.evaluate_files returns")
    require_path("out_path", out_path)
    require_matplotlib()
    from matplotlib.figure import Figure

    check_outputs({"out_path": out_path}, (report.preds, report.labels), draws="out_path")
    out_path = Path(out_path)
    kind = _check_suffix(out_path)
    panels = [_confusion]
    if report.scores is not None and report.metrics["roc_auc"] is not None:
        panels = [_roc, _confusion, _histograms]
    fig = Figure(figsize=(5 * len(panels), 4.5), layout="constrained")
    for ax, draw in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        draw(ax, report)
    fig.suptitle(f"{Path(report.preds).name} vs {Path(report.labels).name} (n = {report.n})")
    with atomic_path(out_path, batch) as tmp:
        fig.savefig(tmp, format=kind, dpi=120)
