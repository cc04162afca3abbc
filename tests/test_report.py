"""The evidence report: one self-contained HTML file, parsed, counted, and rendered by a headless browser."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers.images import copy_case, write_pngs

from ganfp.report import aligned, decision_cut

pytest.importorskip("matplotlib", reason="the report needs the plots extra (matplotlib)")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


class Page(HTMLParser):
    """What the tests look at: element classes, image sources, links, section ids."""

    def __init__(self):
        super().__init__()
        self.classes: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.ids: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.classes += (a.get("class") or "").split()
        self.ids += [a["id"]] if "id" in a else []
        self.srcs += [a["src"]] if "src" in a else []
        self.hrefs += [a["href"]] if "href" in a else []


def parse(path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def assert_self_contained(page: Page) -> None:
    assert page.srcs and all(src.startswith("data:image/png;base64,") for src in page.srcs)
    assert not any("http" in value for value in page.srcs + page.hrefs)
    assert "script" not in page.tags and "link" not in page.tags  # nothing fetched, nothing run


@pytest.fixture
def copies(tmp_path):
    """Real images (half of them copied, noisy, into the generated set) as PNG folders."""
    case = copy_case()
    write_pngs(tmp_path / "real" / "used", "u", case["real"][case["used"]])
    write_pngs(tmp_path / "real" / "not_used", "n", case["real"][~case["used"]])
    write_pngs(tmp_path / "gen", "g", case["generated"])
    return tmp_path


def run_report(run_cli, root, real, *extra):
    out, report = root / "s.csv", root / "r.html"
    code, stdout, err = run_cli("classify", real, "--generated", root / "gen", "--out", out, "--report", report,
                                "--data-root", root / "data", *extra)
    assert code == 0, err
    return report


def test_report_rows_images_and_no_network(run_cli, copies):
    (copies / "flat").mkdir()
    for png in (copies / "real").rglob("*.png"):
        shutil.copy(png, copies / "flat" / png.name)
    report = run_report(run_cli, copies, copies / "flat", "--report-n", "3")
    page = parse(report)
    assert page.classes.count("evidence-row") == 6  # the 3 most and the 3 least suspicious
    assert {"summary", "scores", "most-suspicious", "least-suspicious", "near-duplicates"} <= set(page.ids)
    assert 1 <= page.classes.count("near-row") <= 3  # the copies are near-duplicates, at most N shown
    assert_self_contained(page)
    text = report.read_text()
    assert "ROC curve" not in text  # no labels known for a flat folder
    assert text.count('class="neighbours"') == 6 and text.count("d = ") >= 6 * 4  # k = 4 neighbours per row
    generated = {png.stem for png in (copies / "gen").glob("*.png")}
    named = re.findall(r'<figcaption><span class="name">([^<]+)</span><br>d = ', text)
    assert len(named) >= 6 * 4 and {Path(n).stem for n in named} <= generated  # which file each neighbour is
    assert "<th>recipe</th><td>ensemble</td>" in text and "<th>method</th>" not in text  # the recipe names its method


def test_known_labels_add_roc_and_confusion(run_cli, copies):
    report = run_report(run_cli, copies, copies / "real", "--report-n", "2")
    page = parse(report)
    text = report.read_text()
    assert page.classes.count("evidence-row") == 4
    assert "ROC curve" in text and "truly used" in text and "ROC-AUC (known labels)" in text
    # the copies make the ranking perfect: 6 used decided used, 6 not used decided not used
    assert "<th>truly used</th><td>6</td><td>0</td>" in text
    assert "<th>truly not used</th><td>0</td><td>6</td>" in text
    assert 'data-id="u000"' in text.split('id="least-suspicious"')[0]  # a copied image is among the most suspicious


def test_report_without_matplotlib_fails_before_any_work(run_cli, copies, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli("classify", copies / "real", "--generated", copies / "gen", "--out", copies / "s.csv",
                           "--report", copies / "r.html", "--data-root", copies / "data")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "install ganfp[plots]" in lines[0], err
    assert not (copies / "s.csv").exists() and not (copies / "data").exists()


def test_difference_maps_align_a_shifted_recontrasted_copy():
    """A copy moved by (2, -1) px and re-contrasted must leave (almost) nothing after alignment."""
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(64, 64)), 0), 1)
    a = np.rint(255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)
    copy = np.clip(0.8 * np.roll(a, (2, -1), axis=(0, 1)) + 20, 0, 255).astype(np.uint8)
    moved, shift = aligned(a, copy)
    assert shift == (-2, 1)
    inner = (slice(4, -4), slice(4, -4))
    before = np.abs(a.astype(int) - copy.astype(int))[inner].mean()
    after = np.abs(a.astype(int) - moved.astype(int))[inner].mean()
    assert after < 1.0 < before / 10


def test_decision_cut_is_midway():
    scores = np.array([0.1, 0.9, 0.4, 0.7])
    assert decision_cut(scores, np.array([0, 1, 0, 1])) == pytest.approx(0.55)
    assert decision_cut(scores, np.zeros(4, dtype=int)) is None


def browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@pytest.mark.skipif(browser() is None, reason="no Chromium/Chrome binary on PATH (apt-get install chromium)")
def test_headless_browser_renders_the_rows_and_every_image(run_cli, copies, tmp_path):
    report = run_report(run_cli, copies, copies / "real", "--report-n", "3")
    # a copy with one probe: on load, the body records whether every embedded image decoded
    probe = ("<script>window.addEventListener('load', () => document.body.setAttribute('data-images-ok', "
             "String([...document.images].every(i => i.complete && i.naturalWidth > 0))));</script></body>")
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", probe))
    dom = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count('class="row evidence-row"') == 6
    assert 'data-images-ok="true"' in dom


def test_demo_report_is_small_and_complete(run_cli, demo_root, tmp_path):
    out, report = tmp_path / "s.csv", tmp_path / "r.html"
    code, _, err = run_cli("classify", "demo:gans-test", "--out", out, "--report", report, "--data-root", demo_root)
    assert code == 0, err
    assert report.stat().st_size < 5 * 1024 * 1024
    page = parse(report)
    assert page.classes.count("evidence-row") == 48  # 24 most, 24 least suspicious of the 100 test images
    assert_self_contained(page)
    assert "ROC curve" in report.read_text()  # the demo ships the test labels


def test_evaluate_report_shows_the_predictions_against_the_labels(run_cli, copies):
    out, scores, labels, report = (copies / name for name in ("s.csv", "scores.csv", "labels.csv", "ev.html"))
    code, _, err = run_cli("classify", copies / "real", "--generated", copies / "gen", "--out", out, "--scores", scores,
                           "--data-root", copies / "data")
    assert code == 0, err
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    labels.write_text("id,label\n" + "".join(f"{i},{int(i.startswith('u'))}\n" for i in ids))
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real", "--generated",
                           copies / "gen", "--report-n", "2", "--data-root", copies / "data")
    assert code == 0, err
    page = parse(report)
    assert page.classes.count("evidence-row") == 4 and "ROC curve" in report.read_text()
    assert_self_contained(page)
    code, _, err = run_cli("evaluate", scores, labels, "--report", report)
    assert code == 2 and "--report needs --real" in err


def test_evaluate_report_of_labels_for_part_of_the_images_says_what_was_left_out(run_cli, copies):
    """Ground truth for half the real images: the report shows those, and its summary carries evaluate's note of
    the predictions left out, which the terminal printed and the page did not."""
    scores, labels, report = (copies / name for name in ("scores.csv", "labels.csv", "ev.html"))
    code, _, err = run_cli("classify", copies / "real", "--generated", copies / "gen", "--out", copies / "s.csv",
                           "--scores", scores, "--data-root", copies / "data")
    assert code == 0, err
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    half = ids[: len(ids) // 4] + ids[-len(ids) // 4:]  # used images first, not-used ones last
    labels.write_text("id,label\n" + "".join(f"{i},{int(i.startswith('u'))}\n" for i in half))
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real", "--generated",
                           copies / "gen", "--report-n", "100", "--data-root", copies / "data")
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    summary = text[text.index('<section id="summary">'):]
    summary = html.unescape(summary[:summary.index("</section>")])
    assert f"<th>real images</th><td>{len(half)}</td>" in summary
    assert f"{len(ids) - len(half)} of the {len(ids)} predictions are of images" in summary
    assert parse(report).classes.count("evidence-row") == len(half)  # every labelled image once, no other


@pytest.mark.parametrize("header", ["id", "image_path"])
def test_evaluate_report_finds_a_real_image_named_with_trailing_spaces(run_cli, copies, header):
    """An id cell is read without surrounding spaces under either header (`trail .png` is `trail`, as the cell
    `trail ` is): the report finds the real image by that id, not by its file name's `trail `."""
    first = sorted((copies / "real" / "used").glob("*.png"))[0]
    first.rename(first.with_name(f"{first.stem}  .png"))
    names = sorted(p.name for p in (copies / "real").rglob("*.png"))
    cell = (lambda name: name) if header == "image_path" else (lambda name: name[: -len(".png")])
    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    scores.write_text(f"{header},score\n" + "".join(f"{cell(n)},{i}\n" for i, n in enumerate(names)))
    labels.write_text(f"{header},label\n" + "".join(f"{cell(n)},{int(n.startswith('u'))}\n" for n in names))
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real", "--generated",
                           copies / "gen", "--report-n", "2", "--data-root", copies / "data")
    assert code == 0, err
    assert report.is_file()


