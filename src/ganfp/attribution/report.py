"""The attribution evidence report: one self-contained HTML file that shows why each image went where it did.

An auditor cannot trust a table of predicted classes alone. Supervised, the report shows per predicted class the
images the method was most and least sure of, each beside its nearest labelled images of the predicted class
and of the runner-up class, so a reader sees the resemblance (or its absence) the decision rests on. Clustered,
it shows per cluster its most central and most peripheral images. It reads no ground truth and so states no
accuracy: `ganfp evaluate` scores the CSV. Built from `ganfp.pages`, as the membership report is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ganfp.attribution.defaults import DEFAULT_REPORT_ROWS
from ganfp.attribution.features import FeatureContext, decode
from ganfp.attribution.methods import KEPT_NEIGHBOURS, Job, Measure, Neighbours
from ganfp.data.manifest import Manifest, with_logged
from ganfp.fileio import OutputBatch, write_text
from ganfp.pages import (Heading, counted, esc, figure_html, figure_uri, named, png_uri, render, table_rows,
                         written_at)

NEIGHBOURS = KEPT_NEIGHBOURS  # labelled images shown per class beside each unknown image: all knn keeps
NO_ACCURACY = "not measured: the report reads no ground truth (score the CSV with ganfp evaluate)"
SUMMARY_LABELS = {
    "task": "task", "images": "images", "method": "method", "features": "feature space", "checkpoint": "checkpoint",
    "hu_offset": "HU offset (16-bit images)", "train": "trained on",
    "train_counts": "labelled images per class", "predicted_counts": "predicted per class", "k": "clusters (K)",
    "k_chosen_by": "K chosen by", "eigengaps": "eigengap per K", "cluster_sizes": "images per cluster",
    "silhouette": "silhouette",
}


@dataclass
class Gallery:
    """Images with their ids, one order for both."""

    ids: list[str]
    images: np.ndarray  # uint8 (n, s, s)


@dataclass
class SupervisedInputs:
    unknown: Gallery
    references: Gallery  # the labelled images the method learnt from
    reference_labels: np.ndarray  # class index of each reference
    classes: list[str]
    probabilities: np.ndarray  # (n_unknown, n_classes), the method's own
    neighbours: Neighbours | None  # knn's own, as its vote found them; None: measured in the vectors below
    unknown_vectors: np.ndarray | None  # without knn's neighbours: the method's vectors, else pixels (cnn)
    reference_vectors: np.ndarray | None
    measure: Measure  # what the number beside each neighbour is, in words
    summary: dict  # the run's result (`to_dict`)
    rows: int = DEFAULT_REPORT_ROWS


@dataclass
class ClusterInputs:
    images: Gallery
    vectors: np.ndarray  # the standardised features the clusterer read
    clusters: np.ndarray  # cluster index per image
    summary: dict
    rows: int = DEFAULT_REPORT_ROWS


def supervised_inputs(job: Job, probabilities: np.ndarray, summary: dict, method: str,
                      rows: int | None) -> SupervisedInputs:
    """What the report shows of a supervised run: the images as the method saw them, and the neighbours knn's vote
    found (in pairs or in vectors), else neighbours in the vectors the method compared in, else in pixels (cnn)."""
    unknown, references = (decode(m, job.ctx).numpy() for m in (job.unknown, job.train))
    vectors, neighbours = job.computed_vectors(), job.neighbours
    if neighbours is not None:
        reference_vectors = unknown_vectors = None
        measure = Measure(f"{neighbours.measure.words()}: the neighbours the knn vote found",
                          neighbours.measure.similarity)
    elif vectors is not None:
        reference_vectors, unknown_vectors = vectors
        measure = Measure(f"Euclidean distance in {job.features}, standardised, the space the {method} method "
                          "compared in, smaller = more alike", similarity=False)
    else:
        reference_vectors, unknown_vectors = references.reshape(len(references), -1), unknown.reshape(len(unknown), -1)
        measure = Measure(f"Euclidean distance in pixels at {job.ctx.image_size} px, smaller = more alike: the "
                          f"{method} method has no distance of its own", similarity=False)
    return SupervisedInputs(Gallery(job.unknown.ids, unknown), Gallery(job.train.ids, references),
                            np.asarray(job.train.labels), job.classes, probabilities, neighbours, unknown_vectors,
                            reference_vectors, measure, summary, rows or DEFAULT_REPORT_ROWS)


def cluster_inputs(images: Manifest, ctx: FeatureContext, vectors: np.ndarray, clusters: np.ndarray, summary: dict,
                   rows: int | None) -> ClusterInputs:
    return ClusterInputs(Gallery(images.ids, decode(images, ctx).numpy()), vectors, clusters, summary,
                         rows or DEFAULT_REPORT_ROWS)


def ranked(probabilities: np.ndarray, distance: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(predicted class, runner-up class, confidence = the predicted class's probability, margin over the
    runner-up) per image. The margin tells a sure call from a coin toss where confidences alone look alike.
    `distance` (n_images, n_classes), each image's to its nearest labelled image per class, breaks equal
    probabilities for the runner-up: a 1-nn vote gives every other class 0, which made the first class by name the
    runner-up. The predicted class is the CSV's, the first of the largest probability (argmax)."""
    rows = np.arange(len(probabilities))
    first = probabilities.argmax(1)
    rest = probabilities.copy()
    rest[rows, first] = -np.inf
    second = np.lexsort((np.zeros_like(rest) if distance is None else distance, -rest), axis=1)[:, 0]
    confidence = probabilities[rows, first]
    return first, second, confidence, confidence - probabilities[rows, second]


