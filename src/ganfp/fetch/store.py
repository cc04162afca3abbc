"""A dataset's folder in the data root, and the rule for when it is ready.

`<data_root>/<name>/` is complete only when its `meta.json` says `"status": "ready"`, and that
file is written last, in a staging folder (`<data_root>/.tmp-<name>-XXXXXXXX`) that is renamed
into place in one step. So an interrupted fetch leaves a staging folder or a `.part` download
(status "partial") and never a half dataset that reads as ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from ganfp.errors import InputError, RuntimeFailure
from ganfp.fileio import sync_folder, sync_tree
from ganfp.paths import data_root as default_root
from ganfp.registry import did_you_mean

READY, PARTIAL, ABSENT = "ready", "partial", "absent"
META = "meta.json"
DOWNLOADS = ".downloads"
STAGING, OLD = ".tmp-", ".old-"
# The demo is built by ganfp.data.demo, not fetched: it stages `.demo.tmp-PID` beside the target and sets the
# old copy aside as `.demo.old-PID`; a build killed midway leaves one of them. Its parts built on first use
# (`demo-attribution-2025/`) leave `.demo-attribution-2025.tmp-PID` the same way: they count as the demo's.
BUILD_LEFTOVER = r"^\.{name}(-[a-z0-9-]+)?\.(tmp|old)-\d+$"


def dataset_dir(name: str, data_root: str | os.PathLike) -> Path:
    return Path(data_root) / name


def read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((Path(folder) / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_ready(folder: Path) -> bool:
    meta = read_meta(folder)
    return bool(meta) and meta.get("status") == READY


def leftovers(data_root: Path, name: str, prefix: str | None = None) -> list[Path]:
    """Staging and set-aside folders of `name` left by an interrupted fetch."""
    prefixes = [prefix] if prefix else [STAGING, OLD]
    return _matching(data_root, rf"^({'|'.join(re.escape(p) for p in prefixes)}){re.escape(name)}-[0-9a-f]{{8}}$")


def build_leftovers(data_root: Path, name: str) -> list[Path]:
    """Temporary folders of an in-place build of `name` or of one of its parts (the demo's) that never finished."""
    return _matching(data_root, BUILD_LEFTOVER.format(name=re.escape(name)))


def _matching(data_root: Path, pattern: str) -> list[Path]:
    try:
        return sorted(p for p in Path(data_root).iterdir() if re.match(pattern, p.name))
    except OSError:
        return []


def downloads_dir(data_root: Path, name: str) -> Path:
    return Path(data_root) / DOWNLOADS / name


def known_dataset(name: str) -> None:
    """`name` is a dataset of the registry, else one InputError listing them: from Python a typo (`"covid"`) read as
    "absent", and the user went to fetch a dataset that does not exist."""
    from ganfp.fetch.registry import DATASETS

    if not isinstance(name, str) or name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}{did_you_mean(str(name), DATASETS)}; choose one of: "
                         f"{', '.join(DATASETS)} (ganfp fetch-data --list)")


def dataset_status(name: str, data_root: str | os.PathLike | None = None) -> str:
    """ready: complete and verified; partial: an interrupted fetch left something; absent: nothing.

    `data_root` as `--data-root` reads it: `~` expanded, None for $GANFP_DATA or the per-user data folder (a
    `"~/data"` was read as a folder named `~` in the current one, where the dataset was always absent).
    """
    known_dataset(name)
    root = default_root(data_root)
    folder = dataset_dir(name, root)
    if is_ready(folder):
        return READY
    downloads = downloads_dir(root, name)
    interrupted = leftovers(root, name) or build_leftovers(root, name)
    if folder.exists() or interrupted or (downloads.is_dir() and any(downloads.iterdir())):
        return PARTIAL
    return ABSENT


