"""`ganfp attribute --report`: the attribution evidence report, on the tiny seeded sets of the conftest fixtures."""

from __future__ import annotations

import html
import json
import re
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers.attribution import CLASSES, one_line_error

import ganfp.attribution.run as run_module
from ganfp.attribution.files import read_class_table
from ganfp.attribution.report import (ClusterInputs, Gallery, cluster_section, confidence_chart, confidence_figure,
                                      ends, ranked)
from ganfp.attribution.methods import METHODS, TrainerSettings
from ganfp.attribution.run import AttributeConfig, ClusterConfig, attribute, cluster
from ganfp.errors import InputError

pytest.importorskip("matplotlib", reason="the report needs the plots extra (matplotlib)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ids_in(folder: Path) -> set[str]:
    return {p.stem for p in folder.rglob("*.png")}


def section_of(text: str, anchor: str) -> str:
    start = text.index(f'<section id="{anchor}">')
    return text[start:text.index("</section>", start)]


def no_network(text: str) -> None:
    """Every src and href is embedded: nothing the page loads or links to is fetched from elsewhere."""
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text


def shown_counts(text: str, anchor: str, row: str) -> int:
    return section_of(text, anchor).count(f'class="row {row}')


def test_supervised_report_shows_each_class_with_its_neighbours(task, tmp_path, run_cli):
    out, report = tmp_path / "a.csv", tmp_path / "r.html"
    code, stdout, err = run_cli("attribute", task / "unknown", "--train", task / "train", "--method", "centroid",
                                "--features", "pixels8", "--out", out, "--report", report, "--report-n", "1",
                                "--device", "cpu", "--data-root", tmp_path / "data")
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    no_network(text)
    predicted = Counter(read_class_table(out).values)
    summary = section_of(text, "summary")
    counts = ", ".join(f"{c} {predicted[c]}" for c in CLASSES)
    assert f"<th>predicted per class</th><td>{counts}</td>" in summary
    assert "<th>method</th><td>centroid</td>" in summary and "<th>feature space</th><td>pixels8</td>" in summary
    assert "not measured" in summary and not re.search(r"accuracy</th><td>\d", summary)  # no truth read
    assert '<section id="confidence">' in text and 'alt="confidence per class"' in text
    for c, name in enumerate(CLASSES):  # 4 per class, well separated: one most and one least confident each
        assert f"Predicted {name}" in text
        assert shown_counts(text, f"class-{c}", "unknown-row") == min(predicted[name], 2)
    unknown, references = ids_in(task / "unknown"), ids_in(task / "train" / "generated")
    rows = re.findall(r'class="row unknown-row" data-id="([^"]+)"', text)
    assert rows and set(rows) <= unknown and len(rows) == len(set(rows))
    shown = set(re.findall(r'<figure class="reference"><img src="data:image/png;base64,[^"]+" alt="([^"]+)"', text))
    assert shown and shown <= references
    # the 3 nearest of the predicted class and of the runner-up, beside each image
    assert text.count('<figure class="reference">') == 6 * len(rows)
    assert "the space the centroid method compared in" in text


def predicted_neighbour(text: str) -> dict[str, tuple[str, str]]:
    """Per unknown image shown: (id, caption) of the first labelled image beside it under "predicted"."""
    rows = text.split('class="row unknown-row" data-id="')[1:]
    found = {}
    for row in rows:
        predicted = row[row.index("predicted<br>"):]
        alt, name, caption = re.search(r'<figure class="reference"><img [^>]*alt="([^"]+)"[^>]*>'
                                       r'<figcaption><span class="name">([^<]+)</span><br>([^<]+)</figcaption>',
                                       predicted).groups()
        assert name == alt  # the id under the image, not only in its tooltip
        found[row[:row.index('"')]] = alt, caption
    return found


def nearest_in_white8(task: Path, tmp_path: Path) -> dict[str, tuple[str, float]]:
    """Each unknown image's nearest labelled image and its whitened NCC, found here by membership's pass alone."""
    import torch

    from ganfp.data.adapters.folder import folder_manifest
    from ganfp.membership.distances import nearest
    from ganfp.membership.features import paired_features
    from ganfp.membership.spaces import parse_features

    unknown, train = run_module.read_images(str(task / "unknown")), folder_manifest(task / "train" / "generated")
    cpu = torch.device("cpu")
    at, u, t = paired_features(parse_features("white8"), unknown, train, image_size=16, device=cpu, batch_size=128,
                               data_root=str(tmp_path / "data"))
    distances, index = nearest(u, t, 1, at.metric, cpu)
    pairs = zip(unknown.ids, index[:, 0].tolist(), distances[:, 0].tolist())
    return {uid: (train.ids[j], 1 - d) for uid, j, d in pairs}


def significant_digits(number: str) -> int:
    """The digits a caption's number shows, leading zeros left out: `0.7300` 4, `0.73` 2."""
    mantissa = number.split("e")[0].replace(".", "").replace("-", "")
    return len(mantissa.lstrip("0"))

def test_knn_in_a_pair_space_shows_the_neighbours_its_vote_found(task, tmp_path):
    """The default kind of method: the report shows the labelled images knn's own pass found, by whitened NCC,
    not neighbours measured in another space."""
    cfg = AttributeConfig(unknown=str(task / "unknown"), train=str(task / "train"), out=str(tmp_path / "a.csv"),
                          method="knn", features="white8", device="cpu", data_root=str(tmp_path / "data"),
                          report=str(tmp_path / "r.html"), report_n=1)
    result = attribute(cfg)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert result.report == str(tmp_path / "r.html") and result.to_dict()["report"] == result.report
    assert "whitened NCC, the best over small shifts, in white8, higher = more alike" in text
    assert "pixels at" not in text
    shown, truth = predicted_neighbour(text), nearest_in_white8(task, tmp_path)
    assert len(shown) >= len(CLASSES)
    for image_id, (reference, caption) in shown.items():
        expected, similarity = truth[image_id]  # k 1: the vote's nearest is the predicted class's top neighbour
        assert reference == expected and caption == f"s = {similarity:#.4g}", (image_id, caption)
        predicted = result.predicted[result.ids.index(image_id)]
        assert reference.startswith(f"gen_{predicted}_")


def test_knn_in_a_vector_space_shows_its_own_neighbours(task, tmp_path):
    cfg = AttributeConfig(unknown=str(task / "unknown"), train=str(task / "train"), out=str(tmp_path / "a.csv"),
                          method="knn", features="pixels8", k=3, device="cpu", data_root=str(tmp_path / "data"),
                          report=str(tmp_path / "r.html"), report_n=1)
    attribute(cfg)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    words = "Euclidean distance in pixels8, standardised, smaller = more alike: the neighbours the knn vote found"
    assert words in text
    captions = [caption for _, caption in predicted_neighbour(text).values()]
    assert captions and all(c.startswith("d = ") for c in captions)
    assert all(significant_digits(c[len("d = "):]) == 4 for c in captions), captions  # `0.73` beside `0.7095`


def test_cnn_has_no_distance_so_its_neighbours_are_measured_in_pixels(task, tmp_path, monkeypatch):
    """cnn keeps no neighbours and compares in no vectors: the pixel fallback is its alone."""
    untrained = replace(METHODS.entry("cnn"), obj=lambda job: np.full((len(job.unknown), len(job.classes)), 0.25))
    monkeypatch.setitem(METHODS._entries, "cnn", untrained)  # no training: the report's reading is under test
    cfg = AttributeConfig(unknown=str(task / "unknown"), train=str(task / "train"), out=str(tmp_path / "a.csv"),
                          method="cnn", device="cpu", data_root=str(tmp_path / "data"), report=str(tmp_path / "r.html"),
                          report_n=1, trainer=TrainerSettings(runs_dir=str(tmp_path / "runs")))
    attribute(cfg)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "pixels at 16 px, smaller = more alike: the cnn method has no distance of its own" in text


def test_fusion_report_shows_each_class_with_knn_neighbours_and_the_fused_confidence(task, tmp_path, run_cli):
    """fusion trains its cnn (2 epochs on 16 px images: seconds). Its page shows every predicted class, the neighbours
    its knn half's vote found, named by their measure, and as confidence the mean of the two halves' probabilities."""
    out, report, runs = tmp_path / "a.csv", tmp_path / "r.html", tmp_path / "runs"
    code, _, err = run_cli("attribute", task / "unknown", "--train", task / "train", "--method", "fusion", "--features",
                           "white8", "--epochs", "2", "--runs-dir", runs, "--out", out, "--report", report,
                           "--report-n", "1", "--device", "cpu", "--data-root", tmp_path / "data")
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    no_network(text)
    summary = section_of(text, "summary")
    assert "<th>method</th><td>fusion</td>" in summary
    assert ("<th>neighbours measured by</th><td>whitened NCC, the best over small shifts, in white8, higher = more "
            "alike: the neighbours the knn vote found</td>") in summary
    predicted = Counter(read_class_table(out).values)
    for c, name in enumerate(CLASSES):
        assert f"Predicted {name}" in text
        assert shown_counts(text, f"class-{c}", "unknown-row") == min(predicted[name], 2)
    captions = [caption for _, caption in predicted_neighbour(text).values()]
    assert len(captions) >= len(CLASSES) and all(c.startswith("s = ") for c in captions)
    halves = [attribute(AttributeConfig(unknown=str(task / "unknown"), train=str(task / "train"),
                                        out=str(tmp_path / f"{method}.csv"), method=method, features=features,
                                        device="cpu", data_root=str(tmp_path / "data"), trainer=trainer))
              for method, features, trainer in [("knn", "white8", TrainerSettings()),
                                                ("cnn", None, TrainerSettings(epochs=2, runs_dir=str(runs)))]]
    fused = dict(zip(halves[0].ids, np.mean([h.probabilities for h in halves], axis=0).max(1)))  # cnn: fusion's model
    shown = re.findall(r'data-id="([^"]+)"><div class="who"><div class="id">[^<]*</div><div>confidence ([0-9.]+)<',
                       text)
    assert len(shown) == len(captions)
    for image_id, confidence in shown:
        assert float(confidence) == pytest.approx(fused[image_id], abs=5e-4), image_id


def test_clustering_report_shows_central_and_peripheral_images(mixed, tmp_path, run_cli):
    out, report = tmp_path / "c.csv", tmp_path / "c.html"
    code, _, err = run_cli("attribute", mixed / "generated", "--clusters", "auto", "--out", out, "--report", report,
                           "--report-n", "2", "--device", "cpu", "--data-root", tmp_path / "data")
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    no_network(text)
    clusters = read_class_table(out).values
    sizes = Counter(clusters)
    k = len(sizes)
    summary = section_of(text, "summary")
    assert f"<th>clusters (K)</th><td>{k}</td>" in summary and "<th>K chosen by</th><td>eigengap</td>" in summary
    assert f"<th>images per cluster</th><td>{', '.join(str(sizes[str(c)]) for c in range(k))}</td>" in summary
    assert "not measured" in summary and 'alt="cluster sizes"' in text
    images = ids_in(mixed / "generated")
    by_id = dict(zip(read_class_table(out).ids, clusters))
    for c in range(k):
        strips = re.findall(r'data-ids="([^"]+)"', section_of(text, f"cluster-{c}"))
        assert len(strips) == 2  # most central, then most peripheral
        shown = [i for strip in strips for i in json.loads(html.unescape(strip))]
        assert len(shown) == min(sizes[str(c)], 4) and set(shown) <= images
        assert {by_id[i] for i in shown} == {str(c)}  # each strip holds its own cluster's images
        captions = re.findall(r'<figcaption><span class="name">([^<]+)</span>', section_of(text, f"cluster-{c}"))
        assert [html.unescape(i) for i in captions] == shown  # each id readable under its image, not only on hover


@pytest.mark.parametrize("bad", ["folder", "same", "image"])
def test_a_bad_report_path_is_refused_before_any_work(task, tmp_path, run_cli, monkeypatch, bad):
    def no_work(*args, **kw):
        raise AssertionError("the images were read")

    monkeypatch.setattr(run_module, "read_images", no_work)
    out = tmp_path / "a.csv"
    report = {"folder": tmp_path, "same": out, "image": task / "unknown" / "unknown_alpha_000.png"}[bad]
    code, _, err = run_cli("attribute", task / "unknown", "--train", task / "train", "--out", out, "--report", report,
                           "--data-root", tmp_path / "data")
    one_line_error((code, _, err), "--report")
    assert not out.exists()
    with pytest.raises(InputError, match="report"):  # the Python API checks it too
        cluster(ClusterConfig(images=str(task / "unknown"), out=str(out), clusters=2, report=str(report)))
    assert not out.exists()


def test_report_n_is_refused_when_zero_or_without_a_report(task, tmp_path, run_cli):
    out = tmp_path / "a.csv"
    code, _, err = run_cli("attribute", task / "unknown", "--clusters", "2", "--out", out, "--report",
                           tmp_path / "r.html", "--report-n", "0")
    assert code == 2 and "--report-n" in err and "Traceback" not in err
    one_line_error(run_cli("attribute", task / "unknown", "--clusters", "2", "--out", out, "--report-n", "2"),
                   "--report-n 2", "give --report too")
    assert not out.exists()


def test_report_without_matplotlib_is_refused_naming_the_extra(task, tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "a.csv"
    one_line_error(run_cli("attribute", task / "unknown", "--train", task / "train", "--out", out, "--report",
                           tmp_path / "r.html", "--data-root", tmp_path / "data"), "pip install 'ganfp[plots]'")
    assert not out.exists() and not (tmp_path / "data").exists()


def test_a_report_that_fails_leaves_no_table_either(task, tmp_path, monkeypatch):
    def broken(*args, **kw):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(run_module, "write_attribution_report", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        cluster(ClusterConfig(images=str(task / "unknown"), out=str(tmp_path / "c.csv"), clusters=3, device="cpu",
                              data_root=str(tmp_path / "data"), report=str(tmp_path / "c.html")))
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "c.html").exists()


def test_ranked_gives_confidence_margin_and_runner_up():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    first, second, confidence, margin = ranked(probabilities)
    assert first.tolist() == [0, 2] and second.tolist() == [1, 0]
    np.testing.assert_allclose(confidence, [0.7, 0.4])
    np.testing.assert_allclose(margin, [0.5, 0.1])


def test_ends_never_show_an_image_twice():
    key = np.array([0.9, 0.1, 0.5, 0.7, 0.3])
    top, bottom = ends(np.arange(5), key, 2)
    assert top.tolist() == [0, 3] and bottom.tolist() == [1, 4]
    top, bottom = ends(np.array([2, 4]), key, 3)
    assert top.tolist() == [2, 4] and bottom.tolist() == []


def test_the_confidence_legend_names_every_class_as_it_is_spelt():
    classes = ["$\\frac$", "_hidden", "a $5 and $6 b"]
    predicted, confidence = np.array([0, 1, 2, 2]), np.array([0.9, 0.6, 0.7, 0.4])
    fig = confidence_figure(confidence, predicted, classes)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == classes
    assert confidence_chart(confidence, predicted, classes).startswith("data:image/png;base64,")


def test_equal_probabilities_rank_the_class_with_the_nearest_neighbour_first():
    probabilities = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])  # a 1-nn vote: every other class 0
    distance = np.array([[0.5, 0.1, 0.9, 0.2], [0.8, 0.3, 0.6, 0.1]])
    first, second, confidence, margin = ranked(probabilities, distance)
    assert first.tolist() == [1, 3] and second.tolist() == [3, 1]
    tied = ranked(np.array([[0.5, 0.5, 0.0]]), np.array([[0.9, 0.1, 0.0]]))  # the CSV takes the first of equal ones
    assert tied[0].tolist() == [0] and tied[1].tolist() == [1]
    assert ranked(probabilities)[1].tolist() == [0, 0]  # without distances: equal ones keep the class order


