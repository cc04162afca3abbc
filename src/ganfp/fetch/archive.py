"""Unpack zip and tar archives without trusting them.

Refused: members with absolute paths or `..`, links that point outside the archive, encrypted
zips, zip compression methods Python cannot read, and anything that would unpack to more than a size cap
or expand suspiciously much (decompression bombs). Links that stay inside become plain copies: ganfp never
creates a link, so no later member can be written through one. Device files and FIFOs are skipped, and
so is the `__MACOSX/` folder of resource forks that macOS adds to the zips it makes.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ganfp.data.names import MACOS_FORKS
from ganfp.errors import InputError
from ganfp.fileio import replace_file

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
UNSUPPORTED_SUFFIXES = (".rar", ".7z")
UNPACK_COMMANDS = {".rar": "unrar x {}", ".7z": "7z x {}"}
ZSTD_TARS = (".tar.zst", ".tar.zstd", ".tzst")  # Python's tarfile reads zstd from 3.14 on only
ZSTD_SUFFIXES = ZSTD_TARS + (".zst", ".zstd")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame, whatever the file is named (`tar --zstd -cf x.tar`)
MAX_RATIO = 200  # whole archive: unpacked bytes per archive byte
MAX_MEMBER_RATIO = 1000  # one zip member, checked above MEMBER_RATIO_FLOOR bytes
MEMBER_RATIO_FLOOR = 1 << 20
RATIO_FLOOR = 256 << 20  # below this many unpacked bytes no ratio check is needed
CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
APPLE_DOUBLE = "._"  # the name prefix of a resource fork stored beside its file
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA,
               getattr(zipfile, "ZIP_ZSTANDARD", zipfile.ZIP_STORED)}  # what this Python's zipfile reads
ZIP_METHOD_NAMES = {9: "Deflate64 (Windows uses it for large files)", 93: "Zstandard", 95: "xz", 98: "PPMd"}


def archive_kind(path: str | Path) -> str | None:
    """"zip", "tar", or None for a file that is not an archive ganfp unpacks."""
    name = Path(path).name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    return None


def check_supported(path: Path, shown: str | Path | None = None) -> None:
    """Refuse an archive ganfp cannot unpack, by its name (zstd also by its first bytes), before any work: taken
    for a loose file, it would be copied (gigabytes) and then found to hold no images. `shown`: the name to say."""
    why = unsupported_reason(path.name, starts_with(path, ZSTD_MAGIC))
    if why:
        raise InputError(f"{shown or path}: {why} and pass the folder with --from")


def unsupported_reason(name: str, zstd_frame: bool = False) -> str | None:
    """Why ganfp cannot unpack the file `name` (zstd_frame: its first bytes are a zstd frame), with the command that
    can, or None. The one wording for an archive given with --from and for one found inside what it gives."""
    base = PurePosixPath(name.replace("\\", "/")).name
    lower = base.lower()
    if lower.endswith(ZSTD_SUFFIXES) or zstd_frame:
        lone = lower.endswith((".zst", ".zstd")) and not lower.endswith(ZSTD_TARS)  # maybe not a tar inside
        command = f"zstd -d {base}, then unpack" if lone else f"tar --zstd -xf {base}"
        return f"zstd-compressed, which ganfp cannot unpack; unpack it first ({command})"
    if lower.endswith(UNSUPPORTED_SUFFIXES):
        suffix = next(s for s in UNSUPPORTED_SUFFIXES if lower.endswith(s))
        return f"{suffix} archives are not supported; unpack it yourself ({UNPACK_COMMANDS[suffix].format(base)})"
    return None


def check_inner(holder: str | Path, name: str, zstd_frame: bool = False, in_folder: bool = False) -> None:
    """Refuse an archive ganfp cannot unpack found inside a --from folder or archive (`holder`), naming both: left
    as a loose file, its images were silently missing from the dataset."""
    why = unsupported_reason(name, zstd_frame)
    if not why:
        return
    where = "where it is" if in_folder else f"in the unpacked {PurePosixPath(str(holder)).name}"
    then = "run again" if in_folder else "pass that folder with --from"
    raise InputError(f"{holder}: holds {name}, {why} {where}, remove it, and {then}")


def check_members(path: Path, shown: str | Path | None = None) -> None:
    """`check_inner` for every member of a zip (its central directory) or of an uncompressed tar (its headers;
    tarfile seeks over the data): cheap enough to run before any work. A compressed tar is checked as it is
    unpacked: listing a tar.gz, .tar.bz2 or .tar.xz means decompressing all of it (a fifth to most of an unpack)."""
    for name in _member_files(path):
        if not is_macos_forks(PurePosixPath(name.replace("\\", "/"))):
            check_inner(shown or path, name)


def _member_files(path: Path) -> list[str]:
    """The files a zip or a `.tar` lists; none for another file, nor for a damaged or compressed `.tar` (reported,
    or decompressed, where it is unpacked)."""
    kind = archive_kind(path)
    if kind != "zip" and not path.name.lower().endswith(".tar"):
        return []
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                return [i.filename for i in zf.infolist() if not i.is_dir()]
        with tarfile.open(path, "r:") as tf:  # "r:": a compressed stream is refused, not decompressed
            return [m.name for m in tf.getmembers() if m.isfile()]
    except (OSError, *DAMAGED):
        return []


def starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:  # unreadable: reported where the file is read
        return False


def misnamed_kind(path: Path) -> str | None:
    """"zip" or "tar" for a file that is one by its content but not by its name (a browser's `download`, a
    `.tar.gz` saved as `.gz`): taken for a loose file, it would leave the dataset without its images."""
    if archive_kind(path) is not None:
        return None
    try:
        if zipfile.is_zipfile(path):
            return "zip"
        return "tar" if tarfile.is_tarfile(path) else None
    except OSError:  # unreadable: reported where the file is read
        return None


def is_macos_forks(rel: PurePosixPath) -> bool:
    """A macOS resource fork: under a zip's `__MACOSX/`, or a `._NAME` file beside NAME (what macOS writes on a
    FAT/exFAT USB stick or a network share, and puts in the tars it makes). Never data: a `._dev.zip` beside
    `dev.zip` was unpacked as a nested archive and refused the fetch as damaged."""
    return MACOS_FORKS in rel.parts or rel.name.startswith(APPLE_DOUBLE)


def safe_relpath(archive: Path, name: str) -> PurePosixPath | None:
    """The member's path inside the target, or None for the archive root; refuses escapes."""
    if "\0" in name:
        raise InputError(f"{archive}: member name {name!r} contains a NUL byte; refusing to unpack")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        raise InputError(f"{archive}: member {name!r} has an absolute path; refusing to unpack")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"{archive}: member {name!r} points outside the archive (..); refusing to unpack")
    return PurePosixPath(*parts) if parts else None


