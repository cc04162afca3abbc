"""The HU window of DICOM images through training: train-stage, chain and attribute read in the window given, the
stage records it, classify reads real images in the window its checkpoint was trained in, and warns on another."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.medical import write_ct_dicom

from ganfp.attribution.run import read_images
from ganfp.checkpoint import read_safetensors
from ganfp.data.adapters.folder import folder_manifest
from ganfp.data.cache import cache_key
from ganfp.data.medical import MedicalReading, parse_window, with_window

pydicom = pytest.importorskip("pydicom", reason="needs the medical extra (pydicom)")

SIZE = 16
TRAIN = ("--model", "conv5", "--image-size", SIZE, "--epochs", 1, "--batch-size", 4, "--device", "cpu")


def write_dicom_classes(root, n: int = 4, seed: int = 0):
    """Two classes of CT slices whose HU (-1000..1000) the lung and mediastinum windows show differently."""
    rng = np.random.default_rng(seed)
    for label, cls in enumerate(("not_used", "used")):
        for i in range(n):
            write_ct_dicom(root / cls / f"{cls[0]}{i}.dcm", rng.uniform(-1000, 600, (SIZE, SIZE)) + 400 * label)
    return root


@pytest.fixture
def dicom_stage(tmp_path, run_cli, one_torch_thread):
    """A stage trained on DICOM images read in the mediastinum window, and a flat folder of DICOM images to score."""
    data = write_dicom_classes(tmp_path / "ds")
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "stage", "--window", "mediastinum",
                           "--data-root", tmp_path / "data", *TRAIN)
    assert code == 0, err
    write_dicom_classes(tmp_path / "real_tree", n=3, seed=1)
    real = tmp_path / "real"
    real.mkdir()
    for path in sorted((tmp_path / "real_tree").rglob("*.dcm")):
        path.rename(real / path.name)
    return tmp_path / "stage", real


def classify_scores(tmp_path, run_cli, stage, real, *window: str) -> tuple[list[str], str]:
    """(the score column, stderr) of classify with the stage's checkpoint and `window` (e.g. "--window", "bone")."""
    scores = tmp_path / "scores.csv"
    code, _, err = run_cli("classify", real, "--checkpoint", stage, "--out", tmp_path / "s.csv", "--scores", scores,
                           "--data-root", tmp_path / "data", "--device", "cpu", *window)
    assert code == 0, err
    return [line.split(",")[1] for line in scores.read_text().splitlines()[1:]], err


def test_a_stage_records_its_window_and_classify_reads_in_it(tmp_path, run_cli, dicom_stage):
    stage, real = dicom_stage
    meta = json.loads((stage / "meta.json").read_text())
    assert meta["window"] == "mediastinum" and meta["config"]["window"] == "mediastinum"
    assert read_safetensors(stage / "model.safetensors", tensors=False)[1]["window"] == "mediastinum"
    own, err = classify_scores(tmp_path, run_cli, stage, real)
    assert "WARNING" not in err and "--window" not in err, err
    same, err = classify_scores(tmp_path, run_cli, stage, real, "--window", "40,400")  # mediastinum, by numbers
    assert same == own and "--window" not in err, err
    other, err = classify_scores(tmp_path, run_cli, stage, real, "--window", "lung")
    assert other != own  # read as asked: the lung window shows these images otherwise
    lines = [line for line in err.splitlines() if "--window" in line]
    assert len(lines) == 1 and "--window lung" in lines[0] and "mediastinum window" in lines[0], err


def test_a_stage_resumed_in_another_window_is_refused_naming_the_change(tmp_path, run_cli, dicom_stage):
    stage, _ = dicom_stage
    data = tmp_path / "ds"
    for window, change in ((("--window", "bone"), "window 'mediastinum' -> 'bone'"),
                           ((), "window 'mediastinum' -> None")):
        code, _, err = run_cli("train-stage", "--data", data, "--out", stage, "--resume", "--data-root",
                               tmp_path / "data", *TRAIN, *window)
        assert code == 2 and change in err and len(err.strip().splitlines()) == 1, err


