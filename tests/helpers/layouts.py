"""Builders of tiny datasets in the real datasets' layouts, shared by the adapter, fetch and chain tests.

`build_paper_fixtures(data_root, work)` installs casia, covid-ctset and imageclef-gans-2023 (dev and
test) through `fetch_dataset --from`, so the `paper` chain can run on them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CASIA_SAMPLES = SHARED / "data" / "casia2-samples"
COVID_ALL_CSV = SHARED / "data" / "covid-ctset" / "all.csv"


def tiny_image(path: Path, value: int = 0, size: int = 32, mode: str = "RGB") -> Path:
    """A small image whose pixels depend on `value` (so images differ); format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    arr = rng.integers(0, 255, (size, size, 3) if mode == "RGB" else (size, size), dtype=np.uint8)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF"}[path.suffix.lower()]
    Image.fromarray(arr, mode=mode).save(path, format=fmt)
    return path


def ct_slice(path: Path, value: int = 0, size: int = 32) -> Path:
    """A 16-bit grayscale TIFF (PIL mode I;16) with CT-like values 0-5000, as COVID-CTset stores them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    img = Image.fromarray(rng.integers(0, 5000, (size, size), dtype=np.uint16))
    assert img.mode == "I;16"
    img.save(path, format="TIFF")
    return path


# ---- CASIA ------------------------------------------------------------------------------------
CASIA_V2_AU = ["Au_ani_00001.jpg", "Au_art_00014.JPG", "Au_cha_00063.bmp", "Au_pla_00033.jpg"]
CASIA_V2_TP = ["Tp_D_CRN_S_N_cha00063_art00014_11818.jpg", "Tp_S_NNN_S_N_pla00033_pla00033_10001.TIF"]
CASIA_V1_AU = ["Au_ani_0001.jpg", "Au_pla_0023.jpg"]
CASIA_V1_TP = ["Sp_D_CND_A_pla0005_pla0023_0281.jpg", "Sp_S_CND_A_pla0016_pla0016_0196.jpg"]


def make_casia(folder: Path, with_samples: bool = True) -> dict:
    """A Kaggle-like CASIA tree (v2 nested under casia/CASIA2, v1 as 'CASIA 1.0 dataset') with masks and oddities.

    Returns the expected {"v1"/"v2": {"authentic": n, "tampered": n}}.
    """
    v2 = folder / "casia" / "CASIA2"
    for i, name in enumerate(CASIA_V2_AU):
        tiny_image(v2 / "Au" / name, i)
    tiny_image(v2 / "Au" / "IMG_misnamed_0001.jpg", 50)  # no prefix: the Au folder labels it
    for i, name in enumerate(CASIA_V2_TP):
        tiny_image(v2 / "Tp" / name, 10 + i)
    tiny_image(v2 / "Tp" / "Tp_D_NRD_S_N_cha10002_cha10001_20094_gt3.png", 60, mode="L")  # a mask, misnamed _gt3
    tiny_image(v2 / "Tp" / "tp_d_nnn_m_n_ani00001_ani00001_10002.jpg", 61)  # lower-case prefix
    (v2 / "Au" / "Thumbs.db").write_bytes(b"not an image")
    tiny_image(folder / "casia" / "CASIA 2 Groundtruth" / "Tp_D_CRN_S_N_cha00063_art00014_11818.png", 70, mode="L")
    tampered_v2 = len(CASIA_V2_TP) + 1
    if with_samples and CASIA_SAMPLES.is_dir():
        for src in CASIA_SAMPLES.iterdir():
            shutil.copy(src, v2 / "Tp" / src.name)  # real JPEG/TIFF samples and their _gt.png masks
        tampered_v2 += sum(1 for p in CASIA_SAMPLES.iterdir() if not p.stem.endswith("_gt"))
    v1 = folder / "CASIA 1.0 dataset"
    for i, name in enumerate(CASIA_V1_AU):
        tiny_image(v1 / "Au" / name, 20 + i)
    for i, name in enumerate(CASIA_V1_TP):
        tiny_image(v1 / "Modified Tp" / "Tp" / ("CM" if "_S_" in name else "Sp") / name, 30 + i)
    return {
        "v2": {"authentic": len(CASIA_V2_AU) + 1, "tampered": tampered_v2},
        "v1": {"authentic": len(CASIA_V1_AU), "tampered": len(CASIA_V1_TP)},
    }


# ---- COVID-CTset ------------------------------------------------------------------------------
FALLBACK_ROWS = [  # real rows of all.csv, for a clone without ../shared
    ("137covid_patient1_SR_2_IM00010.tif", "covid"),
    ("137covid_patient1_SR_2_IM00011.tif", "covid"),
    ("137covid_patient1_SR_3_IM00020.tif", "covid"),
    ("157covid_patient124_SR_2_IM00018.tif", "covid"),
    ("normal1_patient168_SR_2_IM00011.tif", "normal"),
    ("normal1_patient168_SR_2_IM00012.tif", "normal"),
    ("normal5_patient168_SR_2_IM00011.tif", "normal"),
    ("normal5_patient168_SR_2_IM00012.tif", "normal"),
    ("normal2_patient205_SR_2_IM00006.tif", "normal"),
    ("cdunnormal_patient151_SR_2_IM00008.tif", "normal"),
]


def covid_rows(per_patient: int = 2, patients_per_class: int = 3) -> list[tuple[str, str]]:
    """(filename, class) rows from the real all.csv (when ../shared is there, else a fixed copy of such rows).

    A few patients of each class, and patient168, whose slices sit under two batch folders.
    """
    if not COVID_ALL_CSV.is_file():
        return list(FALLBACK_ROWS)
    import csv

    rows, counts, patients = [], {}, {"covid": 0, "normal": 0}
    with open(COVID_ALL_CSV, newline="") as f:
        for row in csv.DictReader(f):
            name, cls = row["filename"], row["class"]
            key = tuple(name.split("_")[:2])
            if key not in counts:
                if patients[cls] >= patients_per_class and key[1] != "patient168":
                    continue
                patients[cls] += 1
                counts[key] = 0
            if counts[key] < per_patient:
                counts[key] += 1
                rows.append((name, cls))
    return rows


def write_label_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("filename,class\r\n" + "".join(f"{n},{c}\r\n" for n, c in rows))
    return path


def make_covid_flat(folder: Path, rows: list[tuple[str, str]]) -> None:
    """The Kaggle/Train&Validation layout: flat slices named like all.csv, lists in CSV/."""
    for i, (name, _) in enumerate(rows):
        ct_slice(folder / "Train&Validation" / name, i)
    ct_slice(folder / "Train&Validation" / "normal9_patient999_SR_2_IM00001.tif", 99)  # not in any list
    write_label_csv(folder / "CSV" / "all.csv", rows)


def make_covid_nested(folder: Path, rows: list[tuple[str, str]], with_csv: bool = True) -> None:
    """The raw per-patient layout `<batch>/<patient>/SR_<n>/IM<nnnnn>.tif` (all.csv beside it)."""
    for i, (name, _) in enumerate(rows):
        prefix, patient, sr, n, im = Path(name).stem.split("_")
        ct_slice(folder / "COVID-CTset" / prefix / patient / f"{sr}_{n}" / f"{im}.tif", i)
    if with_csv:
        write_label_csv(folder / "all.csv", rows)


def make_covid_class_folders(folder: Path) -> dict:
    """No label list: `covid/` and `normal/` folders with one sub-folder per patient."""
    for p in range(2):
        for s in range(3):
            ct_slice(folder / "covid" / f"patient{p + 1}" / f"IM{s:05d}.tif", p * 10 + s)
    for p in range(3):
        for s in range(2):
            ct_slice(folder / "normal" / f"patient{p + 100}" / f"IM{s:05d}.tif", 100 + p * 10 + s)
    return {"covid": 6, "normal": 6}


# ---- ImageCLEF GANs ---------------------------------------------------------------------------
def make_gans_dev(folder: Path, n_generated: int = 6, n_real: int = 4, nested: bool = False) -> None:
    """The 2023 development set: generated/, used/, not_used/ (8-bit grayscale PNG)."""
    real = folder / ("real" if nested else "")
    for i in range(n_generated):
        tiny_image(folder / "generated" / f"generated_{i + 1:04d}.png", 200 + i, mode="L")
    for i in range(n_real):
        tiny_image(real / "used" / f"used_{i + 1:04d}.png", 300 + i, mode="L")
        tiny_image(real / "not_used" / f"not_used_{i + 1:04d}.PNG", 400 + i, mode="L")


def make_gans_test(folder: Path, n_generated: int = 6, n_real: int = 6) -> None:
    """The 2023 test set: generated_1/ and real_unknown_1/."""
    for i in range(n_generated):
        tiny_image(folder / "generated_1" / f"generated_{i + 1:05d}.png", 500 + i, mode="L")
    for i in range(n_real):
        tiny_image(folder / "real_unknown_1" / f"real_unknown_{i + 1:04d}.png", 600 + i, mode="L")


def make_gans_attribution(folder: Path, classes=("t1", "t2", "t3"), per_class: int = 3) -> None:
    """2025 subtask 2: real/<class>, generated/<class>, generated_unknown/."""
    for c, cls in enumerate(classes):
        for i in range(per_class):
            tiny_image(folder / "real" / cls / f"real_{cls}_{i}.png", 700 + 10 * c + i, mode="L")
            tiny_image(folder / "generated" / cls / f"gen_{cls}_{i}.png", 800 + 10 * c + i, mode="L")
    for i in range(4):
        tiny_image(folder / "generated_unknown" / f"unknown_{i}.png", 900 + i, mode="L")


def build_paper_fixtures(data_root: Path, work: Path) -> Path:
    """casia, covid-ctset and imageclef-gans-2023 (dev + test) installed in `data_root`, enough for the `paper`
    chain."""
    from ganfp.fetch import fetch_dataset

    make_casia(work / "casia-src")
    rows = covid_rows(per_patient=4)
    make_covid_flat(work / "covid-src", rows)
    make_gans_dev(work / "gans-src" / "ImageCLEFmed_GANs_2023" / "dev", n_generated=8, n_real=8)
    make_gans_test(work / "gans-src" / "ImageCLEFmed_GANs_2023" / "test", n_real=24)
    fetch_dataset("casia", data_root, source=work / "casia-src")
    fetch_dataset("covid-ctset", data_root, source=work / "covid-src")
    fetch_dataset("imageclef-gans-2023", data_root, source=work / "gans-src")
    return data_root
