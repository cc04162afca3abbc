"""`covid-ctset`: COVID-CTset's 16-bit CT slices, normal (0) vs covid (1), grouped by patient.

Labels come from the dataset's own lists (`all.csv`, or the fold lists `train1.csv` ...: any
CSV with `filename` and `class` columns), matched by file name (`137covid_patient1_SR_2_IM00010.tif`)
or, for the raw per-patient tree (`<folder>/patient1/SR_2/IM00010.tif`), by patient, series and
slice. Slices the lists do not name are not labelled and are left out. Without any list, a
`covid`/`normal` folder above the slice gives the label. Group = the patient, so a patient's
slices never straddle train and validation.

`covid-ctset:real-vs-generated` (or the option `generated=FOLDER`): the same real slices as
class "real" (0) against a folder of synthetic slices as "generated" (1), the paper's task.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ganfp.data.adapters import register_adapter
from ganfp.data.manifest import Item, Manifest, image_files, skipped_name
from ganfp.errors import InputError

CLASSES = ["normal", "covid"]
RVG_CLASSES = ["real", "generated"]
RVG = "real-vs-generated"
PATIENT = re.compile(r"patient\d+", re.I)
SERIES = re.compile(r"^sr_?\d+$", re.I)


def slice_names(path: Path, folder: Path) -> tuple[str, str | None, str | None]:
    """(full name, name without the batch prefix, patient) of a slice, all lower-case stems.

    A flat `137covid_patient1_SR_2_IM00010.tif` and a nested `137covid/patient1/SR_2/IM00010.tif`
    get the same names.
    """
    stem = path.stem.lower()
    m = PATIENT.search(stem)
    if m:
        return stem, stem[m.start():], m.group(0)
    dirs = [d.lower() for d in path.relative_to(folder).parts[:-1]]
    for i in range(len(dirs) - 1, -1, -1):
        if PATIENT.fullmatch(dirs[i]):
            tail = [d for d in dirs[i + 1 :] if SERIES.match(d)]
            key = "_".join([dirs[i], *tail, stem])
            full = f"{dirs[i - 1]}_{key}" if i > 0 else key
            return full, key, dirs[i]
    return stem, None, None


def _label_files(folder: Path) -> list[Path]:
    """The CSV files under `folder`, skipping hidden ones as image files are (macOS's `._all.csv` resource fork
    beside `all.csv` on a shared drive is binary, not a list)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".csv" and p.is_file()
                  and not any(skipped_name(part) for part in p.relative_to(folder).parts))


