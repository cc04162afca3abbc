"""What ganfp writes: atomically, with the umask's mode, never through a user's hard link, never where it cannot."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.layouts import make_gans_dev
from helpers.membership_cases import write_case
from PIL import Image

from ganfp import fileio
from ganfp.checkpoint import RESUME_FILE, model_meta, save_model
from ganfp.data import demo
from ganfp.data.adapters import load_manifest
from ganfp.data.cache import load_images
from ganfp.data.generated import generated_manifest
from ganfp.data.real import read_real
from ganfp.errors import InputError
from ganfp.fetch import fetch_dataset
from ganfp.membership import AutoencoderConfig, MembershipScorer, Recipe, ScoringSetup
from ganfp.models import create_model
from ganfp.train import StageConfig, run_stage

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)


def _user_folder_with_colliding_archive(folder: Path) -> tuple[Path, bytes]:
    """`sub/a.png` and a `sub.zip` whose member `a.png` would land on the same staged path."""
    original = folder / "sub" / "a.png"
    _png(original, 7)
    with zipfile.ZipFile(folder / "sub.zip", "w") as zf:
        zf.writestr("a.png", b"not the user's bytes")
    return original, original.read_bytes()


def test_link_import_never_writes_through_to_the_users_file(tmp_path):
    src = tmp_path / "mine"
    original, before = _user_folder_with_colliding_archive(src)
    with pytest.raises(InputError):  # not an ImageCLEF layout: the fetch fails after unpacking
        fetch_dataset("imageclef-gans-2023", tmp_path / "data", source=src, link=True)
    assert original.read_bytes() == before
    assert (src / "sub.zip").exists()


def test_two_linked_sources_with_one_name_leave_both_originals(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    _png(first / "x" / "a.png", 1)
    _png(second / "x" / "a.png", 2)
    before = (first / "x" / "a.png").read_bytes()
    with pytest.raises(InputError):
        fetch_dataset("imageclef-gans-2023", tmp_path / "data", source=[first, second], link=True)
    assert (first / "x" / "a.png").read_bytes() == before


def test_kaggle_cache_is_not_changed_by_a_nested_archive(tmp_path, monkeypatch):
    cache = tmp_path / "kagglehub" / "versions" / "1"
    original, before = _user_folder_with_colliding_archive(cache)
    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=lambda slug: str(cache)))
    with pytest.raises(InputError):
        fetch_dataset("casia", tmp_path / "data")
    assert original.read_bytes() == before


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_get_the_umasks_mode(tmp_path, umask):
    import torch

    from ganfp.checkpoint import write_safetensors
    from ganfp.submission import write_submission

    old = os.umask(umask)
    try:
        fileio.write_text(tmp_path / "a.txt", "x")
        write_submission(tmp_path / "sub.csv", ["a", "b"], [0, 1])
        write_safetensors(tmp_path / "model.safetensors", {"w": torch.zeros(2)}, {"model": "conv5"})
    finally:
        os.umask(old)
    for name in ("a.txt", "sub.csv", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_a_write_that_fails_half_way_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp, open(tmp, "wb") as f:
            f.write(b"new" * 1000)
            raise RuntimeError("disk pulled")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]  # the temporary file is gone too


def test_a_writer_killed_half_way_keeps_the_old_file(tmp_path):
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    script = textwrap.dedent(f"""
        import sys, time
        from ganfp import fileio
        with fileio.atomic_path({str(target)!r}) as tmp, open(tmp, "wb") as f:
            for i in range(10000):
                f.write(b"x" * 65536)
                f.flush()
                if i == 4:
                    print("writing", flush=True)
                time.sleep(0.01)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"writing"
        time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert target.read_bytes() == b"old"
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert leftovers and all(p.stat().st_size > 0 for p in leftovers)  # it was killed mid-write, beside the file
    _age(leftovers)
    fileio.write_text(target, "new")  # the next write of the same output tidies up after the killed one
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"] and target.read_text() == "new"


def _age(paths, seconds: float = 2 * fileio.ABANDONED_AFTER_S) -> None:
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


def test_a_live_writers_temporary_file_is_never_tidied_away(tmp_path):
    """Only a temporary file whose writer is gone is abandoned: one still being written (however old) stays."""
    target, other = tmp_path / "sub.csv", tmp_path / "sub.csv.bak"
    with fileio.written_together() as batch, fileio.atomic_path(target, batch) as live:
        live.write_text("a long report")
        _age([live])
        stray = tmp_path / ".sub.csv.0123abcd.tmp"  # a killed writer's, but younger than a live one could be
        stray.write_text("x")
        fileio.write_text(target, "another run's")
        fileio.write_text(other, "not this output's")
        assert live.exists() and stray.exists()
    assert target.read_text() == "a long report"
    _age([stray])
    fileio.write_text(target, "later")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.csv", "sub.csv.bak"]


