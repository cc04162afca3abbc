"""The command line: commands listed, one-line errors with exit code 2, never a traceback for a user mistake."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.images import write_class_folder, write_frames


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "ganfp", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("fetch-data", "train-stage", "chain", "evaluate", "classify"):
        assert command in out


def one_line_error(code: int, err: str, expected_code: int, *fragments: str) -> None:
    """The error is one line, the last thing printed (progress lines may come before it)."""
    lines = [l for l in err.strip().splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error:")]
    assert code == expected_code, err
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_unknown_model_and_chain(run_cli, tmp_path):
    """Each names the option it came from, as classify's `--method knnn: choose one of ...` does (the two said only
    "unknown model 'resnet19'" and "unknown chain 'nope'")."""
    one_line_error(*run_cli("chain", "--model", "resnet19", "--chain", "demo")[::2], 2,
                   "error: --model: unknown model 'resnet19'", "conv5, resnet18, vgg11, vit_b_32")
    one_line_error(*run_cli("chain", "--chain", "nope")[::2], 2, "error: --chain: unknown chain 'nope'", "demo, paper")


def test_the_other_commands_option_says_what_does_it_here(run_cli, tmp_path):
    """`chain --resume` (train-stage's way to continue) was only "No such option", nothing on how a chain goes on."""
    code, _, err = run_cli("chain", "--chain", "demo", "--resume", "--runs-dir", tmp_path / "runs")
    one_line_error(code, err, 2, "No such option: --resume; a chain continues its interrupted stage and skips its "
                   "finished ones when simply run again", "(see 'ganfp chain --help')")
    one_line_error(*run_cli("chain", "--force")[::2], 2, "--force; --from-stage STAGE trains that stage")
    one_line_error(*run_cli("train-stage", "--from-stage", "x")[::2], 2, "--from-stage is a chain option")
    one_line_error(*run_cli("chain", "--bogus")[::2], 2, "No such option: --bogus (see 'ganfp chain --help')")
    assert not (tmp_path / "runs").exists()


def test_missing_dataset_folder(run_cli, tmp_path):
    code, _, err = run_cli("train-stage", "--data", tmp_path / "nowhere", "--out", tmp_path / "o", "--data-root", tmp_path)
    one_line_error(code, err, 2, "unknown dataset")


def test_unreadable_image_names_the_file_and_skip_bad_goes_on(run_cli, tmp_path):
    data = write_class_folder(tmp_path / "ds", 8, 16)
    (data / "a" / "corrupt.png").write_bytes(b"garbage")
    args = ["train-stage", "--data", data, "--model", "conv5", "--image-size", "16", "--epochs", "1", "--batch-size", "4", "--data-root", tmp_path / "root"]
    code, _, err = run_cli(*args, "--out", tmp_path / "o1")
    one_line_error(code, err, 2, "corrupt.png: not an image file")
    assert not (tmp_path / "o1" / "model.safetensors").exists()
    code, out, err = run_cli(*args, "--out", tmp_path / "o2", "--skip-bad")
    assert code == 0 and "skipped" in err and "corrupt.png" in err
    assert (tmp_path / "o2" / "model.safetensors").exists()


def test_a_volume_in_one_file_is_refused_and_skip_bad_skips_it(run_cli, tmp_path):
    """A multi-page TIFF trained as its first slice, without a word; it is bad input like a corrupt file."""
    data = write_class_folder(tmp_path / "ds", 8, 16)
    write_frames(data / "b" / "volume.tif", 5)
    args = ["train-stage", "--data", data, "--model", "conv5", "--image-size", "16", "--epochs", "1",
            "--batch-size", "4", "--data-root", tmp_path / "root"]
    code, _, err = run_cli(*args, "--out", tmp_path / "o1")
    one_line_error(code, err, 2, "volume.tif: holds 5 frames", "one image per slice", "--skip-bad")
    code, _, err = run_cli(*args, "--out", tmp_path / "o2", "--skip-bad")
    assert code == 0 and "skipped" in err and "volume.tif: holds 5 frames" in err, err
    assert (tmp_path / "o2" / "model.safetensors").exists()


def test_unusable_options_are_usage_errors(run_cli, tmp_path):
    data = write_class_folder(tmp_path / "ds", 4, 16)
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "o", "--device", "cuda:7" , "--data-root", tmp_path)
    assert code == 2 and "Traceback" not in err
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "o", "--epochs", "many")
    assert code == 2 and "Traceback" not in err


