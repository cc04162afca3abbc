"""A chain of stages, each starting from the previous stage's best checkpoint.

Chains are TOML files: a `[defaults]` table of StageConfig fields and a list of `[[stages]]`.
`paper` and `demo` are built in. A run lives in `<runs>/<chain>-<model>/`; finished stages whose
settings and starting point are unchanged are skipped when the chain runs again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from importlib import resources
from pathlib import Path
from typing import Callable

from ganfp import distributed
from ganfp.checkpoint import CHAIN_FILE
from ganfp.errors import InputError
from ganfp.fileio import write_json
from ganfp.models import model_entry
from ganfp.train import StageConfig, run_stage, stage_status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STAGE_FIELDS = {f.name for f in dataclasses.fields(StageConfig)}


def builtin_chains() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ganfp.chains").iterdir() if p.name.endswith(".toml"))


def load_chain(name_or_path: str) -> dict:
    """A built-in chain by name, or a user's TOML file; checked field by field."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise InputError(f"{path}: chain file not found")
        text, where = path.read_text(encoding="utf-8", errors="replace"), str(path)
    elif name_or_path in builtin_chains():
        text, where = resources.files("ganfp.chains").joinpath(f"{name_or_path}.toml").read_text(), name_or_path
    else:
        raise InputError(f"unknown chain {name_or_path!r}; choose one of: {', '.join(builtin_chains())}, or a .toml file")
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: invalid TOML ({exc})") from exc
    stages = spec.get("stages")
    if not isinstance(stages, list) or not stages:
        raise InputError(f"{where}: a chain needs at least one [[stages]] table")
    for i, table in enumerate([spec.get("defaults", {}), *stages]):
        unknown = set(table) - STAGE_FIELDS
        if unknown:
            what = "[defaults]" if i == 0 else f"stage {i}"
            raise InputError(f"{where}: {what} has unknown keys {sorted(unknown)}; valid: {', '.join(sorted(STAGE_FIELDS))}")
    for i, table in enumerate(stages, 1):
        if "dataset" not in table:
            raise InputError(f"{where}: stage {i} has no dataset")
        table.setdefault("name", f"stage{i}")
    names = [s["name"] for s in stages]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: stage names must be unique, got {names}")
    spec.setdefault("name", path.stem if where == str(path) else name_or_path)
    return spec


def stage_configs(spec: dict, model: str, overrides: dict | None = None) -> list[StageConfig]:
    """Defaults, then the stage's own settings, then the command line's."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    configs = []
    for table in spec["stages"]:
        values = {**spec.get("defaults", {}), **table, **overrides, "model": model}
        if values.get("init") == "imagenet" and model_entry(model).timm_name is None:
            values["init"] = "none"  # conv5 is the paper's own net: no ImageNet weights exist
        try:
            configs.append(StageConfig(**values))
        except TypeError as exc:
            raise InputError(f"chain {spec['name']}: {exc}") from exc
    return configs


def run_dir_for(spec: dict, model: str, runs_root: Path) -> Path:
    return Path(runs_root) / f"{spec['name']}-{model}"


def run_chain(
    spec: dict,
    model: str,
    runs_root: Path,
    data_root=None,
    overrides: dict | None = None,
    from_stage: str | None = None,
    observer_for: Callable[[StageConfig], object] | None = None,
) -> tuple[Path, list[dict]]:
    """Run every stage in order; returns the run folder and one summary per stage."""
    configs = stage_configs(spec, model, overrides)
    names = [c.name for c in configs]
    if from_stage is not None and from_stage not in names:
        raise InputError(f"--from-stage {from_stage!r}: not a stage of chain {spec['name']} ({', '.join(names)})")
    run_dir = run_dir_for(spec, model, runs_root)
    record = {"chain": spec["name"], "model": model, "spec": spec, "stages": [{"name": c.name, "dir": f"{i:02d}-{c.name}", "status": "pending"} for i, c in enumerate(configs, 1)]}
    rerun = False
    prev_dir, prev_id, results = None, "", []
    for i, (cfg, entry) in enumerate(zip(configs, record["stages"])):
        if prev_dir is not None:
            cfg.init = str(prev_dir)
        out_dir = run_dir / entry["dir"]
        rerun = rerun or cfg.name == from_stage
        done = stage_status(out_dir)
        if done and not rerun and done.get("digest") == cfg.digest(prev_id):
            summary = {**done["metrics"], "status": "skipped"}
        else:
            observer = observer_for(cfg) if observer_for else None
            _write_record(run_dir, record)
            with observer if observer is not None else contextlib.nullcontext() as obs:
                summary = run_stage(cfg, out_dir, resume=not rerun, data_root=data_root, observer=obs, init_id=prev_id, strict_resume=False)
            summary = {**summary, "status": "trained"}
            rerun = True  # later stages start from new weights
            done = stage_status(out_dir)
        entry.update(status="complete", run_id=done["run_id"] if done else "", digest=cfg.digest(prev_id))
        _write_record(run_dir, record)
        results.append(summary)
        prev_dir, prev_id = out_dir, entry["run_id"]
    return run_dir, results


def _write_record(run_dir: Path, record: dict) -> None:
    if distributed.is_main():
        write_json(run_dir / CHAIN_FILE, record)
