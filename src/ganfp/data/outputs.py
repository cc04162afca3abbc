"""The check that a command's outputs may be written, run by the library entry points before any work.

It lives here, not in the CLI, so that `classify(real, out="real/x.png")` from a notebook is refused as
`ganfp classify --out real/x.png` is: the CLI's own check runs first only to name its options (`--out`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ganfp.data.adapters import spec_folders
from ganfp.data.manifest import Manifest, is_image_file
from ganfp.errors import InputError
from ganfp.fileio import check_writable

PathLike = Optional[str | os.PathLike]


def _given_inputs(inputs: tuple[PathLike, ...], data_root: PathLike) -> list[Path]:
    """The inputs that are paths here, and the folders of those that are dataset specs (`demo:gans-test`, whose
    images are in the data root's `demo/`): an image written into a spec's folder joined its set as well."""
    given = [Path(i).expanduser() for i in inputs if i]
    return [folder.resolve() for path in given
            for folder in ([path] if path.exists() else spec_folders(os.fspath(path), data_root))]


def _overwritten(target: Path, given: list[Path]) -> Path | None:
    """The input `target` would overwrite: the file itself, or an image inside an input folder."""
    for source in given:
        if target == source or (_inside(target, source) and target.exists() and is_image_file(target)):
            return source
    return None


def _inside(target: Path, source: Path) -> bool:
    """A spec's folder may not be there yet (the demo, built on first use): a folder all the same."""
    return source in target.parents and not source.is_file()


def _joins_the_images(target: Path, given: list[Path]) -> Path | None:
    """The input folder a new file named like an image (`real/report.png`) would land in: the next run reads it as
    one of the set's images (a figure scored as a real image), or fails on it (a report is no image)."""
    if target.exists() or not is_image_file(target):
        return None
    return next((source for source in given if _inside(target, source)), None)


# What each output is written as, by its name (the CLI's option or the library's argument), and the suffixes that
# name another kind of file: `--report r.pdf` was written as HTML, and `--out o.html --report o.csv` (the two
# swapped) wrote each in the other's format, both found only when the file was opened.
WRITTEN_AS = {"--report": "an HTML page", "report": "an HTML page", "--out": "a CSV file", "out": "a CSV file",
              "--scores": "a CSV file", "scores_path": "a CSV file"}
OTHER_KINDS = {"an HTML page": {".csv", ".tsv", ".txt", ".json", ".pdf"}, "a CSV file": {".html", ".htm", ".pdf"}}
SUFFIX_FOR = {"an HTML page": ".html", "a CSV file": ".csv"}


def _kind_problem(option: str, path: PathLike) -> str | None:
    """Why `path` cannot be the `option` output by its name: `-` (a file named "-", not the terminal), or a suffix
    of another kind of file than the one written there."""
    if str(path).strip() == "-":
        return "ganfp writes its outputs to files, not to standard output; give a file name"
    kind, suffix = WRITTEN_AS.get(option), Path(path).suffix.lower()
    if kind and (suffix in OTHER_KINDS[kind] or is_image_file(Path(path))):
        return f"{kind} is written there, which {suffix} names as another kind of file; name it {SUFFIX_FOR[kind]}"
    return None


def check_outputs(outputs: dict[str, PathLike], inputs: tuple[PathLike, ...], draws: str = "--plot",
                  data_root: PathLike = None) -> None:
    """Every output writable, none the same file as another, none an input file or an image in an input folder
    (one named like an image included), and none but the figure (`draws`) an existing image: a CSV or report
    never goes over one.

    Run before any work: `--out s.csv --scores s.csv` would leave only the scores, and `--out real/x.png`
    would overwrite an image the command reads, both after the run had "succeeded". An input given as a dataset
    spec (`demo:gans-test`) counts as its folder in `data_root`.
    `outputs` maps each output's name (the CLI's option, or the library's argument) to its path.
    """
    seen: dict[Path, str] = {}
    given = _given_inputs(inputs, data_root)
    for option, path in outputs.items():
        if path is None:
            continue
        target = check_writable(path, option).resolve()
        if target in seen:
            raise InputError(f"{option} {path}: the same file as {seen[target]}; give each output its own path")
        seen[target] = option
        if option != draws and target.is_file() and is_image_file(target):
            raise InputError(f"{option} {path}: is an image; write the {option} file elsewhere")
        if (source := _overwritten(target, given)) is not None:
            raise InputError(f"{option} {path}: would overwrite the input {source}; write it elsewhere")
        if (source := _joins_the_images(target, given)) is not None:
            raise InputError(f"{option} {path}: named like an image inside the input folder {source}, where the next "
                             "run would read it as one of its images; write it elsewhere")
        if (why := _kind_problem(option, path)) is not None:
            raise InputError(f"{option} {path}: {why}")


def check_ground_truth(outputs: dict[str, PathLike], images: Manifest, spec: str) -> None:
    """No output is the ground truth of the images (a demo set's labels.csv, `images.info["labels"]`): `--out`
    naming it replaced the labels with the predictions, and the line printed to score them named one file twice.
    Known once the spec is read, which lists files only: run then, before any image is decoded."""
    labels = images.info.get("labels")
    for option, path in outputs.items():
        if path is not None and labels and _same_file(path, labels):
            raise InputError(f"{option} {path}: is the ground truth of {spec}, which ganfp evaluate scores the "
                             "output against; write it elsewhere")


def _same_file(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(Path(a).expanduser(), b)
    except OSError:  # an output not written yet
        return False
