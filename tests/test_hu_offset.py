"""--hu-offset: 16-bit grayscale PNG/TIFF slices that store HU + N (COVID-CTset: HU + 1024) are read in a fixed HU
window, as DICOM is, by every command that reads --window; the decode cache keeps the two readings apart, a stage
records its offset and classify reads with it, and an offset that would change nothing is refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from ganfp.checkpoint import read_safetensors
from ganfp.data.adapters.folder import folder_manifest
from ganfp.data.cache import cache_key, load_images
from ganfp.data.medical import HU_OFFSET_MAX, MedicalReading, parse_window

SIZE = 16
TRAIN = ("--model", "conv5", "--image-size", SIZE, "--epochs", 1, "--batch-size", 4, "--device", "cpu")
# HU and the lung window's grey level of each (-1000..400 HU -> 0..255, rounded half up), worked out by hand
LUNG = {-1100: 0, -1000: 0, -300: 128, 0: 182, 400: 255, 1500: 255}


def save16(path, hu: np.ndarray, offset: int):
    """A 16-bit grayscale image (PIL mode I;16) storing `hu` + `offset`, in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray((np.asarray(hu) + offset).astype(np.uint16))
    assert img.mode == "I;16"
    img.save(path)
    return path


def known_slice() -> np.ndarray:
    """(SIZE, SIZE) HU: the `LUNG` values in rows (-1100 HU among them: store it with an offset above 1100)."""
    values = np.array(list(LUNG), dtype=np.int64)
    return np.resize(np.repeat(values, SIZE * SIZE // len(values) + 1)[: SIZE * SIZE], (SIZE, SIZE))


def write_hu_classes(root, offset: int = 1024, n: int = 4, seed: int = 0, suffix: str = ".tif"):
    """Two classes of 16-bit CT slices storing HU + `offset` (HU -1000..1000)."""
    rng = np.random.default_rng(seed)
    for label, cls in enumerate(("not_used", "used")):
        for i in range(n):
            save16(root / cls / f"{cls[0]}{i}{suffix}", rng.integers(-1000, 600, (SIZE, SIZE)) + 400 * label, offset)
    return root


def decoded(folder, reading: MedicalReading | None, data_root) -> dict[str, np.ndarray]:
    images = load_images(folder_manifest(folder, reading=reading), SIZE, data_root)
    return dict(zip(images.manifest.ids, images.images.numpy()))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_16_bit_slice_is_read_as_hu_minus_the_offset_in_the_window(tmp_path, suffix):
    hu = known_slice()
    save16(tmp_path / "ct" / f"slice{suffix}", hu, 32768)
    Image.fromarray(np.full((SIZE, SIZE), 77, np.uint8)).save(tmp_path / "ct" / "grey.png")  # 8-bit: as saved
    Image.fromarray(hu.astype(np.float32)).save(tmp_path / "ct" / "float.tif")  # float: stretched, as before
    plain = decoded(tmp_path / "ct", None, tmp_path / "data")
    read = decoded(tmp_path / "ct", MedicalReading(hu_offset=32768), tmp_path / "data")
    np.testing.assert_array_equal(read["slice"], np.vectorize(LUNG.get)(hu))
    assert not np.array_equal(plain["slice"], read["slice"])  # stretched per image without the offset
    for other in ("grey", "float"):
        np.testing.assert_array_equal(read[other], plain[other])
    bone = decoded(tmp_path / "ct", MedicalReading(window=parse_window("bone"), hu_offset=32768), tmp_path / "data")
    assert bone["slice"][hu == 400].tolist() == [128] * int((hu == 400).sum())  # bone: -500..1300 HU, 400 HU is mid


def test_the_decode_cache_never_mixes_the_readings(tmp_path):
    """The offset is in every image's fingerprint, so the cache key, as the window is: one folder decoded with and
    without it is two cache entries, each reused as itself."""
    write_hu_classes(tmp_path / "ds", n=1)
    keys = [cache_key(folder_manifest(tmp_path / "ds", reading=MedicalReading(hu_offset=o)), SIZE)
            for o in (None, 1024, 0)]
    assert len(set(keys)) == 3
    first = [decoded(tmp_path / "ds", MedicalReading(hu_offset=o), tmp_path / "data") for o in (None, 1024, None, 1024)]
    for a, b in ((first[0], first[2]), (first[1], first[3])):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(first[0][k], first[1][k]) for k in first[0])
    assert len(list((tmp_path / "data" / "cache" / "images").glob("*.npy"))) == 2


def classify_run(tmp_path, run_cli, stage, real, *extra) -> tuple[list[str], dict, str]:
    """(the score column, the --json summary, stderr) of classify with the stage's checkpoint."""
    scores = tmp_path / "scores.csv"
    code, out, err = run_cli("classify", real, "--checkpoint", stage, "--out", tmp_path / "s.csv", "--scores", scores,
                             "--data-root", tmp_path / "data", "--device", "cpu", "--json", *extra)
    assert code == 0, err
    return [line.split(",")[1] for line in scores.read_text().splitlines()[1:]], json.loads(out), err


def test_a_stage_records_its_offset_and_classify_reads_with_it(tmp_path, run_cli, one_torch_thread):
    data = write_hu_classes(tmp_path / "ds")
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "stage", "--hu-offset", 1024,
                           "--data-root", tmp_path / "data", *TRAIN)
    assert code == 0, err
    meta = json.loads((tmp_path / "stage" / "meta.json").read_text())
    assert meta["hu_offset"] == 1024 and meta["config"]["hu_offset"] == 1024 and "window" not in meta
    assert read_safetensors(tmp_path / "stage" / "model.safetensors", tensors=False)[1]["hu_offset"] == 1024
    real = write_hu_classes(tmp_path / "real", n=3, seed=1) / "used"
    own, summary, err = classify_run(tmp_path, run_cli, tmp_path / "stage", real)
    assert summary["hu_offset"] == 1024 and not summary["warnings"], err
    same, summary, _ = classify_run(tmp_path, run_cli, tmp_path / "stage", real, "--hu-offset", 1024)
    assert same == own and not summary["warnings"]
    other, summary, _ = classify_run(tmp_path, run_cli, tmp_path / "stage", real, "--hu-offset", 1200)
    assert other != own and summary["hu_offset"] == 1200  # read as asked, and said in one line
    (warning,) = summary["warnings"]
    model_file = tmp_path / "stage" / "model.safetensors"
    assert warning.startswith(f"--hu-offset 1200: the checkpoint {model_file} was trained on 16-bit images read as "
                              "HU + 1024")
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "stage", "--resume", "--data-root",
                           tmp_path / "data", *TRAIN)
    assert code == 2 and "hu_offset 1024 -> None" in err and len(err.strip().splitlines()) == 1, err


