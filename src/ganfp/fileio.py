"""Atomic file writes: a reader sees the old file or the new one, never half of either; and a command's
several outputs replaced together, so none is new beside another's old content (`written_together`).

Also the one check that an output path can be written, run by each command before any work; the syncs that
make a rename survive a power cut (`sync_tree` for a folder renamed into place whole: a dataset, the demo); and the
SHA-256 that ties a file to the record written after it (a finished stage's meta.json).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import signal
import stat
import threading
import time
from glob import escape as glob_escape
from pathlib import Path
from typing import Iterator

from ganfp.errors import InputError, RuntimeFailure

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, and plain fsync
    fcntl = None

NEW_FILE_MODE = 0o666  # minus the umask, as open() gives any new file (mkstemp would force 0600)
# what a write can hit after check_writable passed: the disk or the quota fills, a file grows past the file
# system's limit, the file system turns read-only (an errno a read never gives, so a writer's own reads pass)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


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


def _claim(tmp: Path):
    """An open handle holding an advisory lock on `tmp` while its writer lives (None without fcntl).

    The kernel drops the lock with the process however it ends, so a temporary file nobody holds is one
    whose writer was killed (kill -9, a power cut): `_remove_abandoned` may delete it.
    """
    if fcntl is None:  # pragma: no cover - Windows: no claims, and nothing is ever called abandoned
        return None
    f = open(tmp, "rb")
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    return f


ABANDONED_AFTER_S = 60  # a temporary file this young may be one a live writer has created but not yet claimed


def _remove_abandoned(path: Path) -> None:
    """Delete the temporary files of `path` that a killed writer left (`.NAME.XXXXXXXX.tmp`, claimed by nobody).

    Outputs a user names (--out, --scores, --report) are in no folder ganfp locks, so the next write of the same
    output is what tidies up after a killed one.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp")
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        try:
            if not pattern.fullmatch(tmp.name) or time.time() - tmp.lstat().st_mtime < ABANDONED_AFTER_S:
                continue
            with open(tmp, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                tmp.unlink(missing_ok=True)
        except (BlockingIOError, OSError):
            continue  # held by a live writer, or gone or unreadable: leave it


def write_failure(target: Path, exc: OSError) -> RuntimeFailure:
    """A full disk (or the like) while an output is written: one line naming it, not a traceback; the caller
    removes the temporary file, so every target keeps its previous content."""
    return RuntimeFailure(f"{target}: cannot write it ({exc.strerror or exc}); nothing was replaced")


# An output replaces its path by a rename: over /dev/null that made the device a plain file (as root), and over a
# pipe it gave the reader nothing.
NOT_REGULAR = ("not a regular file (a device, pipe or socket); ganfp writes an output whole and renames it into "
               "place, so give the path of a file")


class OutputBatch:
    """One command's outputs, which a reader takes as belonging together (a submission, its scores, its report).

    Each is written in full to its own temporary file beside its target; only when every one is complete are
    they renamed into place, so a failure or a signal while a later one is built leaves no new file beside
    old ones from an earlier run. Made by `written_together`.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary file, target), in the order they were written
        self._claims: list = []  # open locked handles, one per temporary file, closed when the batch ends

    @contextlib.contextmanager
    def path(self, target: str | os.PathLike) -> Iterator[Path]:
        """Yield a temporary path beside `target` to write; when the block ends without error it joins the batch.

        `~` is expanded as `check_writable` expands it: `--report=~/r.html`, which no shell expands, was checked
        in the home folder and then written to a folder named `~` in the current one.
        """
        target = Path(target).expanduser()
        if target.exists() and not target.is_file() and not target.is_dir():
            raise InputError(f"{target}: {NOT_REGULAR}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned(target)
            tmp = _new_temp(target)
        except OSError as exc:  # any failure here is about the target's folder
            raise write_failure(target, exc) from None
        try:
            self._claims.append(_claim(tmp))
            yield tmp
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in WRITE_ERRNOS:
                raise write_failure(target, exc) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._staged.append((tmp, target))

    def _commit(self) -> None:
        for tmp, target in self._staged:
            try:
                with open(tmp, "rb+") as f:
                    flush_to_disk(f.fileno())
            except OSError as exc:  # a network or quota file system may report a full disk only now
                raise write_failure(target, exc) from None
        # The one window left: the renames run microseconds apart, and a crash between two of them (SIGKILL,
        # power loss) leaves the targets renamed so far new and the rest old. Ctrl-C and SIGTERM wait for the last.
        # They run in the order the files were staged, each made durable before the next, so a writer can stage
        # first the file that lets a reader repair the rest (`train.save_epoch`).
        with signals_deferred():
            for tmp, target in self._staged:
                os.replace(tmp, target)
                sync_folder(target.parent)

    def _discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)  # gone already once committed
        for claim in filter(None, self._claims):
            claim.close()


def sync_folder(folder: Path) -> None:
    """Make the renames into `folder` (and removals from it) survive a power cut: a rename changes the folder, which
    the OS may keep in memory (and write out in any order) until the folder itself is synced. Skipped quietly where a
    folder cannot be opened or synced (Windows, some network file systems): the renames are done, only their
    durability is not."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            flush_to_disk(fd)
    finally:
        os.close(fd)


def flush_to_disk(fd: int) -> None:
    """fsync, made to reach the disk on macOS too: there fsync only hands the data to the drive, whose cache may
    lose it in a power cut, and F_FULLFSYNC (what SQLite uses) asks the drive to write it. A file system without
    F_FULLFSYNC (some network and FAT volumes) refuses it: fsync is then the most that can be done."""
    full_sync = getattr(fcntl, "F_FULLFSYNC", None) if fcntl else None
    if full_sync is not None:
        try:
            fcntl.fcntl(fd, full_sync)
            return
        except OSError:
            pass
    os.fsync(fd)


def sync_file(path: str | os.PathLike) -> None:
    """Write `path`'s data to the disk: a file renamed into place before its data is there may be empty after a
    power cut. A failure is raised (the data may be lost), except Windows's refusal to sync a handle open only for
    reading."""
    fd = os.open(path, os.O_RDONLY)
    try:
        flush_to_disk(fd)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    """Sync every file under `folder`, then each folder after its contents, so that once `folder` is renamed into
    place a power cut cannot leave it with missing or empty files (an installed dataset, the demo).

    A file with other hard links (`fetch-data --link`) or a symbolic link holds no data written here: only the folder
    naming it is synced.
    """
    for top, _, names in os.walk(folder, topdown=False):
        for name in names:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                sync_file(path)
        sync_folder(Path(top))


DEFERRED_SIGNALS = ("SIGINT", "SIGTERM")


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within it, SIGINT and SIGTERM are noted, and handled as before once it ends (main thread only).

    A stop between two renames of one batch left a stage's best model renamed beside the resume state of the epoch
    before it, and a submission beside the scores of an earlier run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    try:
        for name in DEFERRED_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:
                previous[number] = signal.signal(number, lambda signum, frame: caught.append(signum))
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    for number in caught[:1]:
        _handle_again(number, previous[number])


def _handle_again(number: int, handler) -> None:
    """What `handler` (a signal's disposition before `signals_deferred`) does with the signal, now."""
    if callable(handler):
        handler(number, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(number)


@contextlib.contextmanager
def written_together() -> Iterator[OutputBatch]:
    """An OutputBatch whose files replace their targets when the block completes. On any exception (an
    InputError, Ctrl-C, SIGTERM's StopSignal) every target keeps its previous content and no temporary file
    is left."""
    batch = OutputBatch()
    try:
        yield batch
        batch._commit()
    finally:
        batch._discard()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, batch: OutputBatch | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, or with `batch`'s
    others when the batch commits."""
    if batch is not None:
        with batch.path(path) as tmp:
            yield tmp
        return
    with written_together() as own, own.path(path) as tmp:
        yield tmp


def write_bytes(path: str | os.PathLike, data: bytes, batch: OutputBatch | None = None) -> None:
    with atomic_path(path, batch) as tmp:
        tmp.write_bytes(data)


def utf8_writable(text: str) -> bool:
    """Whether `text` can go into a UTF-8 file: a file named in another encoding (Latin-1 bytes on Linux) reaches
    Python with surrogates, which no UTF-8 file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def write_text(path: str | os.PathLike, text: str, batch: OutputBatch | None = None) -> None:
    write_bytes(path, text.encode("utf-8"), batch)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB blocks: a model file can be hundreds of MB."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    ancestor. A file path ending in a separator names a folder: `Path` drops the separator, so
    `--out results/` wrote a file named `results`. Nothing is created here.
    """
    kind = "folder" if folder else "file"
    if not str(path).strip():  # Path("") is the current folder: a stage trained into it, a file write failed late
        raise InputError(f"{what} {str(path)!r}: an empty path; give a {kind} name")
    if not folder and isinstance(path, str) and path.endswith(("/", os.sep)):
        raise InputError(f"{what} {path}: names a folder (it ends with '{path[-1]}'); give a file name")
    path = Path(path).expanduser()
    if path.exists():
        if folder and not path.is_dir():
            raise InputError(f"{what} {path}: is a file, not a folder")
        if not folder and path.is_dir():
            raise InputError(f"{what} {path}: is a folder, not a file")
        if not folder and not path.is_file():
            raise InputError(f"{what} {path}: {NOT_REGULAR}")
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


def check_folder(path: str | os.PathLike, what: str) -> Path:
    """Refuse a folder that is only read (it may be read-only, or missing: then it holds nothing) when it, or its
    closest existing ancestor, is a file: one InputError naming it."""
    path = Path(path).expanduser()
    probe = _nearest_existing(path)
    if not probe.is_dir():
        where = "" if probe == path else f"{probe} "
        raise InputError(f"{what} {path}: {where}is a file, not a folder")
    return path


LOCK_NAME = ".ganfp.lock"


@contextlib.contextmanager
def _lock_file(path: Path, blocking: bool) -> Iterator[bool]:
    """Hold the lock file `path` (yields True), or yield False when another process holds it (non-blocking).

    An exclusive advisory lock (fcntl.flock): the kernel drops it with the process, however it ends (SIGKILL
    included), so a lock is never stale. The file is deleted on release, so no lock file outlives its run;
    a process that was waiting may then hold a deleted file: it sees that the path names another file (or
    none) and takes the lock again. Without fcntl (Windows) every lock is granted and no file is made:
    ganfp runs there as it did before it had locks.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield True
        return
    while True:
        f = open(path, "a+b", buffering=0)  # unbuffered: a full disk fails the pid's write once, not close() again
        try:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                same = os.path.samestat(os.fstat(f.fileno()), os.stat(path))
            except FileNotFoundError:
                same = False
            if not same:
                continue  # released and deleted while this process waited: lock the file now there
            try:
                f.truncate(0)
                f.write(f"{os.getpid()}\n".encode())
            except OSError:
                path.unlink(missing_ok=True)  # a full disk: no empty lock file outlives the refused run
                raise
            try:
                yield True
            finally:
                path.unlink(missing_ok=True)  # while still holding it: nobody can lock this file after this
            return
        finally:
            f.close()


def _holder(path: Path) -> str:
    """`process PID` from a held lock file, else `another process`."""
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def remove_temporaries(folder: Path, prefix: str = "") -> None:
    """Delete what `atomic_path` left in `folder` (for files named `prefix`... only) when its writer was killed.

    Call it only while holding the lock every writer of those files holds: then none of them is alive.
    """
    pattern = re.compile(rf"\.{re.escape(prefix)}.*\.[0-9a-f]{{8}}\.tmp")  # `_new_temp`'s `.NAME.XXXXXXXX.tmp`
    for tmp in Path(folder).glob(f".{prefix}*.tmp"):
        if pattern.fullmatch(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str, hint: str, wait: bool = False) -> Iterator[Path]:
    """Hold `folder/.ganfp.lock` while this process writes in `folder`; another process is refused at once
    (or, with `wait`, waits for this one to finish).

    The refusal is one RuntimeFailure: "`what` is in use by process PID (...); `hint`". Temporary files a
    killed writer left in the folder are deleted once the lock is held. Folders this call created that are
    empty at the end are removed again, so a run refused later (bad input) leaves no empty folder behind.
    """
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]  # deepest first
    try:
        with contextlib.ExitStack() as stack:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                held = stack.enter_context(_lock_file(folder / LOCK_NAME, blocking=wait))
            except OSError as exc:  # only the lock's own setup: the body's errors are the caller's
                raise _lock_failure(folder, what, exc) from None
            if not held:
                raise RuntimeFailure(f"{what} is in use by {_holder(folder / LOCK_NAME)} (another ganfp run writing "
                                     f"there); {hint}")
            remove_temporaries(folder)
            yield folder
    finally:
        with contextlib.suppress(OSError):
            for made in created:
                made.rmdir()  # only when empty: stops at the first folder that holds something


def _lock_failure(folder: Path, what: str, exc: OSError) -> InputError | RuntimeFailure:
    """The folder cannot be created or its lock file written: a full disk (exit 1), or a place nobody can write
    (exit 2), found before any work, where `check_writable`'s permission bits could not tell (root, /proc)."""
    why = f"{what}: cannot write there ({exc.strerror or exc}); nothing was written"
    return RuntimeFailure(why) if exc.errno in WRITE_ERRNOS else InputError(why)


def writer_of(folder: str | os.PathLike) -> str | None:
    """`process PID` when a ganfp run holds `folder_lock` on `folder` now (it is writing there), else None.

    Probes with a shared lock, released at once; the lock file itself is left to its holder.
    """
    path = Path(folder) / LOCK_NAME
    if fcntl is None:  # Windows: no locks
        return None
    try:
        f = open(path, "r")
    except OSError:  # no lock file: nobody is writing
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def build_lock(path: str | os.PathLike) -> Iterator[None]:
    """Wait for, then hold, `PATH.lock`: one process at a time builds the files named PATH.* (a cache entry).

    A process that waited should look for the entry again before building it: the other one has built it.
    Temporary files of PATH.* left by a killed builder are deleted once the lock is held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_file(path.parent / f"{path.name}.lock", blocking=True):
        remove_temporaries(path.parent, prefix=f"{path.name}.")
        yield