def test_the_help_lists_written_out_are_the_registries():
    """`--pseudo-labels` and `--chain` name their choices by hand (the registries import torch, which `ganfp --help`
    must not): a source or chain added, renamed or dropped must be edited there too."""
    from ganfp.chain import builtin_chains
    from ganfp.cli.train import BUILTIN_CHAINS, PSEUDO_SOURCES
    from ganfp.pseudo import PSEUDO_LABELERS

    assert list(PSEUDO_SOURCES) == PSEUDO_LABELERS.names()
    assert sorted(BUILTIN_CHAINS) == builtin_chains()


def test_fetch_data_help_names_every_dataset():
    """Its NAME help folds the years (`imageclef-gans-2023/2024/2025`); unfolded, it lists the registry."""
    import re

    from ganfp.cli.data import DATASETS_HELP
    from ganfp.fetch.registry import DATASETS

    def unfold(m: re.Match) -> str:
        return ", ".join(m.group(1) + year for year in m.group(2).split("/"))

    listed = re.sub(r"([a-z-]+-)(\d{4}(?:/\d{4})+)", unfold, DATASETS_HELP.removeprefix("Dataset: ").rstrip("."))
    assert listed.split(", ") == list(DATASETS)


def test_version_is_printed_as_installed(run_cli):
    """A bug report starts with the version: `ganfp --version` prints the installed package's own."""
    from importlib.metadata import version

    code, out, err = run_cli("--version")
    assert code == 0 and out == f"ganfp {version('ganfp')}\n" and not err


