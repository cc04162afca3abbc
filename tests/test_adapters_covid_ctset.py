"""The covid-ctset adapter: 16-bit TIFFs, all.csv labels, patient groups, real vs generated."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.layouts import (
    covid_rows,
    make_covid_class_folders,
    make_covid_flat,
    make_covid_nested,
    tiny_image,
    write_label_csv,
)
from PIL import Image

from ganfp.data.adapters import load_manifest
from ganfp.data.outputs import check_outputs
from ganfp.data.split import split_indices
from ganfp.errors import InputError
from ganfp.fetch import dataset_status, fetch_dataset, read_meta


def _patient(name: str) -> str:
    return name.split("_")[1].lower()


def _install(tmp_path: Path, build) -> Path:
    src = tmp_path / "src"
    build(src)
    root = tmp_path / "data"
    fetch_dataset("covid-ctset", root, source=src)
    return root


def _expected(rows):
    return {"normal": sum(c == "normal" for _, c in rows), "covid": sum(c == "covid" for _, c in rows)}


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_labels_from_all_csv_in_both_layouts(tmp_path, layout):
    rows = covid_rows()
    build = (lambda s: make_covid_flat(s, rows)) if layout == "flat" else (lambda s: make_covid_nested(s, rows))
    m = load_manifest("covid-ctset", _install(tmp_path, build))
    assert m.classes == ["normal", "covid"]
    assert m.class_counts() == _expected(rows)
    labels = {name: cls for name, cls in rows}
    for it in m.items:
        with Image.open(it.path) as img:
            assert img.mode == "I;16"
        if layout == "flat":
            assert m.classes[it.label] == labels[Path(it.path).name]
    assert {it.group for it in m.items} == {_patient(n) for n, _ in rows}
    if layout == "flat":
        assert m.info["unlabelled_skipped"] == 1  # the slice no list names


def test_a_patient_never_straddles_train_and_validation(tmp_path):
    rows = covid_rows(per_patient=3)
    m = load_manifest("covid-ctset", _install(tmp_path, lambda s: make_covid_nested(s, rows)))
    patient168 = {it.path for it in m.items if it.group == "patient168"}
    assert len(patient168) >= 4  # the slices under normal1/ and normal5/ are one patient
    for seed in range(3):
        train, val = split_indices(m, 0.34, seed)
        groups_train = {m.items[i].group for i in train}
        groups_val = {m.items[i].group for i in val}
        assert groups_train.isdisjoint(groups_val)


def test_class_folders_label_when_there_is_no_list(tmp_path):
    root = _install(tmp_path, make_covid_class_folders)
    m = load_manifest("covid-ctset", root)
    assert m.class_counts() == {"normal": 6, "covid": 6}
    assert {it.group for it in m.items if it.label == 1} == {"patient1", "patient2"}


@pytest.mark.parametrize("missing, present", [("normal", "covid"), ("covid", "normal")])
def test_one_class_only_is_refused_at_fetch_and_the_ready_copy_is_kept(tmp_path, run_cli, missing, present):
    """Only the covid (or normal) slices, say one part of several, were installed as ready: 6 covid, 0 normal, and
    the stage trained on it failed at its start. Refused at import, as CASIA's one class is, naming what is missing
    and what was found; the copy installed before is untouched."""
    root = _install(tmp_path, make_covid_class_folders)
    before = read_meta(root / "covid-ctset")
    one = tmp_path / "one"
    make_covid_class_folders(one)
    shutil.rmtree(one / missing)
    code, out, err = run_cli("fetch-data", "covid-ctset", "--from", one, "--data-root", root, "--force")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: the data from {one}: no {missing} COVID-CTset slices (slices under a {missing} "
                          f"folder), only 6 {present}; import the whole dataset, with both its covid and normal"), err
    assert read_meta(root / "covid-ctset") == before
    assert load_manifest("covid-ctset", root).class_counts() == {"normal": 6, "covid": 6}


def test_one_class_of_a_label_list_is_refused_and_nothing_is_installed(tmp_path):
    rows = covid_rows()
    src = tmp_path / "src"
    make_covid_flat(src, [(name, cls) for name, cls in rows if cls == "covid"])
    with pytest.raises(InputError) as err:
        fetch_dataset("covid-ctset", tmp_path / "data", source=src)
    covid = sum(cls == "covid" for _, cls in rows)
    assert str(err.value).startswith(f"the data from {src}: no normal COVID-CTset slices (slices all.csv labels "
                                     f"normal), only {covid} covid;"), err.value
    assert dataset_status("covid-ctset", tmp_path / "data") == "absent"
    assert not (tmp_path / "data" / "covid-ctset").exists()


def test_fold_lists_label_like_all_csv(tmp_path):
    rows = covid_rows()

    def build(src):
        make_covid_flat(src, rows)
        (src / "CSV" / "all.csv").unlink()
        write_label_csv(src / "CSV" / "train1.csv", rows[::2])
        write_label_csv(src / "CSV" / "validation1.csv", rows[1::2])
        (src / "CSV" / "Patient_details.csv").write_text("Patient ID,SEX\npatient1,F\n")  # not a label list

    m = load_manifest("covid-ctset", _install(tmp_path, build))
    assert m.class_counts() == _expected(rows)


def test_conflicting_labels_are_an_input_error(tmp_path):
    rows = covid_rows()[:2]
    src = tmp_path / "src"
    make_covid_flat(src, rows)
    write_label_csv(src / "CSV" / "other.csv", [(rows[0][0], "normal" if rows[0][1] == "covid" else "covid")])
    with pytest.raises(InputError, match="labelled both"):
        fetch_dataset("covid-ctset", tmp_path / "data", source=src)


def test_real_vs_generated_with_a_folder_of_synthetic_slices(tmp_path):
    rows = covid_rows()
    root = _install(tmp_path, lambda s: make_covid_flat(s, rows))
    fake = tmp_path / "synthetic"
    for i in range(5):
        tiny_image(fake / f"fake_{i}.png", i, mode="L")
    for spec, options in ((f"covid-ctset:real-vs-generated={fake}", {}), ("covid-ctset:real-vs-generated", {"generated": str(fake)}), ("covid-ctset", {"generated": str(fake)})):
        m = load_manifest(spec, root, **options)
        assert m.classes == ["real", "generated"]
        assert m.class_counts() == {"real": len(rows), "generated": 5}
        assert all(it.group is None for it in m.items if it.label == 1)
        assert m.info["generated"] == str(fake.resolve())


def test_an_output_named_like_an_image_among_the_synthetic_slices_is_refused(tmp_path):
    """The spec's FOLDER is an input folder too: a figure written there was read as a synthetic slice next run."""
    root = _install(tmp_path, lambda s: make_covid_flat(s, covid_rows()))
    fake = tmp_path / "synthetic"
    tiny_image(fake / "fake_0.png", 0, mode="L")
    with pytest.raises(InputError, match="named like an image inside the input folder .*synthetic"):
        check_outputs({"--plot": fake / "fig.png"}, (f"covid-ctset:real-vs-generated={fake}",), data_root=root)
    check_outputs({"--plot": tmp_path / "fig.png"}, (f"covid-ctset:real-vs-generated={fake}",), data_root=root)


def test_real_vs_generated_needs_a_folder(tmp_path):
    root = _install(tmp_path, lambda s: make_covid_flat(s, covid_rows()))
    with pytest.raises(InputError, match="needs a folder of synthetic slices"):
        load_manifest("covid-ctset:real-vs-generated", root)
    with pytest.raises(InputError, match="no such folder"):
        load_manifest("covid-ctset", root, generated=str(tmp_path / "nope"))
    with pytest.raises(InputError, match="unknown task"):
        load_manifest("covid-ctset:xray", root)


def test_slices_no_list_names_and_no_class_folders_are_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint16)).save(src / "scan_0001.tif")
    with pytest.raises(InputError) as err:
        fetch_dataset("covid-ctset", tmp_path / "data", source=src)
    assert "137covid_patient1_SR_2_IM00010.tif" in str(err.value)
    assert "found at the top: scan_0001.tif" in str(err.value)
