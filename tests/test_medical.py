"""DICOM and NIfTI: HU windowing checked against hand-computed values, ids, slices, cache keys, refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from helpers.images import copy_case
from helpers.medical import INTERCEPT, u8_to_hu, write_acr_nema, write_ct_dicom, write_nifti

from ganfp.data.adapters.folder import folder_manifest
from ganfp.data.cache import load_images
from ganfp.data.decode import decode_image
from ganfp.data.manifest import image_files
from ganfp.data.medical import MedicalReading, parse_slices, parse_window
from ganfp.errors import InputError
from ganfp.submission import read_predictions

pydicom = pytest.importorskip("pydicom", reason="needs the medical extra (pydicom)")
nibabel = pytest.importorskip("nibabel", reason="needs the medical extra (nibabel)")

# HU of each row of the test slice -> its 8-bit value in the lung window (-1000..400 HU), by hand:
# (HU + 1000) * 255 / 1400, rounded half up, clipped to 0..255
LUNG = {-1024: 0, -1000: 0, -650: 64, -300: 128, 0: 182, 400: 255, 976: 255}
# the same HU in the mediastinum window (center 40, width 400: -160..240 HU): (HU + 160) * 255 / 400
MEDIASTINUM = {-1024: 0, -1000: 0, -650: 0, -300: 0, 0: 102, 400: 255, 976: 255}


def rows_slice(size: int = 16) -> np.ndarray:
    """A CT slice whose rows hold the HU values of LUNG, in order, repeated down the image."""
    values = np.array(list(LUNG), dtype=np.float64)
    return np.repeat(values[np.arange(size) % len(values)][:, None], size, axis=1)


def expected_rows(table: dict, size: int = 16) -> np.ndarray:
    values = np.array(list(table.values()), dtype=np.uint8)
    return np.repeat(values[np.arange(size) % len(values)][:, None], size, axis=1)


def test_dicom_hounsfield_window_matches_hand_computed_values(tmp_path):
    path = write_ct_dicom(tmp_path / "slice.dcm", rows_slice())
    assert float(pydicom.dcmread(path).RescaleIntercept) == INTERCEPT  # stored values really are shifted
    assert np.array_equal(decode_image(str(path), 16), expected_rows(LUNG))
    mediastinum = parse_window("mediastinum")
    assert np.array_equal(decode_image(str(path), 16, window=mediastinum), expected_rows(MEDIASTINUM))
    assert parse_window("40,400") == mediastinum


def test_files_not_read_as_images_are_counted_in_a_warning_naming_the_first(tmp_path, caplog):
    """An ACR-NEMA file (no DICM preamble, no extension) cannot be told from any other file: skipped, not silently."""
    write_ct_dicom(tmp_path / "IM0001", rows_slice())
    write_acr_nema(tmp_path / "IM0002", rows_slice())
    write_acr_nema(tmp_path / "IM0003", rows_slice())
    (tmp_path / "labels.csv").write_text("id,label\n")  # beside every image set: not reported
    assert [it.id for it in folder_manifest(tmp_path).items] == ["IM0001"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"{tmp_path}: 2 files skipped" in warnings[0]
    assert "(first: IM0002)" in warnings[0] and "ACR-NEMA" in warnings[0]


def test_a_folder_mixing_dicom_with_png_slices_is_warned_of_once_per_read(tmp_path, caplog):
    """DICOM slices, windowed in HU when read, beside 8-bit PNGs read by their pixel values: two intensity scales in
    one set, read without a word."""
    from ganfp.data.real import read_real

    for i in range(2):
        write_ct_dicom(tmp_path / "real" / f"ct{i}.dcm", rows_slice())
    for i in range(3):
        Image.fromarray(np.full((16, 16), 60 * i, np.uint8)).save(tmp_path / "real" / f"png{i}.png")
    write_ct_dicom(tmp_path / "dicom_only" / "ct.dcm", rows_slice())
    for call in (1, 2):
        assert len(read_real(str(tmp_path / "real"), tmp_path)) == 5
        assert len(read_real(str(tmp_path / "dicom_only"), tmp_path)) == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        caplog.clear()
        assert len(warnings) == 1, (call, warnings)
        assert warnings[0].startswith(f"{tmp_path / 'real'}: mixes DICOM (2) and PNG (3) files"), warnings


def test_classes_each_in_another_intensity_scale_are_warned_of(tmp_path, caplog):
    """`covid/` all DICOM (windowed in HU) and `normal/` all PNG (stored values): each folder is one format, yet a
    model learns the format, not the slices; one format in every class says nothing."""
    from ganfp.data.adapters.folder import folder_manifest

    write_ct_dicom(tmp_path / "split" / "covid" / "ct.dcm", rows_slice())
    write_ct_dicom(tmp_path / "same" / "covid" / "ct.dcm", rows_slice())
    write_ct_dicom(tmp_path / "same" / "normal" / "ct.dcm", rows_slice())
    (tmp_path / "split" / "normal").mkdir()
    Image.fromarray(np.full((16, 16), 60, np.uint8)).save(tmp_path / "split" / "normal" / "n.png")
    for call in (1, 2):
        assert folder_manifest(tmp_path / "split").classes == ["covid", "normal"]
        assert len(folder_manifest(tmp_path / "same")) == 2
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        caplog.clear()
        assert len(warnings) == 1, (call, warnings)
        assert warnings[0].startswith(f"{tmp_path / 'split'}: class covid holds only DICOM or NIfTI files"), warnings
        assert "class normal only images read by their stored pixel values" in warnings[0]


def test_dicom_found_by_extension_or_preamble_only(tmp_path):
    write_ct_dicom(tmp_path / "a.dcm", rows_slice())
    write_ct_dicom(tmp_path / "IM0002", rows_slice())  # no extension: the DICM preamble says what it is
    write_ct_dicom(tmp_path / "1.2.840.99.3", rows_slice())  # named by its UID: the "extension" is digits
    (tmp_path / "notes").write_bytes(b"not an image" * 20)
    (tmp_path / "readme.txt").write_text("text")
    assert [p.name for p in image_files(tmp_path)] == ["1.2.840.99.3", "IM0002", "a.dcm"]
    uids = MedicalReading.parse(id_from="uid")
    manifest = folder_manifest(tmp_path, reading=uids)
    assert all(i == str(pydicom.dcmread(it.path).SOPInstanceUID) for i, it in zip(manifest.ids, manifest.items))
    assert folder_manifest(tmp_path).ids == ["1.2.840.99.3", "IM0002", "a"]


def test_siemens_ima_files_are_read_as_dicom_and_keep_their_name_as_id(tmp_path, run_cli, caplog):
    """`.IMA`, Siemens' DICOM export, was skipped as a file in no image format: a folder of them held no images."""
    write_ct_dicom(tmp_path / "real" / "IM-0001-0001.IMA", rows_slice())
    write_ct_dicom(tmp_path / "real" / "IM-0001-0002.ima", rows_slice())
    write_acr_nema(tmp_path / "real" / "OLD.IMA", rows_slice())  # no DICM preamble: not read, and said so
    assert [p.name for p in image_files(tmp_path / "real")] == ["IM-0001-0001.IMA", "IM-0001-0002.ima"]
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "1 file skipped" in warning and "(first: OLD.IMA)" in warning and "ACR-NEMA" in warning
    manifest = folder_manifest(tmp_path / "real")
    assert manifest.ids == ["IM-0001-0001", "IM-0001-0002"]
    images = load_images(manifest, 16, tmp_path / "cache").images
    assert np.array_equal(images[0, 0] if images.ndim == 4 else images[0], expected_rows(LUNG))
    write_ct_dicom(tmp_path / "gen" / "g.IMA", rows_slice())
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "gen", "--out",
                           tmp_path / "s.csv", "--data-root", tmp_path / "root", "--device", "cpu")
    assert code == 0, err
    assert sorted(read_predictions(tmp_path / "s.csv", ["IM-0001-0001", "IM-0001-0002"]).ids) == [
        "IM-0001-0001", "IM-0001-0002"]