def test_a_gpu_the_machine_lacks_is_a_usage_error_before_any_work(run_cli, tmp_path, monkeypatch):
    """On a one-GPU machine `--device cuda:7` used to pass the check and end in torch's "invalid device
    ordinal" traceback at the first tensor moved there (seen on an H200)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    data = write_class_folder(tmp_path / "ds", 4, 16)
    code, _, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "o", "--device", "cuda:7", "--data-root", tmp_path)
    assert code == 2 and "device: this machine has 1 CUDA device (cuda:0; or cuda, auto), got 'cuda:7'" in err
    assert not (tmp_path / "o").exists()


def test_paths_print_as_written_not_as_markup_or_emoji(run_cli, tmp_path, monkeypatch):
    """A path holding rich markup (`[/x]`, `[bold]`) or an emoji code (`:one:`) prints as it is: no MarkupError
    after the work is done, no vanished `[bold]`, no `folder1️⃣`."""
    closing, opening = tmp_path / "data[/x]", tmp_path / "data[bold]"
    code, out, err = run_cli("fetch-data", "--list", "--data-root", closing)
    assert code == 0 and f"data root: {closing}" in out, err
    write_class_folder(tmp_path / "ds", n_per_class=2, size=16)
    (opening / "a.csv").parent.mkdir()
    code, out, err = run_cli("classify", tmp_path / "ds" / "a", "--generated", tmp_path / "ds" / "b", "--out",
                             opening / "a.csv", "--data-root", tmp_path / "data")
    assert code == 0 and str(opening / "a.csv") in out, err
    monkeypatch.chdir(tmp_path)
    (tmp_path / ":one:").mkdir()
    (tmp_path / "ds" / "a" / "a000.png").rename(tmp_path / ":one:" / "a000.png")
    code, out, err = run_cli("classify", ":one:", "--generated", tmp_path / "ds" / "b", "--out", "s.csv",
                             "--data-root", tmp_path / "data")
    assert code == 2 and err.startswith("error: :one:: holds 1 real image"), err



def test_tables_align_numbers_right_and_words_left(run_cli, tmp_path, capsys):
    """Words right-aligned under a wide header read badly ("fetch-data --list", a classify summary's values)."""
    code, out, err = run_cli("fetch-data", "--list", "--data-root", tmp_path)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("│ casia "))
    cells = row.strip("│").split("│")
    assert all(c.startswith(" ") and not c.startswith("  ") for c in cells), row  # each cell reads from the left

    from ganfp import ui

    ui.print_table("t", ["name", "count", "note"], [("a", 1, "x"), ("bbbbbb", 12345, "-"), ("c", None, "yyyyyy")])
    rows = [line.strip("│").split("│") for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert [r[1] for r in rows] == ["     1 ", " 12345 ", "     - "]  # a number column: right
    assert [r[2] for r in rows] == [" x      ", " -      ", " yyyyyy "]  # words: left


def test_the_command_reference_is_the_help_the_commands_print():
    """docs/cli.md says it is generated from --help: every block must still be what the command prints."""
    import os
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    blocks = [b for b in re.findall(r"```text\n(.*?)```", doc, flags=re.S) if b.startswith("Usage: ganfp")]
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    assert len(blocks) >= 8
    for block in blocks:
        words = block.splitlines()[0].split()[2:]
        command = words[: words.index("[OPTIONS]")]
        shown = subprocess.run([sys.executable, "-m", "ganfp", *command, "--help"], capture_output=True, text=True,
                               env=env, check=True).stdout
        assert shown.strip() == block.strip(), f"docs/cli.md is stale for `ganfp {' '.join(command)} --help`: regenerate it"


def test_a_table_written_to_a_file_keeps_long_paths_whole(run_cli, tmp_path):
    """`ganfp classify ... > out.txt`: a summary cut to 160 columns ended a long --out path in "…"."""
    write_class_folder(tmp_path / "ds", n_per_class=2, size=16)
    out_csv = tmp_path / ("results_of_the_audit_" + "x" * 150) / "submission.csv"
    out_csv.parent.mkdir()
    code, out, err = run_cli("classify", tmp_path / "ds" / "a", "--generated", tmp_path / "ds" / "b", "--out", out_csv,
                             "--data-root", tmp_path / "data")
    assert code == 0 and str(out_csv) in out and "…" not in out, out


def test_a_table_on_a_narrow_terminal_folds_long_values(capsys, monkeypatch):
    """On an 80-column terminal a cell too long folds onto more lines; "…" would hide the end of a path."""
    import io

    from rich.console import Console

    from ganfp import ui

    screen = Console(file=io.StringIO(), width=80, force_terminal=True, no_color=True)
    monkeypatch.setattr(ui, "out", screen)
    path = "/data/" + "long_folder_name_" * 8 + "submission.csv"
    ui.print_table("classify", ["", "value"], [("submission", path)])
    shown = "".join(line.strip("│ ").split("│")[-1].strip() for line in screen.file.getvalue().splitlines()
                    if line.startswith("│"))
    assert path in shown and "…" not in screen.file.getvalue()


def test_json_holds_plain_numbers_only(capsys):
    """JSON has no NaN or Infinity (jq and JSON.parse refuse them), and a numpy number printed as its str() would be
    a string."""
    import json

    import numpy as np

    from ganfp import ui

    ui.print_json({"auc": float("nan"), "gap": np.float32(0.25), "k": np.int64(3), "sizes": np.array([4, 5]),
                   "ok": np.bool_(True), "worst": -np.inf})

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    doc = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert doc == {"auc": None, "gap": 0.25, "k": 3, "sizes": [4, 5], "ok": True, "worst": None}
    assert type(doc["k"]) is int and type(doc["gap"]) is float


def test_force_color_into_a_file_draws_no_bars_and_cuts_no_table(tmp_path, monkeypatch):
    """FORCE_COLOR (set in many CI jobs for coloured logs) made rich treat a file as a terminal: progress bars redrew
    their frames into the log, and tables were cut to 80 columns."""
    import io
    import os
    import re

    from rich.console import Console

    from ganfp import ui

    monkeypatch.setattr(ui, "err", Console(file=io.StringIO(), force_terminal=True))
    assert ui.progress().disable
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "80"}
    shown = subprocess.run([sys.executable, "-m", "ganfp", "fetch-data", "--list", "--data-root", tmp_path],
                           capture_output=True, text=True, env=env, check=True).stdout
    lines = re.sub(r"\x1b\[[0-9;]*m", "", shown).splitlines()
    assert any("(ImageCLEFmedical GANs 2023)" in line for line in lines), shown  # one line, not folded at 80


# ------------------------------------------------------------------------------- the commands' parameters


def command_functions(typer_app=None, path: tuple[str, ...] = ()):
    """(command path, function) of every command of the app, a sub-app's (`models list`) included."""
    from ganfp.cli import app

    typer_app = typer_app or app
    for info in typer_app.registered_commands:
        yield (*path, info.name or info.callback.__name__.replace("_", "-")), info.callback
    for group in typer_app.registered_groups:
        yield from command_functions(group.typer_instance, (*path, group.name))