@pytest.mark.parametrize("stop", [RuntimeError("the report failed"), KeyboardInterrupt()])
def test_outputs_written_together_are_all_replaced_or_none(tmp_path, stop):
    """A submission renamed into place before its report was built sat beside the previous run's report."""
    first, second = tmp_path / "sub.csv", tmp_path / "report.html"
    first.write_text("old submission")
    second.write_text("old report")
    with pytest.raises(type(stop)):
        with fileio.written_together() as batch:
            fileio.write_text(first, "new submission", batch)
            with fileio.atomic_path(second, batch) as tmp:
                tmp.write_text("half a report")
                raise stop
    assert (first.read_text(), second.read_text()) == ("old submission", "old report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "sub.csv"]  # no temporary file left
    with fileio.written_together() as batch:
        fileio.write_text(first, "new submission", batch)
        fileio.write_text(second, "new report", batch)
        assert first.read_text() == "old submission"  # nothing replaced before the batch is complete
    assert (first.read_text(), second.read_text()) == ("new submission", "new report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "sub.csv"]


def test_check_writable_refuses_what_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    cases = [
        (tmp_path / "dir", False, "is a folder, not a file"),
        (tmp_path / "file", True, "is a file, not a folder"),
        (tmp_path / "file" / "out.csv", False, "is a file, not a folder"),
        (tmp_path / "file" / "deeper" / "run", True, "is a file, not a folder"),
    ]
    for path, folder, message in cases:
        with pytest.raises(InputError, match=message):
            fileio.check_writable(path, "--out", folder=folder)
    fresh = tmp_path / "new" / "deeper" / "out.csv"
    assert fileio.check_writable(fresh, "--out") == fresh
    assert not (tmp_path / "new").exists()  # checking creates nothing


class _FullDisk:
    """An open file on a full disk: every write fails with ENOSPC, as the lock file's pid did on a full tmpfs."""

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    flush = write


def test_a_full_disk_at_the_folder_lock_is_one_line_and_leaves_nothing(class_folder, tmp_path, run_cli,
                                                                         monkeypatch):
    real_open = open
    monkeypatch.setattr(fileio, "open", lambda path, mode="r", *a, **k: (
        _FullDisk(real_open(path, mode, *a, **k)) if mode.startswith("a") else real_open(path, mode, *a, **k)),
        raising=False)
    out = tmp_path / "runs" / "stage"
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", out, "--model", "conv5",
                           "--image-size", "16", "--epochs", "1")
    assert (code, err.strip()) == (1, f"error: --out {out}: cannot write there (No space left on device); "
                                      "nothing was written")
    assert not (tmp_path / "runs").exists()  # neither the folders it made nor an empty lock file are left


def test_a_folder_lock_where_no_folder_can_be_made_is_an_input_error(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):  # as /proc refuses root, whom check_writable's permission bits let through
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(InputError, match=r"^chain run X: cannot write there \(No such file or directory\)"):
        with fileio.folder_lock(tmp_path / "runs" / "x", "chain run X", "hint"):
            pass


@pytest.mark.skipif(IS_ROOT, reason="root may write to read-only files and folders")
def test_check_writable_refuses_read_only_paths(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "out.csv").write_text("x")
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match="read-only"):
            fileio.check_writable(ro / "out.csv", "--out")
        with pytest.raises(InputError, match="read-only"):
            fileio.check_writable(ro / "new" / "run", "--runs-dir", folder=True)
    finally:
        ro.chmod(0o755)


def test_each_rename_of_a_batch_is_synced_to_its_folder_before_the_next(tmp_path, monkeypatch):
    """A rename lives in its folder, which the OS writes out when it likes: after a power cut an output renamed
    into place could be the old file again, or a later rename of the batch survive without an earlier one."""
    first, second = tmp_path / "one" / "last.safetensors", tmp_path / "two" / "model.safetensors"
    real_replace, real_fsync, events = os.replace, os.fsync, []

    def replace(src, dst):
        real_replace(src, dst)
        events.append(("renamed", Path(dst).name))

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            folder = next(p for p in (first.parent, second.parent) if os.path.samestat(os.fstat(fd), p.stat()))
            events.append(("synced", folder.name))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "replace", replace)
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    with fileio.written_together() as batch:
        fileio.write_text(first, "state", batch)
        fileio.write_text(second, "model", batch)
    assert events == [("renamed", "last.safetensors"), ("synced", "one"), ("renamed", "model.safetensors"),
                      ("synced", "two")]