def test_dicom_files_named_by_their_uid_keep_every_part_in_their_ids(tmp_path):
    """`Path.stem` took a UID's last part for an extension: the two slices below were both `...969`, refused as
    one id. Every reader of ids (a submission's image_path column, an attribution table, evaluate's hint) keeps it
    too, and a name with dots before a real image extension loses only that extension."""
    from ganfp.attribution.files import read_class_table
    from ganfp.data.real import read_real

    series = "1.2.840.113619.2.55.3.604688119.969"
    for part in (1, 2):
        write_ct_dicom(tmp_path / "real" / f"{series}.{part}", rows_slice())
    write_ct_dicom(tmp_path / "real" / "scan.v2.dcm", rows_slice())
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "real" / "scan.v3.PNG")
    manifest = read_real(str(tmp_path / "real"))
    assert manifest.ids == [f"{series}.1", f"{series}.2", "scan.v2", "scan.v3"]
    rows = "".join(f"real/{Path(it.path).name},{n % 2}\n" for n, it in enumerate(manifest.items))
    (tmp_path / "p.csv").write_text("image_path,label\n" + rows)
    assert read_predictions(tmp_path / "p.csv", manifest.ids).ids == manifest.ids
    (tmp_path / "t.csv").write_text("image_path,predicted_class\n" + rows)
    assert read_class_table(tmp_path / "t.csv").ids == manifest.ids