def test_a_checkpoint_without_an_offset_warns_of_one_given(tmp_path, run_cli, one_torch_thread):
    data = write_hu_classes(tmp_path / "ds")
    assert run_cli("train-stage", "--data", data, "--out", tmp_path / "stage", "--data-root", tmp_path / "data",
                   *TRAIN)[0] == 0
    assert "hu_offset" not in json.loads((tmp_path / "stage" / "meta.json").read_text())
    _, summary, _ = classify_run(tmp_path, run_cli, tmp_path / "stage", data / "used")
    assert summary["hu_offset"] is None and not summary["warnings"]
    _, summary, _ = classify_run(tmp_path, run_cli, tmp_path / "stage", data / "used", "--hu-offset", 1024)
    (warning,) = summary["warnings"]
    assert "--hu-offset 1024: " in warning and "stretched between their own percentiles" in warning


def one_line_refusal(run_cli, *args) -> str:
    code, _, err = run_cli(*args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def test_an_offset_over_images_without_16_bit_ones_is_refused(tmp_path, run_cli, class_folder):
    """8-bit PNGs only: the offset would change nothing, in every command that takes it; nothing is written."""
    hint = "--hu-offset: the images read hold no 16-bit grayscale PNG or TIFF, so it would change nothing"
    root = ("--data-root", tmp_path / "data")
    commands = [("classify", class_folder / "a", "--generated", class_folder / "b", "--out", tmp_path / "s.csv"),
                ("train-stage", "--data", class_folder, "--out", tmp_path / "stage", *TRAIN),
                ("attribute", class_folder, "--train", class_folder, "--out", tmp_path / "a.csv")]
    for command in commands:
        assert hint in one_line_refusal(run_cli, *command, "--hu-offset", 1024, *root)
    chain = tmp_path / "png.toml"
    chain.write_text(f"[defaults]\nimage_size = {SIZE}\nepochs = 1\n\n[[stages]]\ndataset = \"{class_folder}\"\n"
                     "hu_offset = 1024\n")
    line = one_line_refusal(run_cli, "chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs",
                            *root)
    assert line.endswith(f"{chain}: hu_offset: the images of the stages it reads hold no 16-bit grayscale PNG or "
                         "TIFF, so it would change nothing; leave it out")
    assert not any((tmp_path / name).exists() for name in ("s.csv", "stage", "a.csv", "runs"))


@pytest.mark.parametrize("value, problem", [("-5", "below the minimum 0"), ("1_0", "is not a whole number"),
                                            (str(HU_OFFSET_MAX + 1), "above the maximum 65535")])
def test_a_bad_offset_is_one_line_naming_the_option(tmp_path, run_cli, value, problem):
    for command in (("classify", tmp_path, "--out", tmp_path / "s.csv"), ("chain",),
                    ("train-stage", "--data", tmp_path, "--out", tmp_path / "s")):
        line = one_line_refusal(run_cli, *command, "--hu-offset", value)
        assert "--hu-offset" in line and problem in line, line


def test_a_window_of_16_bit_images_is_taken_with_an_offset_only(tmp_path, run_cli):
    """--window over 16-bit slices alone changed nothing before (still refused); with --hu-offset it is their
    window."""
    real = write_hu_classes(tmp_path / "real", n=3) / "used"
    gen = write_hu_classes(tmp_path / "gen", n=3, seed=2) / "used"
    args = ("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", "--data-root", tmp_path / "data",
            "--method", "knn", "--features", "pixels8", "--json", "--device", "cpu")
    line = one_line_refusal(run_cli, *args, "--window", "bone")
    assert "--window: the images read hold no DICOM or NIfTI image" in line
    code, out, err = run_cli(*args, "--window", "bone", "--hu-offset", 1024)
    assert code == 0 and json.loads(out)["hu_offset"] == 1024, err


def test_a_mix_of_depths_says_how_the_16_bit_images_are_read(tmp_path, run_cli):
    """With an offset a 16-bit image is in a fixed window, not stretched: the warning says so."""
    real = write_hu_classes(tmp_path / "real", n=3) / "used"
    gen = tmp_path / "gen"
    gen.mkdir()
    for i in range(3):
        Image.fromarray(np.full((SIZE, SIZE), 40 * i, np.uint8)).save(gen / f"g{i}.png")
    code, out, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", "--method", "knn",
                             "--features", "pixels8", "--hu-offset", 1024, "--json", "--data-root", tmp_path / "data",
                             "--device", "cpu")
    assert code == 0, err
    (warning,) = [w for w in json.loads(out)["warnings"] if "bit depths" in w]
    assert ("16-bit images are read as HU + 1024 in the lung window and 32-bit and float ones stretched between "
            "their own 0.5 and 99.5 percentiles, 8-bit and 1-bit ones read as they are") in warning
    assert "ganfp stretches" not in warning