def _link_target(archive: Path, member: PurePosixPath, target: str, symbolic: bool) -> PurePosixPath:
    """Where a link member points, inside the archive; refuses a target outside it."""
    posix = target.replace("\\", "/")
    if not posix or posix.startswith("/") or _DRIVE.match(posix):
        raise InputError(f"{archive}: link {str(member)!r} points to {target!r}, outside the archive; refusing to unpack")
    joined = posixpath.normpath(posixpath.join(str(member.parent), posix) if symbolic else posix)
    if joined == ".." or joined.startswith("../"):
        raise InputError(f"{archive}: link {str(member)!r} points to {target!r}, outside the archive; refusing to unpack")
    return PurePosixPath(joined)


class _Budget:
    """Counts unpacked bytes against the cap and the expansion ratio."""

    def __init__(self, archive: Path, max_bytes: int, shown: str | Path):
        self.archive = shown  # the name a refusal says: an inner archive's staging path is gone once the fetch stops
        self.max_bytes = max_bytes
        self.ratio_limit = max(RATIO_FLOOR, MAX_RATIO * archive.stat().st_size)
        self.used = 0
        self.member = ""  # the member being unpacked, to name in an error the file system gives about its path
        self.progress = lambda total=None: None  # called after each member (and once with the total, when known)

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.max_bytes:
            raise InputError(f"{self.archive}: unpacks to more than the {self.max_bytes / 2**30:.1f} GiB cap for this dataset; refusing (decompression bomb?)")
        if self.used > self.ratio_limit:
            raise InputError(f"{self.archive}: expands more than {MAX_RATIO}x its size; refusing (decompression bomb?)")