def test_a_multi_frame_dicom_is_refused_with_its_frame_count(tmp_path):
    """An enhanced CT series stores a volume in one file; its message matches the multi-page TIFF's."""
    path = write_ct_dicom(tmp_path / "volume.dcm", rows_slice())
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError, match=r"volume\.dcm: holds 3 frames \(a multi-frame DICOM\).*one file per slice"):
        decode_image(str(path), 16)


def test_compressed_dicom_refused_naming_the_plugin(tmp_path, run_cli):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder plugin is installed here: nothing to refuse")
    path = write_ct_dicom(tmp_path / "real" / "packed.dcm", rows_slice(), compressed=True)
    with pytest.raises(InputError, match=r"packed\.dcm: JPEG-LS Lossless.* pip install pylibjpeg pylibjpeg-libjpeg"):
        decode_image(str(path), 16)
    write_ct_dicom(tmp_path / "real" / "plain.dcm", rows_slice())
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "real", "--out",
                           tmp_path / "s.csv", "--data-root", tmp_path / "data")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "pip install pylibjpeg" in lines[0], err


def nifti_volume(slices: int = 3, size: int = 16) -> np.ndarray:
    """(x, y, z): slice z holds one HU value of LUNG, and a marker (400 HU) at the patient's left-anterior corner."""
    values = list(LUNG)[1 : 1 + slices]
    hu = np.stack([np.full((size, size), v, dtype=np.float64) for v in values], axis=2)
    hu[0, size - 1, :] = 400.0  # x = 0: patient's left (RAS+); y = last: most anterior
    return hu