def read_label_lists(folder: Path) -> tuple[dict[str, str], dict[str, str], list[Path]]:
    """Labels by full name and by prefix-free name, from every `filename,class` CSV under `folder`."""
    by_full: dict[str, str] = {}
    by_key: dict[str, str] = {}
    lists = []
    for csv_path in _label_files(folder):
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                fields = {(k or "").strip().lower(): k for k in reader.fieldnames or []}
                if "filename" not in fields or "class" not in fields:
                    continue
                rows = [(r[fields["filename"]], r[fields["class"]]) for r in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{csv_path}: cannot read the label list ({exc})") from exc
        classes = [(cls or "").strip().lower() for _, cls in rows]
        if not any(c in CLASSES for c in classes):
            continue  # some other table with those columns, not a COVID-CTset label list
        lists.append(csv_path)
        for (name, _), cls in zip(rows, classes):
            if cls not in CLASSES:
                raise InputError(f"{csv_path}: class {cls!r} for {name!r}; expected covid or normal")
            full = Path((name or "").strip().replace("\\", "/")).stem.lower()
            if by_full.setdefault(full, cls) != cls:
                raise InputError(f"{csv_path}: {name} is labelled both {by_full[full]} and {cls} in the label lists")
            m = PATIENT.search(full)
            if m:
                by_key.setdefault(full[m.start():], cls)
    return by_full, by_key, lists


def _folder_class(path: Path, folder: Path) -> str | None:
    """`covid`, `COVID19`, `137covid` -> covid; `normal`, `normal3`, `non-covid` -> normal."""
    for d in reversed(path.relative_to(folder).parts[:-1]):
        low = d.lower()
        if "covid" in low:
            return "normal" if low.startswith("non") else "covid"
        if "normal" in low:
            return "normal"
    return None


def scan(folder: Path, where: str, source: str = "covid-ctset") -> tuple[list[Item], dict]:
    """The labelled slices under `folder` (label index into CLASSES, group = patient)."""
    by_full, by_key, lists = read_label_lists(folder)
    slices = image_files(folder)
    items, unlabelled = [], 0
    for path in slices:
        full, key, patient = slice_names(path, folder)
        if lists:
            cls = by_full.get(full) or (by_key.get(key) if key else None)
        else:
            cls = _folder_class(path, folder)
        if cls is None:
            unlabelled += 1
            continue
        items.append(Item(str(path.resolve()), CLASSES.index(cls), group=patient, source=source))
    if not items:
        top = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
        how = f"label list(s) {', '.join(p.name for p in lists)}" if lists else "no label list (all.csv) and no covid/normal folders"
        raise InputError(
            f"{where}: no labelled COVID-CTset slices: {len(slices)} image(s) and {how}; expected slices named like "
            f"137covid_patient1_SR_2_IM00010.tif or <folder>/patient1/SR_2/IM00010.tif with all.csv; found at the top: {', '.join(top) or 'nothing'}"
        )
    info = {"label_lists": [str(p) for p in lists], "unlabelled_skipped": unlabelled, "patients": len({it.group for it in items if it.group})}
    return items, info


def describe(folder: Path, where: str) -> dict:
    """Counts per class; an unrecognised layout, or slices of one class only, is an InputError."""
    items, info = scan(folder, where)
    counts = {c: sum(it.label == i for it in items) for i, c in enumerate(CLASSES)}
    _check_both_classes(counts, info["label_lists"], where)
    return {"counts": counts, "patients": info["patients"], "unlabelled_skipped": info["unlabelled_skipped"]}


def _check_both_classes(counts: dict[str, int], lists: list[str], where: str) -> None:
    """Slices of one class cannot train stage 2 (covid vs normal): refuse them at import (one part of several given,
    the normal patients' folders left out), as CASIA's import refuses one class, not mark them ready for the stage to
    fail on."""
    for cls in CLASSES:
        if not counts[cls]:
            other = next(c for c in CLASSES if c != cls)
            how = (f"slices {', '.join(Path(p).name for p in lists)} labels {cls}" if lists
                   else f"slices under a {cls} folder")
            raise InputError(f"{where}: no {cls} COVID-CTset slices ({how}), only {counts[other]} {other}; import the "
                             "whole dataset, with both its covid and normal slices (several parts: one --from each)")


def _generated_folder(arg: str | None, options: dict, spec: str) -> Path | None:
    generated = options.pop("generated", None)
    if arg and arg.startswith(RVG + "="):
        generated = generated or arg.split("=", 1)[1]
        arg = RVG
    if arg not in (None, RVG):
        raise InputError(f"{spec}: unknown task {arg!r}; use covid-ctset or covid-ctset:{RVG} (with generated=FOLDER)")
    if options:
        raise InputError(f"{spec}: unknown option(s) {', '.join(sorted(options))} (covid-ctset takes generated=FOLDER)")
    if arg == RVG and not generated:
        raise InputError(f"{spec}: needs a folder of synthetic slices: covid-ctset:{RVG}=FOLDER or the option generated=FOLDER")
    return Path(generated).expanduser() if generated else None


def folders(arg: str | None, data_root: Path, generated: str | None = None, **options) -> list[Path]:
    """The fetched copy's folder and the synthetic slices' FOLDER (`real-vs-generated=FOLDER`, or the option
    `generated=FOLDER`, which wins, as in `load`): the output check counted the copy alone, so an output named like
    an image among the synthetic slices joined them in the next run."""
    generated = generated or (arg.split("=", 1)[1] if arg and arg.startswith(RVG + "=") else "")
    return [data_root / "covid-ctset"] + ([Path(generated).expanduser()] if generated else [])


@register_adapter("covid-ctset", f"COVID-CTset (ganfp fetch-data covid-ctset): covid vs normal; covid-ctset:{RVG}=FOLDER for real vs generated",
                  describe=describe, folders=folders)
def load(arg: str | None, data_root: Path, **options) -> Manifest:
    from ganfp.fetch.store import require_ready

    spec = f"covid-ctset:{arg}" if arg else "covid-ctset"
    generated = _generated_folder(arg, dict(options), spec)
    folder = require_ready("covid-ctset", data_root)
    items, info = scan(folder, str(folder), source=spec)
    if generated is None:
        return Manifest(spec, list(CLASSES), items, str(folder), info)
    if not generated.is_dir():
        raise InputError(f"{generated}: no such folder (the synthetic slices for {spec})")
    fakes = image_files(generated)
    if not fakes:
        raise InputError(f"{generated}: no images found (the synthetic slices for {spec})")
    real = [Item(it.path, 0, group=it.group, source=spec) for it in items]
    fake = [Item(str(p.resolve()), 1, source=spec) for p in fakes]
    info["generated"] = str(generated.resolve())
    return Manifest(spec, list(RVG_CLASSES), real + fake, str(folder), info)

