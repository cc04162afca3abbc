"""HTTPS downloads that resume and verify.

A download grows in `<file>.part`; a dropped connection keeps it, and the next run asks the
server for the rest (HTTP Range). Only a complete file whose digest matches is renamed to
`<file>`; a wrong digest deletes the `.part`, so a bad file is never taken for a good one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from ganfp.errors import InputError, RuntimeFailure
from ganfp.fileio import sync_file, sync_folder

CHUNK = 1 << 20
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def check_url(url: str) -> None:
    """HTTPS only (plain HTTP is allowed for this machine, which is how the tests serve files)."""
    parsed = urlparse(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in LOCAL_HOSTS):
        return
    raise InputError(f"{url}: refusing to download over {parsed.scheme or 'no scheme'}; only https is allowed")


class Unreachable(RuntimeFailure):
    """A download's server cannot be reached (offline, DNS, refused): the fetch adds the way by hand."""


def _user_agent() -> str:
    from ganfp import __version__

    return f"ganfp/{__version__}"


def _open(url: str, headers: dict, timeout: float):
    check_url(url)
    req = Request(url, headers={"User-Agent": _user_agent(), **headers})
    try:
        resp = urlopen(req, timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416:
            return exc
        raise RuntimeFailure(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from exc
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{url}: cannot connect ({reason}); "
                          "check the network and run the same command again") from exc
    check_url(resp.geturl())  # a redirect must not downgrade to plain http
    return resp


def fetch_json(url: str, timeout: float = 60):
    """A small JSON document (e.g. the Figshare file list of an article)."""
    with _open(url, {"Accept": "application/json"}, timeout) as resp:
        try:
            return json.loads(resp.read().decode("utf-8"))
        except (ValueError, OSError) as exc:
            raise RuntimeFailure(f"{url}: not a valid JSON answer ({exc})") from exc


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, url: str, sha256: str | None, md5: str | None) -> str:
    """The file's SHA-256; a mismatch with a known digest deletes the file and fails."""
    digest = file_digest(path)
    for algorithm, expected, actual in (("sha256", sha256, digest), ("md5", md5, md5 and file_digest(path, "md5"))):
        if expected and actual != expected.lower():
            path.unlink(missing_ok=True)
            raise RuntimeFailure(
                f"{url}: {algorithm} of the download is {actual}, expected {expected.lower()}; "
                "the file was deleted, run the same command again (if it repeats, the source changed)"
            )
    return digest


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    progress=None,
    timeout: float = 60,
) -> str:
    """Download `url` to `dest` (resuming `dest.part`), verify it, and return its SHA-256."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return _verify(dest, url, sha256, md5)
    part = dest.with_name(dest.name + ".part")
    for _ in range(2):  # a second pass only when the server rejects the resume point
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = _open(url, headers, timeout)
        with resp:
            if resp.getcode() == 416:  # nothing after `offset`: complete already, or a stale .part
                if size is not None and offset == size:
                    break
                part.unlink(missing_ok=True)
                continue
            total = _receive(resp, part, offset, url, progress, size)
        if total is not None and part.stat().st_size != total:
            raise RuntimeFailure(f"{url}: download stopped at {part.stat().st_size} of {total} bytes; run the same command again to resume")
        break
    digest = _verify(part, url, sha256, md5)
    sync_file(part)  # a download without a digest to check is taken as it is found after a power cut
    os.replace(part, dest)
    sync_folder(dest.parent)
    return digest


def _receive(resp, part: Path, offset: int, url: str, progress, size: int | None) -> int | None:
    """Append the response body to `part`; return the expected total size when the server states it."""
    if offset and resp.getcode() == 206:
        match = CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise RuntimeFailure(f"{url}: the server resumed at the wrong place ({resp.headers.get('Content-Range')})")
        total = int(match.group(3)) if match.group(3) != "*" else None
        mode = "ab"
    else:  # 200: the server sent the whole file (it ignored or did not get a Range)
        offset, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    total = total if total is not None else size
    task = None
    if progress is not None:
        task = progress.add_task(f"download {part.name[:-5]}", total=_mib(total) if total else None, status="")
    done = offset
    try:
        with open(part, mode) as f:
            for block in iter(lambda: resp.read(CHUNK), b""):
                f.write(block)
                done += len(block)
                if task is not None:
                    progress.update(task, completed=_mib(done), status=f"{done / 2**20:.1f} MiB")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise RuntimeFailure(f"{url}: download interrupted at {done} bytes ({exc}); run the same command again to resume") from exc
    return total


def _mib(n: int) -> int:
    return n // 2**20