def test_evaluate_report_refuses_generated_images_that_are_the_real_ones(run_cli, copies):
    """--generated naming the real folder, a folder above it or a link to it: every real image would be its own
    nearest generated image, a made-up copy at distance 0; refused in one line before any image is read."""
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    scores.write_text("id,score\n" + "".join(f"{i},{n}\n" for n, i in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{i},{int(i.startswith('u'))}\n" for i in ids))
    (copies / "link").symlink_to(copies / "real")
    for generated in (copies / "real", copies, copies / "link"):
        code, out, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real",
                                 "--generated", generated, "--data-root", copies / "data")
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert f"--generated {generated}: holds {len(ids)} of the {len(ids)} real images too" in err
        assert not report.exists()


def test_classify_report_refuses_generated_images_that_are_the_real_ones(run_cli, copies, monkeypatch):
    """As evaluate: the report would show every real image as its own copy, made-up evidence in a file meant to
    travel without the terminal's warning. Refused before any image is read; without --report classify warns."""
    from ganfp.data import generated as generated_module

    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    (copies / "link").symlink_to(copies / "real")
    out, report = copies / "s.csv", copies / "r.html"
    with monkeypatch.context() as patched:
        patched.setattr(generated_module, "image_header", lambda path: pytest.fail("an image was read"))
        for generated in (copies / "real", copies, copies / "link"):
            code, stdout, err = run_cli("classify", copies / "real", "--generated", generated, "--out", out,
                                        "--report", report, "--data-root", copies / "data")
            assert code == 2 and stdout == "" and err.count("\n") == 1, err
            assert f"--generated {generated}: holds {len(ids)} of the {len(ids)} real images too" in err
            assert "the report would show each as its own nearest generated image" in err
            assert not out.exists() and not report.exists()
    code, _, err = run_cli("classify", copies / "real", "--generated", copies, "--out", out, "--data-root",
                           copies / "data")
    assert code == 0 and f"warning: --generated {copies}: holds {len(ids)} of the {len(ids)}" in err


def test_plain_arrays_without_generated_images(tmp_path):
    """The builder needs no files: arrays in, a page out; without generated images rows show the real image only."""
    from ganfp.report import ReportInputs, write_report

    rng = np.random.default_rng(0)
    scores = rng.normal(size=10)
    decided = (scores >= np.median(scores)).astype(int)
    inputs = ReportInputs(real_ids=[f"r{i}" for i in range(10)], real_images=rng.integers(0, 255, (10, 16, 16), np.uint8),
                          scores=scores, decided=decided, summary={"method": "classifier", "k": None}, rows=4)
    result = write_report(tmp_path / "r.html", inputs)
    page = parse(tmp_path / "r.html")
    assert result.evidence_rows == 8 and page.classes.count("evidence-row") == 8
    assert page.classes.count("near-row") == 0 and "No generated images were given" in (tmp_path / "r.html").read_text()
    most = (tmp_path / "r.html").read_text().split('id="least-suspicious"')[0]
    assert f'data-id="r{int(np.argmax(scores))}"' in most
    assert_self_contained(page)


def test_report_n_covering_every_image_shows_each_once_in_one_section(tmp_path):
    """--report-n >= the images: one section of all of them, most suspicious first; no empty contrast section."""
    from ganfp.report import ReportInputs, write_report

    rng = np.random.default_rng(1)
    scores, images = rng.normal(size=6), rng.integers(0, 255, (6, 16, 16), np.uint8)
    for rows in (6, 24):
        inputs = ReportInputs(real_ids=[f"r{i}" for i in range(6)], real_images=images, scores=scores,
                              decided=(scores >= np.median(scores)).astype(int), summary={}, rows=rows)
        result = write_report(tmp_path / "r.html", inputs)
        text = (tmp_path / "r.html").read_text()
        assert result.evidence_rows == 6 and parse(tmp_path / "r.html").classes.count("evidence-row") == 6
        assert "All 6 real images, most suspicious first" in text and "least suspicious" not in text
        assert "None." not in text.split('id="near-duplicates"')[0]
        shown = [text.index(f'data-id="r{i}"') for i in np.argsort(-scores)]
        assert shown == sorted(shown)  # each image once, in order of suspicion
    inputs.rows = 4  # 4 most and the 2 others: every image still once, the contrast section named by its size
    write_report(tmp_path / "r.html", inputs)
    text = (tmp_path / "r.html").read_text()
    assert "The 4 most suspicious real images" in text and "The 2 least suspicious real images" in text


def test_classify_report_with_the_default_report_n_on_a_small_set(run_cli, copies):
    report = run_report(run_cli, copies, copies / "real")  # 12 images, --report-n 24
    text = report.read_text()
    assert parse(report).classes.count("evidence-row") == 12 and "All 12 real images" in text
    assert "The 0 least" not in text and 'id="least-suspicious"' not in text


def test_the_report_decodes_no_image_and_runs_no_distance_pass_a_second_time(run_cli, copies, monkeypatch):
    """The report shows the scorer's own images and neighbours: at the task's scale (200 x 10,000 images of
    256 px) decoding the sets again and a second neighbour pass added 1.7 GB to classify's peak memory."""
    import ganfp.membership.features as features_module
    import ganfp.membership.scorers as scorers_module

    decoded, passes = [], []
    load, matrix = features_module.load_images, scorers_module.pairwise_matrix
    monkeypatch.setattr(features_module, "load_images", lambda m, *a, **k: decoded.append(m.name) or load(m, *a, **k))
    monkeypatch.setattr(scorers_module, "pairwise_matrix", lambda *a, **k: passes.append(1) or matrix(*a, **k))
    run_report(run_cli, copies, copies / "real", "--method", "knn", "--features", "std32", "--report-n", "3")
    assert len(decoded) == 2  # the real and the generated images, once each
    assert len(passes) == 2  # real->generated and real->real in std32, shared by the scorer and the report


def test_the_reports_size_does_not_grow_with_the_generated_images(run_cli, tmp_path):
    """A browser must open the report at the task's 10,000 generated images: it shows a bounded number of rows,
    each with a bounded number of thumbnails, however many generated images there are."""
    sizes = {}
    for extra in (6, 120):
        case, root = copy_case(extra=extra), tmp_path / str(extra)
        write_pngs(root / "real", "r", case["real"])
        write_pngs(root / "gen", "g", case["generated"])
        report = run_report(run_cli, root, root / "real", "--report-n", "2")
        page = parse(report)
        assert page.classes.count("evidence-row") == 4 and page.classes.count("near-row") <= 2
        assert len(page.srcs) <= 4 * (1 + 4 + 1) + 2 * 3 + 2  # rows x (real, 4 neighbours, diff), near rows, charts
        sizes[extra] = report.stat().st_size
    assert sizes[120] < 1.3 * sizes[6]


def test_evaluate_report_of_labels_only_draws_no_roc_curve(run_cli, copies):
    """A predictions file of 0/1 labels has no ROC-AUC in evaluate's table: the report must not show one either
    (computed from the labels it would be their balanced accuracy under another name)."""
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    preds, labels, report = copies / "preds.csv", copies / "labels.csv", copies / "ev.html"
    labels.write_text("id,label\n" + "".join(f"{i},{int(i.startswith('u'))}\n" for i in ids))
    preds.write_text("id,label\n" + "".join(f"{i},{int(i in ('u000', 'n000'))}\n" for i in ids))
    code, out, err = run_cli("evaluate", preds, labels, "--report", report, "--real", copies / "real", "--json")
    assert code == 0 and json.loads(out)["metrics"]["roc_auc"] is None, err
    text = report.read_text()
    assert "ROC-AUC (known labels)" not in text and 'alt="ROC curve"' not in text
    assert "0/1 labels only" in text and "<th>truly used</th><td>1</td><td>5</td>" in text


def test_evaluate_report_draws_the_decision_line_at_the_given_threshold(run_cli, copies, monkeypatch):
    import ganfp.report

    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    scores.write_text("id,score\n" + "".join(f"{name},{i / len(ids):.3f}\n" for i, name in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{name},{int(name.startswith('u'))}\n" for name in ids))
    drawn = []
    chart = ganfp.report.histogram_chart
    monkeypatch.setattr(ganfp.report, "histogram_chart", lambda s, cut, truth: drawn.append(cut) or chart(s, cut, truth))
    code, _, err = run_cli("evaluate", scores, labels, "--threshold", "0.3", "--report", report, "--real", copies / "real")
    assert code == 0, err
    assert drawn == [0.3]  # where the decision changes, not midway between the scores around it


def dicom_case(root):
    """The copy case as CT DICOM files: real/ct<i>.dcm (UID 1.2.826.0.1.<i>) and gen/g<i>.dcm; the real paths."""
    from helpers.medical import u8_to_hu, write_ct_dicom

    case = copy_case(n_real=6, extra=2, size=16)
    real = [write_ct_dicom(root / "real" / f"ct{i}.dcm", u8_to_hu(img), uid=f"1.2.826.0.1.{i}")
            for i, img in enumerate(case["real"])]
    for i, img in enumerate(case["generated"]):
        write_ct_dicom(root / "gen" / f"g{i}.dcm", u8_to_hu(img))
    return real


def bone_window_stage(root, monkeypatch):
    """A conv5 stage trained (so its metadata says) in the bone window, found as the newest chain run, and the
    (scores, labels, report) paths of dicom_case's six images: half of them used."""
    import ganfp.checkpoint
    from ganfp.checkpoint import model_meta, save_model
    from ganfp.models import create_model

    stage, model = root / "stage", create_model("conv5", 2, 16)
    stage.mkdir()
    save_model(stage / "model.safetensors", model, model_meta(model, ["not_used", "used"], 16, window="bone"))
    monkeypatch.setattr(ganfp.checkpoint, "resolve_checkpoint", lambda *a, **k: stage)
    scores, labels = root / "scores.csv", root / "labels.csv"
    scores.write_text("id,score\n" + "".join(f"ct{i},{i / 6:.3f}\n" for i in range(6)))
    labels.write_text("id,label\n" + "".join(f"ct{i},{int(i < 3)}\n" for i in range(6)))
    return scores, labels, root / "ev.html"


def test_evaluate_report_reads_dicom_as_classify_scored_it(run_cli, tmp_path):
    """classify --window bone --id-from uid scored bone-windowed images named by their UIDs: evaluate --report
    with the same options finds them by those ids and shows them bone-windowed, not in the default lung window."""
    pytest.importorskip("pydicom", reason="needs the medical extra (pydicom)")
    from ganfp.data.decode import decode_image
    from ganfp.data.medical import parse_window
    from ganfp.report import png_uri

    paths = dicom_case(tmp_path)
    reading = ("--window", "bone", "--id-from", "uid")
    scores, labels, report = tmp_path / "scores.csv", tmp_path / "labels.csv", tmp_path / "ev.html"
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "gen", "--out", tmp_path / "s.csv",
                           "--scores", scores, "--data-root", tmp_path / "data", *reading)
    assert code == 0, err
    labels.write_text("id,label\n" + "".join(f"1.2.826.0.1.{i},{int(i < 3)}\n" for i in range(6)))
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", tmp_path / "real",
                           "--generated", tmp_path / "gen", "--data-root", tmp_path / "data", *reading)
    assert code == 0, err
    page = report.read_text()
    for path in paths:
        bone = decode_image(str(path), 16, window=parse_window("bone"))  # their own size, as classify compared them
        lung = decode_image(str(path), 16)
        assert png_uri(bone) in page and png_uri(lung) not in page


def neighbour_captions(report) -> dict[str, list[str]]:
    """Each evidence row's real image id and the captions (distances) of its nearest generated images."""
    rows = re.findall(r'<div class="row evidence-row" data-id="([^"]*)">(.*?)</div>\n', report.read_text())
    return {image_id: re.findall(r"<br>(d = [^<]*)</figcaption>", row) for image_id, row in rows}


def test_evaluate_report_shows_the_neighbours_classify_scored_with(run_cli, copies):
    """Both reports compare the images at their own size (32 px here): evaluate's computed every distance at 128 px
    whatever the images' size, so its neighbours and distances were not the ones classify's report showed."""
    scores, labels = copies / "scores.csv", copies / "labels.csv"
    run_report(run_cli, copies, copies / "real", "--method", "knn", "--features", "ssim32", "--scores", scores)
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    labels.write_text("id,label\n" + "".join(f"{i},{int(i.startswith('u'))}\n" for i in ids))
    code, _, err = run_cli("evaluate", scores, labels, "--report", copies / "ev.html", "--real", copies / "real",
                           "--generated", copies / "gen", "--features", "ssim32", "--data-root", copies / "data")
    assert code == 0, err
    shown = neighbour_captions(copies / "r.html")
    assert len(shown) == len(ids) and neighbour_captions(copies / "ev.html") == shown
    assert "images compared at</th><td>32 px, the images&#x27; own size" in (copies / "ev.html").read_text()


def test_evaluate_report_of_images_of_several_sizes_compares_them_at_classifys_image_size(run_cli, copies):
    """Images of several sizes are compared at classify's --image-size: evaluate's report, given the same, shows
    the same neighbours; without it they are compared at 128 px, and the summary says so instead of passing for
    classify's size."""
    from PIL import Image

    Image.open(copies / "gen" / "g000.png").resize((40, 40)).save(copies / "gen" / "g000.png")
    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    run_report(run_cli, copies, copies / "real", "--method", "knn", "--features", "ssim32", "--scores", scores,
               "--image-size", "32")
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    labels.write_text("id,label\n" + "".join(f"{name},{int(name.startswith('u'))}\n" for name in ids))
    args = ("evaluate", scores, labels, "--report", report, "--real", copies / "real", "--generated", copies / "gen",
            "--features", "ssim32", "--data-root", copies / "data")
    code, _, err = run_cli(*args)
    assert code == 0, err
    assert "images compared at</th><td>128 px: the images are not all of one square size" in report.read_text()
    code, _, err = run_cli(*args, "--image-size", "32")
    assert code == 0 and "images compared at</th><td>32 px, as --image-size asked" in report.read_text(), err
    assert neighbour_captions(report) == neighbour_captions(copies / "r.html")
    code, _, err = run_cli("evaluate", scores, labels, "--image-size", "32")
    assert code == 2 and "--image-size describes the --report: give --report too" in err, err


def test_evaluate_report_refuses_a_model_that_cannot_take_the_images_size(run_cli, tmp_path, monkeypatch):
    """Compared at the images' own size, a model feature space too large for them is refused in one line before any
    image is decoded, as classify refuses it: it failed at the first batch."""
    import ganfp.membership.features as features_module

    case = copy_case(size=16)
    ids = write_pngs(tmp_path / "real", "r", case["real"])
    write_pngs(tmp_path / "gen", "g", case["generated"])
    (tmp_path / "scores.csv").write_text("id,score\n" + "".join(f"{i},{n}\n" for n, i in enumerate(ids)))
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(f"{i},{n % 2}\n" for n, i in enumerate(ids)))
    monkeypatch.setattr(features_module, "load_images", lambda *a, **k: pytest.fail("decoded before the check"))
    code, _, err = run_cli("evaluate", tmp_path / "scores.csv", tmp_path / "labels.csv", "--report", tmp_path / "r.html",
                           "--real", tmp_path / "real", "--generated", tmp_path / "gen", "--features", "vgg11")
    assert code == 2 and err.count("\n") == 1, err
    assert "--features vgg11: vgg11 needs at least 32 pixels, got 16 (the images' own size; pass --image-size N" in err