def unpack(archive: str | Path, dest: str | Path, max_bytes: int, progress=None,
           shown: str | Path | None = None) -> int:
    """Unpack `archive` into the folder `dest`; return the bytes written. `progress`: a rich Progress. `shown`: the
    name a refusal says (an archive found inside another is named by its place there, not by a staging path)."""
    archive, dest = Path(archive), Path(dest)
    shown = shown or archive
    check_supported(archive, shown)
    kind = archive_kind(archive)
    if kind is None:
        raise InputError(f"{shown}: not an archive ganfp can unpack (zip, tar, tar.gz, tar.bz2, tar.xz)")
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(archive, max_bytes, shown)
    if progress is not None:
        task = progress.add_task(f"unpack {archive.name} (MiB)", total=None, status="")
        budget.progress = lambda total=None: progress.update(task, completed=_mib(budget.used), total=_mib(total) if total else None)
    try:
        if kind == "zip":
            _unpack_zip(archive, dest, budget, shown)
        else:
            _unpack_tar(archive, dest, budget, shown)
    except DAMAGED as exc:  # `shown`: an archive inside another was named by its staging path, deleted by then
        raise InputError(f"{shown}: damaged or incomplete archive ({_reason(exc)})") from exc
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # the archive's names, not the machine: no file system takes them
            raise InputError(name_too_long(shown, budget.member, "unpack it yourself, shorten "
                                           "the names, and pass the folder with --from")) from exc
        if exc.errno is not None:  # the disk or the permissions: a machine fault, reported by the caller
            raise
        # a decompressor's complaint ("Invalid data stream") carries no errno: the archive is at fault
        raise InputError(f"{shown}: damaged or incomplete archive ({_reason(exc)})") from exc
    return budget.used


SHOWN_PATH_CHARS = 80  # a path too long for the file system is shown cut to this: it can run to thousands


def name_too_long(holder: str | Path, path: str, advice: str) -> str:
    """The one line for a path inside `holder` (an archive, a --from folder) that the file system refuses as too
    long (one name over 255 bytes, or the whole path over the system's limit); the path is shown cut short."""
    shown = path if len(path) <= SHOWN_PATH_CHARS else f"{path[:40]}...{path[-(SHOWN_PATH_CHARS - 43):]}"
    return (f"{holder}: {shown!r} ({len(path)} characters) is too long a path for this file system; {advice}")


DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


def _reason(exc: BaseException) -> str:
    """The library's complaint in one line (tarfile lists every method it tried, one per line)."""
    text = str(exc)
    if text.startswith("file could not be opened successfully"):
        return "not a tar file, nor a gzip, bzip2 or xz compressed one"
    return text.splitlines()[0] if text else type(exc).__name__