def test_cluster_strips_name_ids_with_spaces_unambiguously():
    ids = ["a b", "c", 'd "e" <f>']
    inputs = ClusterInputs(Gallery(ids, np.zeros((3, 8, 8), np.uint8)), np.zeros((3, 2)), np.zeros(3, int), {}, rows=3)
    strip = re.search(r'data-ids="([^"]+)"', cluster_section(0, inputs, np.array([0.1, 0.2, 0.3])))
    assert json.loads(html.unescape(strip.group(1))) == ids


def test_the_report_lists_every_warning_the_run_showed_the_logged_ones_too(task, tmp_path, run_cli):
    """A file skipped as not an image is a warning the library logs: the terminal and --json showed it, but the
    report, the evidence a user hands on, listed only attribute's own warnings."""
    import shutil

    unknown = shutil.copytree(task / "unknown", tmp_path / "unknown")
    (unknown / "scan.raw").write_bytes(b"not an image")
    report = tmp_path / "r.html"
    code, stdout, err = run_cli("attribute", unknown, "--train", task / "train", "--method", "centroid", "--features",
                                "pixels8", "--out", tmp_path / "a.csv", "--report", report, "--device", "cpu",
                                "--data-root", tmp_path / "data", "--json")
    assert code == 0, err
    shown = json.loads(stdout)["warnings"]
    assert shown == [f"{unknown}: 1 file skipped, not in an image format ganfp reads (first: scan.raw)"], shown
    summary = section_of(report.read_text(encoding="utf-8"), "summary")
    assert [html.unescape(w) for w in re.findall(r'<tr class="warning"><th>warning</th><td>(.*?)</td>', summary)] \
        == shown