def test_evaluate_report_with_checkpoint_features_reads_dicom_in_the_checkpoints_window(run_cli, tmp_path,
                                                                                        monkeypatch):
    """classify --features checkpoint reads DICOM in the window the checkpoint was trained in; evaluate's report,
    which finds the same checkpoint (the newest chain run), showed them in the lung window instead."""
    pytest.importorskip("pydicom", reason="needs the medical extra (pydicom)")
    from ganfp.data.decode import decode_image
    from ganfp.data.medical import parse_window
    from ganfp.report import png_uri

    paths = dicom_case(tmp_path)
    scores, labels, report = bone_window_stage(tmp_path, monkeypatch)
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", tmp_path / "real", "--generated",
                           tmp_path / "gen", "--features", "checkpoint", "--data-root", tmp_path / "data")
    assert code == 0, err
    page = report.read_text()
    for path in paths:
        assert png_uri(decode_image(str(path), 16, window=parse_window("bone"))) in page
        assert png_uri(decode_image(str(path), 16)) not in page


def test_evaluate_report_prints_the_checkpoints_window_warning_it_lists(run_cli, tmp_path, monkeypatch):
    """A --window other than the one the checkpoint was trained in is warned of in the report's summary; the
    terminal and --json, which classify's warning reaches, heard nothing of it."""
    pytest.importorskip("pydicom", reason="needs the medical extra (pydicom)")
    dicom_case(tmp_path)
    scores, labels, report = bone_window_stage(tmp_path, monkeypatch)
    code, stdout, err = run_cli("evaluate", scores, labels, "--report", report, "--real", tmp_path / "real",
                                "--generated", tmp_path / "gen", "--features", "checkpoint", "--window", "lung",
                                "--json", "--data-root", tmp_path / "data")
    assert code == 0, err
    [warning] = report_warnings(report)
    assert "--window lung: the checkpoint" in warning and json.loads(stdout)["warnings"] == [warning]
    assert warning in err


