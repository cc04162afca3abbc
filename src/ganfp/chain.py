"""A chain of stages, each starting from the previous stage's best checkpoint.

Chains are TOML files: a `[defaults]` table of StageConfig fields and a list of `[[stages]]`.
`paper` and `demo` are built in. The whole file is checked before the first stage trains, and
every bad key is reported at once with its line. A run lives in `<runs>/<chain>-<model>/`;
finished stages whose settings, starting point and images are unchanged are skipped when the chain
runs again. Pseudo-labelling an unlabelled stage happens here: the trainer receives labelled images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from ganfp import distributed
from ganfp.checkpoint import (
    CHAIN_FILE,
    MODEL_FILE,
    RESUME_FILE,
    altered_weights,
    resume_header,
    stage_status,
    weights_altered_once,
)
from ganfp.data.manifest import Manifest, folder_warnings_once, is_dicom, is_nifti, logged_warnings
from ganfp.data.medical import stores_hu
from ganfp.data.split import split_indices
from ganfp.device import device_name, rng_untouched, settings_kept
from ganfp.errors import (InputError, Interrupted, StopSignal, require_callable, require_flag, require_path,
                          require_paths)
from ganfp.fileio import check_writable, folder_lock, write_json, writer_of
from ganfp.models import model_entry
from ganfp.pseudo import PseudoSettings, check_source, pseudo_label
from ganfp.registry import did_you_mean
from ganfp.stage_folder import (
    StageState,
    check_out_dir,
    early_stop_kept,
    extension,
    extension_problem,
    resume_mismatch,
    setting_changes,
)
from ganfp.train import (
    OBSERVER_CALL,
    StageConfig,
    StageSummary,
    batch_warnings,
    check_imagenet_reachable,
    check_labels,
    check_request,
    check_window_read,
    completed,
    data_folder_holding,
    dataset_fingerprint,
    interrupted,
    listed_once,
    load_stage_images,
    option_problem,
    plain_name_problem,
    run_stage,
    said_before,
    setup_device,
    stage_manifest,
    start_identity,
)

log = logging.getLogger(__name__)

STAGE_FIELDS = {f.name for f in dataclasses.fields(StageConfig)}
LATER_INIT = "only the first stage has an init; each later stage starts from the stage before it"
TOP_KEYS = {"name", "description", "defaults", "stages"}


@dataclass
class ChainSpec:
    """A chain file, checked: its name, `[defaults]` and `[[stages]]` tables, and where each key was written."""

    name: str
    stages: list[dict]
    defaults: dict = field(default_factory=dict)
    description: str = ""
    where: str = ""  # the file (or built-in chain) it came from, for messages
    source: str = ""  # the file's absolute path, or "built-in NAME": what tells two chains of one name apart
    lines: dict = field(
        default_factory=dict, repr=False
    )  # (table, key) -> line number; table: None, "defaults" or stage index

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "defaults": self.defaults, "stages": self.stages}

    def locate(self, table, key: str) -> str:
        """`FILE:LINE` of a key, or just `FILE` when the line is unknown."""
        line = self.lines.get((table, key))
        return f"{self.where}:{line}" if line else self.where


def builtin_chains() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ganfp.chains").iterdir() if p.name.endswith(".toml"))


def _read(name_or_path: str) -> tuple[str, str, str, str]:
    """(text, where, default chain name, source)."""
    require_path("name_or_path", name_or_path)
    path = Path(name_or_path).expanduser()  # `~/chains/mine.toml` was "chain file not found"
    name_or_path = str(name_or_path)
    builtin = name_or_path in builtin_chains()  # a folder ./demo (demo data, a run) does not hide the built-in demo
    if path.suffix == ".toml" or path.is_file() or (path.exists() and not builtin):
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not a chain file (.toml)")
        if not path.is_file():
            raise InputError(f"{path}: chain file not found")
        try:
            text = path.read_text(encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise InputError(f"{path}: cannot read chain file ({exc.strerror})") from None
        return text, str(path), path.stem, str(path.expanduser().resolve())
    if builtin:
        text = resources.files("ganfp.chains").joinpath(f"{name_or_path}.toml").read_text()
        return text, name_or_path, name_or_path, f"built-in {name_or_path}"
    raise InputError(f"--chain: unknown chain {name_or_path!r}; choose one of: {', '.join(builtin_chains())}, or a "
                     ".toml file")


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def key_lines(text: str) -> dict:
    """(table, key) -> 1-based line of each key: table None at the top, "defaults", or the stage's index from 1."""
    lines, table, stage = {}, None, 0
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            if header.group(1) == "[[" and header.group(2) == "stages":
                stage += 1
                table = stage
            else:
                table = header.group(2)
            lines.setdefault((table, header.group(2)), number)
            lines.setdefault((None, header.group(2).split(".")[0].strip()), number)  # `[default]`: a top-level key
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((table, key.group(1).strip("\"'")), number)
    return lines


