"""Downloads against a local HTTP server: resume with Range, digests checked, routes end to end."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers.layouts import covid_rows, make_casia, make_covid_flat

from ganfp import ui
from ganfp.data.adapters import load_manifest
from ganfp.errors import InputError, RuntimeFailure
from ganfp.fetch import DATASETS, Route, Source, dataset_status, fetch_dataset, read_meta
from ganfp.fetch import install as install_mod
from ganfp.fetch.download import download


class RangeHandler(BaseHTTPRequestHandler):
    """Serves `server.files`; honours `Range: bytes=N-`; can cut a response short once (`server.cut`)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.ranges:
            start = int(re.match(r"bytes=(\d+)-$", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.server.cut.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.files, srv.cut, srv.requests, srv.ranges = {}, {}, [], True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _payload(n: int = 300_000) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


def test_download_verifies_and_returns_sha256(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    digest = download(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=hashlib.sha256(data).hexdigest())
    assert digest == hashlib.sha256(data).hexdigest() and (tmp_path / "f.bin").read_bytes() == data
    assert not (tmp_path / "f.bin.part").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    server.cut["/f.bin"] = 120_000
    url, dest = f"{server.url}/f.bin", tmp_path / "f.bin"
    with pytest.raises(RuntimeFailure, match="run the same command again"):
        download(url, dest, sha256=hashlib.sha256(data).hexdigest())
    part = tmp_path / "f.bin.part"
    assert not dest.exists() and part.stat().st_size == 120_000
    download(url, dest, sha256=hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests[-1] == ("/f.bin", "bytes=120000-")


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    data = _payload()
    server.files["/f.bin"], server.ranges = data, False
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from another file")
    download(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=hashlib.sha256(data).hexdigest())
    assert (tmp_path / "f.bin").read_bytes() == data


def test_complete_part_file_is_finished_on_416(server, tmp_path):
    data = _payload(5000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    download(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data))
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("kind", ["sha256", "md5"])
def test_wrong_digest_is_refused_and_not_kept(server, tmp_path, kind):
    server.files["/f.bin"] = _payload(5000)
    with pytest.raises(RuntimeFailure, match=f"{kind} of the download is"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", **{kind: "0" * (64 if kind == "sha256" else 32)})
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_a_download_is_on_disk_before_it_takes_its_name(server, tmp_path, monkeypatch):
    """A file renamed from its `.part` before its data reached the disk could be empty after a power cut, and one
    without a digest to check was then installed as it was found."""
    server.files["/f.bin"] = _payload(1000)
    dest = tmp_path / "downloads" / "f.bin"
    real_replace, real_fsync, events = os.replace, os.fsync, []

    def replace(src, dst):
        real_replace(src, dst)
        events.append(("renamed", Path(dst).name))

    def fsync(fd):
        events.append(("synced", "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    download(f"{server.url}/f.bin", dest)
    assert dest.read_bytes() == _payload(1000)
    assert events == [("synced", "file"), ("renamed", "f.bin"), ("synced", "folder")]


def test_only_https_or_this_machine(tmp_path):
    with pytest.raises(InputError, match="only https"):
        download("http://example.org/x.zip", tmp_path / "x.zip")
    with pytest.raises(InputError, match="only https"):
        download("ftp://example.org/x.zip", tmp_path / "x.zip")


def test_missing_file_and_no_server_are_runtime_failures(server, tmp_path):
    with pytest.raises(RuntimeFailure, match="HTTP 404"):
        download(f"{server.url}/missing", tmp_path / "m")
    with pytest.raises(RuntimeFailure, match="cannot connect"):
        download("http://127.0.0.1:9/nothing", tmp_path / "n", timeout=2)


def _zip_bytes(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return buf.getvalue()


def test_url_route_downloads_unpacks_verifies_and_records_digest(server, tmp_path, monkeypatch):
    make_casia(tmp_path / "src", with_samples=False)
    blob = _zip_bytes(tmp_path / "src")
    digest = hashlib.sha256(blob).hexdigest()
    server.files["/casia.zip"] = blob
    server.cut["/casia.zip"] = len(blob) // 2
    route = Route("test", "public", (Source("url", f"{server.url}/casia.zip", sha256=digest),))
    monkeypatch.setitem(DATASETS, "casia", replace(DATASETS["casia"], routes=(route,)))
    root = tmp_path / "data"
    with pytest.raises(RuntimeFailure):
        fetch_dataset("casia", root)
    assert dataset_status("casia", root) == "partial"  # the .part download is kept
    with ui.progress() as progress:
        fetch_dataset("casia", root, progress=progress)
    assert dataset_status("casia", root) == "ready"
    meta = read_meta(root / "casia")
    assert meta["sha256"] == {"casia.zip": digest} and meta["route"] == "test" and meta["status"] == "ready"
    assert not (root / ".downloads" / "casia").exists()
    assert len(load_manifest("casia", root)) > 0


def test_figshare_route_lists_files_and_checks_md5(server, tmp_path, monkeypatch):
    rows = covid_rows()
    make_covid_flat(tmp_path / "src", rows)
    blob = _zip_bytes(tmp_path / "src")
    server.files["/dl/1"] = blob
    listing = [{"name": "COVID-CTset_part1.zip", "download_url": f"{server.url}/dl/1", "size": len(blob), "computed_md5": hashlib.md5(blob).hexdigest()}]
    server.files["/articles/42/files?page_size=1000"] = json.dumps(listing).encode()
    route = Route("figshare", "public", (Source("figshare", "42"),))
    monkeypatch.setitem(DATASETS, "covid-ctset", replace(DATASETS["covid-ctset"], routes=(route,)))
    monkeypatch.setattr(install_mod, "FIGSHARE_API", server.url)
    root = tmp_path / "data"
    fetch_dataset("covid-ctset", root)
    assert len(load_manifest("covid-ctset", root)) == len(rows)
    assert read_meta(root / "covid-ctset")["sha256"] == {"42/COVID-CTset_part1.zip": hashlib.sha256(blob).hexdigest()}
    listing[0]["computed_md5"] = "0" * 32
    server.files["/articles/42/files?page_size=1000"] = json.dumps(listing).encode()
    with pytest.raises(RuntimeFailure, match="md5"):
        fetch_dataset("covid-ctset", root, force=True)
    assert dataset_status("covid-ctset", root) == "ready"  # the old copy is untouched