def chain_run(run, window: str, age: int):
    """A finished chain run of one conv5 stage trained in `window`, its chain file `age` seconds old; its model file."""
    from ganfp.checkpoint import model_meta, save_model
    from ganfp.models import create_model

    model = create_model("conv5", 2, 16)
    (run / "s1").mkdir(parents=True)
    save_model(run / "s1" / "model.safetensors", model, model_meta(model, ["not_used", "used"], 16, window=window))
    (run / "chain.json").write_text(json.dumps({"stages": [{"dir": "s1", "status": "complete"}]}))
    os.utime(run / "chain.json", (1e9 - age, 1e9 - age))
    return (run / "s1" / "model.safetensors").resolve()


def test_evaluate_report_reads_the_checkpoint_given_not_the_newest_run(run_cli, tmp_path, monkeypatch):
    """classify --checkpoint scored with an older chain run's model; evaluate's report could only read the newest
    run's, so it showed neighbours in another model's space, in another window, without a word. With --checkpoint
    it reads the one given (its features, its window) and names it in the summary; without, the newest run's."""
    pytest.importorskip("pydicom", reason="needs the medical extra (pydicom)")
    import ganfp.membership.features as features_module
    from ganfp.data.decode import decode_image
    from ganfp.data.medical import parse_window
    from ganfp.report import png_uri

    paths, runs = dicom_case(tmp_path), tmp_path / "runs"
    older, newest = chain_run(runs / "older", "bone", age=100), chain_run(runs / "newest", "lung", age=0)
    monkeypatch.setenv("GANFP_RUNS", str(runs))
    read = []
    model_of = features_module._feature_model
    monkeypatch.setattr(features_module, "_feature_model", lambda space, ckpt, *a: read.append(ckpt) or model_of(
        space, ckpt, *a))
    scores, labels, report = tmp_path / "scores.csv", tmp_path / "labels.csv", tmp_path / "ev.html"
    scores.write_text("id,score\n" + "".join(f"ct{i},{i / 6:.3f}\n" for i in range(6)))
    labels.write_text("id,label\n" + "".join(f"ct{i},{int(i < 3)}\n" for i in range(6)))
    args = ("evaluate", scores, labels, "--report", report, "--real", tmp_path / "real", "--generated",
            tmp_path / "gen", "--features", "checkpoint", "--data-root", tmp_path / "data")
    for given, model, window in ((("--checkpoint", runs / "older"), older, "bone"), ((), newest, "lung")):
        read.clear()
        code, _, err = run_cli(*args, *given)
        assert code == 0, err
        page, other = report.read_text(), newest if model == older else older
        assert set(read) == {model} and str(model) in page and str(other) not in page
        for path in paths:
            assert png_uri(decode_image(str(path), 16, window=parse_window(window))) in page