def ends(members: np.ndarray, key: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(the `rows` members with the highest key, highest first; the `rows` lowest of the rest, lowest first):
    no image is shown twice, and a small group is shown once, in full."""
    order = members[np.argsort(-key[members], kind="stable")]
    top = order[:rows]
    return top, order[len(top):][::-1][:rows]


def nearest_of_class(vector: np.ndarray, inputs: SupervisedInputs, cls: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, Euclidean distances) of the NEIGHBOURS labelled images of class `cls` nearest to `vector`."""
    members = np.flatnonzero(inputs.reference_labels == cls)
    # float64 per class: pixel vectors are uint8, whose differences wrap around
    distances = np.linalg.norm(inputs.reference_vectors[members].astype(np.float64) - vector, axis=1)
    order = np.argsort(distances, kind="stable")[:NEIGHBOURS]
    return members[order], distances[order]


def neighbours_of(i: int, cls: int, inputs: SupervisedInputs) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of unknown image `i`'s nearest labelled images of class `cls`: knn's own where it kept
    them, else measured here."""
    if inputs.neighbours is not None:
        index, distances = inputs.neighbours.of_class(i, cls)
        return index[:NEIGHBOURS], distances[:NEIGHBOURS]
    return nearest_of_class(inputs.unknown_vectors[i], inputs, cls)


def neighbour_strip(i: int, cls: int, role: str, inputs: SupervisedInputs) -> str:
    """The nearest labelled images of one class to unknown image `i`, under a label naming the class's role; each
    with its number as the method measured it (s, a similarity, or d, a distance), to 4 significant digits, trailing
    zeros kept: `s = 0.73` beside `s = 0.7095` read as a less precise number."""
    index, distances = neighbours_of(i, cls, inputs)
    symbol = "s" if inputs.measure.similarity else "d"
    figures = [figure_html(png_uri(inputs.references.images[j]),
                           named(inputs.references.ids[j], f"{symbol} = {inputs.measure.shown(d):#.4g}"),
                           "reference", inputs.references.ids[j]) for j, d in zip(index, distances)]
    label = f'<div class="group">{role}<br><b>{esc(inputs.classes[cls])}</b></div>'
    return f'<div class="neighbours">{label}{"".join(figures)}</div>'


def unknown_row(i: int, facts: tuple, inputs: SupervisedInputs) -> str:
    first, second, confidence, margin = facts
    image_id = inputs.unknown.ids[i]
    who = (f'<div class="who"><div class="id">{esc(image_id)}</div><div>confidence {confidence[i]:.3f}</div>'
           f'<div>margin {margin[i]:.3f} over {esc(inputs.classes[second[i]])}</div></div>')
    parts = [who, figure_html(png_uri(inputs.unknown.images[i]), "unknown", "real", image_id),
             neighbour_strip(i, first[i], "predicted", inputs), neighbour_strip(i, second[i], "runner-up", inputs)]
    return f'<div class="row unknown-row" data-id="{esc(image_id)}">{"".join(parts)}</div>'


def section(anchor: str, title: str, note: str, body: str) -> str:
    return f'<section id="{esc(anchor)}">\n  <h2>{title}</h2>\n  <p class="note">{note}</p>\n{body}\n</section>'


def class_section(cls: int, facts: tuple, inputs: SupervisedInputs) -> str:
    """One predicted class: its most and least confident unknown images, each beside its neighbours."""
    first, _, confidence, margin = facts
    members = np.flatnonzero(first == cls)
    name = esc(inputs.classes[cls])
    if not len(members):
        return section(f"class-{cls}", f"Predicted {name}", "No image was attributed to this class.", "")
    key = confidence + 1e-9 * margin  # equal confidences: the larger margin is the surer call
    most, least = ends(members, key, inputs.rows)
    body = f'<h3>The {counted(len(most), "most confident image")}</h3>\n'
    body += "\n".join(unknown_row(i, facts, inputs) for i in most)
    if len(least):
        body += f'\n<h3>The {counted(len(least), "least confident image")}</h3>\n'
        body += "\n".join(unknown_row(i, facts, inputs) for i in least)
    note = (f"{counted(len(members), 'image')} attributed to {name}; shown: the {len(most)} most confident"
            + (f", then the {len(least)} least confident." if len(least) else ", all of them."))
    return section(f"class-{cls}", f"Predicted {name}", note, body)


def confidence_figure(confidence: np.ndarray, predicted: np.ndarray, classes: list[str]):
    """One histogram of the method's confidence per predicted class, on one shared scale. Each class is named in
    the legend as it is spelt: matplotlib read a name with two $ as mathtext (and failed on one it cannot parse)
    and left out of the legend one that starts with _."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.8, 3.4), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21)
    drawn = [(ax.hist(confidence[predicted == c], bins=bins, histtype="step", linewidth=1.6)[2][0], name)
             for c, name in enumerate(classes) if (predicted == c).any()]
    ax.set(xlabel="confidence (probability of the predicted class)", ylabel="images",
           title="Confidence per predicted class")
    legend = ax.legend(*zip(*drawn), frameon=False, fontsize=8)
    for text in legend.get_texts():
        text.set_parse_math(False)
    return fig


def confidence_chart(confidence: np.ndarray, predicted: np.ndarray, classes: list[str]) -> str:
    return figure_uri(confidence_figure(confidence, predicted, classes))


def sizes_chart(sizes: np.ndarray) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.bar([str(c) for c in range(len(sizes))], sizes, color="#5b6576")
    ax.set(xlabel="cluster", ylabel="images", title="Cluster sizes")
    return figure_uri(fig)


def summary_table(summary: dict, extra: dict) -> str:
    """The run's warnings, those it logged (files skipped as not images) too, then its facts in a readable order;
    never an accuracy the report cannot know."""
    rows = [(label, summary[k]) for k, label in SUMMARY_LABELS.items() if summary.get(k) is not None]
    warnings = with_logged(summary.get("warnings") or [])
    return table_rows(rows + list(extra.items()) + [("accuracy", NO_ACCURACY)], warnings)


def page(summary: dict, extra: dict, chart: tuple[str, str, str, str], sections: list[str]) -> str:
    chart_id, title, note, charts = chart
    subtitle = f"{summary['task']}; {counted(summary['images'], 'image')}; written {written_at()}"
    heading = Heading("attribution report", "Attribution evidence report", esc(summary["task"]), esc(subtitle),
                      summary_table(summary, extra))
    return render("attribution_report.html", heading, chart_id=chart_id, chart_title=title, chart_note=note,
                  charts=charts, sections="\n".join(sections))


def supervised_page(inputs: SupervisedInputs) -> str:
    facts = ranked(inputs.probabilities, None if inputs.neighbours is None else inputs.neighbours.distance[:, :, 0])
    chart = f'<img src="{confidence_chart(facts[2], facts[0], inputs.classes)}" alt="confidence per class">'
    note = ("The method's probability of the class it chose, per image, grouped by that class. Below, per class: "
            f"each image beside its {counted(NEIGHBOURS, 'nearest labelled image')} of the predicted and of the "
            f"runner-up class, with {'s' if inputs.measure.similarity else 'd'}: {esc(inputs.measure.name)}.")
    sections = [class_section(c, facts, inputs) for c in range(len(inputs.classes))]
    return page(inputs.summary, {"neighbours measured by": inputs.measure.name},
                ("confidence", "Confidence", note, chart), sections)


def cluster_section(c: int, inputs: ClusterInputs, spread: np.ndarray) -> str:
    """One cluster: its most central images, then its most peripheral, by distance to its mean."""
    members = np.flatnonzero(inputs.clusters == c)
    central, peripheral = ends(members, -spread, inputs.rows)

    def strip(index: np.ndarray) -> str:
        figures = [figure_html(png_uri(inputs.images.images[i]), named(inputs.images.ids[i], f"d = {spread[i]:#.3g}"),
                               "member", inputs.images.ids[i]) for i in index]
        # a JSON list: an id may hold spaces, so ids joined by spaces could not be told apart
        ids = esc(json.dumps([inputs.images.ids[i] for i in index], ensure_ascii=False))
        return f'<div class="row cluster-row neighbours" data-ids="{ids}">{"".join(figures)}</div>'

    body = "<h3>Most central</h3>\n" + strip(central)
    if len(peripheral):
        body += "\n<h3>Most peripheral</h3>\n" + strip(peripheral)
    note = (f"{counted(len(members), 'image')}; d is the distance to the cluster's mean in the features the "
            "clusterer read.")
    return section(f"cluster-{c}", f"Cluster {c}", note, body)


def cluster_page(inputs: ClusterInputs) -> str:
    k = int(inputs.summary["k"])
    means = np.stack([inputs.vectors[inputs.clusters == c].mean(0) for c in range(k)])
    spread = np.linalg.norm(inputs.vectors - means[inputs.clusters], axis=1)
    sizes = np.bincount(inputs.clusters, minlength=k)
    chart = f'<img src="{sizes_chart(sizes)}" alt="cluster sizes">'
    note = "Images per cluster. Below, per cluster, its most central and its most peripheral images."
    sections = [cluster_section(c, inputs, spread) for c in range(k)]
    return page(inputs.summary, {}, ("sizes", "Cluster sizes", note, chart), sections)


def write_attribution_report(path, inputs: SupervisedInputs | ClusterInputs, batch: OutputBatch | None = None) -> str:
    """Build the page and write it atomically (with `batch`: beside the class table); returns the path."""
    text = supervised_page(inputs) if isinstance(inputs, SupervisedInputs) else cluster_page(inputs)
    write_text(path, text, batch)
    return str(path)