def declared_parameters():
    """(command path, parameter name, its type without Optional, its typer OptionInfo or ArgumentInfo) of every
    parameter of every command, read off their signatures."""
    import inspect
    import typing

    for path, callback in command_functions():
        hints = typing.get_type_hints(callback, include_extras=True)
        for name, param in inspect.signature(callback).parameters.items():
            hint, declared = hints[name], param.default
            if typing.get_origin(hint) is typing.Annotated:
                hint, declared = typing.get_args(hint)[0], typing.get_args(hint)[1]
            kinds = [t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
            yield path, name, kinds[0] if len(kinds) == 1 else hint, declared


def option_name(name: str, option) -> str:
    decls = [d for d in option.param_decls if d.startswith("--")]
    return decls[0] if decls else f"--{name.replace('_', '-')}"


# ------------------------------------------------------------------------------- empty paths

# The text parameters that take a word, not a path: every other one is a path and refuses "" (and spaces alone)
# by name. A new path option is covered as declared; a new word option fails here until it is listed.
WORDS = {"NAME", "--via", "--model", "--name", "--pseudo-labels", "--pseudo-features", "--device", "--window",
         "--from-stage", "--features", "--id-from", "--slices", "--task", "--method", "--clusters", "--columns"}


def path_parameters() -> list[tuple[tuple[str, ...], str, int]]:
    """(command path, option or argument, arguments before it) of every path parameter of every command."""
    import typing

    import typer

    found, arguments = [], {}
    for path, name, kind, declared in declared_parameters():
        if kind is not str and typing.get_origin(kind) is not list:
            continue
        if isinstance(declared, typer.models.ArgumentInfo):
            shown = declared.metavar or name.upper()
            before = arguments[path] = arguments.get(path, -1) + 1
        else:
            shown, before = option_name(name, declared), 0
        if shown not in WORDS:
            found.append((path, shown, before))
    return found


PATH_PARAMETERS = path_parameters()


def test_every_command_has_its_path_parameters_found():
    found = {(" ".join(path), shown) for path, shown, _ in PATH_PARAMETERS}
    assert {("classify", "REAL"), ("classify", "--out"), ("evaluate", "LABELS"), ("evaluate", "--plot"),
            ("attribute", "--out"), ("train-stage", "--init"), ("chain", "--runs-dir"), ("fetch-data", "--from"),
            ("classify", "--data-root"), ("fetch-data", "--data-root")} <= found


@pytest.mark.parametrize("path, shown, before", PATH_PARAMETERS,
                         ids=[f"{' '.join(p)} {s}" for p, s, _ in PATH_PARAMETERS])
def test_a_path_parameter_refuses_an_empty_path_by_name_before_any_work(run_cli, tmp_path, monkeypatch, path, shown,
                                                                        before):
    """`--out "$DIR/x.csv"` is safe, `--out "$OUT"` with OUT unset is not: pathlib reads "" as the current folder.
    Every path of every command refuses it, and spaces alone, in the one shared callback, as it is parsed: one line
    naming the option (exit 2), before a missing option or any other check, and nothing written."""
    monkeypatch.setenv("GANFP_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GANFP_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        given = [*(["x"] * before), empty] if not shown.startswith("--") else [shown, empty]
        code, out, err = run_cli(*path, *given)
        assert code == 2 and out == "" and err.count("\n") == 1, (empty, err)
        assert err.startswith(f"error: {shown} {empty!r}: an empty path; give "), (empty, err)
    assert not any(tmp_path.iterdir()), sorted(tmp_path.rglob("*"))


def test_a_blank_data_root_or_runs_folder_in_the_environment_is_refused_by_name(run_cli, tmp_path, monkeypatch):
    """$GANFP_DATA of spaces alone was a data root `  ` in the current folder, and $GANFP_RUNS's was refused as
    `--runs-dir`, which was not given. Empty, either is unset (tests/test_data_core.py)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANFP_DATA", "  ")
    code, out, err = run_cli("fetch-data", "--list")
    assert code == 2 and out == "" and err == "error: $GANFP_DATA '  ': an empty path; give a folder, or unset it\n"
    monkeypatch.setenv("GANFP_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GANFP_RUNS", " ")
    code, out, err = run_cli("chain", "--chain", "demo", "--dry-run")
    assert code == 2 and out == "" and err == "error: $GANFP_RUNS ' ': an empty path; give a folder, or unset it\n"
    assert not any(tmp_path.iterdir()), sorted(tmp_path.rglob("*"))


# ------------------------------------------------------------------------------- numbers as a user writes them


def numeric_options() -> list[tuple[tuple[str, ...], str, type]]:
    """(command path, option, int or float) of every number option of every command."""
    import typer

    return [(path, option_name(name, declared), kind) for path, name, kind, declared in declared_parameters()
            if isinstance(declared, typer.models.OptionInfo) and kind in (int, float)]


NUMERIC_OPTIONS = numeric_options()


def test_every_command_has_its_number_options_found():
    found = {(" ".join(path), option) for path, option, _ in NUMERIC_OPTIONS}
    assert {("classify", "--k"), ("attribute", "--max-clusters"), ("evaluate", "--image-size"), ("chain", "--lr"),
            ("train-stage", "--val-fraction"), ("fetch-data", "--seed"), ("classify", "--threshold")} <= found


@pytest.mark.parametrize("path, option, kind", NUMERIC_OPTIONS,
                         ids=[f"{' '.join(p)} {o}" for p, o, _ in NUMERIC_OPTIONS])
def test_a_number_option_takes_digits_only(run_cli, path, option, kind):
    """int() and float() take `1_0` (10), spaces around a number, a leading `+` and other scripts' digits: `attribute
    --clusters 3_0` clustered into 30, `--k 1_0` read 10. Every number option refuses each in one line naming the
    option and the value (exit 2), before anything else is checked."""
    for value in ("1_0", " 10", "10 ", "+10", "١٠", "۳", "0x10", *(["10.0", "1e1"] if kind is int else ["1_0.5"])):
        code, out, err = run_cli(*path, option, value)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and out == "" and len(lines) == 1, (value, err)
        assert lines[0].startswith(f"error: Invalid value for '{option}': {value!r} is not "), (value, lines[0])


def test_the_number_parsers_keep_what_a_user_writes():
    from ganfp.cli.options import decimal_number, whole_number

    assert [whole_number(t) for t in ("10", "0", "-5", "007")] == [10, 0, -5, 7]
    assert [decimal_number(t) for t in ("0.5", ".5", "5.", "1e-3", "2.5E+2", "-1", "3")] == [0.5, 0.5, 5.0, 0.001,
                                                                                              250.0, -1.0, 3.0]
    assert [str(decimal_number(t)) for t in ("nan", "inf", "-Infinity")] == ["nan", "inf", "-inf"]  # their range's
    assert whole_number(3) == 3 and decimal_number(0.25) == 0.25  # a default is already a number


@pytest.mark.parametrize("args, says", [
    (("attribute", "{img}", "--out", "{tmp}/c.csv", "--clusters", "3_0"), "--clusters '3_0': give a number"),
    (("attribute", "{img}", "--out", "{tmp}/c.csv", "--clusters", "٣"), "--clusters '٣': give a number"),
    (("attribute", "{img}", "--out", "{tmp}/c.csv", "--clusters", "+3"), "--clusters '+3': give a number"),
    (("classify", "{img}", "--out", "{tmp}/s.csv", "--window", "4_0,400"), "--window 4_0,400: give CENTER,WIDTH"),
    (("classify", "{img}", "--out", "{tmp}/s.csv", "--window", "٤٠,400"), "--window ٤٠,400: give CENTER,WIDTH"),
    (("classify", "{img}", "--out", "{tmp}/s.csv", "--slices", "١:٣"), "--slices ١:٣: give START:STOP"),
    (("classify", "{img}", "--out", "{tmp}/s.csv", "--method", "knn", "--features", "pixels١٦"),
     "--features pixels١٦"),
])
def test_numbers_read_by_hand_take_digits_only(run_cli, tmp_path, args, says):
    """The values ganfp parses itself (a cluster count, a window, a slice range, a feature space's size) follow the
    same rule as the number options."""
    write_class_folder(tmp_path / "img", n_per_class=2, size=16)
    code, out, err = run_cli(*(a.format(img=tmp_path / "img", tmp=tmp_path) for a in args))
    one_line_error(code, err, 2, says)
    assert out == ""


def test_scientific_and_spaced_windows_still_read():
    from ganfp.data.medical import parse_slices, parse_window

    assert parse_window("-6e2, 1.5e3") == (-600.0, 1500.0) and parse_window("40,400") == (40.0, 400.0)
    assert parse_slices(" 40 : 80 ") == (40, 80)


# ------------------------------------------------------------------------------- warnings in --json


def test_every_warning_shown_is_in_the_json_once_in_order(run_cli, tmp_path):
    """A file skipped as not an image is logged by the library and printed as a warning, but was missing from the
    --json "warnings", where a script looks: each command's JSON now holds every warning it printed, once (a folder
    read twice warns once), in the order printed, and the screen is as it was."""
    import json

    from helpers.membership_cases import write_case

    real, gen, _ = write_case(tmp_path / "case")
    (real / "scan.raw").write_bytes(b"not an image")
    (gen / "notes.raw").write_bytes(b"not an image")
    skipped = [f"{real}: 1 file skipped, not in an image format ganfp reads (first: scan.raw)",
               f"{gen}: 1 file skipped, not in an image format ganfp reads (first: notes.raw)"]
    root = ("--data-root", tmp_path / "data")
    code, out, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--features", "pixels16", "--k",
                             "50", "--out", tmp_path / "s.csv", *root, "--json")
    warnings = json.loads(out)["warnings"]
    assert code == 0 and warnings[:2] == skipped and len(warnings) == 3 and warnings[2].startswith("--k 50"), err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [f"warning: {w}" for w in warnings]

    code, out, err = run_cli("attribute", gen, "--clusters", "2", "--features", "pixels8", "--out", tmp_path / "c.csv",
                             "--device", "cpu", *root, "--json")
    assert code == 0 and json.loads(out)["warnings"] == skipped[1:], err

    code, out, err = run_cli("fetch-data", "--list", *root, "--json")
    assert code == 0 and json.loads(out)["warnings"] == [], err  # every command's object has them


def test_train_stage_json_holds_the_warnings_its_data_logged(run_cli, tmp_path):
    import json

    data = write_class_folder(tmp_path / "ds", n_per_class=8, size=16)
    (data / "a" / "scan.raw").write_bytes(b"not an image")
    code, out, err = run_cli("train-stage", "--data", data, "--out", tmp_path / "stage", "--model", "conv5",
                             "--image-size", "16", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
                             "--data-root", tmp_path / "data", "--json")
    assert code == 0, err
    (stage,) = json.loads(out)
    assert [w for w in stage["warnings"] if "skipped" in w] == [
        f"{data / 'a'}: 1 file skipped, not in an image format ganfp reads (first: scan.raw)"], stage["warnings"]


def test_chain_json_puts_each_logged_warning_in_its_stage_dry_run_too(run_cli, tmp_path):
    """`chain --json` (and `--dry-run --json`) print one object per stage, and got none of the warnings the library
    logged (a stage's files skipped as not images): each is now in the "warnings" of the stage it came from, whether
    the stage's dataset was listed while the chain was planned or while the stage trained; the screen shows it once."""
    import json

    one, two = write_class_folder(tmp_path / "d1", 12, 16, seed=1), write_class_folder(tmp_path / "d2", 12, 16, seed=2)
    (two / "a" / "scan.raw").write_bytes(b"not an image")
    skipped = f"{two / 'a'}: 1 file skipped, not in an image format ganfp reads (first: scan.raw)"
    chain = tmp_path / "c.toml"
    chain.write_text(f'name = "c"\n[defaults]\nimage_size = 16\nbatch_size = 8\nepochs = 1\n'
                     f'[[stages]]\nname = "one"\ndataset = "{one}"\n[[stages]]\nname = "two"\ndataset = "{two}"\n')
    args = ["chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs", "--data-root",
            tmp_path / "root", "--device", "cpu", "--json"]
    for extra in (["--dry-run"], []):
        code, out, err = run_cli(*args, *extra)
        assert code == 0, err
        first, second = json.loads(out)
        assert not any("skipped" in w for w in first["warnings"]), (extra, out)
        assert [w for w in second["warnings"] if "skipped" in w] == [skipped], (extra, out)
        assert " ".join(err.split()).count("file skipped") == 1, err


def test_a_warning_shown_before_any_stage_goes_in_the_first_stages_json(tmp_path):
    """A chain's warning of no stage (the chain file's, the demo data being rebuilt) goes in the first stage's
    "warnings", and every stage keeps its own: the JSON stays a list of stage objects."""
    from ganfp import ui

    with ui.collecting_warnings():
        for text in ("about the chain", "of stage one", "of stage two"):
            ui.warn(text)
        stages = ui.stage_warnings([{"stage": "one", "warnings": ["of stage one", "own"]},
                                    {"stage": "two", "warnings": ["of stage two"]}], own=["left behind"])
    assert stages == [{"stage": "one", "warnings": ["about the chain", "of stage one", "left behind", "own"]},
                      {"stage": "two", "warnings": ["of stage two"]}]