def load_chain(name_or_path: str) -> ChainSpec:
    """A built-in chain by name, or a user's TOML file, with its structure checked (types and ranges come
    with `stage_configs`, once the model and command-line overrides are known)."""
    text, where, stem, source = _read(name_or_path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: invalid TOML ({exc})") from exc
    spec = ChainSpec(name=raw.get("name", stem), stages=[], where=where, source=source, lines=key_lines(text))
    problems = _structure_problems(spec, raw) + _duplicate_names(spec, raw.get("stages"))
    if problems:
        raise InputError("; ".join(problems))
    spec.defaults, spec.description = raw.get("defaults", {}), raw.get("description", "")
    spec.stages = [{**table, "name": table.get("name", f"stage{i}")} for i, table in enumerate(raw["stages"], 1)]
    return spec


def _duplicate_names(spec: ChainSpec, stages) -> list[str]:
    """A stage named as an earlier one, with its line: a pasted `[[stages]]` table kept its name. Found with the
    file's other shape problems (a misspelt `[default]` hid it until that was fixed); entries that are no table are
    `_structure_problems`'."""
    first, out = {}, []
    for i, stage in enumerate(stages if isinstance(stages, list) else [], 1):
        if not isinstance(stage, dict):
            continue
        name = str(stage.get("name", f"stage{i}"))
        if name in first:
            out.append(f"{spec.locate(i, 'name')}: stage {i} name {name!r}: stage {first[name]} has it already; "
                       "stage names must be unique")
        first.setdefault(name, i)
    return out


def _structure_problems(spec: ChainSpec, raw: dict) -> list[str]:
    """Every problem with the file's shape: top-level keys, table types, unknown stage keys, missing datasets."""
    out = [
        f"{spec.locate(None, k)}: unknown top-level key {k!r}{did_you_mean(k, TOP_KEYS)}; "
        f"valid: {', '.join(sorted(TOP_KEYS))}"
        for k in raw
        if k not in TOP_KEYS
    ]
    why = "expected a string" if not isinstance(spec.name, str) else plain_name_problem(spec.name)
    if why:
        out.append(f"{spec.locate(None, 'name')}: chain name {why}")
    if not isinstance(raw.get("description", ""), str):
        out.append(f"{spec.locate(None, 'description')}: description: expected a string")
    defaults, stages = raw.get("defaults", {}), raw.get("stages")
    if not isinstance(defaults, dict):
        out.append(f"{spec.locate(None, 'defaults')}: defaults: expected a [defaults] table, got {defaults!r}")
        defaults = {}
    if not isinstance(stages, list) or not stages:
        out.append(f"{spec.locate(None, 'stages')}: a chain needs at least one [[stages]] table")
        return out
    tables = [("defaults", "[defaults]", defaults)]
    for i, table in enumerate(stages, 1):
        if not isinstance(table, dict):
            out.append(f"{spec.locate(None, 'stages')}: stages: entry {i} is {table!r}, expected a [[stages]] table")
            continue
        tables.append((i, f"stage {i}", table))
        if "dataset" not in table and "dataset" not in defaults:
            out.append(f"{spec.locate(i, 'stages')}: stage {i} has no dataset")
    for key_table, what, table in tables:
        for key in table:
            why = _key_problem(key, key_table == "defaults")
            if why:
                out.append(f"{spec.locate(key_table, key)}: {what} {why}")
    return out


def _key_problem(key: str, in_defaults: bool) -> str | None:
    """Why a chain file cannot set `key` (in `[defaults]`, or a stage), or None; without this a `model` or a default
    `name` was silently replaced (by --model, which names the run folder, and by each stage's own name)."""
    if key not in STAGE_FIELDS:
        valid = STAGE_FIELDS - {"model", "name"} if in_defaults else STAGE_FIELDS - {"model"}  # as refused below
        return f"has unknown key {key!r}{did_you_mean(key, valid)}; valid: {', '.join(sorted(valid))}"
    if key == "model":
        return "sets model: the model is chosen with --model (the run folder is named by it); remove the key"
    if key == "name" and in_defaults:
        return "sets name: each stage has its own name (default: stage1, stage2, ...); remove the key"
    return None


def require_spec(spec) -> None:
    """From Python a chain's name given for its spec failed with an AttributeError on `.name`."""
    if not isinstance(spec, ChainSpec):
        raise InputError(f"chain spec={spec!r}: must be a ChainSpec, as load_chain(NAME_OR_TOML) returns")


def stage_configs(
    spec: ChainSpec, model: str, overrides: dict | None = None, run_dir: Path | None = None
) -> list[StageConfig]:
    """Defaults, then the stage's own settings, then the command line's; every stage checked before any trains.

    With `run_dir`, stages after the first start from the folder of the stage before them.
    """
    require_spec(spec)
    if overrides is not None and not isinstance(overrides, dict):  # else an AttributeError on `.items`
        raise InputError(f"overrides={overrides!r}: must be a dict of stage settings, e.g. {{'epochs': 5}}")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "device" in overrides:  # a torch.device from Python, kept as its name (a stage's settings are text)
        overrides["device"] = device_name(overrides["device"], "overrides device")
    settings = {f.name for f in dataclasses.fields(StageConfig)} - {"name", "dataset", "model"}
    unknown = sorted(str(key) for key in set(overrides) - settings)  # `{1: 5}` failed in sorted() or join()
    if unknown:  # else a TypeError from StageConfig(**values), naming neither the override nor the choices
        raise InputError(f"overrides {', '.join(unknown)}: not stage settings; choose among: {', '.join(sorted(settings))}")
    configs, problems = [], []
    for i, table in enumerate(spec.stages, 1):
        values = {**spec.defaults, **table, **overrides, "model": model}
        imagenet_default = values.get("init") == "imagenet" and "init" not in overrides  # --init imagenet is checked
        if imagenet_default and not _unknown_model(model) and model_entry(model).timm_name is None:
            values["init"] = "none"  # conv5 is the paper's own net: no ImageNet weights exist
        if run_dir is not None and i > 1:
            values["init"] = str(run_dir / stage_folder(i - 1, spec.stages[i - 2]["name"]))
        cfg = StageConfig(**values)
        for name, why in cfg.problems(check_init=i == 1):
            why += relative_path_hint(spec, cfg.dataset) if name == "dataset" else ""
            problems.append(_where(spec, i, table, overrides, name, why))
        if i > 1 and "init" in table:  # else silently replaced by the stage before it
            problems.append(_where(spec, i, table, {}, "init", LATER_INIT))
        if i == 1 and run_dir is not None and _inside(cfg.init, run_dir):
            problems.append(_where(spec, i, table, overrides, "init", _own_run(cfg.init, run_dir)))
        configs.append(cfg)
    if problems:
        raise InputError("; ".join(dict.fromkeys(problems)))  # a bad default is reported once, not per stage
    return configs


def _inside(init: str, run_dir: Path) -> bool:
    """Whether a first stage's start lies in the chain's own run folder."""
    if init in ("none", "imagenet") or not isinstance(init, str):
        return False
    path, run = Path(init).expanduser().resolve(), Path(run_dir).resolve()
    return path == run or run in path.parents


def _own_run(init: str, run_dir: Path) -> str:
    return (f"{init} is in this chain's own run folder {run_dir}: the first stage would start from a stage it "
            "then replaces, so every run would retrain every stage; start from another run's stage, or a copy of "
            "its model.safetensors")


def check_model(model: str) -> None:
    """An unknown --model refused by its option before the chain file is read, as the stages' checks name it
    (`_where`): the command said only "unknown model 'conv55'", naming neither option nor value's place."""
    try:
        model_entry(model)
    except InputError as exc:
        raise InputError(f"--model: {exc}") from None


def _unknown_model(model: str) -> bool:
    try:
        model_entry(model)
    except InputError:
        return True
    return False


def _where(spec: ChainSpec, i: int, table: dict, overrides: dict, name: str, why: str) -> str:
    """One problem, said where the user wrote the value: a command-line option or a line of the chain file."""
    if name == "model":
        return f"--model: {why}"
    if name in overrides:
        return option_problem(f"--{name.replace('_', '-')}", overrides[name], why)
    if name in table:
        return f"{spec.locate(i, name)}: stage {i} {name}: {why}"
    if name in spec.defaults:
        return f"{spec.locate('defaults', name)}: [defaults] {name}: {why}"
    return f"{spec.where}: stage {i} {name}: {why}"


def stage_folder(index: int, name: str) -> str:
    return f"{index:02d}-{name}"


def run_dir_for(spec: ChainSpec, model: str, runs_root: Path) -> Path:
    """The run's folder; `~` is the home folder, as in `--runs-dir` and the atomic writes under it."""
    return Path(runs_root).expanduser() / f"{spec.name}-{model}"


NAME_MAX = 255  # bytes in one folder name, on the file systems runs are written to (ext4, XFS, APFS, NTFS)


def check_folder_names(spec: ChainSpec, run_dir: Path) -> None:
    """The run folder and every stage folder can be named: a long chain or stage name failed with an OSError
    traceback ("File name too long") when the first stage's folder was looked at."""
    problems = [f"{spec.locate(None, 'name')}: chain name {spec.name[:20]!r}...: the run folder's name would be "
                f"{len(os.fsencode(run_dir.name))} bytes, more than the {NAME_MAX} a folder name can hold; shorten it"
                ] if len(os.fsencode(run_dir.name)) > NAME_MAX else []
    for i, stage in enumerate(spec.stages, 1):
        folder = stage_folder(i, str(stage["name"]))
        if len(os.fsencode(folder)) > NAME_MAX:
            problems.append(f"{spec.locate(i, 'name')}: stage {i} name {folder[3:23]!r}...: its folder's name would "
                            f"be {len(os.fsencode(folder))} bytes, more than the {NAME_MAX} a folder name can hold; "
                            "shorten it")
    if problems:
        raise InputError("; ".join(problems))


@folder_warnings_once()
def train_stage(
    cfg: StageConfig,
    out_dir: str | Path,
    resume: bool = False,
    data_root=None,
    observer=None,
    init_id: str | None = None,
    strict_resume: bool = True,
    force: bool = False,
    options: bool = False,
) -> StageSummary:
    """One stage, pseudo-labelled first when it asks for it (`pseudo_labels`); the `train-stage` command.

    `init_id` identifies the starting weights (default: `start_identity(cfg.init)`), so a finished stage
    is reused only while they are unchanged. `strict_resume` (the command) refuses to train over a stage
    already in `out_dir` unless `force`, and whatever else `check_request` refuses. `options` (the command):
    a bad setting is named by its option (`--val-fraction`), not by its field (`StageConfig.validate`).
    """
    if not isinstance(cfg, StageConfig):  # else an AttributeError on `.validate`
        raise InputError(f"cfg={cfg!r}: must be a StageConfig (ganfp.train), or use run_chain for a chain")
    require_paths({"out_dir": out_dir}, {"data_root": data_root})
    require_flag("resume", resume)
    require_flag("force", force)
    require_callable("observer", observer, OBSERVER_CALL)
    out_dir = Path(out_dir).expanduser()  # `~/stage`: some files went to the home folder, others to a folder `~`
    cfg.validate(options=options)
    if strict_resume:
        check_request(cfg, out_dir, resume, force, data_root)
        check_window_read(cfg, data_root)
    init_id = start_identity(cfg.init) if init_id is None else init_id
    what, hint = (f"--out {out_dir}", "wait for it to finish, or choose another --out") if strict_resume else \
        (f"stage folder {out_dir}", "wait for it to finish")
    check = strict_resume and not force
    if check and writer_of(out_dir) is None:  # refused before the folder is touched (its lock file would be)
        check_out_dir(cfg, Path(out_dir), init_id, resume)
    try:
        with writer_lock(Path(out_dir), what, hint):
            if check:  # again: another run may have finished or stopped there meanwhile
                check_out_dir(cfg, Path(out_dir), init_id, resume)
            return _train_stage(cfg, out_dir, resume, data_root, observer, init_id, strict_resume)
    except (KeyboardInterrupt, StopSignal) as exc:  # while it decoded or pseudo-labelled: the epochs say their own
        raise interrupted(cfg, Path(out_dir), "before training started", exc) from None


def writer_lock(folder: Path, what: str, hint: str):
    """One process writes in a stage or run folder (torchrun: rank 0 holds it for all); see `folder_lock`.

    Two runs into one folder would each overwrite the other's checkpoint and meta.json, and both report
    success for a folder that holds a mix of the two.
    """
    return folder_lock(folder, what, hint) if distributed.launched_as_main() else contextlib.nullcontext(folder)


def _train_stage(cfg: StageConfig, out_dir, resume: bool, data_root, observer, init_id: str,
                 strict_resume: bool) -> StageSummary:
    """`train_stage` once its folder is locked and checked."""
    if not cfg.pseudo_labels:
        return run_stage(cfg, out_dir, resume, data_root, observer, init_id, strict_resume)
    with settings_kept():  # the caller's torch settings are back once the stage is done
        device = setup_device(cfg)
        return _pseudo_labelled_stage(cfg, out_dir, resume, data_root, observer, init_id, strict_resume, device)


def _pseudo_labelled_stage(cfg: StageConfig, out_dir, resume: bool, data_root, observer, init_id: str,
                           strict_resume: bool, device) -> StageSummary:
    """Label the stage's images with its starting model, then train on them (`run_stage`)."""
    done = completed(cfg, Path(out_dir), init_id) if resume else None
    if done is not None:
        return run_stage(cfg, out_dir, resume, data_root, observer, init_id, strict_resume)  # reports it, returns it
    manifest = stage_manifest(cfg, data_root)
    check_source(cfg.pseudo_labels, manifest, cfg.pseudo_fraction)
    data = load_stage_images(cfg, data_root, observer, manifest)
    settings = PseudoSettings(
        cfg.pseudo_labels, cfg.pseudo_fraction, cfg.pseudo_features, cfg.pseudo_k, cfg.seed, cfg.batch_size,
        window=cfg.reading().window, hu_offset=cfg.hu_offset,
    )
    with rng_untouched(device):  # the starting model's build draws from it; run_stage seeds its own
        manifest, images = pseudo_label(settings, cfg.init, data.manifest, data.images, device, data_root)
    data = dataclasses.replace(data, manifest=manifest, images=images, val_labels=f"pseudo:{cfg.pseudo_labels}")
    return run_stage(cfg, out_dir, resume, data_root, observer, init_id, strict_resume, data=data)


@folder_warnings_once()
def run_chain(
    spec: ChainSpec,
    model: str,
    runs_root: Path,
    data_root=None,
    overrides: dict | None = None,
    from_stage: str | None = None,
    observer_for: Callable[[StageConfig], object] | None = None,
) -> tuple[Path, list[StageSummary]]:
    """Run every stage in order; returns the run folder and one summary per stage."""
    require_callable("observer_for", observer_for, "(stage_config)")
    listings: dict = {}  # each dataset listed once while the stages are checked (`listed_once`)
    with listed_once(listings):
        run_dir, configs = _chain_configs(spec, model, runs_root, data_root, overrides, from_stage)
    try:
        check_run_owner(spec, run_dir)
        with writer_lock(run_dir, f"chain run {run_dir}", "wait for it to finish, or pass another --runs-dir"):
            check_run_owner(spec, run_dir)  # again: another chain may have started there meanwhile
            return run_dir, _run_stages(spec, model, configs, run_dir, data_root, from_stage, observer_for, listings)
    except (KeyboardInterrupt, StopSignal) as exc:  # before the run folder was locked: nothing written
        raise chain_interrupted(spec, configs, run_dir, 0, False, exc) from None


def _chain_configs(spec: ChainSpec, model: str, runs_root: Path, data_root, overrides: dict | None,
                   from_stage: str | None) -> tuple[Path, list[StageConfig]]:
    """The run folder and every stage's settings, checked: the chain file, the options, --from-stage and --runs-dir."""
    require_spec(spec)
    require_paths({"runs_root": runs_root}, {"data_root": data_root})
    check_writable(runs_root, "--runs-dir", folder=True)
    run_dir = run_dir_for(spec, model, runs_root)
    check_folder_names(spec, run_dir)
    configs = stage_configs(spec, model, overrides, run_dir)
    check_run_outside_data(spec, configs, run_dir, data_root)
    names = [c.name for c in configs]
    if from_stage is not None and from_stage not in names:
        raise InputError(f"--from-stage {from_stage!r}: not a stage of chain {spec.name} ({', '.join(names)})")
    return run_dir, window_configs(spec, configs, overrides or {}, data_root)


def check_run_outside_data(spec: ChainSpec, configs: list[StageConfig], run_dir: Path, data_root) -> None:
    """Each stage's folder outside every folder of its dataset, as train-stage's --out (`data_folder_holding`): a
    --runs-dir inside a stage's `folder:` dataset, or in the demo's data folder, had the stage's checkpoints written
    among the images, which a later read takes for images and a re-run for a change of the dataset."""
    for i, cfg in enumerate(configs, 1):
        out_dir = run_dir / stage_folder(i, cfg.name)
        folder = data_folder_holding(out_dir, cfg, data_root)
        if folder is not None:
            raise InputError(f"{spec.locate(i, 'dataset')}: stage {i} ({cfg.name}): its folder {out_dir} is inside "
                             f"its dataset {cfg.dataset} (folder {folder}), where the stage's files would become "
                             "part of the data; choose a --runs-dir outside it")


def window_configs(spec: ChainSpec, configs: list[StageConfig], overrides: dict, data_root) -> list[StageConfig]:
    """The stages with the HU offset as a setting only of those whose images hold a 16-bit grayscale PNG or TIFF, and
    the window only of those whose images hold a DICOM or NIfTI file (or such a 16-bit image, read with an offset):
    adding `--window` or `--hu-offset` to a mixed chain must not retrain a stage whose pixels do not change with it
    (and the stages after).

    A setting that no stage's images can take would change nothing: refused, naming where it was given, as
    `train-stage --window` is. A dataset that cannot be listed now keeps it, and is left to the plan, which names
    its stage.
    """
    offset = "16-bit grayscale PNG or TIFF"
    configs = _kept_where_read(spec, configs, overrides, "hu_offset", offset, lambda c: _reads_hu_offset(c, data_root))
    hu = any(c.hu_offset is not None for c in configs)
    kind = "DICOM or NIfTI image" + (f" (nor, with hu_offset, {offset})" if hu else "")
    return _kept_where_read(spec, configs, overrides, "window", kind, lambda c: _reads_window(c, data_root))


def _kept_where_read(spec: ChainSpec, configs: list[StageConfig], overrides: dict, key: str, kind: str,
                     reads_it: Callable[[StageConfig], bool]) -> list[StageConfig]:
    """`window_configs` for one setting: dropped from the stages that do not read it, refused if none does."""
    if all(getattr(c, key) is None for c in configs):
        return configs
    reads = [getattr(c, key) is not None and reads_it(c) for c in configs]
    if not any(reads):
        where = f"--{key.replace('_', '-')}" if overrides.get(key) is not None else f"{spec.where}: {key}"
        raise InputError(f"{where}: the images of the stages it reads hold no {kind}, so it would change nothing; "
                         "leave it out")
    return [c if read or getattr(c, key) is None else dataclasses.replace(c, **{key: None})
            for c, read in zip(configs, reads)]


def _stage_paths(cfg: StageConfig, data_root) -> list[str] | None:
    """The files of the stage's images; None when its dataset cannot be listed now."""
    try:
        return [it.path for it in stage_manifest(cfg, data_root).items]
    except InputError:
        return None


def _reads_window(cfg: StageConfig, data_root) -> bool:
    """Whether the stage's dataset holds a DICOM or NIfTI file, or a 16-bit image its HU offset applies to (True too
    when it cannot be listed now)."""
    paths = _stage_paths(cfg, data_root)
    return paths is None or any(is_dicom(p) or is_nifti(p) for p in paths) or (
        cfg.hu_offset is not None and any(stores_hu(p) for p in paths))


def _reads_hu_offset(cfg: StageConfig, data_root) -> bool:
    """Whether the stage's dataset holds a 16-bit grayscale PNG or TIFF (True too when it cannot be listed now)."""
    paths = _stage_paths(cfg, data_root)
    return paths is None or any(stores_hu(p) for p in paths)


def check_run_owner(spec: ChainSpec, run_dir: Path) -> None:
    """Refuse a run folder that another chain of the same name (another file) trained in: the run folder is named
    by the chain's name alone, so a second `exp.toml` retrained the first one's stages over them.

    A run recorded by an older ganfp (no source) or a chain built in Python (no file) is taken as this chain's.
    """
    try:
        owner = json.loads((Path(run_dir) / CHAIN_FILE).read_text()).get("source", "")
    except (OSError, ValueError, AttributeError):
        return  # no run there yet, or a record no chain can be told from
    if owner and spec.source and owner != spec.source:
        raise InputError(f"{spec.where}: run folder {run_dir} holds the stages of another chain named "
                         f"{spec.name!r}, {owner}; give this one its own name (name = \"...\" at the top of "
                         "its file), or pass another --runs-dir")


@dataclass(frozen=True)
class StagePlan:
    """What a chain run does with one stage, decided for every stage before the first one trains."""

    train: bool
    resume: bool = False  # continue an interrupted run of it (its last.safetensors), if there is one
    reason: str = ""  # why a finished stage is trained again: "images changed", "--from-stage", ...
    note: str = ""  # why a kept stage's images went unchecked
    kept: str = ""  # why a kept stage whose epochs changed needs no training (`early_stop_kept`)
    classes: tuple[str, ...] | None = None  # of its model: its dataset's, or a kept stage's; None when unknown
    interrupted_after: int = 0  # the epoch its interrupted run (last.safetensors) stopped after; 0: none
    resumes_after: int = 0  # the epoch that run goes on after; 0: the stage trains from the start
    warnings: tuple[str, ...] = ()  # logged while planned (files skipped as not images); a dry run's `few_steps`


@dataclass(frozen=True)
class ChainPlan:
    """What `run_chain` would do with each stage, found by the checks it runs before the first stage trains."""

    run_dir: Path
    configs: list[StageConfig]
    plans: list[StagePlan]
    warnings: list[str] = field(default_factory=list)  # `left_behind` stage folders, then each stage's

    def rows(self) -> list[dict]:
        """One dict per stage: its folder, dataset and maximum epochs, how it reads its images (window and HU offset,
        None where not given), what a run does with it, and its warnings."""
        return [{"stage": cfg.name, "dir": stage_folder(i, cfg.name), "dataset": cfg.dataset, "epochs": cfg.epochs,
                 "window": cfg.window_text(), "hu_offset": cfg.hu_offset,
                 "action": self._action(plan), "why": self._why(plan), "warnings": list(plan.warnings)}
                for i, (cfg, plan) in enumerate(zip(self.configs, self.plans), 1)]

    @staticmethod
    def _action(plan: StagePlan) -> str:
        if not plan.train:
            return "keep"
        return f"resume after epoch {plan.resumes_after}" if plan.resumes_after else "train"

    @staticmethod
    def _why(plan: StagePlan) -> str:
        why = [plan.reason or plan.kept or plan.note]
        if plan.interrupted_after and not plan.resumes_after:
            why.append(f"its run interrupted, saved after epoch {plan.interrupted_after}, starts over")
        return "; ".join(filter(None, why))


@folder_warnings_once()
def plan_chain(
    spec: ChainSpec,
    model: str,
    runs_root: Path,
    data_root=None,
    overrides: dict | None = None,
    from_stage: str | None = None,
) -> ChainPlan:
    """Every check `run_chain` makes before its first stage trains, and what it would then do with each stage,
    without training or writing anything (`ganfp chain --dry-run`); the demo data is built if it is missing. Each
    dataset is listed once (`listed_once`)."""
    with listed_once({}):
        run_dir, configs = _chain_configs(spec, model, runs_root, data_root, overrides, from_stage)
        check_run_owner(spec, run_dir)
        plans = plan_stages(spec, configs, run_dir, data_root, from_stage, start_identity(configs[0].init))
        plans = with_start_warnings(plans, start_warnings(configs, plans, data_root))
    warnings = left_behind(spec, configs, run_dir) + [text for plan in plans for text in plan.warnings]
    return ChainPlan(run_dir, configs, plans, warnings)


def start_warnings(configs: list[StageConfig], plans: list[StagePlan], data_root) -> list[list[str]]:
    """Per stage, the warnings it gives when it starts that its plan can know before any stage trains (`few_steps`);
    those that need its images decoded (a mix of bit depths) are known only then."""
    return [few_steps(cfg, plan, data_root) for cfg, plan in zip(configs, plans)]


def with_start_warnings(plans: list[StagePlan], early: list[list[str]]) -> list[StagePlan]:
    """Each stage's plan with its `early` warnings (`start_warnings`) filed among its own."""
    return [dataclasses.replace(plan, warnings=(*plan.warnings, *texts)) for plan, texts in zip(plans, early)]


def few_steps(cfg: StageConfig, plan: StagePlan, data_root) -> list[str]:
    """The warning a stage that would train gives when it starts, if each of its epochs is too few SGD steps to
    learn from (`batch_warnings`): said before any stage trains, by the dry run and by a run, not hours later
    after the stages before it have trained.
    A pseudo-labelled stage's training images are known only once its labels are drawn, so it warns when it
    starts; a split that cannot be drawn is refused then too, as the run refuses it."""
    if not plan.train or cfg.pseudo_labels:
        return []
    try:
        train, _ = split_indices(stage_manifest(cfg, data_root), cfg.val_fraction, cfg.seed)
    except InputError:
        return []
    return batch_warnings(cfg, len(train))


STAGE_FOLDER = re.compile(r"\d{2,}-.+")  # `stage_folder`'s names


def left_behind(spec: ChainSpec, configs: list[StageConfig], run_dir: Path) -> list[str]:
    """A warning per stage folder of the run that no stage of the chain trains in now, holding an interrupted or a
    finished stage: a stage renamed or moved in the chain file trained from the start in a new folder, and the old
    one's epochs were neither continued nor reused, without a word."""
    current = {stage_folder(i, cfg.name) for i, cfg in enumerate(configs, 1)}
    found = []
    for folder in sorted(run_dir.iterdir()) if run_dir.is_dir() else []:
        if folder.name in current or not STAGE_FOLDER.fullmatch(folder.name) or not folder.is_dir():
            continue
        state = resume_header(folder / RESUME_FILE)
        held = (f"a stage interrupted, saved after epoch {state['epoch']}," if state else
                "a finished stage" if stage_status(folder) else "")
        if held:
            found.append(f"{folder} holds {held} that no stage of chain {spec.name} trains in now (renamed or moved "
                         f"in {spec.where}?): it is neither continued nor reused; give the stage back its name and "
                         "place to use it, or delete the folder")
    return found


def _run_stages(spec: ChainSpec, model: str, configs: list[StageConfig], run_dir: Path, data_root,
                from_stage: str | None, observer_for, listings: dict) -> list[StageSummary]:
    """`run_chain` once its run folder is locked: plan (and check) every stage, listing each dataset once (with
    `listings`, those the options' checks listed), then train them in order.

    Ctrl-C outside a stage's own work (planning, between two stages) ends with what is saved and how to go on,
    as a stage stopped in an epoch does.
    """
    wrote, results = False, []
    try:
        first_id = start_identity(configs[0].init)  # a weights file's hash: read once, it can be hundreds of MB
        with listed_once(listings):
            plans = plan_stages(spec, configs, run_dir, data_root, from_stage, first_id)
            early = start_warnings(configs, plans, data_root)
        plans = _warn_up_front(spec, configs, run_dir, plans, early)
        record = {
            "chain": spec.name,
            "source": spec.source,
            "model": model,
            "spec": spec.to_dict(),
            "stages": [
                {"name": c.name, "dir": stage_folder(i, c.name), "status": "pending", "window": c.window_text(),
                 **({"hu_offset": c.hu_offset} if c.hu_offset is not None else {})}
                for i, c in enumerate(configs, 1)
            ],
        }
        prev_id = first_id
        for cfg, plan, entry, said in zip(configs, plans, record["stages"], early):
            out_dir = run_dir / entry["dir"]
            with logged_warnings() as logged, said_before(said):  # said up front, not again as it starts
                if plan.train:
                    wrote = True
                    _write_record(run_dir, record)
                    summary = _train_planned(cfg, plan, out_dir, data_root, prev_id, observer_for)
                else:
                    _say_kept(cfg, plan, out_dir, observer_for)
                    summary = completed(cfg, out_dir, prev_id)
            results.append(_noted(cfg, plan, summary, logged))
            done = stage_status(out_dir)
            # the digest it was trained with: a stage kept by early stopping keeps its own, not the new settings'
            entry.update(status="complete", run_id=done["run_id"] if done else "",
                         digest=done.get("digest", "") if done else cfg.digest(prev_id))
            _write_record(run_dir, record)
            prev_id = entry["run_id"]
    except (KeyboardInterrupt, StopSignal) as exc:
        raise chain_interrupted(spec, configs, run_dir, len(results), wrote, exc) from None
    return results


def _noted(cfg: StageConfig, plan: StagePlan, summary: StageSummary, logged: list[str]) -> StageSummary:
    """A stage's summary as the chain reports it: pseudo-labelled, and with every warning of the stage, those logged
    while it was planned and while it ran (its files skipped as not images) first, and the plan's note last."""
    if cfg.pseudo_labels:  # also for a stage finished before summaries said so
        summary = dataclasses.replace(summary, val_labels=f"pseudo:{cfg.pseudo_labels}")
    warnings = [*plan.warnings, *logged, *summary.warnings, *([plan.note] if plan.note else [])]
    return dataclasses.replace(summary, warnings=list(dict.fromkeys(warnings)))


def chain_interrupted(spec: ChainSpec, configs: list[StageConfig], run_dir: Path, finished: int, wrote: bool,
                      exc: BaseException) -> Interrupted:
    """The one line a chain stopped outside a stage's epochs ends with: which stages are saved, and how to go on
    (a chain re-run skips its finished stages)."""
    code = getattr(exc, "exit_code", 130)
    if finished == len(configs):
        return Interrupted(f"chain {spec.name} interrupted after its last stage finished; all {len(configs)} "
                           f"stages are saved in {run_dir}", code)
    upcoming = f"stage {finished + 1} ({configs[finished].name})"
    where = (f"after stage {finished} ({configs[finished - 1].name}) finished, before {upcoming} started"
             if finished else f"before {upcoming} started")
    if not wrote:
        saved = "nothing was written"
    elif finished:
        saved = f"{'stage 1 is' if finished == 1 else f'stages 1 to {finished} are'} finished in {run_dir}"
    else:
        saved = "no stage had finished"
    return Interrupted(f"chain {spec.name} interrupted {where}; {saved}; run the same command again to go on "
                       f"from {upcoming}", code)


def _warn_up_front(spec: ChainSpec, configs: list[StageConfig], run_dir: Path, plans: list[StagePlan],
                   early: list[list[str]]) -> list[StagePlan]:
    """`left_behind`'s warnings and every stage's that its plan knows (`early`, from `start_warnings`), logged before
    the first stage trains, as the dry run shows them: a user may stop the run and rename the stage back, or change a
    later stage's batch, instead of hearing of it when that stage starts, hours in. Each is filed under its stage,
    the folders left behind first in the first stage's warnings."""
    behind = left_behind(spec, configs, run_dir)
    if distributed.is_main():
        for text in [*behind, *(text for texts in early for text in texts)]:
            log.warning(text)
    plans = with_start_warnings(plans, early)
    return [dataclasses.replace(plans[0], warnings=(*behind, *plans[0].warnings)), *plans[1:]]


def _say_kept(cfg: StageConfig, plan: StagePlan, out_dir: Path, observer_for) -> None:
    """The info line of a kept stage whose epochs changed: a user who raised them expects it to train."""
    observer = observer_for(cfg) if observer_for and plan.kept and distributed.is_main() else None
    if observer is not None:
        with observer as obs:
            obs("message", {"text": f"kept {cfg.name} in {out_dir}: {plan.kept}"})


def _train_planned(cfg: StageConfig, plan: StagePlan, out_dir: Path, data_root, init_id: str,
                   observer_for) -> StageSummary:
    """One stage the plan trains; a finished one says first why it is trained again."""
    observer = observer_for(cfg) if observer_for else None
    with observer if observer is not None else contextlib.nullcontext() as obs:
        if obs is not None and plan.reason and distributed.is_main():
            obs("message", {"text": f"retraining {cfg.name}: {plan.reason}"})
        summary = train_stage(cfg, out_dir, resume=plan.resume, data_root=data_root, observer=obs, init_id=init_id,
                              strict_resume=False)
    return dataclasses.replace(summary, reason=plan.reason)


def plan_stages(
    spec: ChainSpec, configs: list[StageConfig], run_dir: Path, data_root, from_stage: str | None, first_id: str
) -> list[StagePlan]:
    """Which stages train, and why, before the first one does.

    A finished stage is kept while its settings, the weights it started from and its images are unchanged (or
    only its epochs changed, and early stopping ended it: `early_stop_kept`), and refused when its model file is
    not the one it finished with (`_check_kept_weights`); every stage after one that trains trains too. Every
    stage that will train finds its dataset now: a missing folder in stage 3 must not be found after hours of
    stages 1 and 2, and every stage's dataset problem is reported at once. Images are compared by their file lists
    (`dataset_fingerprint`); none is decoded. ImageNet
    weights the first stage starts from are found cached or reachable now too (`check_imagenet_reachable`).
    """
    plans, prev_id, trained, start_classes, problems = [], first_id, None, None, []
    for i, cfg in enumerate(configs, 1):
        done = stage_status(run_dir / stage_folder(i, cfg.name))
        forced = f"{trained} retrained" if trained else "--from-stage" if cfg.name == from_stage else ""
        with logged_warnings() as logged:  # its dataset's files skipped as not images: the stage's own warnings
            try:
                plan = _plan_stage(spec, i, cfg, done, prev_id, forced, data_root)
            except InputError as exc:  # the later stages' datasets are checked too: all reported at once
                problems.append(str(exc))
                plan = StagePlan(train=True)
        plan = dataclasses.replace(plan, warnings=tuple(logged))
        if plan.resume:
            _check_extension(spec, i, cfg, run_dir / stage_folder(i, cfg.name), prev_id)
        if plan.train:
            plan = _with_interrupted_run(plan, cfg, run_dir / stage_folder(i, cfg.name), prev_id, data_root)
        if plan.train and cfg.pseudo_labels and start_classes is not None:
            _check_pseudo_start(spec, i, cfg, configs[i - 2].name, start_classes)
        if plan.train:
            trained = cfg.name
        else:
            _check_kept_weights(cfg, run_dir / stage_folder(i, cfg.name), done)
            prev_id = done["run_id"]
        if not (plan.train and cfg.pseudo_labels):  # a pseudo-labelled stage keeps its start's classes
            start_classes = plan.classes
        plans.append(plan)
    if problems:  # a new user's `chain --chain paper` named one missing dataset per run
        raise InputError("; ".join(problems))
    if plans[0].train:  # offline, the dry run passed and the run wrote chain.json before the first stage found out
        check_imagenet_reachable(configs[0])
    return plans


def _check_kept_weights(cfg: StageConfig, out_dir: Path, done: dict) -> None:
    """A kept stage's model file must be the one it finished with: the next stage would start from a file copied in
    from another run, or corrupted on disk, and the run would call it current."""
    if weights_altered_once(out_dir / MODEL_FILE, done):  # once: the stage's own --resume check asks again
        raise altered_weights(out_dir / MODEL_FILE, f"retrain it with --from-stage {cfg.name}, or restore the file")


def _check_extension(spec: ChainSpec, i: int, cfg: StageConfig, out_dir: Path, init_id: str) -> None:
    """An interrupted stage re-run with fewer epochs than it has done (or a patience it already ran out of) is
    refused, as `train-stage --resume` refuses it, before any stage trains: starting it over would lose its epochs.
    More epochs (or another patience) continue it, as they do there."""
    state = resume_header(out_dir / RESUME_FILE)
    if state is None or extension(state, cfg, init_id) is None:
        return
    why = extension_problem(state, cfg)
    if why:
        key = "epochs" if cfg.epochs < state["epoch"] else "patience"
        raise InputError(f"{spec.locate(i, key)}: stage {i} ({cfg.name}): interrupted, saved after epoch "
                         f"{state['epoch']} in {out_dir}, which {why}; or add --from-stage {cfg.name} to start it over")


def _with_interrupted_run(plan: StagePlan, cfg: StageConfig, out_dir: Path, init_id: str, data_root) -> StagePlan:
    """The plan of a stage that trains, with the epoch its interrupted run stopped after, and whether that run goes
    on, as the trainer decides (`start_or_resume`): not when the stage is retrained (`--from-stage`, or one before
    it), nor when the run was written with other settings or on other images."""
    state = resume_header(out_dir / RESUME_FILE)
    if state is None:
        return plan
    resumes = plan.resume and not resume_mismatch(state, StageState(
        digest=cfg.digest(init_id), dataset_fingerprint=dataset_fingerprint(cfg, stage_manifest(cfg, data_root))),
        cfg, init_id)
    return dataclasses.replace(plan, interrupted_after=state["epoch"], resumes_after=state["epoch"] if resumes else 0)


def _check_pseudo_start(spec: ChainSpec, i: int, cfg: StageConfig, before: str, classes: tuple[str, ...]) -> None:
    """Pseudo-labels are the starting model's used / not used: a later stage's start is the stage before it, whose
    classes its dataset names. A three-class stage 2 before a pseudo-labelled stage 3 was found after it trained."""
    if len(classes) != 2:
        raise InputError(f"{spec.locate(i, 'pseudo_labels')}: stage {i} ({cfg.name}): pseudo-labels need a two-class "
                         f"model to start from (used / not used); stage {i - 1} ({before}) has {len(classes)} "
                         f"classes ({', '.join(classes)})")


def _plan_stage(spec: ChainSpec, i: int, cfg: StageConfig, done: dict | None, prev_id: str, forced: str,
                data_root) -> StagePlan:
    """One stage's plan; `forced` says why it trains whatever its folder holds (or is "")."""
    if done is not None and not forced and done.get("digest") == cfg.digest(prev_id):
        return _compare_images(spec, i, cfg, done, data_root)
    kept = early_stop_kept(done, cfg, prev_id) if done is not None and not forced else None
    if kept:
        plan = _compare_images(spec, i, cfg, done, data_root)
        return plan if plan.train else dataclasses.replace(plan, kept=kept)
    classes = tuple(_check_dataset(spec, i, cfg, data_root).classes)
    if done is None:
        return StagePlan(train=True, resume=not forced, classes=classes)
    changes = setting_changes(done.get("config") or {}, cfg)
    return StagePlan(train=True, reason=forced or (f"settings changed: {changes}" if changes else "its start changed"),
                     classes=classes)


def _compare_images(spec: ChainSpec, i: int, cfg: StageConfig, done: dict, data_root) -> StagePlan:
    """A finished stage with the same settings and start is kept while its dataset lists the files it trained on.

    One that an older ganfp finished (no `dataset_fingerprint` in its meta.json) is kept, not retrained unasked
    (it can be hours of training), and so is one whose dataset cannot be read now; both say so.
    """
    recorded, kept = done.get("dataset_fingerprint"), tuple(map(str, done.get("classes") or ())) or None
    if recorded is None:
        return StagePlan(train=False, classes=kept,
                         note=f"stage {cfg.name}: finished by an older ganfp, which did not record its "
                         "images, so they were not compared; if its dataset changed since, retrain it with "
                         f"--from-stage {cfg.name}")
    try:
        manifest = stage_manifest(cfg, data_root)
        unchanged = dataset_fingerprint(cfg, manifest) == recorded
    except InputError as exc:
        return StagePlan(train=False, classes=kept,
                         note=f"stage {cfg.name}: kept without comparing its images, which cannot be "
                         f"read now ({exc}){relative_path_hint(spec, cfg.dataset)}")
    if unchanged:
        return StagePlan(train=False, classes=kept)
    _check_dataset(spec, i, cfg, data_root, manifest)
    return StagePlan(train=True, reason="images changed", classes=tuple(manifest.classes))


def _check_dataset(spec: ChainSpec, i: int, cfg: StageConfig, data_root,
                   manifest: Manifest | None = None) -> Manifest:
    """The stage's manifest, once it can train on it (known from its file list); else one error naming its line."""
    try:
        if manifest is None:
            manifest = stage_manifest(cfg, data_root)
        if cfg.pseudo_labels:
            check_source(cfg.pseudo_labels, manifest, cfg.pseudo_fraction)
        else:
            check_labels(cfg, manifest)
    except InputError as exc:
        hint = relative_path_hint(spec, cfg.dataset)
        raise InputError(f"{spec.locate(i, 'dataset')}: stage {i} ({cfg.name}): {exc}{hint}") from None
    return manifest


def relative_path_hint(spec: ChainSpec, dataset: str) -> str:
    """For a dataset that failed: a relative folder in a chain file is read from the current folder, not the file's;
    run from elsewhere, `folder:data/dev` was "no such folder" with no word of where it was looked for. No hint for an
    adapter's spec (`demo:casia`): its empty path, read as ".", was said to be in the file's folder."""
    if spec.source.startswith("built-in ") or not isinstance(dataset, str):
        return ""
    adapter, sep, arg = dataset.partition(":")
    path = Path(arg if sep and adapter == "folder" else dataset if not sep else "")
    home = Path(spec.source).parent
    if not path.parts or path.is_absolute() or str(path).startswith("~") or home == Path.cwd():
        return ""
    found = f"; the file's folder holds {home / path}: write that path, or run ganfp from {home}" \
        if (home / path).exists() else ""
    return f" (a relative path in a chain file is read from the current folder, {Path.cwd()}, not the file's{found})"


def _write_record(run_dir: Path, record: dict) -> None:
    if distributed.is_main():
        write_json(run_dir / CHAIN_FILE, record)


def runs_trained_on(datasets: set[str], runs_root: Path) -> list[tuple[Path, str]]:
    """(run folder, its first finished stage trained on one of `datasets`) of each chain run in `runs_root`.

    Whoever replaces a dataset's images names these: their models stay trained on the old images until
    their chain runs again (and retrains from that stage).
    """
    found = []
    for record in sorted(Path(runs_root).glob(f"*/{CHAIN_FILE}")):
        stages = (stage_status(folder) for folder in sorted(record.parent.iterdir()) if folder.is_dir())
        first = next((meta for meta in stages if meta and meta.get("config", {}).get("dataset") in datasets), None)
        if first is not None:
            found.append((record.parent, first["config"]["name"]))
    return found
