"""The CLI options several commands share, each declared once with its help and its range (style rule 7).

Used as `seed: SeedOpt = 0`. A value out of range is a click usage error: one line, exit 2,
before any work starts. Only typer and the standard library are imported here, so `ganfp --help`
stays fast.
"""

from __future__ import annotations

import math
from typing import Annotated, Optional

import typer

from ganfp.errors import MAX_SEED  # numpy's seed range, which training takes; errors imports no numpy
from ganfp.numerals import DECIMAL_HINT, WHOLE_HINT, read_decimal, read_whole


def whole_number(text: str | int) -> int:
    """The parser of every integer option (`typer.Option(parser=whole_number)`): digits 0-9, a leading minus at most.

    Typer and click read an int option with int() (or pydantic), which takes `1_0` as 10, spaces around it, a
    leading `+`, and other scripts' digits: `--k 1_0` ran with k=10. Such a value is a usage error naming the option
    and the value. A default (already a number) passes.
    """
    if not isinstance(text, str):
        return text
    value = read_whole(text)
    if value is None:
        raise typer.BadParameter(f"{text!r} is not {WHOLE_HINT}")
    return value


def decimal_number(text: str | float) -> float:
    """The parser of every float option: digits 0-9, a point, an exponent (`1e-3`), a leading minus at most; "nan"
    and "inf" pass on to the option's own check, which names its range."""
    if not isinstance(text, str):
        return text
    value = read_decimal(text)
    if value is None:
        raise typer.BadParameter(f"{text!r} is not {DECIMAL_HINT}")
    return value


def int_option(*decls: str, **kwargs) -> typer.models.OptionInfo:
    """`typer.Option` of an int option, read by `whole_number`: every int option of every command is made here."""
    return typer.Option(*decls, parser=whole_number, **kwargs)


def float_option(*decls: str, **kwargs) -> typer.models.OptionInfo:
    """`typer.Option` of a float option, read by `decimal_number`: every float option of every command is made here."""
    return typer.Option(*decls, parser=decimal_number, **kwargs)


def _finite(value: Optional[float]) -> Optional[float]:
    """Click's FLOAT reads "nan" and "inf"; no threshold or fraction means anything as either."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _number(value: float) -> str:
    """A bound as the user would type it: 4294967295, not :g's 4.29497e+09."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def in_range(low: float | None = None, high: float | None = None):
    """A callback refusing a value outside [low, high] with the value and the bound in the message.

    Typer's own `min=`/`max=` would say "Input should be greater than or equal to 1", without the value.
    """

    def check(value):
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number")
        if low is not None and value < low:
            raise typer.BadParameter(f"{_number(value)} is below the minimum {_number(low)}")
        if high is not None and value > high:
            raise typer.BadParameter(f"{_number(value)} is above the maximum {_number(high)}")
        return value

    return check


def _open_fraction(value: Optional[float]) -> Optional[float]:
    """0 < q < 1: all-used or none-used is a constant labelling, not a decision."""
    if value is not None and not 0 < value < 1:
        raise typer.BadParameter(f"{value:g} is not between 0 and 1 (0 < q < 1)")
    return value


def path_given(option: str, what: str = "a folder"):
    """A callback refusing an empty path: `"$DIR"` with DIR unset would quietly mean the current folder (`classify
    ""` scored it) or the default (`--runs-dir ""`, `--generated ""` and `--ids ""` were as good as not given).
    Spaces alone are refused here too, in the option's words, as the library refuses them in its arguments'."""

    def check(value: Optional[str] | list[str]) -> Optional[str] | list[str]:
        from ganfp.errors import InputError

        for one in value if isinstance(value, list) else [value]:  # a repeatable option's each path (--from)
            if one is not None and not one.strip():
                raise InputError(f"{option} {one!r}: an empty path; give {what}")
        return value

    return check


def _data_root(value: Optional[str]) -> Optional[str]:
    """The data root (flag, else $GANFP_DATA, else the default) must be a folder ganfp can write: checked first."""
    from ganfp.fileio import check_writable
    from ganfp.paths import data_root

    check_writable(data_root(path_given("--data-root")(value)), "data root", folder=True)
    return value


def _data_root_to_read(value: Optional[str]) -> Optional[str]:
    """A data root only read (fetch-data --list) may be read-only or missing; a file is still no data root.
    The command checks that it can write there before it fetches."""
    from ganfp.fileio import check_folder
    from ganfp.paths import data_root

    check_folder(data_root(path_given("--data-root")(value)), "data root")
    return value


DATA_ROOT_HELP = "Data folder (default: $GANFP_DATA, else the per-user data folder)."
RUNS_HELP = "Folder of chain runs (default: $GANFP_RUNS, else ./runs)."
MEMORY_HELP = ("GB of RAM the image cache may take (default: a quarter of RAM); a larger cache is memory-mapped "
               "from disk.")
SEED_HELP = ("Seed (0 to 2**32 - 1) of every random step: split, initialisation, shuffling, augmentation, "
             "calibration folds and bootstrap, demo data.")
USED_FRACTION_HELP = ("Label the top fraction by score as used, 0 < q < 1: the known prevalence (default 0.5; "
                      "classify --calibrate: the dev prevalence).")
