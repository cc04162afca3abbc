"""The casia adapter on CASIA's real layouts: nesting, versions, masks, odd names, real samples."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from helpers.layouts import CASIA_SAMPLES, make_casia, tiny_image

from ganfp.data.adapters import load_manifest
from ganfp.errors import InputError
from ganfp.fetch import dataset_status, fetch_dataset


def _install(tmp_path: Path, **kw) -> tuple[Path, dict]:
    src = tmp_path / "src"
    expected = make_casia(src, **kw)
    root = tmp_path / "data"
    fetch_dataset("casia", root, source=src)
    return root, expected


def _counts(manifest) -> dict:
    return manifest.class_counts()


def test_default_is_v2_with_labels_from_prefixes_and_folders(tmp_path):
    root, expected = _install(tmp_path)
    m = load_manifest("casia", root)
    assert m.classes == ["authentic", "tampered"]
    assert _counts(m) == expected["v2"]
    assert m.info["version"] == "v2"
    names = {Path(it.path).name: it.label for it in m.items}
    assert names["Au_art_00014.JPG"] == 0 and names["Au_cha_00063.bmp"] == 0  # upper-case and BMP
    assert names["IMG_misnamed_0001.jpg"] == 0  # no prefix: the Au folder decides
    assert names["tp_d_nnn_m_n_ani00001_ani00001_10002.jpg"] == 1
    assert not any("_gt" in n for n in names)  # masks are not samples
    assert not any("Groundtruth" in it.path for it in m.items)


def test_v1_is_selected_by_argument(tmp_path):
    root, expected = _install(tmp_path)
    m = load_manifest("casia:v1", root)
    assert _counts(m) == expected["v1"]
    assert all("CASIA 1.0 dataset" in it.path for it in m.items)
    assert len(load_manifest("casia:v2", root)) == sum(expected["v2"].values())


@pytest.mark.skipif(not CASIA_SAMPLES.is_dir(), reason="../shared/data/casia2-samples is not here (a user's clone)")
def test_real_casia_samples_are_tampered_and_their_masks_skipped(tmp_path):
    root, _ = _install(tmp_path)
    m = load_manifest("casia", root)
    by_name = {Path(it.path).name: it for it in m.items}
    for sample in CASIA_SAMPLES.iterdir():
        if sample.stem.endswith("_gt"):
            assert sample.name not in by_name
        else:
            assert by_name[sample.name].label == 1
    assert m.info["skipped"]["masks"] >= 5


def test_tampered_images_share_a_group_with_their_authentic_photo(tmp_path):
    root, _ = _install(tmp_path, with_samples=False)
    m = load_manifest("casia", root)
    group = {Path(it.path).name: it.group for it in m.items}
    assert group["Tp_D_CRN_S_N_cha00063_art00014_11818.jpg"] == group["Au_art_00014.JPG"] is not None
    assert group["Tp_S_NNN_S_N_pla00033_pla00033_10001.TIF"] == group["Au_pla_00033.jpg"]
    assert group["Au_ani_00001.jpg"] != group["Au_art_00014.JPG"]
    v1 = {Path(it.path).name: it.group for it in load_manifest("casia:v1", root).items}
    assert v1["Sp_D_CND_A_pla0005_pla0023_0281.jpg"] == v1["Au_pla_0023.jpg"]


def test_flat_zip_without_version_folders_uses_file_names(tmp_path):
    archive = tmp_path / "casia.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, name in enumerate(["Au_ani_00001.jpg", "Au_ani_00002.jpg", "Tp_D_CRN_S_N_cha00063_art00014_11818.jpg", "Sp_D_CND_A_pla0005_pla0023_0281.jpg", "Au_ani_0001.jpg"]):
            zf.write(tiny_image(tmp_path / "img" / name, i), name)
    root = tmp_path / "data"
    fetch_dataset("casia", root, source=archive)
    assert _counts(load_manifest("casia", root)) == {"authentic": 2, "tampered": 1}
    assert _counts(load_manifest("casia:v1", root)) == {"authentic": 1, "tampered": 1}


def test_duplicate_nestings_count_once(tmp_path):
    src = tmp_path / "src"
    for top in ("CASIA2", "casia/CASIA2"):
        tiny_image(src / top / "Au" / "Au_ani_00001.jpg", 1)
        tiny_image(src / top / "Tp" / "Tp_D_CRN_S_N_cha00063_art00014_11818.jpg", 2)
    fetch_dataset("casia", tmp_path / "data", source=src)
    m = load_manifest("casia", tmp_path / "data")
    assert len(m) == 2 and m.info["skipped"]["duplicates"] == 2


def test_missing_version_and_bad_argument_are_input_errors(tmp_path):
    src = tmp_path / "src"
    tiny_image(src / "CASIA2" / "Au" / "Au_ani_00001.jpg", 1)
    tiny_image(src / "CASIA2" / "Tp" / "Tp_D_CRN_S_N_cha00063_art00014_11818.jpg", 2)
    fetch_dataset("casia", tmp_path / "data", source=src)
    with pytest.raises(InputError, match="no CASIA v1 images"):
        load_manifest("casia:v1", tmp_path / "data")
    with pytest.raises(InputError, match="unknown CASIA version"):
        load_manifest("casia:v3", tmp_path / "data")
    with pytest.raises(InputError, match="unknown option"):
        load_manifest("casia", tmp_path / "data", generated="x")


@pytest.mark.parametrize("present, missing, folder", [("Au", "tampered", "Tp/"), ("Tp", "authentic", "Au/")])
def test_one_class_only_is_refused_at_fetch_naming_the_missing_folder(tmp_path, present, missing, folder):
    src = tmp_path / "src"
    name = "Au_ani_00001.jpg" if present == "Au" else "Tp_D_CRN_S_N_cha00063_art00014_11818.jpg"
    tiny_image(src / "CASIA2" / present / name, 1)
    with pytest.raises(InputError) as err:
        fetch_dataset("casia", tmp_path / "data", source=src)
    assert f"no {missing} CASIA v2 images" in str(err.value) and folder in str(err.value)
    assert dataset_status("casia", tmp_path / "data") == "absent"


def test_a_version_of_one_class_is_refused_beside_a_whole_one(tmp_path):
    src = tmp_path / "src"
    make_casia(src, with_samples=False)
    shutil.rmtree(src / "CASIA 1.0 dataset" / "Modified Tp")
    with pytest.raises(InputError, match="no tampered CASIA v1 images"):
        fetch_dataset("casia", tmp_path / "data", source=src)


def test_unrecognised_layout_is_refused_at_fetch_with_what_was_expected(tmp_path):
    src = tmp_path / "src"
    tiny_image(src / "photos" / "holiday.jpg", 1)
    with pytest.raises(InputError) as err:
        fetch_dataset("casia", tmp_path / "data", source=src)
    msg = str(err.value)
    assert "expected files named Au_*/Tp_*/Sp_*" in msg and "photos" in msg and "\n" not in msg
    assert not (tmp_path / "data" / "casia").exists()


def test_not_fetched_names_the_command(tmp_path):
    with pytest.raises(InputError, match=r"dataset casia is not in .*; run: ganfp fetch-data casia"):
        load_manifest("casia", tmp_path / "empty")