def require_ready(name: str, data_root: str | os.PathLike, hint: str = "") -> Path:
    """The dataset's folder; a clear one-line error when it has not been fetched (completely)."""
    root = default_root(data_root)
    status = dataset_status(name, root)
    if status == READY:
        return dataset_dir(name, root)
    folder = dataset_dir(name, root)
    by_hand = folder.is_dir() and any(folder.iterdir())  # a fetch renames only a complete, ready copy into place
    command = f"ganfp fetch-data {name}{f' --from {folder}' if by_hand else hint}"
    if root.expanduser().resolve() != default_root(None).expanduser().resolve():
        command += f" --data-root {root}"
    if by_hand:
        raise InputError(f"dataset {name}: {folder} holds files that ganfp did not install (no ready meta.json); "
                         f"to check and install them, run: {command}")
    if status == PARTIAL:
        raise InputError(f"dataset {name} in {root} is not ready (an interrupted fetch); run: {command}")
    raise InputError(f"dataset {name} is not in {root}; run: {command}")


@contextlib.contextmanager
def locked(data_root: Path, name: str) -> Iterator[None]:
    """One fetch of a dataset at a time (the lock goes with the process, even when it is killed).

    A failed fetch removes the lock file it created, while it still holds the lock; a fetch that finds its lock
    file gone once locked gave way to that removal, as to a running fetch.
    """
    path = Path(data_root) / f".{name}.lock"
    created = not path.exists()
    with open(path, "a+") as f:
        _lock(f, path, name, data_root)
        try:
            yield
        except BaseException:
            if created:
                with contextlib.suppress(OSError):  # Windows keeps an open file
                    path.unlink()
            raise


def _lock(f, path: Path, name: str, data_root: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; staging folders are still unique
        return
    busy = f"another ganfp process is fetching {name} into {data_root}; wait for it to finish"
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise RuntimeFailure(busy) from exc
    try:
        same = os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except OSError:
        same = False
    if not same:  # a failed fetch removed the file this one opened: another may hold a lock on a new one
        raise RuntimeFailure(busy)


@contextlib.contextmanager
def removed_if_failed(data_root: Path, name: str) -> Iterator[None]:
    """Remove the folders a failed fetch created (a new data root, its `.downloads/NAME`), once empty: a typo in
    --data-root or a fetch that went wrong leaves no trace. A folder that was there before is never removed, nor
    one holding anything (a download's `.part`, kept to resume)."""
    downloads = downloads_dir(data_root, name)
    folders = [downloads, downloads.parent, *_missing_ancestors(Path(data_root))]
    new = [folder for folder in folders if not folder.exists()]
    try:
        yield
    except BaseException:
        for folder in new:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _missing_ancestors(folder: Path) -> list[Path]:
    """`folder` and the folders above it that do not exist yet, deepest first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def recover(data_root: Path, name: str) -> None:
    """Undo what an interrupted fetch left: bring back a set-aside ready copy, drop staging folders."""
    folder = dataset_dir(name, data_root)
    for old in leftovers(data_root, name, OLD):
        if not folder.exists() and is_ready(old):
            os.replace(old, folder)
            sync_folder(data_root)
        else:
            _remove(old)
    for staging in leftovers(data_root, name, STAGING):
        shutil.rmtree(staging, ignore_errors=True)


def new_staging(data_root: Path, name: str) -> Path:
    path = Path(data_root) / f"{STAGING}{name}-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    return path


def install(staging: Path, folder: Path) -> None:
    """Move a complete staging folder (meta.json included) into place, replacing an older copy.

    Its files reach the disk before the rename, and the rename before the old copy is deleted: after a power cut the
    folder holds the old copy or the whole new one, never a ready meta.json beside missing or empty files.
    """
    sync_tree(staging)
    old = None
    if folder.exists():
        old = folder.with_name(f"{OLD}{folder.name}-{secrets.token_hex(4)}")
        os.replace(folder, old)
    os.replace(staging, folder)
    sync_folder(folder.parent)
    if old is not None:
        _remove(old)


def _remove(old: Path) -> None:
    """Delete a set-aside copy; one that is a link (the user's data elsewhere, linked in) loses the link only:
    rmtree refuses links, which left `.old-NAME-*` in the data root for good."""
    if old.is_symlink():
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)
    sync_folder(old.parent)