K_HELP = "Neighbours (>= 1) per image of a neighbour method or fusion (default: local 40, the others 5)."
WINDOW_HELP = ("HU window of DICOM/NIfTI images: CENTER,WIDTH or lung, mediastinum, bone (default: lung, -1000..400 "
               "HU, for CT; images a checkpoint reads: the window it was trained in).")
HU_OFFSET_HELP = ("16-bit grayscale PNG/TIFF images store HU + N (COVID-CTset: 1024; many PNG sets: 32768): read "
                  "them in HU, in the --window, as DICOM is (default: each stretched between its own percentiles; "
                  "images a checkpoint reads: the offset it was trained with).")
# what classify and attribute offer when a --features model's ImageNet weights cannot be had (train-stage: --init)
OFFLINE_FEATURES_HINT = ("choose a feature space that needs no download: --features checkpoint (your chain run's "
                         "model) or a pixel space such as pixels32")

# ganfp.models' registry, written out because registering a model imports torch, which `ganfp --help` must not
# (2 s instead of 0.15 s); tests/test_models.py checks that the two agree
MODEL_NAMES = ("conv5", "resnet18", "vgg11", "vit_b_32")
MODEL_HELP = f"Model name: {', '.join(MODEL_NAMES)}, or any timm model (see: ganfp models list)."

DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda.")]
DataRootOpt = Annotated[Optional[str], typer.Option("--data-root", callback=_data_root, help=DATA_ROOT_HELP)]
ReadDataRootOpt = Annotated[Optional[str], typer.Option("--data-root", callback=_data_root_to_read,
                                                          help=DATA_ROOT_HELP)]
RunsDirOpt = Annotated[Optional[str], typer.Option("--runs-dir", callback=path_given("--runs-dir"), help=RUNS_HELP)]
ModelOpt = Annotated[str, typer.Option("--model", help=MODEL_HELP)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of tables.")]
SeedOpt = Annotated[Optional[int], int_option("--seed", callback=in_range(0, MAX_SEED), help=SEED_HELP)]
DemoSeedOpt = Annotated[  # fetch-data draws nothing else: the shared help's training steps do not apply there
    Optional[int],
    int_option("--seed", callback=in_range(0, MAX_SEED), help="Seed (0 to 2**32 - 1) of the demo data's draw."),
]
ImageSizeOpt = Annotated[
    Optional[int],
    int_option("--image-size", callback=in_range(8, 4096), help="Resize every image to N x N (8 to 4096)."),
]
BatchSizeOpt = Annotated[
    Optional[int], int_option("--batch-size", callback=in_range(1), help="Images per batch (at least 1).")
]
MemoryBudgetOpt = Annotated[Optional[float], float_option("--memory-budget", callback=in_range(0), help=MEMORY_HELP)]
UsedFractionOpt = Annotated[
    Optional[float], float_option("--used-fraction", callback=_open_fraction, help=USED_FRACTION_HELP)
]
ThresholdOpt = Annotated[
    Optional[float],
    float_option("--threshold", callback=_finite, help="Label score >= threshold as used, instead of by rank."),
]
# what an empty output path is told to give instead
FILE_NAME = "a file name"
ReportOpt = Annotated[Optional[str], typer.Option("--report", callback=path_given("--report", FILE_NAME),
                                                help="Also write an HTML evidence report (self-contained; needs "
                                                "ganfp[plots]).")]
REPORT_N_HELP = "Evidence rows in the --report: the N most and the N least suspicious images (at least 1; default 24)."
ReportNOpt = Annotated[Optional[int], int_option("--report-n", callback=in_range(1), help=REPORT_N_HELP)]
KOpt = Annotated[Optional[int], int_option("--k", callback=in_range(1), help=K_HELP)]
# the model classify's classifier and --features checkpoint read (classify, evaluate --report, attribute): one meaning,
# so a report or an attribution can be built on the model the images were scored with
CHECKPOINT_HELP = ("The model of --features checkpoint (and of classify's classifier): a stage folder, chain run "
                   "folder or model.safetensors (default: the newest chain run's last stage).")
CheckpointOpt = Annotated[Optional[str], typer.Option(
    "--checkpoint", callback=path_given("--checkpoint", "a stage folder, chain run folder or model.safetensors"),
    help=CHECKPOINT_HELP)]
# how DICOM and NIfTI files (and, with --hu-offset, 16-bit PNG/TIFF) become images (ganfp.data.medical.MedicalReading):
# classify scores them so, evaluate --report draws them the same way, attribute reads them so, and train-stage and
# chain train in the window (and offset) given
WindowOpt = Annotated[Optional[str], typer.Option("--window", help=WINDOW_HELP)]
HuOffsetOpt = Annotated[
    Optional[int],  # 65535: ganfp.data.medical.HU_OFFSET_MAX, which would import numpy here
    int_option("--hu-offset", callback=in_range(0, 65535), metavar="N", help=HU_OFFSET_HELP),
]
IdFromOpt = Annotated[
    Optional[str],
    typer.Option("--id-from", help="Ids of DICOM files: name (the file name, default) or uid (SOPInstanceUID)."),
]
SlicesOpt = Annotated[
    Optional[str],
    typer.Option("--slices", help="NIfTI axial slices to read: START:STOP (STOP excluded) or one slice number "
                 "(default: all)."),
]