class _FullSyncFcntl:
    """fcntl as macOS has it: F_FULLFSYNC, which `refuse` file systems do not support; its locks are the real ones."""

    F_FULLFSYNC = 51

    def __init__(self, refuse: bool):
        self.refuse, self.calls = refuse, []

    def __getattr__(self, name):
        import fcntl

        return getattr(fcntl, name)

    def fcntl(self, fd, command):
        self.calls.append(command)
        if self.refuse:
            raise OSError(45, "Operation not supported")
        return 0


@pytest.mark.parametrize("refuse", [False, True], ids=["full-sync", "no-full-sync"])
def test_outputs_are_flushed_past_the_drive_cache_where_the_os_can(tmp_path, monkeypatch, refuse):
    """On macOS fsync leaves the data in the drive's cache, which a power cut loses: the file and the folder of a
    rename are flushed with F_FULLFSYNC, and with plain fsync on a file system that refuses it."""
    fake, fsynced = _FullSyncFcntl(refuse), []
    monkeypatch.setattr(fileio, "fcntl", fake)
    monkeypatch.setattr(fileio.os, "fsync", fsynced.append)
    fileio.write_text(tmp_path / "sub.csv", "new")
    assert (tmp_path / "sub.csv").read_text() == "new"
    assert fake.calls == [fake.F_FULLFSYNC] * 2  # the file's data, then the folder holding its new name
    assert len(fsynced) == (2 if refuse else 0)


def test_a_folder_that_cannot_be_opened_is_not_synced_and_the_write_succeeds(tmp_path, monkeypatch):
    """Windows cannot open a folder to sync it: the outputs are still written, without a word."""
    real_open = os.open

    def open_no_folder(path, flags, *args):
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(fileio.os, "open", open_no_folder)
    fileio.write_text(tmp_path / "sub.csv", "new")
    assert (tmp_path / "sub.csv").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["sub.csv"]


@pytest.fixture
def disk_log(monkeypatch) -> list[tuple]:
    """What is written out, in order: ("synced", (device, inode), the names in it when a folder, else None),
    ("renamed", destination, None) and ("removed", path, None)."""
    real_replace, real_fsync, real_unlink, events = os.replace, os.fsync, os.unlink, []

    def replace(src, dst, **kwargs):
        real_replace(src, dst, **kwargs)
        events.append(("renamed", Path(dst), None))

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("synced", (st.st_dev, st.st_ino), sorted(os.listdir(fd)) if stat.S_ISDIR(st.st_mode) else None))
        real_fsync(fd)

    def unlink(path, **kwargs):
        real_unlink(path, **kwargs)
        events.append(("removed", Path(path), None))

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "unlink", unlink)
    return events


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _synced(events: list[tuple], start: int = 0, stop: int | None = None) -> set:
    return {key for kind, key, _ in events[start:stop] if kind == "synced"}


def _last(events: list[tuple], kind: str, name: str) -> int:
    return max(i for i, (k, key, _) in enumerate(events) if k == kind and key.name == name)


def _same_file(path: Path, other: Path) -> bool:
    return other.exists() and os.path.samefile(path, other)


def _assert_installed_durably(events: list[tuple], folder: Path, skip: set[Path] = frozenset()) -> None:
    """Every file and folder of `folder` but `skip` was synced before `folder` was renamed into place, and its data
    root after that rename, once no old copy or staging folder was left in it."""
    renamed = _last(events, "renamed", folder.name)
    synced_before = _synced(events, stop=renamed)
    assert {_identity(p) for p in [folder, *folder.rglob("*")] if p not in skip} <= synced_before
    root = _identity(folder.parent)
    root_syncs = [names for kind, key, names in events[renamed:] if kind == "synced" and key == root]
    assert root_syncs and folder.name in root_syncs[-1]
    assert not [name for name in root_syncs[-1] if ".tmp-" in name or ".old-" in name]  # fetch's and the demo's


@pytest.mark.parametrize("link", [False, True])
def test_a_folder_import_is_on_disk_before_it_reads_as_ready(tmp_path, run_cli, disk_log, link):
    """After a power cut, a dataset whose meta.json said ready could hold empty or missing files: they were still in
    memory when the staging folder was renamed into place. --link's files are the user's own, already on disk: only
    the folders naming them are synced (a sync each would cost a large dataset minutes)."""
    src, root = tmp_path / "src", tmp_path / "data"
    make_gans_dev(src)
    with zipfile.ZipFile(src / "notes.zip", "w") as zf:  # unpacked in the staging folder: files written there
        zf.writestr("readme.txt", "unpacked")
    folder = root / "imageclef-gans-2023"
    for again in ([], ["--force"]):  # the second replaces the first: the old copy goes before the last root sync
        disk_log.clear()
        code, _, err = run_cli("fetch-data", folder.name, "--from", src, "--data-root", root, *again,
                               *(["--link"] if link else []))
        assert code == 0, err
        users = {p for p in folder.rglob("*") if p.is_file() and _same_file(p, src / p.relative_to(folder))}
        assert len(users) == (14 if link else 0)
        assert (folder / "notes" / "readme.txt").read_text() == "unpacked"
        _assert_installed_durably(disk_log, folder, skip=users)
        assert not {_identity(p) for p in users} & _synced(disk_log)