def test_nifti_slices_are_images_with_ids_windows_and_radiological_orientation(tmp_path):
    write_nifti(tmp_path / "vol" / "chest.nii.gz", nifti_volume())
    manifest = folder_manifest(tmp_path / "vol")
    assert manifest.ids == ["chest_0000", "chest_0001", "chest_0002"]
    assert {it.group for it in manifest.items} == {"chest"}  # one volume never straddles a split
    images = load_images(manifest, 16, data_root=tmp_path / "data").images.numpy()
    for z, value in enumerate(list(LUNG.values())[1:4]):
        expected = np.full((16, 16), value, dtype=np.uint8)
        expected[0, 15] = 255  # anterior at the top, the patient's left on the image's right
        assert np.array_equal(images[z], expected), z
    chosen = folder_manifest(tmp_path / "vol", reading=MedicalReading.parse(slices="1:3"))
    assert chosen.ids == ["chest_0001", "chest_0002"]
    assert parse_slices("2") == (2, 3) and parse_slices(":5") == (None, 5)
    with pytest.raises(InputError, match="--slices 7:"):
        folder_manifest(tmp_path / "vol", reading=MedicalReading.parse(slices="7:"))


def test_decode_cache_key_includes_the_window(tmp_path):
    for cls in ("used", "not_used"):
        write_ct_dicom(tmp_path / "ds" / cls / f"{cls}.dcm", rows_slice())
    lung = folder_manifest(tmp_path / "ds", classes=["not_used", "used"])
    bone = folder_manifest(tmp_path / "ds", classes=["not_used", "used"], reading=MedicalReading.parse(window="bone"))
    assert lung.labelled and lung.labels.tolist() == [0, 1]  # a labelled dataset for train-stage, as any folder
    first = load_images(lung, 16, data_root=tmp_path / "data")
    second = load_images(bone, 16, data_root=tmp_path / "data")
    assert first.path != second.path and not second.reused
    assert np.array_equal(first.images[0].numpy(), expected_rows(LUNG))
    assert not np.array_equal(first.images.numpy(), second.images.numpy())
    assert load_images(lung, 16, data_root=tmp_path / "data").reused


def test_without_the_extra_one_line_names_it(tmp_path, run_cli, monkeypatch):
    write_ct_dicom(tmp_path / "real" / "a.dcm", rows_slice())
    write_ct_dicom(tmp_path / "real" / "b.dcm", rows_slice())
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom now raises ImportError
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "real", "--out",
                           tmp_path / "s.csv", "--data-root", tmp_path / "data")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "install ganfp[medical]" in lines[0], err


@pytest.mark.parametrize("option, value", [("--window", "wide"), ("--window", "40,-5"), ("--id-from", "series"),
                                           ("--slices", "9:3")])
def test_bad_reading_options_are_one_line(tmp_path, run_cli, option, value):
    code, _, err = run_cli("classify", tmp_path, "--out", tmp_path / "s.csv", option, value)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and option in lines[0], err


def test_classify_a_folder_of_dicom_files(tmp_path, run_cli):
    """Used slices reappear (noisy) among the generated ones; classify must find them from DICOM alone."""
    case = copy_case(n_real=8, extra=4)
    real, used, generated = case["real"], case["used"], case["generated"]
    for i, img in enumerate(real):
        write_ct_dicom(tmp_path / "real" / f"ct{i}.dcm", u8_to_hu(img))
    for i, img in enumerate(generated):
        write_ct_dicom(tmp_path / "gen" / f"g{i}", u8_to_hu(img))
    out = tmp_path / "s.csv"
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "gen", "--out", out,
                           "--data-root", tmp_path / "data")
    assert code == 0, err
    preds = read_predictions(out, [f"ct{i}" for i in range(8)])
    assert dict(zip(preds.ids, preds.labels.tolist())) == {f"ct{i}": int(used[i]) for i in range(8)}


def test_calibration_reads_dicom_dev_images_with_the_same_window(tmp_path):
    """--calibrate DEV must see its DICOM images as the scored ones are seen: a recipe chosen on
    lung-windowed images says nothing about bone-windowed ones."""
    from ganfp.classify import dev_sets

    for part in ("used", "not_used", "generated"):
        write_ct_dicom(tmp_path / "dev" / part / f"{part}.dcm", rows_slice())
    bone = MedicalReading.parse(window="bone")
    real, generated = dev_sets(str(tmp_path / "dev"), reading=bone)
    expected = decode_image(str(tmp_path / "dev" / "used" / "used.dcm"), 16, window=parse_window("bone"))
    for manifest in (real, generated):
        images = load_images(manifest, 16, data_root=tmp_path / "data").images.numpy()
        assert all(np.array_equal(img, expected) for img in images)
    assert not np.array_equal(expected, expected_rows(LUNG))  # the window really changes the pixels