def test_attribute_reads_16_bit_images_with_the_offset(tmp_path, run_cli):
    write_hu_classes(tmp_path / "train" / "generated")
    save16(tmp_path / "unknown" / "u0.png", np.full((SIZE, SIZE), 100), 1024)
    save16(tmp_path / "unknown" / "u1.png", np.full((SIZE, SIZE), -900), 1024)
    code, out, err = run_cli("attribute", tmp_path / "unknown", "--train", tmp_path / "train", "--out",
                             tmp_path / "a.csv", "--method", "centroid", "--features", "pixels8", "--hu-offset", 1024,
                             "--json", "--data-root", tmp_path / "data", "--device", "cpu")
    assert code == 0 and json.loads(out)["hu_offset"] == 1024, err
    listed = folder_manifest(tmp_path / "unknown", reading=MedicalReading(hu_offset=1024))
    assert {it.hu_offset for it in listed.items} == {1024}


def test_a_chain_stage_reads_its_hu_offset_key(tmp_path, run_cli, class_folder, one_torch_thread):
    """A chain file's `hu_offset` is a stage setting, kept only by stages with 16-bit images (a PNG stage's
    pixels do not change with it) and recorded in the run and the checkpoint."""
    data = write_hu_classes(tmp_path / "ct")
    chain = tmp_path / "hu.toml"
    chain.write_text(f"[defaults]\nimage_size = {SIZE}\nbatch_size = 4\nepochs = 1\nhu_offset = 1024\n\n"
                     f"[[stages]]\nname = \"png\"\ndataset = \"{class_folder}\"\n\n"
                     f"[[stages]]\nname = \"ct\"\ndataset = \"{data}\"\n")
    code, _, err = run_cli("chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "data", "--device", "cpu")
    assert code == 0, err
    run = tmp_path / "runs" / "hu-conv5"
    stages = json.loads((run / "chain.json").read_text())["stages"]
    assert [s.get("hu_offset") for s in stages] == [None, 1024]
    assert "hu_offset" not in json.loads((run / "01-png" / "meta.json").read_text())
    assert json.loads((run / "02-ct" / "meta.json").read_text())["hu_offset"] == 1024


@pytest.mark.parametrize("value", ["1024", -1, True, 1.5])
def test_an_offset_from_python_is_checked_before_any_image_is_read(value):
    """A string failed in numpy's subtraction with a traceback once images were decoded; -1 read HU + 1."""
    from ganfp.errors import InputError

    with pytest.raises(InputError, match=rf"^hu_offset={value!r}: must be a whole number from 0 to 65535"):
        MedicalReading(hu_offset=value)
    assert MedicalReading(hu_offset=np.int64(1024)).hu_offset == 1024 and MedicalReading().hu_offset is None


def test_evaluate_report_reads_with_the_checkpoints_offset_and_names_it(run_cli, tmp_path):
    """The report of `--features checkpoint` shows the 16-bit images as its checkpoint read them (HU + 1024, lung
    window), as classify scored them, and its summary names the offset."""
    pytest.importorskip("matplotlib", reason="needs the plots extra (matplotlib)")
    from ganfp.checkpoint import model_meta, save_model
    from ganfp.data.decode import decode_image
    from ganfp.models import create_model
    from ganfp.report import png_uri

    rng = np.random.default_rng(0)
    paths = [save16(tmp_path / "real" / f"ct{i}.png", rng.integers(-1000, 400, (SIZE, SIZE)), 1024) for i in range(6)]
    for i in range(4):
        save16(tmp_path / "gen" / f"g{i}.png", rng.integers(-1000, 400, (SIZE, SIZE)), 1024)
    model, stage = create_model("conv5", 2, SIZE), tmp_path / "stage"
    stage.mkdir()
    save_model(stage / "model.safetensors", model, model_meta(model, ["not_used", "used"], SIZE, hu_offset=1024))
    scores, labels, report = tmp_path / "scores.csv", tmp_path / "labels.csv", tmp_path / "ev.html"
    scores.write_text("id,score\n" + "".join(f"ct{i},{i / 6:.3f}\n" for i in range(6)))
    labels.write_text("id,label\n" + "".join(f"ct{i},{int(i < 3)}\n" for i in range(6)))
    code, _, err = run_cli("evaluate", scores, labels, "--report", report, "--real", tmp_path / "real", "--generated",
                           tmp_path / "gen", "--features", "checkpoint", "--checkpoint", stage,
                           "--data-root", tmp_path / "data")
    assert code == 0, err
    page = report.read_text()
    assert re.search(r"HU offset \(16-bit images\)</t[hd]>\s*<td[^>]*>1024<", page), page[:3000]
    for path in paths:
        assert png_uri(decode_image(str(path), SIZE, hu_offset=1024)) in page
        assert png_uri(decode_image(str(path), SIZE)) not in page


def test_a_16_bit_png_that_pillow_opens_as_32_bit_takes_the_offset(tmp_path, monkeypatch):
    """An older Pillow (ganfp takes 10 and later) opened a 16-bit grayscale PNG as mode I: it is still one."""
    import PIL.PngImagePlugin

    hu = known_slice()
    save16(tmp_path / "ct" / "slice.png", hu, 32768)
    monkeypatch.setitem(PIL.PngImagePlugin._MODES, (16, 0), ("I", "I;16B"))
    assert Image.open(tmp_path / "ct" / "slice.png").mode == "I"
    MedicalReading(hu_offset=32768).check_read([str(tmp_path / "ct" / "slice.png")])  # not refused
    read = decoded(tmp_path / "ct", MedicalReading(hu_offset=32768), tmp_path / "data")
    np.testing.assert_array_equal(read["slice"], np.vectorize(LUNG.get)(hu))


def offset_checkpoint(folder, offset: int | None = 1024):
    """A stage folder holding an untrained conv5 whose header records `offset`, as a stage trained with it does."""
    from ganfp.checkpoint import model_meta, save_model
    from ganfp.models import create_model

    model = create_model("conv5", 2, SIZE)
    folder.mkdir()
    save_model(folder / "model.safetensors", model, model_meta(model, ["not_used", "used"], SIZE, hu_offset=offset))
    return folder


def test_a_window_is_taken_over_16_bit_slices_a_checkpoints_offset_reads(tmp_path, run_cli):
    """Without --hu-offset, --window over 16-bit slices alone was refused as changing nothing, though the offset the
    checkpoint recorded reads them in HU, so in that window: every command that reads the checkpoint takes it."""
    stage, root = offset_checkpoint(tmp_path / "stage"), ("--data-root", tmp_path / "data", "--device", "cpu")
    real, gen = (write_hu_classes(tmp_path / name, n=3, seed=seed) for name, seed in (("real", 1), ("gen", 2)))
    classifier = ("classify", real / "used", "--checkpoint", stage, "--out", tmp_path / "s.csv", "--json", *root)
    knn = ("classify", real / "used", "--generated", gen / "used", "--method", "knn", "--features", "checkpoint",
           "--checkpoint", stage, "--out", tmp_path / "k.csv", "--json", *root)
    attribute = ("attribute", real / "used", "--train", gen, "--method", "knn", "--features", "checkpoint",
                 "--checkpoint", stage, "--out", tmp_path / "a.csv", "--json", *root)
    for args in (classifier, knn, attribute):
        code, out, err = run_cli(*args, "--window", "bone")
        assert code == 0 and json.loads(out)["hu_offset"] == 1024, err
    scores = tmp_path / "scores.csv"
    lung, bone = ([run_cli(*classifier, "--scores", scores, *window)[0], scores.read_text()]
                  for window in ((), ("--window", "bone")))
    assert lung[0] == bone[0] == 0 and lung[1] != bone[1]  # the bone window read the slices otherwise


def test_evaluate_report_takes_a_window_over_16_bit_slices_its_checkpoints_offset_reads(tmp_path, run_cli):
    pytest.importorskip("matplotlib", reason="needs the plots extra (matplotlib)")
    stage = offset_checkpoint(tmp_path / "stage")
    real, gen = (write_hu_classes(tmp_path / name, n=3, seed=seed) for name, seed in (("real", 1), ("gen", 2)))
    ids = sorted(p.stem for p in (real / "used").iterdir())
    scores, labels = tmp_path / "scores.csv", tmp_path / "labels.csv"
    scores.write_text("id,score\n" + "".join(f"{i},{n / 3:.3f}\n" for n, i in enumerate(ids)))
    labels.write_text("id,label\n" + "".join(f"{i},{int(n < 2)}\n" for n, i in enumerate(ids)))
    code, _, err = run_cli("evaluate", scores, labels, "--report", tmp_path / "ev.html", "--real", real / "used",
                           "--generated", gen / "used", "--features", "checkpoint", "--checkpoint", stage,
                           "--window", "bone", "--data-root", tmp_path / "data")
    assert code == 0, err
    assert re.search(r"HU offset \(16-bit images\)</t[hd]>\s*<td[^>]*>1024<", (tmp_path / "ev.html").read_text())


def test_a_window_nothing_reads_in_hu_is_still_refused_beside_a_checkpoint(tmp_path, run_cli, class_folder):
    """A checkpoint without an offset leaves 16-bit slices stretched, and one with an offset reads no 8-bit PNG in
    HU: a --window over either still changes nothing."""
    real = write_hu_classes(tmp_path / "real", n=3) / "used"
    for stage, images in ((offset_checkpoint(tmp_path / "plain", None), real),
                          (offset_checkpoint(tmp_path / "hu"), class_folder / "a")):
        line = one_line_refusal(run_cli, "classify", images, "--checkpoint", stage, "--out", tmp_path / "s.csv",
                                "--window", "bone", "--data-root", tmp_path / "data", "--device", "cpu")
        assert line.endswith("--window: the images read hold no DICOM or NIfTI image"
                             + (" or 16-bit grayscale PNG/TIFF" if stage.name == "hu" else "")
                             + ", so it would change nothing; leave it out"), line
    assert not (tmp_path / "s.csv").exists()


def test_train_stage_and_chain_say_how_each_stage_read_its_images(tmp_path, run_cli, class_folder, one_torch_thread):
    """The stage table and --json named neither the window nor the HU offset a stage read its images with, though
    meta.json and chain.json record both: each is a key per stage now (null where not given), and a "read as" column
    of the table where a stage was given either, none for plain PNG stages."""
    data = write_hu_classes(tmp_path / "ct")
    chain = tmp_path / "hu.toml"
    chain.write_text(f"[defaults]\nimage_size = {SIZE}\nbatch_size = 4\nepochs = 1\nhu_offset = 1024\n"
                     f"window = \"bone\"\n\n[[stages]]\nname = \"png\"\ndataset = \"{class_folder}\"\n\n"
                     f"[[stages]]\nname = \"ct\"\ndataset = \"{data}\"\n")
    args = ("chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs", "--data-root",
            tmp_path / "data", "--device", "cpu")
    code, out, err = run_cli(*args, "--json")
    assert code == 0, err
    assert [(s["window"], s["hu_offset"]) for s in json.loads(out)] == [(None, None), ("bone", 1024)]
    code, out, err = run_cli(*args)  # kept: read back from the stages' meta.json
    assert code == 0 and "read as" in out, err
    (png,) = [line for line in out.splitlines() if " png " in line]
    (ct,) = [line for line in out.splitlines() if " ct " in line]
    assert "bone window, HU + 1024" in ct and "window" not in png and "HU +" not in png
    code, out, err = run_cli(*args, "--dry-run", "--json")
    assert code == 0 and [(s["window"], s["hu_offset"]) for s in json.loads(out)] == [(None, None), ("bone", 1024)]
    plain = ("train-stage", "--data", class_folder, "--data-root", tmp_path / "data", *TRAIN)
    code, out, err = run_cli(*plain, "--out", tmp_path / "plain", "--json")
    assert code == 0 and (json.loads(out)[0]["window"], json.loads(out)[0]["hu_offset"]) == (None, None), err
    code, out, err = run_cli(*plain, "--out", tmp_path / "plain2")
    assert code == 0 and "read as" not in out, err  # no new column for plain images