@pytest.mark.parametrize("option, value", [("--window", "bone"), ("--id-from", "uid"), ("--slices", "0:2")])
def test_evaluate_reading_options_are_refused_where_they_would_change_nothing(run_cli, copies, option, value):
    """Without --report, or on images holding no DICOM/NIfTI (PNG here), a reading option is one line, exit 2."""
    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    scores.write_text("id,score\n" + "".join(f"{name},{i / len(ids):.3f}\n" for i, name in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{name},{int(name.startswith('u'))}\n" for name in ids))
    code, _, err = run_cli("evaluate", scores, labels, option, value)
    assert code == 2 and err.count("\n") == 1 and f"{option} describes the --report: give --report too" in err, err
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real", option, value,
                           "--data-root", copies / "data")
    assert code == 2 and err.count("\n") == 1 and f"{option}: the images read hold no" in err, err
    assert not report.exists()


def test_evaluate_report_finds_a_dev_folders_own_generated_images(run_cli, copies):
    """`classify DEV` (used/, not_used/, generated/) compares with DEV/generated; `evaluate --report --real DEV`
    must show the same neighbours, not read generated/ as a third class of real images and show none."""
    shutil.move(copies / "gen", copies / "real" / "generated")
    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    code, _, err = run_cli("classify", copies / "real", "--out", copies / "s.csv", "--scores", scores,
                           "--data-root", copies / "data")
    assert code == 0, err
    ids = sorted(p.stem for cls in ("used", "not_used") for p in (copies / "real" / cls).glob("*.png"))
    labels.write_text("id,label\n" + "".join(f"{i},{int(i.startswith('u'))}\n" for i in ids))
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real",
                           "--data-root", copies / "data")
    assert code == 0, err
    page = parse(report)
    assert page.classes.count("evidence-row") == len(ids) and page.classes.count("neighbours") == len(ids)


