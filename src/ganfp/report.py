"""The evidence report: one self-contained HTML file that shows why each real image scored as it did.

An auditor must see the copies before telling a data owner that patients leaked. For the most and
the least suspicious real images the report shows the image, its nearest generated images with
their distances in the feature space the scorer used, and a difference map against the closest
one; plus every generated image that is a near-duplicate of some real image. Images are small PNG
thumbnails embedded as data: URIs and the charts are PNGs drawn with matplotlib (`ganfp[plots]`),
so the file opens offline and makes no network request.

The builder takes plain arrays. `scorer_neighbours` is the one place that meets the membership
code: it reads the neighbours in the feature space classify used from classify's own scorer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ganfp.data.generated import MIN_IMAGE_SIZE, generated_manifest, image_headers, shared_files
from ganfp.data.manifest import Manifest, announce, folder_warnings_once, with_logged
from ganfp.data.medical import MedicalReading, with_window
from ganfp.data.real import check_paired, generated_beside, read_real
from ganfp.errors import ArgumentError, InputError, of_option
from ganfp.fileio import OutputBatch, write_text
from ganfp.membership.calibrate import NO_LEAK_EVIDENCE
from ganfp.membership.features import checkpoint_reading
from ganfp.membership.pipeline import MembershipScorer, ScoringSetup
from ganfp.membership.recipe import DEFAULT_FEATURES
from ganfp.membership.spaces import FeatureSpace, check_features_size, parse_features
from ganfp.pages import (
    Heading,
    counted,
    esc,
    figure_html,
    figure_uri,
    named,
    png_uri,
    render,
    require_matplotlib,
    table_rows,
    written_at,
)

DEFAULT_ROWS = 24
DEFAULT_NEIGHBOURS = 4
DISPLAY_SIZE = 128  # decode size of images scored without resizing (the classifier alone), or of no one size
ALIGN_SHARE = 16  # difference maps search shifts of up to 1/16 of the width, as the ncc space does
NEAR_PERCENTILE = 1.0  # near-duplicate: closer to a real image than 99% of real images are to their nearest
SAME_SHARE = 1e-3  # real images nearer to another than this share of the largest such distance are copies of it
METRIC_WORDS = {"ssim": "1 - SSIM", "euclidean": "Euclidean distance"}


@dataclass
class Neighbourhood:
    """Distances in one feature space, smaller = more alike."""

    distance: str  # what the distances are, e.g. "ssim64 (1 - SSIM)"
    to_generated: np.ndarray  # (n_real, k) distances of each real image's k nearest generated images
    to_generated_index: np.ndarray  # (n_real, k) their indices
    nearest_real: np.ndarray  # (n_gen,) each generated image's distance to its nearest real image
    nearest_real_index: np.ndarray  # (n_gen,)
    real_to_real: np.ndarray  # (n_real,) each real image's distance to its nearest other real image


NeighbourFn = Callable[[int], Neighbourhood]  # k -> the neighbourhood with k generated neighbours per real image


@dataclass
class ReportInputs:
    real_ids: list[str]
    real_images: np.ndarray  # uint8 (n_real, s, s)
    scores: np.ndarray  # the decision score per real image, higher = more likely used
    decided: np.ndarray  # 0/1 as written to the submission
    summary: dict  # what classify (or evaluate) reports; shown as the summary table
    generated_ids: list[str] | None = None
    generated_images: np.ndarray | None = None  # uint8 (n_gen, s, s), same size as the real ones
    neighbours: NeighbourFn | None = None  # None: no generated images, rows show the real image only
    truth: np.ndarray | None = None  # 0/1 when the real labels are known
    cut: float | None = None  # the score at which the decision changes; None: midway between used and not used
    scored: bool = True  # False: `scores` are the 0/1 labels of a predictions file without scores
    rows: int = DEFAULT_ROWS
    k: int = DEFAULT_NEIGHBOURS
    title: str = ""


@dataclass
class ReportResult:
    path: str
    bytes: int
    evidence_rows: int
    near_duplicates: int
    near_radius: float | None

    def to_dict(self) -> dict:
        return {"path": self.path, "bytes": self.bytes, "evidence_rows": self.evidence_rows,
                "near_duplicates": self.near_duplicates, "near_radius": self.near_radius}


def scorer_neighbours(scorer: MembershipScorer, space: FeatureSpace) -> NeighbourFn:
    """Neighbours in the feature space classify scored with, from the scorer's own pass in that space.

    The scorer keeps its decoded images, their area-averaged copies and each space's distances, so the report
    adds no decode and, when `space` is one the scorer used, no distance pass. A second pass held a second
    copy of every image: at the task's scale (200 x 10,000 images of 256 px) 1.7 GB more at peak.
    """
    def neighbourhood(k: int) -> Neighbourhood:
        hood = scorer.neighbours(space)
        to_gen, to_gen_i = hood.real_to_generated(k)
        back, back_i = hood.generated_to_real(1)
        among, _ = hood.real_to_real(1)
        words = METRIC_WORDS.get(hood.metric.name, hood.metric.name)
        label = space.at_most(scorer.setup.image_size).label
        return Neighbourhood(f"{label}, {words}", to_gen.numpy(), to_gen_i.numpy(),
                             back[:, 0].numpy(), back_i[:, 0].numpy(), among[:, 0].numpy())

    return neighbourhood


def classify_report(path, scorer: MembershipScorer, space: FeatureSpace, scores: np.ndarray, decided: np.ndarray,
                    summary: dict, rows: int = DEFAULT_ROWS, cut: float | None = None, truth: np.ndarray | None = None,
                    scored: bool = True, batch: OutputBatch | None = None) -> ReportResult:
    """The report of a classify run: the scorer's images at the scoring size, neighbours in its feature space.

    Scores from the classifier alone (no scoring size) are shown at DISPLAY_SIZE px.
    """
    if scorer.setup.image_size is None:
        scorer = MembershipScorer(scorer.real, scorer.generated, replace(scorer.setup, image_size=DISPLAY_SIZE))
    real, generated = scorer.real, scorer.generated
    inputs = ReportInputs(
        real_ids=real.ids,
        real_images=scorer.images("real").numpy(),
        scores=np.asarray(scores, dtype=np.float64),
        decided=np.asarray(decided, dtype=np.int64),
        summary=summary,
        truth=known_truth(real) if truth is None else truth,
        cut=cut,
        scored=scored,
        rows=rows,
        title=real.name,
    )
    if generated is not None:
        inputs.generated_ids = generated.ids
        inputs.generated_images = scorer.images("generated").numpy()  # memory-mapped: only the rows shown are read
        inputs.neighbours = scorer_neighbours(scorer, space)
    return write_report(path, inputs, batch)


@folder_warnings_once()
def evaluation_report(path, evaluation, real_spec: str, features: str | None, generated: str | None = None,
                      rows: int = DEFAULT_ROWS, data_root=None, reading: MedicalReading | None = None,
                      batch: OutputBatch | None = None, image_size: int | None = None,
                      checkpoint: str | None = None) -> ReportResult:
    """The report of `ganfp evaluate`: the predictions' scores and the true labels, shown on the real images.

    The images are found, read and compared as classify did, so the report shows what was scored: by `read_real`,
    DICOM/NIfTI by `reading` (with `features` checkpoint: in the window `checkpoint` was trained in, unless
    `reading` names one), at `image_size` (None: the size they all share, `compared_size`). `features` None:
    classify's default; `checkpoint` None: the newest chain run's, as classify finds it.
    """
    from ganfp.device import resolve_device

    space = parse_features(features or DEFAULT_FEATURES)
    checkpoint = report_checkpoint(features, checkpoint, image_size)
    real, gen = evaluation_sets(evaluation, real_spec, features, generated, data_root, reading)
    warnings, trained = generated_not_read(real_spec) if gen is None else [], reading
    if checkpoint is not None:  # classify read the images as the checkpoint was trained on them
        trained, read_warnings = checkpoint_reading(reading, str(checkpoint), None)
        warnings += read_warnings
        if trained is not reading:
            real, gen = (with_window(m, trained.window, trained.hu_offset) for m in (real, gen))
    if reading is not None:  # judged with the offset the checkpoint recorded: a --window over 16-bit slices is read
        reading.check_read([it.path for m in (real, gen) if m is not None for it in m.items], trained.hu_offset)
    reading = trained
    size, compared = report_size(real, gen, image_size)
    check_features_size(features if gen is not None else None, size, image_size)
    setup = ScoringSetup(size, resolve_device("auto"), data_root=data_root, checkpoint=checkpoint)
    summary = {"predictions": evaluation.preds, "labels": evaluation.labels, "decision": evaluation.decision,
               "features": space.label if gen is not None else None,
               "checkpoint": str(checkpoint) if checkpoint is not None else None, "images": evaluation.n,
               **{name: evaluation.metrics.get(name) for name in ("accuracy", "f1")},  # ROC-AUC: the report's own
               "compared_at": compared, "hu_offset": reading.hu_offset if reading is not None else None,
               "notes": "; ".join(evaluation.notes) or None, "warnings": warnings}  # what evaluate printed under it
    written = classify_report(path, MembershipScorer(real, gen, setup), space, scores_of(evaluation),
                              evaluation.y_pred, summary, rows, cut=evaluation.threshold, truth=evaluation.y_true,
                              scored=evaluation.scores is not None, batch=batch)
    announce(warnings)
    return written


def generated_not_read(real_spec: str) -> list[str]:
    """A warning when the report has no generated images while a generated folder lies beside the real ones:
    `--real DIR/real_unknown_1` (the test set's real images, not DIR, which holds both) drew a report saying only
    that no generated images were given, with no neighbours, where classify names the folder (`generated_beside`).
    A warning, as classify's when it can run: the report without neighbours still shows the predictions."""
    beside = generated_beside(real_spec)
    if not beside:
        return []
    return [f"--real {real_spec} brings no generated images, so the report shows no generated neighbours; "
            f"{beside[0]} beside it was not read: pass --generated {beside[0]} to show each real image's nearest "
            "generated images"]


def report_checkpoint(features: str | None, checkpoint: str | None, image_size: int | None) -> Path | None:
    """The model file the report's `features` read (None for a space that reads none), checked before any image is
    decoded, as classify checks it: a --checkpoint given to another space would be ignored without a word, and the
    report then be built on another model than the one the images were scored with."""
    from ganfp.membership.features import check_checkpoint_given, check_checkpoint_read

    space = features or DEFAULT_FEATURES
    reads = parse_features(space).label == "checkpoint"
    if checkpoint is not None:
        check_checkpoint_given(checkpoint)
        if not reads:
            raise InputError(f"--checkpoint {checkpoint}: the report's --features {space} does not read it; only "
                             "--features checkpoint does")
    if not reads:
        return None
    return check_checkpoint_read(checkpoint, None, image_size,
                                 instead="or pass --checkpoint, or set $GANFP_RUNS to the folder of your chain runs")


def evaluation_sets(evaluation, real_spec: str, features: str | None, generated: str | None, data_root,
                    reading: MedicalReading | None) -> tuple[Manifest, Manifest | None]:
    """(the real images in the order of the evaluated ids, the generated images or None), each option checked."""
    gen = generated_manifest(generated, reading, option="--generated") if generated else None  # a typo fails first
    try:
        real = read_real(real_spec, data_root, reading, generated)
        if gen is None and not real.info.get("generated"):
            check_paired(real, f"or give --real {real.root} itself for a report without generated neighbours")
    except InputError as exc:  # evaluate reads several files: say which option this one came from
        raise of_option("--real", real_spec, exc) from None
    if gen is None and real.info.get("generated"):  # the dataset spec's own generated images
        gen = generated_manifest(real.info["generated"], reading)
    if gen is None and features is not None:  # ignored, a forgotten --generated would pass silently
        beside = generated_beside(real_spec)
        raise InputError(f"--features {features}: the report has no generated images to find neighbours among; "
                         + (f"pass --generated {beside[0]} (beside --real {real_spec})" if beside
                            else "give --generated too"))
    by_id = {it.id.strip(): it for it in real.items}  # ids as a table cell reads them (manifest.cell_id)
    missing = [i for i in evaluation.ids if i not in by_id]
    if missing:
        raise InputError(f"--real {real_spec}: {len(missing)} labelled ids have no image (e.g. {missing[0]})")
    real = replace(real, items=[by_id[i] for i in evaluation.ids])
    if gen is not None:
        check_report_sets(real, gen, f"--generated {generated}" if generated else gen.root)
    return real, gen


def report_size(real: Manifest, generated: Manifest | None, image_size: int | None) -> tuple[int, str | None]:
    """(the size evaluate's report reads the images at, in words; None without generated images to compare)."""
    if image_size is not None:
        return image_size, f"{image_size} px, as --image-size asked" if generated is not None else None
    return compared_size(real, generated) if generated is not None else (DISPLAY_SIZE, None)


def compared_size(real: Manifest, generated: Manifest) -> tuple[int, str]:
    """(the size classify compared the images at, in words): the one square size they all share, as classify's
    own (its --image-size is unknown here), else DISPLAY_SIZE. The report computed every neighbour at DISPLAY_SIZE:
    on images of 256 px, or 32, not the distances classify scored with."""
    sizes = {header.size for header in image_headers(real, generated)}
    (width, height), *others = sizes
    if not others and width == height >= MIN_IMAGE_SIZE:
        return width, f"{width} px, the images' own size"
    return DISPLAY_SIZE, (f"{DISPLAY_SIZE} px: the images are not all of one square size (give classify's "
                          "--image-size to compare them as it did)")


def scores_of(evaluation) -> np.ndarray:
    """The predictions' scores; their 0/1 labels as scores when the file holds none."""
    return evaluation.scores if evaluation.scores is not None else evaluation.y_pred.astype(np.float64)


def check_report_sets(real: Manifest, generated: Manifest, where: str) -> None:
    """Real and generated images a report can set side by side, refused before the work it reports on: the
    near-duplicates' radius is measured between real images, and with one of them the report failed after
    classify's classifier had run, naming the neighbour scorers, which that run did not use."""
    if len(real) < 2:
        raise InputError(f"--report: {len(real)} real image; beside generated images the report needs at least 2, "
                         "since it measures near-duplicates against the distances between real images")
    check_apart(real, generated, where)


def check_apart(real: Manifest, generated: Manifest, where: str) -> None:
    """Refuse generated images that include the real images' own files (`--generated` naming the real folder, or
    one above it): each real image would be shown as its own nearest generated image, a copy at distance 0, and
    every one listed as a near-duplicate, the evidence of leaked patients the report exists to show, made up.
    Refused, where classify only warns: evaluate's numbers come from PREDS and need no generated images, so the
    report is all that --generated changes, and a warning on the terminal does not travel with the HTML file."""
    shared = shared_files(real, generated)
    if shared:
        raise InputError(f"{where}: holds {len(shared)} of the {len(real)} real images too (e.g. {shared[0]}); the "
                         "report would show each as its own nearest generated image, a copy at distance 0: point it "
                         "at the generator's images only")


def known_truth(manifest: Manifest) -> np.ndarray | None:
    """0/1 true labels of the real images when known: a used class, or a labels file the dataset names."""
    if manifest.labelled and "used" in manifest.classes:
        return (manifest.labels == manifest.classes.index("used")).astype(np.int64)
    labels_path = manifest.info.get("labels")
    if not labels_path or not Path(labels_path).is_file():
        return None
    from ganfp.submission import read_labels

    truth = read_labels(labels_path)
    by_id = dict(zip(truth.ids, truth.labels.tolist()))
    ids = [i.strip() for i in manifest.ids]  # as a table cell reads them (manifest.cell_id)
    if not all(i in by_id for i in ids):
        return None
    return np.array([by_id[i] for i in ids], dtype=np.int64)


def decision_cut(scores: np.ndarray, decided: np.ndarray) -> float | None:
    """Midway between the lowest score labelled used and the highest labelled not used; None when no score
    separates them (an id,label,score file whose labels are no cut of its scores): a line drawn there was
    called the place where the decision changes, and was none."""
    used, not_used = scores[decided == 1], scores[decided == 0]
    if not len(used) or not len(not_used):
        return float(used.min()) if len(used) else None
    if used.min() < not_used.max():
        return None
    return float((used.min() + not_used.max()) / 2)


# ---------------------------------------------------------------- images


def aligned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(b moved to match a, the shift (dy, dx) in px): the best shift up to 1/ALIGN_SHARE of the width,
    then the gain and offset that best match a (least squares).

    A memoriser's copies are shifted and re-contrasted; an unaligned difference map shows the move,
    not the copy. After alignment what is left is what differs in content.
    """
    m = max(1, a.shape[0] // ALIGN_SHARE)
    fa, fb = a - a.mean(), b - b.mean()
    corr = np.fft.irfft2(np.fft.rfft2(fa) * np.conj(np.fft.rfft2(fb)), s=a.shape)  # corr[d] = sum a(x) b(x - d)
    shifts = [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
    # ties (a flat image correlates equally at every shift) go to the smallest move
    dy, dx = max(shifts, key=lambda d: (corr[d[0] % a.shape[0], d[1] % a.shape[1]], -abs(d[0]) - abs(d[1])))
    padded = np.pad(b.astype(np.float64), m, mode="edge")
    moved = padded[m - dy : m - dy + b.shape[0], m - dx : m - dx + b.shape[1]]
    design = np.stack([moved.ravel(), np.ones(moved.size)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, a.astype(np.float64).ravel(), rcond=None)
    return np.clip(np.rint(gain * moved + offset), 0, 255).astype(np.uint8), (int(dy), int(dx))


def difference_map(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, str]:
    """(RGB uint8 |a - b| after aligning b to a, on one fixed scale, 0 black .. 255 white-hot; its caption)."""
    import matplotlib

    b, (dy, dx) = aligned(a, b)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.float64)
    rgb = matplotlib.colormaps["inferno"](diff / 255.0)[..., :3]
    return (rgb * 255).round().astype(np.uint8), f"|diff| mean {diff.mean():.1f}, shift {dy:+d},{dx:+d} px"


# ---------------------------------------------------------------- charts

USED_COLOUR, NOT_USED_COLOUR = "#b42318", "#1d6f42"


def histogram_chart(scores: np.ndarray, cut: float | None, truth: np.ndarray | None) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.4, 3.4), layout="constrained")
    ax = fig.subplots()
    bins = np.histogram_bin_edges(scores, bins=30)
    if truth is None:
        ax.hist(scores, bins=bins, color="#5b6576", label="real images")
    else:
        ax.hist(scores[truth == 1], bins=bins, alpha=0.6, color=USED_COLOUR, label="truly used")
        ax.hist(scores[truth == 0], bins=bins, alpha=0.6, color=NOT_USED_COLOUR, label="truly not used")
    if cut is not None:
        ax.axvline(cut, color="black", linestyle="--", label=f"decision cut ({cut:.4g})")
    ax.set(xlabel="score (higher = more likely used)", ylabel="real images", title="Scores of the real images")
    ax.legend(frameon=False, fontsize=8)
    return figure_uri(fig)


def roc_chart(scores: np.ndarray, truth: np.ndarray, decided: np.ndarray) -> tuple[str, float]:
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(truth, scores)
    auc = float(roc_auc_score(truth, scores))
    fig = Figure(figsize=(3.6, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, color="#1d2430", label=f"scores (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    recall = decided[truth == 1].mean() if (truth == 1).any() else 0.0
    fall_out = decided[truth == 0].mean() if (truth == 0).any() else 0.0
    ax.plot([fall_out], [recall], "o", color=USED_COLOUR, label="the 0/1 decision")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    return figure_uri(fig), auc


def confusion_table(truth: np.ndarray, decided: np.ndarray) -> str:
    def count(t: int, d: int) -> int:
        return int(((truth == t) & (decided == d)).sum())

    return ('<table class="confusion"><tr><th></th><th>decided used</th><th>decided not used</th></tr>'
            f'<tr><th>truly used</th><td>{count(1, 1)}</td><td>{count(1, 0)}</td></tr>'
            f'<tr><th>truly not used</th><td>{count(0, 1)}</td><td>{count(0, 0)}</td></tr></table>')


# ---------------------------------------------------------------- HTML pieces

SUMMARY_LABELS = {
    "recipe": "recipe",
    "method": "method",
    "scorers": "scorers",
    "features": "features",
    "compared_at": "images compared at",
    "k": "k",
    "weights": "fusion weights",
    "decision": "decision rule",
    "images": "real images",
    "generated": "generated images",
    "labelled_used": "labelled used",
    "labelled_not_used": "labelled not used",
    "calibration": "calibration (dev set)",
    "hu_offset": "HU offset (16-bit images)",
    "f1": "F1",
}
SUMMARY_SKIP = {"out", "scores", "seconds", "device", "report", "used_fraction", "threshold", "with_default",
                "warnings"}  # warnings get rows of their own
IN_RECIPE = {"method", "features", "k"}  # the recipe's label names them


def calibration_text(choice: dict) -> str:
    """What --calibrate chose and how it did on the dev set, as classify prints it: the whole summary entry, with
    its table of every candidate, made one cell of tens of kB."""
    lo, hi = choice["interval"]
    return (f"{choice['recipe']}; used fraction {choice['used_fraction']:.3f}; cross-validated ROC-AUC "
            f"{choice['cv_auc']:.3f}, dev ROC-AUC {choice['dev_auc']:.3f} (95% bootstrap interval {lo:.3f}-{hi:.3f})")


def summary_warnings(summary: dict) -> list[str]:
    """What classify warned of on the terminal, which does not travel with the file: what the run logged (files
    skipped as not images, folders that mix formats), its own warnings, and a dev set that shows no evidence of
    leakage."""
    calibration = summary.get("calibration")
    no_leak = [NO_LEAK_EVIDENCE] if calibration and not calibration["leak_evidence"] else []
    return with_logged(no_leak + list(summary.get("warnings") or []))


def summary_rows(summary: dict, extra: dict) -> str:
    """The warnings, then known keys in a readable order, then anything else the caller put in the summary."""
    keys = [k for k in SUMMARY_LABELS if k in summary] + [k for k in summary if k not in SUMMARY_LABELS]
    skip = SUMMARY_SKIP | (IN_RECIPE if "recipe" in summary else set())
    rows = [(SUMMARY_LABELS.get(k, k.replace("_", " ")), calibration_text(summary[k]) if k == "calibration"
             else summary[k]) for k in keys if summary[k] is not None and k not in skip]
    rows += [(k, v) for k, v in extra.items() if v is not None]
    return table_rows(rows, summary_warnings(summary))


def decision_tags(decided: int, truth: int | None) -> str:
    word = "used" if decided else "not used"
    tags = f'<span class="tag {"used" if decided else "not-used"}">decided {word}</span>'
    if truth is not None:
        tags += f' <span class="tag truth">truly {"used" if truth else "not used"}</span>'
    return tags


def evidence_row(i: int, rank: int, inputs: ReportInputs, hood: Neighbourhood | None) -> str:
    """One real image, its k nearest generated images, and the difference map against the closest."""
    image_id = inputs.real_ids[i]
    truth = None if inputs.truth is None else int(inputs.truth[i])
    tags = decision_tags(int(inputs.decided[i]), truth)
    who = (f'<div class="who"><div class="id">{esc(image_id)}</div><div>score {inputs.scores[i]:.4g}</div>'
           f'<div>rank {rank} of {len(inputs.scores)}</div><div>{tags}</div></div>')
    parts = [who, figure_html(png_uri(inputs.real_images[i]), "real", "real", image_id)]
    if hood is not None and inputs.generated_images is not None:
        neighbours = []
        for d, j in zip(hood.to_generated[i], hood.to_generated_index[i]):
            name = inputs.generated_ids[j] if inputs.generated_ids else f"#{j}"
            neighbours.append(figure_html(png_uri(inputs.generated_images[j]), named(name, f"d = {d:.4g}"), title=name))
        parts.append(f'<div class="neighbours">{"".join(neighbours)}</div>')
        rgb, caption = difference_map(inputs.real_images[i], inputs.generated_images[hood.to_generated_index[i][0]])
        parts.append(figure_html(png_uri(rgb), caption, "diff", "difference to the closest, aligned"))
    return f'<div class="row evidence-row" data-id="{esc(image_id)}">{"".join(parts)}</div>'


def near_radius(real_to_real: np.ndarray) -> tuple[float, int]:
    """(the near-duplicate radius, how many real images were left out of it as copies of another real image).

    Copies among the real images (blank slices, a slice saved twice) sit at distance 0 from each other: counted,
    a few of them made the radius 0, and then not even a pixel copy of a real image was listed.
    """
    same = real_to_real <= SAME_SHARE * float(real_to_real.max())
    distinct = real_to_real[~same]
    return (float(np.percentile(distinct, NEAR_PERCENTILE)) if len(distinct) else 0.0), int(same.sum())


def radius_words(same: int, n_real: int) -> str:
    """How the near-duplicate radius was set, given how many real images are copies of another real image."""
    if same == n_real:
        return "Every real image is a copy of another real image, so only exact copies are listed"
    words = (f"That radius is the {NEAR_PERCENTILE:g}st percentile of the distances from each real image to its "
             f"nearest other real image: {100 - NEAR_PERCENTILE:g}% of the real images have no other real image this "
             "close")
    return words + (f" ({same} real images that are copies of another real image are left out)" if same else "")


def near_duplicate_rows(inputs: ReportInputs, hood: Neighbourhood) -> tuple[str, str, int, float]:
    """(rows, note, how many generated images are near-duplicates, the radius used)."""
    radius, same = near_radius(hood.real_to_real)
    close = np.flatnonzero(hood.nearest_real <= radius)
    close = close[np.argsort(hood.nearest_real[close], kind="stable")]
    shown = close[: inputs.rows]
    rows = []
    for j in shown:
        i = int(hood.nearest_real_index[j])
        name = inputs.generated_ids[j] if inputs.generated_ids else f"#{j}"
        rgb, caption = difference_map(inputs.real_images[i], inputs.generated_images[j])
        who = (f'<div class="who"><div class="id">{esc(name)}</div><div>distance {hood.nearest_real[j]:.4g}</div>'
               f'<div>nearest real: {esc(inputs.real_ids[i])}</div></div>')
        rows.append(f'<div class="row near-row" data-id="{esc(name)}">{who}'
                    + figure_html(png_uri(inputs.generated_images[j]), "generated", title=name)
                    + figure_html(png_uri(inputs.real_images[i]), "real", "real", inputs.real_ids[i])
                    + figure_html(png_uri(rgb), caption, "diff", "difference, aligned") + "</div>")
    note = (f"Generated images as close to a real image as {radius:.4g} or closer ({esc(hood.distance)}). "
            f"{radius_words(same, len(hood.real_to_real))}. {len(close)} found"
            + (f"; the closest {len(shown)} are shown." if len(close) > len(shown) else "."))
    return "\n".join(rows) or "<p>None.</p>", note, int(len(close)), radius


# ---------------------------------------------------------------- the page


# without labels or a dev set the page showed the most suspicious images "decided used" and said nothing of whether
# there was any leakage to find
UNTESTED = ("No labels are known and no dev set was given (classify --calibrate), so nothing here tests whether the "
            "generator leaked at all: the decision rule labels images used whatever the scores' level, and the "
            "near-duplicates below are the direct evidence.")


def _charts(inputs: ReportInputs, cut: float | None) -> tuple[str, str, dict]:
    """(chart HTML, note, summary lines) of the score section.

    Predictions of 0/1 labels only get no ROC curve: its AUC would be the labels' balanced accuracy
    under another name, where `ganfp evaluate` says ROC-AUC needs scores.
    """
    charts = [f'<img src="{histogram_chart(inputs.scores, cut, inputs.truth)}" alt="score histogram">']
    extra: dict = {}
    line = ("the dashed line is where the decision changes." if cut is not None else
            "no line is drawn: the decisions are not a cut of these scores.")
    notes = [f"The scores of all real images; {line}" if inputs.scored else
             "The predictions hold 0/1 labels only, drawn as scores of 0 and 1; a ROC curve and ROC-AUC need "
             "an id,score file."]
    truth = inputs.truth
    if truth is not None and truth.min() != truth.max():
        if inputs.scored:
            uri, auc = roc_chart(inputs.scores, truth, inputs.decided)
            charts.append(f'<img src="{uri}" alt="ROC curve">')
            extra["ROC-AUC (known labels)"] = f"{auc:.3f}"
        charts.append(f"<div><b>Against the known labels</b>{confusion_table(truth, inputs.decided)}</div>")
        notes.append("The real images' labels are known: used and not used are drawn apart.")
    elif truth is None and not inputs.summary.get("calibration"):
        notes.append(UNTESTED)
    return "\n".join(charts), " ".join(notes), extra


def _order(inputs: ReportInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(most suspicious first, least suspicious first without overlap, 1-based rank of every image)."""
    order = np.argsort(-inputs.scores, kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    most = order[: inputs.rows]
    least = order[len(most):][::-1][: inputs.rows]
    return most, least, ranks


def _titled(count: int, which: str) -> str:
    return f"The {which} real image" if count == 1 else f"The {count} {which} real images"


def evidence_sections(inputs: ReportInputs, hood: Neighbourhood | None) -> tuple[str, str, str]:
    """(the first section's title, its rows, the whole contrast section): when --report-n covers every image
    they are all shown once, most suspicious first, and no empty "least suspicious" section follows."""
    most, least, ranks = _order(inputs)
    most_rows = "\n".join(evidence_row(i, ranks[i], inputs, hood) for i in most)
    if not len(least):
        n = len(inputs.real_ids)
        return ("The one real image" if n == 1 else f"All {n} real images, most suspicious first"), most_rows, ""
    least_rows = "\n".join(evidence_row(i, ranks[i], inputs, hood) for i in least)
    least_section = (f'<section id="least-suspicious">\n  <h2>{_titled(len(least), "least suspicious")}, for contrast'
                     f"</h2>\n{least_rows}\n</section>")
    return _titled(len(most), "most suspicious"), most_rows, least_section


def build_report(inputs: ReportInputs) -> tuple[str, dict]:
    """(the HTML page, facts about it: rows, near-duplicates, radius)."""
    n = len(inputs.real_ids)
    if not (len(inputs.real_images) == len(inputs.scores) == len(inputs.decided) == n):
        raise ArgumentError("real ids, images, scores and decisions must have one entry per real image")
    cut = inputs.cut if inputs.cut is not None else decision_cut(inputs.scores, inputs.decided)
    hood = inputs.neighbours(inputs.k) if inputs.neighbours is not None else None
    charts, scores_note, extra = _charts(inputs, cut)
    if hood is not None:
        extra["neighbour distances"] = hood.distance
        extra["difference maps"] = ("absolute grey-level difference to the closest generated image, after its best shift "
                                    f"(up to 1/{ALIGN_SHARE} of the width) and brightness/contrast match")
        near, near_note, near_count, radius = near_duplicate_rows(inputs, hood)
        nearest = counted(hood.to_generated.shape[1], "nearest generated image")
        evidence_note = (f"Each row: the real image, its {nearest} with the distance d in {esc(hood.distance)} "
                         "(smaller = more alike), and the difference map against the closest.")
    else:
        near, near_note, near_count, radius = "<p>No generated images were given.</p>", "", 0, None
        evidence_note = "No generated images were given: each row shows the real image and its score."
    most_title, most_rows, least_section = evidence_sections(inputs, hood)
    subtitle = f"{inputs.title + ' - ' if inputs.title else ''}{counted(n, 'real image')}; written {written_at()}"
    heading = Heading("evidence report", "Evidence report", esc(inputs.title or "ganfp"), esc(subtitle),
                      summary_rows(inputs.summary, extra))
    text = render(
        "report.html", heading, scores_note=esc(scores_note), charts=charts,
        most_title=most_title, evidence_note=evidence_note, most_rows=most_rows, least_section=least_section,
        near_note=near_note, near_rows=near,
    )
    rows = min(len(inputs.real_ids), 2 * inputs.rows)
    return text, {"evidence_rows": rows, "near_duplicates": near_count, "near_radius": radius}


def write_report(path, inputs: ReportInputs, batch: OutputBatch | None = None) -> ReportResult:
    """Build the page and write it atomically (with `batch`: beside the command's other outputs)."""
    require_matplotlib()
    text, facts = build_report(inputs)
    write_text(path, text, batch)
    return ReportResult(str(path), len(text.encode("utf-8")), **facts)