@pytest.mark.parametrize("option, value, kind", [("--slices", "0:2", "NIfTI volume"), ("--id-from", "uid", "DICOM file")])
def test_reading_option_that_changes_nothing_is_refused(tmp_path, run_cli, option, value, kind):
    """--slices over DICOM files only, --id-from over NIfTI volumes only: refused before any work, not ignored."""
    if option == "--slices":
        for name in ("a", "b"):
            write_ct_dicom(tmp_path / "real" / f"{name}.dcm", rows_slice())
    else:
        write_nifti(tmp_path / "real" / "chest.nii.gz", nifti_volume())
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "real", "--out",
                           tmp_path / "s.csv", "--data-root", tmp_path / "data", option, value)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and option in lines[0] and f"no {kind}" in lines[0], err
    assert not (tmp_path / "data").exists() and not (tmp_path / "s.csv").exists()  # nothing decoded, nothing written


def write_dicomdir(path):
    """The index file a DICOM export medium carries (Media Storage Directory Storage): DICM preamble, no image."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MediaStorageDirectoryStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.FileSetID = meta, "EXPORT"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_dicomdir_is_an_index_not_an_image(tmp_path, run_cli):
    """A hospital export: extension-less slices beside the DICOMDIR that indexes them; classify reads the slices."""
    for i in range(3):
        write_ct_dicom(tmp_path / "export" / f"IM{i:06d}", rows_slice())
    write_dicomdir(tmp_path / "export" / "DICOMDIR")
    assert [p.name for p in image_files(tmp_path / "export")] == ["IM000000", "IM000001", "IM000002"]
    code, _, err = run_cli("classify", tmp_path / "export", "--generated", tmp_path / "export", "--out",
                           tmp_path / "s.csv", "--data-root", tmp_path / "data")
    assert code == 0, err
    assert read_predictions(tmp_path / "s.csv", ["IM000000", "IM000001", "IM000002"]).ids == ["IM000000", "IM000001",
                                                                                                 "IM000002"]


def test_monochrome1_is_inverted_where_values_are_not_hu(tmp_path):
    """A CR stored MONOCHROME1 (low value = white) is shown as displayed: its own window, then inverted.
    A CT slice is windowed in HU whatever its photometric interpretation: air stays black."""
    hu = rows_slice()
    cr = [write_ct_dicom(tmp_path / f"cr{p[-1]}.dcm", hu, modality="CR", photometric=p)
          for p in ("MONOCHROME1", "MONOCHROME2")]
    # CR without WindowCenter/Width: the full range -1024..976 (center -24, width 2000) -> 0..255, by hand
    own = np.clip(np.floor((hu + 1024.0) * 255.0 / 2000.0 + 0.5), 0, 255).astype(np.uint8)
    assert np.array_equal(decode_image(str(cr[1]), 16), own)
    assert np.array_equal(decode_image(str(cr[0]), 16), 255 - own)
    ct1 = write_ct_dicom(tmp_path / "ct1.dcm", hu, photometric="MONOCHROME1")
    assert np.array_equal(decode_image(str(ct1), 16), expected_rows(LUNG))


def test_nifti_nan_voxels_are_black_without_a_warning(tmp_path):
    """Float volumes often hold NaN outside the scan: 0 (as padding is), and no RuntimeWarning line on stderr."""
    import warnings

    hu = nifti_volume(slices=2).astype(np.float32)
    hu[3:6, 3:6, :] = np.nan
    hu[0, 0, :] = np.inf
    path = tmp_path / "vol" / "masked.nii"
    path.parent.mkdir()
    nibabel.save(nibabel.Nifti1Image(hu, np.eye(4)), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = load_images(folder_manifest(tmp_path / "vol"), 16, data_root=tmp_path / "data").images.numpy()
    expected = np.full((16, 16), LUNG[-1000], dtype=np.uint8)  # slice 0 holds -1000 HU
    expected[0, 15] = 255  # the 400 HU marker (anterior, the patient's left)
    expected[15 - np.arange(3, 6)[:, None], 15 - np.arange(3, 6)] = 0  # x, y = 3..5 shown radiologically
    expected[15, 15] = 255  # +inf: the top of the window
    assert np.array_equal(images[0], expected)


def test_the_same_uid_twice_names_the_uid_as_the_id(tmp_path, run_cli):
    """Two copies of one slice under --id-from uid: the error says the ids are UIDs, not file names."""
    for name in ("a", "b"):
        write_ct_dicom(tmp_path / "real" / f"{name}.dcm", rows_slice(), uid="1.2.3.4")
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "real", "--out",
                           tmp_path / "s.csv", "--data-root", tmp_path / "data", "--id-from", "uid")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "'1.2.3.4'" in lines[0] and "SOPInstanceUID" in lines[0], err
    assert "file names" not in lines[0]


def test_a_volume_with_a_trailing_axis_of_one_reads_as_its_3d_form(tmp_path):
    """(x, y, z, 1), as some converters write a single volume, is that volume; a true time series is refused."""
    hu = nifti_volume()
    write_nifti(tmp_path / "flat" / "chest.nii.gz", hu)
    write_nifti(tmp_path / "four" / "chest.nii.gz", hu[..., None])
    three, four = (load_images(folder_manifest(tmp_path / name), 16, data_root=tmp_path / "data").images.numpy()
                   for name in ("flat", "four"))
    assert four.shape == (3, 16, 16) and np.array_equal(three, four)
    write_nifti(tmp_path / "series" / "chest.nii.gz", np.stack([hu, hu], axis=3))
    with pytest.raises(InputError, match=r"must have 3 dimensions, this one has shape \(16, 16, 3, 2\)"):
        folder_manifest(tmp_path / "series")


def test_the_imageclef_test_layout_reads_dicom_and_nifti_as_a_flat_folder_does(tmp_path, run_cli):
    """`real_unknown_1/` beside `generated_1/` used to read its real images without the reading options:
    lung-windowed under `--window bone` (the generated ones bone-windowed) and a NIfTI volume as one image."""
    case = copy_case(n_real=6, extra=4)
    layout, flat = tmp_path / "layout", tmp_path / "flat"
    for folder, real_dir, gen_dir in ((layout, "real_unknown_1", "generated_1"), (flat, "real", "gen")):
        for i, img in enumerate(case["real"]):
            write_ct_dicom(folder / real_dir / f"ct{i}.dcm", u8_to_hu(img) + 300.0)  # bright: the window matters
        write_nifti(folder / real_dir / "chest.nii.gz", nifti_volume(size=32))
        for i, img in enumerate(case["generated"]):
            write_ct_dicom(folder / gen_dir / f"g{i}.dcm", u8_to_hu(img) + 300.0)
    scores = {}
    for name, args in (("layout", (layout,)), ("flat", (flat / "real", "--generated", flat / "gen"))):
        scores[name] = tmp_path / f"{name}.csv"
        code, _, err = run_cli("classify", *args, "--window", "bone", "--out", tmp_path / f"{name}-sub.csv",
                               "--scores", scores[name], "--data-root", tmp_path / "data")
        assert code == 0, err
    assert scores["layout"].read_text() == scores["flat"].read_text()
    assert "chest_0002" in scores["layout"].read_text()  # the volume's slices are images