def test_a_checkpoint_without_a_window_reads_lung_and_warns_of_another(tmp_path, run_cli, one_torch_thread):
    """A stage trained without --window (as every older one) records none: classify reads as it always did."""
    data = write_dicom_classes(tmp_path / "ds")
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "stage", "--data-root",
                           tmp_path / "data", *TRAIN)
    assert code == 0, err
    assert "window" not in json.loads((tmp_path / "stage" / "meta.json").read_text())
    real = tmp_path / "ds" / "used"
    plain, err = classify_scores(tmp_path, run_cli, tmp_path / "stage", real)
    lung, err = classify_scores(tmp_path, run_cli, tmp_path / "stage", real, "--window", "lung")
    assert plain == lung and "--window" not in err, err
    _, err = classify_scores(tmp_path, run_cli, tmp_path / "stage", real, "--window", "bone")
    assert "--window bone" in err and "lung window" in err, err


@pytest.mark.parametrize("value, problem", [("wide", "give CENTER,WIDTH"), ("40,-5", "width must be positive")])
def test_a_bad_window_is_one_line_as_classify_says_it(tmp_path, run_cli, value, problem):
    for command in (("train-stage", "--data", tmp_path, "--out", tmp_path / "s"), ("chain",),
                    ("attribute", tmp_path, "--out", tmp_path / "a.csv")):
        code, _, err = run_cli(*command, "--window", value, "--data-root", tmp_path / "data")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and f"--window {value}: " in lines[0] and problem in lines[0], err
    assert not (tmp_path / "s").exists() and not (tmp_path / "data").exists()


def test_train_stage_refuses_a_window_over_images_without_hu(tmp_path, run_cli, class_folder):
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--window", "bone",
                           "--data-root", tmp_path / "data", *TRAIN)
    assert code == 2 and "--window: the images read hold no DICOM or NIfTI image" in err, err
    assert not (tmp_path / "s").exists()