def test_evaluate_report_of_a_test_sets_real_images_names_the_generated_folder_beside(run_cli, tmp_path):
    """`--real DIR/real_unknown_1` (not DIR, which holds both) drew a report without neighbours, saying only that
    no generated images were given, though generated_1/ sits beside it: warned of as classify warns, on the
    terminal, in --json and in the report; the --generated it names brings the neighbours."""
    case = copy_case(size=16)
    test = tmp_path / "test"
    ids = write_pngs(test / "real_unknown_1", "r", case["real"])
    scores, labels, report = tmp_path / "scores.csv", tmp_path / "labels.csv", tmp_path / "ev.html"
    scores.write_text("id,score\n" + "".join(f"{name},{i / len(ids):.3f}\n" for i, name in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{name},{int(used)}\n" for name, used in zip(ids, case["used"])))
    args = ("evaluate", scores, labels, "--report", report, "--real", test / "real_unknown_1", "--json",
            "--data-root", tmp_path / "data")
    code, stdout, err = run_cli(*args)  # no generated folder beside it: nothing to warn of
    assert code == 0 and json.loads(stdout)["warnings"] == [] and report_warnings(report) == [], err
    write_pngs(test / "generated_1", "g", case["generated"])
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    [warning] = json.loads(stdout)["warnings"]
    assert "the report shows no generated neighbours" in warning and warning in err
    assert f"pass --generated {test / 'generated_1'}" in warning and report_warnings(report) == [warning]
    code, _, err = run_cli(*args, "--features", "std32")  # neighbours asked for: refused, naming the same folder
    assert code == 2 and err == (f"error: --features std32: the report has no generated images to find neighbours "
                                 f"among; pass --generated {test / 'generated_1'} (beside --real "
                                 f"{test / 'real_unknown_1'})\n"), err
    code, stdout, err = run_cli(*args, "--generated", test / "generated_1")
    assert code == 0 and json.loads(stdout)["warnings"] == [], err
    assert parse(report).classes.count("neighbours") == len(ids)


def test_names_with_markup_and_odd_bytes_are_shown_as_text(run_cli, copies):
    """File names are the user's, not the report's markup: `<`, `&`, quotes and script tags are shown as text, and a
    generated image named in Latin-1 (not UTF-8) shows its byte; that name made the report fail with a traceback.
    (A double quote is in a generated image's name: a real image's id is a CSV cell, which cannot hold one.)"""
    real, gen = copies / "real" / "used", copies / "gen"
    (real / "u000.png").rename(real / "<script>alert(1)<script>.png")
    (real / "u001.png").rename(real / "a&b 'q' é.png")
    (gen / "g000.png").rename(gen / os.fsdecode(b"g\xe9.png"))
    (gen / "g001.png").rename(gen / '<img src="x" onerror=alert(1)>.png')
    report = run_report(run_cli, copies, copies / "real")  # every image shown
    text, page = report.read_text(encoding="utf-8"), parse(report)
    assert "script" not in page.tags and page.tags.count("img") == len(page.srcs)  # no element made from a name
    assert 'data-id="&lt;script&gt;alert(1)&lt;script&gt;"' in text
    assert "a&amp;b &#x27;q&#x27; é" in text
    assert 'title="g\\xe9"' in text and 'title="&lt;img src=&quot;x&quot; onerror=alert(1)&gt;"' in text


def test_a_pixel_copy_is_a_near_duplicate_beside_two_identical_real_images(run_cli, tmp_path):
    """Two identical real slices (a blank slice twice) set the near-duplicate radius to 0: the report then listed
    no near-duplicate at all, not even a generated image that is a pixel copy of a real one."""
    case = copy_case()
    case["real"][11] = case["real"][10]
    case["generated"][0] = case["real"][0]
    write_pngs(tmp_path / "real", "r", case["real"])
    write_pngs(tmp_path / "gen", "g", case["generated"])
    text = run_report(run_cli, tmp_path, tmp_path / "real").read_text()
    near = text.split('id="near-duplicates"')[1]
    assert 'data-id="g000"' in near and "nearest real: r000" in near
    assert "2 real images that are copies of another real image are left out" in near


def test_identical_real_images_list_their_exact_copies():
    """Every real image the same: no radius can be drawn between distinct ones; exact copies are still listed."""
    from ganfp.report import Neighbourhood, ReportInputs, build_report

    images = np.full((4, 16, 16), 90, np.uint8)
    hood = Neighbourhood("pixels16, Euclidean distance", np.zeros((4, 2)), np.tile([0, 1], (4, 1)),
                         np.array([0.0, 5.0]), np.zeros(2, np.int64), np.zeros(4))
    inputs = ReportInputs(real_ids=list("abcd"), real_images=images, scores=np.zeros(4), decided=np.array([1, 1, 0, 0]),
                          summary={}, generated_ids=["copy", "other"], generated_images=images[:2],
                          neighbours=lambda k: hood)
    text, facts = build_report(inputs)
    assert facts["near_duplicates"] == 1 and 'data-id="copy"' in text and 'data-id="other"' not in text
    assert "Every real image is a copy of another real image" in text


def test_the_summary_shows_what_classify_warned_of_and_what_calibration_found(tmp_path):
    """The terminal's warnings do not travel with the file: a dev set showing no evidence of leakage, and classify's
    warnings, are rows of their own; calibration is one readable line, not its table of every candidate."""
    from ganfp.membership.calibrate import NO_LEAK_EVIDENCE, Choice
    from ganfp.membership.recipe import Recipe
    from ganfp.report import ReportInputs, build_report

    table = [{"candidate": f"knn pixels32 k={k}", "cv_auc": 0.5, "chosen": False} for k in range(40)]
    calibration = Choice(Recipe("ensemble"), 0.5, 0.54, 0.52, (0.38, 0.66), table).to_dict()
    rng = np.random.default_rng(0)
    inputs = ReportInputs(real_ids=list("abcd"), real_images=rng.integers(0, 255, (4, 16, 16), np.uint8),
                          scores=np.arange(4.0), decided=np.array([0, 0, 1, 1]), summary={})
    for warnings, shown in (([], [NO_LEAK_EVIDENCE]), (["2 images share the score at the cut"],
                                                       [NO_LEAK_EVIDENCE, "2 images share the score at the cut"])):
        inputs.summary = {"recipe": "ensemble", "calibration": calibration, "warnings": warnings}
        summary = build_report(inputs)[0].split('id="summary"')[1].split("</section>")[0]
        assert [row.split("<td>")[1].split("</td>")[0] for row in summary.split("\n") if "warning" in row] == shown
        assert ("<td>ensemble; used fraction 0.500; cross-validated ROC-AUC 0.540, dev ROC-AUC 0.520 (95% bootstrap "
                "interval 0.380-0.660)</td>") in summary and "k=39" not in summary
    inputs.summary["calibration"] = calibration | {"interval": [0.8, 0.9], "leak_evidence": True}
    inputs.summary["warnings"] = []
    assert "warning" not in build_report(inputs)[0].split('id="summary"')[1].split("</section>")[0]


def test_a_report_path_starting_with_a_tilde_is_written_where_it_was_checked(run_cli, copies, monkeypatch):
    """`--report=~/r.html` (a shell leaves a `~` after `=` alone) was checked in the home folder, then written to a
    folder named `~` in the current one."""
    home, work = copies / "home", copies / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    code, _, err = run_cli("classify", copies / "real", "--generated", copies / "gen", "--out", copies / "s.csv",
                           "--report=~/r.html", "--data-root", copies / "data")
    assert code == 0, err
    assert (home / "r.html").is_file() and not (work / "~").exists()


def test_evaluate_report_refuses_features_without_generated_images(run_cli, copies):
    """--features names the space of the nearest generated images: with none to show it changed nothing, and a
    forgotten --generated passed silently."""
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    scores.write_text("id,score\n" + "".join(f"{name},{i / len(ids):.3f}\n" for i, name in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{name},{int(name.startswith('u'))}\n" for name in ids))
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real", "--features",
                           "ssim32", "--data-root", copies / "data")
    assert code == 2 and err.count("\n") == 1, err
    assert "--features ssim32: the report has no generated images to find neighbours among; give --generated" in err
    assert not report.exists()


def test_one_real_image_beside_generated_ones_is_refused_before_the_scoring(run_cli, copies, monkeypatch):
    """The near-duplicates' radius is measured between real images: with one, classify's classifier ran to the end
    and the report then failed, naming the neighbour scorers that run did not use; evaluate named them too."""
    from ganfp.checkpoint import model_meta, save_model
    from ganfp.membership.pipeline import MembershipScorer
    from ganfp.models import create_model

    model, stage = create_model("conv5", 2, 32), copies / "stage"
    stage.mkdir()
    save_model(stage / "model.safetensors", model, model_meta(model, ["not_used", "used"], 32))
    solo = copies / "solo"
    solo.mkdir()
    shutil.copy(copies / "real" / "used" / "u000.png", solo)
    (copies / "scores.csv").write_text("id,score\nu000,0.9\n")
    (copies / "labels.csv").write_text("id,label\nu000,1\n")
    refusal = "--report: 1 real image; beside generated images the report needs at least 2"
    with monkeypatch.context() as patched:
        patched.setattr(MembershipScorer, "final", lambda *a: pytest.fail("scored before the --report was checked"))
        code, _, err = run_cli("classify", solo, "--generated", copies / "gen", "--method", "classifier",
                               "--checkpoint", stage, "--out", copies / "s.csv", "--report", copies / "r.html",
                               "--data-root", copies / "data")
    assert code == 2 and err.count("\n") == 1 and refusal in err, err
    code, _, err = run_cli("evaluate", copies / "scores.csv", copies / "labels.csv", "--report", copies / "r.html",
                           "--real", solo, "--generated", copies / "gen", "--data-root", copies / "data")
    assert code == 2 and err.count("\n") == 1 and refusal in err, err
    assert not (copies / "s.csv").exists() and not (copies / "r.html").exists()


def test_one_generated_image_and_one_real_image_are_counted_in_the_singular():
    """A generated set of one image: 'its 1 nearest generated image', not '1 ... images'; one real image likewise."""
    from ganfp.report import Neighbourhood, ReportInputs, build_report

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 16, 16), np.uint8)
    hood = Neighbourhood("pixels16, Euclidean distance", np.ones((2, 1)), np.zeros((2, 1), np.int64), np.ones(1),
                         np.zeros(1, np.int64), np.full(2, 2.0))
    inputs = ReportInputs(real_ids=["a", "b"], real_images=images[:2], scores=np.array([1.0, 0.0]),
                          decided=np.array([1, 0]), summary={}, generated_ids=["g"], generated_images=images[2:],
                          neighbours=lambda k: hood)
    text = build_report(inputs)[0]
    assert "its 1 nearest generated image with the distance d" in text and "2 real images;" in text
    single = ReportInputs(real_ids=["a"], real_images=images[:1], scores=np.ones(1), decided=np.ones(1), summary={})
    assert "<p>1 real image; written" in build_report(single)[0]


def test_labels_that_are_no_cut_of_the_scores_get_no_decision_line(run_cli, copies, monkeypatch):
    """An id,label,score file whose labels disagree with its scores' order: no score is where the decision changes,
    yet the report drew a dashed line midway and called it that."""
    import ganfp.report

    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    preds, labels, report = copies / "preds.csv", copies / "labels.csv", copies / "ev.html"
    preds.write_text("id,label,score\n" + "".join(f"{name},{i % 2},{i / len(ids):.3f}\n"
                                                   for i, name in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{name},{int(name.startswith('u'))}\n" for name in ids))
    drawn = []
    chart = ganfp.report.histogram_chart
    monkeypatch.setattr(ganfp.report, "histogram_chart", lambda s, cut, t: drawn.append(cut) or chart(s, cut, t))
    code, _, err = run_cli("evaluate", preds, labels, "--report", report, "--real", copies / "real")
    assert code == 0, err
    assert drawn == [None] and "no line is drawn: the decisions are not a cut of these scores" in report.read_text()


def test_evaluate_reports_summary_holds_evaluates_numbers_once(run_cli, copies):
    """The summary repeats evaluate's accuracy, F1 and ROC-AUC, each once and named as in its table: ROC-AUC was
    shown twice, once as 'roc auc', beside an 'f1'."""
    ids = sorted(p.stem for p in (copies / "real").rglob("*.png"))
    scores, labels, report = copies / "scores.csv", copies / "labels.csv", copies / "ev.html"
    order = [3, 0, 7, 1, 9, 2, 4, 11, 5, 6, 8, 10]
    scores.write_text("id,score\n" + "".join(f"{name},{order[i] / 12:.3f}\n" for i, name in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{name},{int(name.startswith('u'))}\n" for name in ids))
    code, out, err = run_cli("evaluate", scores, labels, "--report", report, "--real", copies / "real", "--json")
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    summary = report.read_text().split('id="summary"')[1].split("</table>")[0]
    rows = [row.split("<th>")[1].split("</td>")[0] for row in summary.split("\n") if "<th>" in row]
    shown = dict(row.split("</th><td>") for row in rows)
    assert [name for name in shown if "roc" in name.lower()] == ["ROC-AUC (known labels)"]
    assert shown["ROC-AUC (known labels)"] == f"{metrics['roc_auc']:.3f}"
    assert shown["accuracy"] == f"{metrics['accuracy']:.4g}" and shown["F1"] == f"{metrics['f1']:.4g}"


def test_without_labels_or_a_dev_set_the_report_says_leakage_is_not_tested(tmp_path):
    """Unlabelled real images: half of them are 'decided used' by rank whatever the scores; the report must say that
    nothing in it tests for leakage, and not say so where labels or a dev set do."""
    from ganfp.report import ReportInputs, build_report

    rng = np.random.default_rng(0)
    inputs = ReportInputs(real_ids=list("abcd"), real_images=rng.integers(0, 255, (4, 16, 16), np.uint8),
                          scores=np.arange(4.0), decided=np.array([0, 0, 1, 1]), summary={})
    untested = "nothing here tests whether the generator leaked at all"
    assert untested in build_report(inputs)[0]
    inputs.truth = np.array([0, 1, 0, 1])
    assert untested not in build_report(inputs)[0]
    inputs.truth, inputs.summary = None, {"calibration": {"recipe": "ensemble", "used_fraction": 0.5, "cv_auc": 0.9,
                                                          "dev_auc": 0.9, "interval": [0.8, 0.95],
                                                          "leak_evidence": True}}
    assert untested not in build_report(inputs)[0]


def report_warnings(report) -> list[str]:
    """The warning rows of a report's summary, as text."""
    from html import unescape

    summary = report.read_text(encoding="utf-8").split('id="summary"')[1].split("</section>")[0]
    return [unescape(row.split("<td>")[1].split("</td>")[0]) for row in summary.split("\n") if 'class="warning"' in row]


def test_the_report_lists_every_warning_the_run_showed_the_logged_ones_too(run_cli, copies):
    """A file skipped as not an image is a warning the library logs: the terminal and --json showed it, but the
    report, the evidence a user hands on, listed only classify's own warnings."""
    (copies / "real" / "used" / "scan.raw").write_bytes(b"not an image")
    out, report = copies / "s.csv", copies / "r.html"
    code, stdout, err = run_cli("classify", copies / "real", "--generated", copies / "gen", "--out", out, "--report",
                                report, "--data-root", copies / "data", "--json")
    assert code == 0, err
    shown = json.loads(stdout)["warnings"]
    assert any("1 file skipped, not in an image format ganfp reads (first: scan.raw)" in w for w in shown), shown
    assert report_warnings(report) == shown
