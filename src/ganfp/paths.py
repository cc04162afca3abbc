"""Where ganfp keeps data, caches and runs. One rule everywhere: flag, then environment, then default."""

from __future__ import annotations

import os
from pathlib import Path

from ganfp.errors import InputError, require_path


def data_root(override: str | os.PathLike | None = None) -> Path:
    """`--data-root`, else `$GANFP_DATA`, else the per-user data folder; a file there is refused by name (from Python a
    `data_root=` file failed as "cannot build the demo data: File exists", a runtime failure, once the stages were
    checked)."""
    root = _data_root(override)
    existing = next(p for p in (root, *root.parents) if p.exists() or p == p.parent)
    if existing.exists() and not existing.is_dir():
        raise InputError(f"data root {root}: {'' if existing == root else f'{existing} '}is a file, not a folder")
    return root


def _data_root(override: str | os.PathLike | None) -> Path:
    require_path("data_root", override, optional=True)
    if override:
        return Path(override).expanduser()
    if environment := _from_environment("GANFP_DATA"):
        return Path(environment).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = _xdg_data_home() or Path.home() / ".local" / "share"
    return base / "ganfp"


def _xdg_data_home() -> Path | None:
    """`$XDG_DATA_HOME` when it is an absolute path: the XDG spec has a relative one (or one of spaces) ignored, as
    unset, where ganfp read it from the current folder and put the data wherever the command happened to run."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if value.strip() and Path(value).is_absolute() else None


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Decoded-image and embedding caches live under the data root, so one flag moves everything."""
    return data_root(root) / "cache"


def runs_root(override: str | os.PathLike | None = None) -> Path:
    """`--runs-dir`, else `$GANFP_RUNS`, else `./runs` (where a user looks for what they trained)."""
    require_path("runs_dir", override, optional=True)
    if override:
        return Path(override).expanduser()
    return Path(_from_environment("GANFP_RUNS") or "runs")


def _from_environment(name: str) -> str | None:
    """The variable's value; empty is unset, as XDG reads its variables. Spaces alone are refused by name: as a path
    they named a folder `  ` in the current folder, where the data was written (`--data-root "  "` is refused)."""
    value = os.environ.get(name)
    if value and not value.strip():
        raise InputError(f"${name} {value!r}: an empty path; give a folder, or unset it")
    return value or None


def ensure_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Create `path` if needed; a file in the way or no permission is the user's to fix (InputError)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: {what} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create {what} ({exc.strerror})") from exc
    return path