def test_a_chain_stage_trains_in_its_window_key(tmp_path, run_cli, one_torch_thread):
    data = write_dicom_classes(tmp_path / "ds")
    chain = tmp_path / "w.toml"
    chain.write_text(f"[defaults]\nimage_size = {SIZE}\nbatch_size = 4\nepochs = 1\n\n"
                     f"[[stages]]\nname = \"ct\"\ndataset = \"{data}\"\nwindow = \"bone\"\n")
    code, _, err = run_cli("chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "data", "--device", "cpu")
    assert code == 0, err
    run = tmp_path / "runs" / "w-conv5"
    assert json.loads((run / "01-ct" / "meta.json").read_text())["window"] == "bone"
    assert json.loads((run / "chain.json").read_text())["stages"][0]["window"] == "bone"
    chain.write_text(chain.read_text().replace('"bone"', '"soft"'))
    code, _, err = run_cli("chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "data")
    assert code == 2 and f"{chain}:9: stage 1 window: give CENTER,WIDTH" in err, err


def test_attribute_reads_dicom_in_the_window_given(tmp_path, run_cli):
    write_dicom_classes(tmp_path / "train" / "generated")
    write_ct_dicom(tmp_path / "unknown" / "u0.dcm", np.full((SIZE, SIZE), 100.0))
    write_ct_dicom(tmp_path / "unknown" / "u1.dcm", np.full((SIZE, SIZE), -900.0))
    for window in ("lung", "mediastinum"):
        out = tmp_path / f"{window}.csv"
        code, _, err = run_cli("attribute", tmp_path / "unknown", "--train", tmp_path / "train", "--out", out,
                               "--method", "centroid", "--features", "pixels8", "--window", window,
                               "--data-root", tmp_path / "data", "--device", "cpu")
        assert code == 0, err
    bone = MedicalReading.parse("bone")
    assert {it.window for it in read_images(str(tmp_path / "unknown"), reading=bone).items} == {bone.window}
    code, _, err = run_cli("attribute", tmp_path / "unknown", "--train", tmp_path / "train", "--out", out,
                           "--slices", "0:2", "--data-root", tmp_path / "data")
    assert code == 2 and "--slices: the images read hold no NIfTI volume" in err, err


def test_a_window_applied_after_listing_keys_the_decode_cache_as_one_read_so(tmp_path):
    """Training applies its window to any adapter's listing (`with_window`): the cache key must be that of the
    images listed in the window, and never that of the lung-window decode."""
    data = write_dicom_classes(tmp_path / "ds", n=2)
    mediastinum = parse_window("mediastinum")
    listed = folder_manifest(data, reading=MedicalReading(window=mediastinum))
    applied = with_window(folder_manifest(data), mediastinum)
    assert cache_key(applied, SIZE) == cache_key(listed, SIZE) != cache_key(folder_manifest(data), SIZE)


def test_a_dataset_spec_of_dicom_files_is_read_in_the_window_given(tmp_path):
    """`classify folder:DIR --window bone` read DIR's DICOM files in the lung window: the spec's adapter listed them
    without the reading. --id-from, which acts while a folder is listed, is refused there rather than ignored."""
    from ganfp.data.real import read_real
    from ganfp.errors import InputError

    write_dicom_classes(tmp_path / "ds", n=1)
    bone = MedicalReading.parse("bone")
    assert {it.window for it in read_real(f"folder:{tmp_path / 'ds'}", reading=bone).items} == {bone.window}
    assert {it.window for it in read_images(f"folder:{tmp_path / 'ds'}", reading=bone).items} == {bone.window}
    with pytest.raises(InputError, match=r"^--id-from: folder:.* is a dataset spec"):
        read_real(f"folder:{tmp_path / 'ds'}", reading=MedicalReading.parse(id_from="uid"))


def test_calibration_reads_its_dev_images_in_the_checkpoint_window(tmp_path, dicom_stage, monkeypatch):
    """--calibrate with a --checkpoint scores dev images by it too: they are read in its window, as the real ones."""
    import ganfp.classify as classify_module

    class Read(Exception):
        pass

    def read_dev(spec, data_root, reading, image_size):
        raise Read(reading)

    stage, real = dicom_stage
    monkeypatch.setattr(classify_module, "read_dev", read_dev)
    with pytest.raises(Read) as caught:
        classify_module.classify(str(real), str(tmp_path / "s.csv"), generated=str(real), checkpoint=str(stage),
                                 calibrate_on=str(tmp_path / "ds"), data_root=str(tmp_path / "data"), device="cpu")
    assert caught.value.args[0].window == parse_window("mediastinum")


def test_a_chain_window_over_images_without_hu_is_refused(tmp_path, run_cli, class_folder):
    chain = tmp_path / "png.toml"
    chain.write_text(f"[defaults]\nimage_size = {SIZE}\nepochs = 1\n\n[[stages]]\ndataset = \"{class_folder}\"\n")
    code, _, err = run_cli("chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "data", "--window", "bone")
    assert code == 2 and "--window: the images of the stages it reads hold no DICOM or NIfTI image" in err, err
    assert not (tmp_path / "runs" / "png-conv5").exists()


def test_a_chain_window_is_a_setting_only_of_its_dicom_stages(tmp_path, run_cli, class_folder, one_torch_thread):
    """`--window` counted as a changed setting of every stage: a re-run of a PNG + DICOM chain with it retrained
    the PNG stage (and so every stage) although its pixels do not change."""
    chain = tmp_path / "mix.toml"
    chain.write_text(f"[defaults]\nimage_size = {SIZE}\nbatch_size = 4\nepochs = 1\n\n"
                     f"[[stages]]\nname = \"png\"\ndataset = \"{class_folder}\"\n\n"
                     f"[[stages]]\nname = \"ct\"\ndataset = \"{write_dicom_classes(tmp_path / 'ct')}\"\n")
    args = ("chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs", "--data-root",
            tmp_path / "data", "--device", "cpu", "--json")
    assert run_cli(*args)[0] == 0
    code, out, err = run_cli(*args, "--window", "mediastinum")
    assert code == 0, err
    assert [(r["status"], r["reason"]) for r in json.loads(out)] == [
        ("skipped", ""), ("trained", "settings changed: window None -> 'mediastinum'")]
    run = tmp_path / "runs" / "mix-conv5"
    assert [s["window"] for s in json.loads((run / "chain.json").read_text())["stages"]] == [None, "mediastinum"]
    assert json.loads((run / "02-ct" / "meta.json").read_text())["window"] == "mediastinum"
    assert "window" not in json.loads((run / "01-png" / "meta.json").read_text())
    code, out, _ = run_cli(*args, "--window", "mediastinum")
    assert code == 0 and [r["status"] for r in json.loads(out)] == ["skipped", "skipped"]