def test_the_demo_is_on_disk_before_it_reads_as_ready(tmp_path, run_cli, disk_log, monkeypatch):
    """The demo (and each attribution demo, built the same way) is swapped in as a whole folder, as an import is."""
    def tiny_build(root: Path, seed: int) -> dict:
        (root / "casia" / "authentic").mkdir(parents=True)
        (root / "casia" / "authentic" / "Au_ani_00001.jpg").write_bytes(b"an image")
        meta = {"status": "ready", "seed": seed, "version": demo.DEMO_VERSION}
        fileio.write_json(root / "meta.json", meta)
        return meta

    monkeypatch.setattr(demo, "_build_into", tiny_build)
    root = tmp_path / "data"
    for again in ([], ["--force"]):
        disk_log.clear()
        code, _, err = run_cli("fetch-data", "demo", "--data-root", root, *again)
        assert code == 0, err
        _assert_installed_durably(disk_log, root / "demo")


def test_a_finished_stages_resume_file_stays_removed_after_a_power_cut(class_folder, tmp_path, disk_log):
    """The removal of last.safetensors lives in the stage's folder: unsynced, a power cut could bring it back beside
    the complete meta.json, and a stage that had finished read as one to resume."""
    out = tmp_path / "s"
    run_stage(StageConfig(dataset=str(class_folder), model="conv5", image_size=16, batch_size=8, epochs=1), out,
              data_root=tmp_path / "root")
    assert not (out / RESUME_FILE).exists()
    assert _identity(out) in _synced(disk_log, start=_last(disk_log, "removed", RESUME_FILE))


def _durably_renamed(events: list[tuple], path: Path) -> int:
    """Where the sync of `path`'s folder made its rename durable, once its data was synced before that rename."""
    renamed = _last(events, "renamed", path.name)
    assert _identity(path) in _synced(events, stop=renamed)
    folder = _identity(path.parent)
    return next(i for i, (kind, key, _) in enumerate(events) if i > renamed and kind == "synced" and key == folder)


@pytest.mark.parametrize("bad_file", [False, True])
def test_an_image_cache_entry_is_on_disk_before_its_record_names_it(class_folder, tmp_path, disk_log, bad_file):
    """The decode cache's `.npy` is raw pixels: zero-filled after a power cut, it would be of the right size and
    shape, and read as black images. So it is synced before its rename, and its record, which makes it an entry, is
    renamed only after that rename is durable. With --skip-bad the array is written twice (compacted): the second
    write is the one synced."""
    if bad_file:
        (class_folder / "b" / "zz.png").write_text("not an image")
    manifest = load_manifest(str(class_folder), data_root=tmp_path)
    array = load_images(manifest, 16, data_root=tmp_path, skip_bad=bad_file).path
    record = array.with_suffix(".json")
    assert _durably_renamed(disk_log, array) < _last(disk_log, "renamed", record.name)
    _durably_renamed(disk_log, record)


def test_membership_cache_entries_are_on_disk_before_they_are_named(tmp_path, disk_log):
    """Embeddings (`.npy` of floats, then their record) and the autoencoder's weights: synced before their renames,
    the record after its array's rename is durable."""
    real_dir, gen_dir, _ = write_case(tmp_path / "case")
    model = create_model("conv5", 2, 32)
    save_model(tmp_path / "stage" / "model.safetensors", model, model_meta(model, ["not_used", "used"], 32))
    setup = ScoringSetup(32, torch.device("cpu"), batch_size=8, data_root=tmp_path / "data", seed=5,
                         checkpoint=tmp_path / "stage",
                         autoencoder=AutoencoderConfig(size=16, width=8, code=16, steps=5, batch_size=16))
    scorer = MembershipScorer(read_real(str(real_dir)), generated_manifest(gen_dir), setup)
    disk_log.clear()
    for recipe in (Recipe("knn", "checkpoint", 3), Recipe("autoencoder")):
        scorer.score(recipe)
    cache = tmp_path / "data" / "cache"
    arrays = sorted((cache / "embeddings").glob("*.npy"))
    assert len(arrays) == 2  # the real and the generated images
    for array in arrays:
        assert _durably_renamed(disk_log, array) < _last(disk_log, "renamed", array.with_suffix(".json").name)
        _durably_renamed(disk_log, array.with_suffix(".json"))
    (weights,) = (cache / "autoencoders").glob("*.safetensors")
    _durably_renamed(disk_log, weights)
