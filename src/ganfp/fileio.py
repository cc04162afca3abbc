"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Also the one check that an output path can be written, run by each command before any work.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Iterator

from ganfp.errors import InputError

NEW_FILE_MODE = 0o666  # minus the umask, as open() gives any new file (mkstemp would force 0600)


def _new_temp(path: Path) -> Path:
    """An empty file beside `path`, created exclusively with the umask's normal mode."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: no free temporary name beside it")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def replace_file(path: str | os.PathLike) -> Path:
    """Unlink whatever file is at `path`, so the next write creates a new inode.

    Opening an existing path with "wb" writes through it: if it is a hard link to a user's file
    (fetch-data --link), the user's original changes. Writers of staged data call this first.
    """
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    return path


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (missing folders on the way are created when writing)."""
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def check_writable(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    """Refuse, before any work starts, an output that cannot be written: one InputError naming it.

    `what` names the option (e.g. "--out"). A file output must not be a folder, a folder output
    not a file; either must be writable, or, when missing, creatable under its closest existing
    ancestor. Nothing is created here.
    """
    path = Path(path).expanduser()
    kind = "folder" if folder else "file"
    if path.exists():
        if folder and not path.is_dir():
            raise InputError(f"{what} {path}: is a file, not a folder")
        if not folder and path.is_dir():
            raise InputError(f"{what} {path}: is a folder, not a file")
        target = path if folder else path.parent
        if not os.access(path, os.W_OK) or not os.access(target, os.W_OK | os.X_OK):
            raise InputError(f"{what} {path}: {kind} is read-only (no permission to write it)")
        return path
    if os.path.islink(path):
        raise InputError(f"{what} {path}: a broken symbolic link; remove it or choose another path")
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise InputError(f"{what} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: cannot create it, folder {ancestor} is read-only")
    return path