def _unpack_zip(archive: Path, dest: Path, budget: _Budget, shown) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        plan = []
        declared = 0
        for info in infos:  # check everything before writing anything
            rel = safe_relpath(shown, info.filename)
            if info.flag_bits & 0x1:
                raise InputError(f"{shown}: member {info.filename!r} is encrypted; unpack it yourself and pass the "
                                 "folder with --from")
            if rel is None or is_macos_forks(rel):
                continue
            if info.compress_type not in ZIP_METHODS:
                method = ZIP_METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
                raise InputError(f"{shown}: member {info.filename!r} is compressed with {method}, which "
                                 "Python's zipfile cannot read; unpack it yourself (7-Zip, unzip) and pass the folder "
                                 "with --from")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = _link_target(shown, rel, zf.read(info).decode("utf-8", "replace"), True)
                plan.append((rel, "link", target, info))
                continue
            if info.is_dir():
                plan.append((rel, "dir", None, info))
                continue
            check_inner(shown, info.filename)
            if info.file_size > MEMBER_RATIO_FLOOR and info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1):
                raise InputError(f"{shown}: member {info.filename!r} expands more than {MAX_MEMBER_RATIO}x; refusing "
                                 "(decompression bomb?)")
            declared += info.file_size
            plan.append((rel, "file", None, info))
        if declared > budget.max_bytes or declared > budget.ratio_limit:
            budget.take(declared)  # raises with the reason
        budget.progress(declared)
        for rel, kind, target, info in plan:
            budget.member = info.filename
            if kind == "dir":
                _mkdir(dest, rel, budget)
            elif kind == "file":
                with zf.open(info) as src:
                    _write(src, dest, rel, budget)
            else:
                _copy_link(dest, rel, target, budget)
            budget.progress(declared)


def _unpack_tar(archive: Path, dest: Path, budget: _Budget, shown) -> None:
    """One streaming pass (a tar.gz is not read twice), so an archive ganfp cannot unpack inside is refused when
    met; the caller removes what was unpacked before it. (A `.tar` given to fetch was listed before any work:
    `check_members`.)"""
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:  # one streaming pass: a tar.gz is not read twice
            rel = safe_relpath(shown, member.name)
            if rel is None or is_macos_forks(rel):
                continue
            budget.member = member.name
            if member.issym() or member.islnk():
                target = _link_target(shown, rel, member.linkname, member.issym())
                _copy_link(dest, rel, target, budget)
            elif member.isdir():
                _mkdir(dest, rel, budget)
            elif member.isfile():
                check_inner(shown, member.name)
                src = tf.extractfile(member)
                with src:
                    _write(src, dest, rel, budget)
                budget.progress()
            # device files and FIFOs: not data, skipped
        # tarfile stops at the end-of-archive marker, before a compressed stream's last checksum:
        # read the rest, so a damaged last block is an error rather than silently corrupt files
        while tf.fileobj.read(CHUNK):
            pass


def _mkdir(dest: Path, rel: PurePosixPath, budget: _Budget) -> Path:
    path = dest.joinpath(*rel.parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(f"{budget.archive}: {rel} is both a file and a folder in the archive") from exc
    return path


def _write(src, dest: Path, rel: PurePosixPath, budget: _Budget) -> None:
    """Copy one member's bytes (zipfile and tarfile stop at the size the header declares)."""
    path = dest.joinpath(*rel.parts)
    if rel.parent.parts:
        _mkdir(dest, rel.parent, budget)
    if path.is_symlink() or path.is_dir():
        raise InputError(f"{budget.archive}: {rel} is both a file and a folder in the archive")
    with open(replace_file(path), "xb") as out:  # a new file: never through a hard link to a user's file
        for block in iter(lambda: src.read(CHUNK), b""):
            budget.take(len(block))
            out.write(block)


def _copy_link(dest: Path, rel: PurePosixPath, target: PurePosixPath, budget: _Budget) -> None:
    """An in-archive link becomes a copy of an already unpacked regular file (else it is skipped)."""
    source = dest.joinpath(*target.parts)
    if source.is_file() and not source.is_symlink():
        budget.take(source.stat().st_size)
        if rel.parent.parts:
            _mkdir(dest, rel.parent, budget)
        path = dest.joinpath(*rel.parts)
        if path.is_symlink() or path.is_dir():
            raise InputError(f"{budget.archive}: {rel} is both a file and a folder in the archive")
        shutil.copyfile(source, replace_file(path))


def _mib(n: int) -> int:
    return n // 2**20
