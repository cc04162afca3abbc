"""Safe unpacking: zip-slip, absolute paths and outward links refused, bombs capped, nothing written outside."""

from __future__ import annotations

import io
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from ganfp.errors import InputError
from ganfp.fetch import archive, dataset_status, fetch_dataset
from ganfp.fetch.archive import unpack

GOOD = ("CASIA2/Au/Au_ani_00001.jpg", "CASIA2/Tp/Tp_D_CRN_S_N_cha00063_art00014_11818.jpg")


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, format="JPEG")
    return buf.getvalue()


def _zip(path: Path, members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(path: Path, members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None, hardlinks: dict[str, str] | None = None, links_first: bool = True) -> Path:
    """A tar.gz (or .tar) with the links before the files (how an attack writes through them) or after."""
    links = [(tarfile.SYMTYPE, n, t) for n, t in (symlinks or {}).items()] + [(tarfile.LNKTYPE, n, t) for n, t in (hardlinks or {}).items()]
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        entries = [("link", link) for link in links] + [("file", m) for m in members]
        for kind, entry in entries if links_first else entries[len(links):] + entries[: len(links)]:
            if kind == "file":
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tf.addfile(info, io.BytesIO(entry[1]))
            else:
                info = tarfile.TarInfo(entry[1])
                info.type, info.linkname = entry[0], entry[2]
                tf.addfile(info)
    return path


def _outside_untouched(tmp_path: Path, root: Path) -> None:
    """Nothing but the data root (and the archive inputs) in tmp_path; nothing 'evil' anywhere."""
    assert not list(tmp_path.parent.glob("evil*")) and not list(tmp_path.rglob("evil*"))
    assert not Path("/tmp/ganfp-evil").exists()
    assert dataset_status("casia", root) == "absent"
    assert not (root / "casia").exists() and not list(root.glob(".tmp-*"))


GOOD_MEMBERS = [(n, _jpeg()) for n in GOOD]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _zip(p / "a.zip", GOOD_MEMBERS + [("../evil.txt", b"x")]),
        lambda p: _zip(p / "a.zip", GOOD_MEMBERS + [("CASIA2/../../evil.txt", b"x")]),
        lambda p: _zip(p / "a.zip", GOOD_MEMBERS + [("/tmp/ganfp-evil", b"x")]),
        lambda p: _zip(p / "a.zip", GOOD_MEMBERS + [("C:\\evil.txt", b"x")]),
        lambda p: _zip(p / "a.zip", GOOD_MEMBERS, symlinks={"CASIA2/evil": "../../../evil"}),
        lambda p: _tar(p / "a.tar.gz", GOOD_MEMBERS + [("../evil.txt", b"x")]),
        lambda p: _tar(p / "a.tar.gz", GOOD_MEMBERS + [("/tmp/ganfp-evil", b"x")]),
        lambda p: _tar(p / "a.tar.gz", GOOD_MEMBERS, symlinks={"CASIA2/evil": "../../evil"}),
        lambda p: _tar(p / "a.tar.gz", GOOD_MEMBERS, symlinks={"CASIA2/evil": "/etc/passwd"}),
        lambda p: _tar(p / "a.tar.gz", GOOD_MEMBERS + [("sub/evil/x.txt", b"x")], symlinks={"sub": ".."}),
        lambda p: _tar(p / "a.tar.gz", GOOD_MEMBERS, hardlinks={"CASIA2/evil": "../evil"}),
    ],
    ids=["zip-dotdot", "zip-nested-dotdot", "zip-absolute", "zip-drive", "zip-symlink-out", "tar-dotdot", "tar-absolute", "tar-symlink-out", "tar-symlink-abs", "tar-symlink-dir", "tar-hardlink-out"],
)
def test_escaping_archives_are_refused_and_write_nothing_outside(tmp_path, make):
    src = tmp_path / "in"
    src.mkdir()
    bad = make(src)
    root = tmp_path / "data"
    with pytest.raises(InputError, match="refusing to unpack"):
        fetch_dataset("casia", root, source=bad)
    _outside_untouched(tmp_path, root)


def test_links_inside_the_archive_become_plain_copies(tmp_path):
    bad = _tar(tmp_path / "a.tar", GOOD_MEMBERS, symlinks={"CASIA2/Au/Au_ani_00002.jpg": "Au_ani_00001.jpg"}, hardlinks={"CASIA2/Au/Au_ani_00003.jpg": GOOD[0]}, links_first=False)
    dest = tmp_path / "out"
    unpack(bad, dest, max_bytes=10**6)
    for name in ("Au_ani_00002.jpg", "Au_ani_00003.jpg"):
        path = dest / "CASIA2" / "Au" / name
        assert path.is_file() and not path.is_symlink() and path.read_bytes() == GOOD_MEMBERS[0][1]


def test_size_cap_refuses_before_writing(tmp_path):
    big = _zip(tmp_path / "a.zip", [("CASIA2/Au/Au_ani_00001.jpg", b"\0" * 50_000)])
    with pytest.raises(InputError, match="cap"):
        unpack(big, tmp_path / "out", max_bytes=10_000)
    assert not list((tmp_path / "out").rglob("*.jpg"))


def test_zip_member_expanding_too_much_is_a_bomb(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (24 << 20))
    with pytest.raises(InputError, match="decompression bomb"):
        unpack(bomb, tmp_path / "out", max_bytes=1 << 40)


def test_tar_expanding_too_much_is_stopped_while_streaming(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "RATIO_FLOOR", 0)
    bomb = _tar(tmp_path / "bomb.tar.gz", [("zeros.bin", b"\0" * (4 << 20))])
    with pytest.raises(InputError, match="expands more than"):
        unpack(bomb, tmp_path / "out", max_bytes=1 << 40)


def test_damaged_archive_and_rar_are_input_errors(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="damaged or incomplete"):
        fetch_dataset("casia", tmp_path / "data", source=tmp_path / "broken.zip")
    whole = _tar(tmp_path / "whole.tar.gz", GOOD_MEMBERS).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="damaged or incomplete"):
        fetch_dataset("casia", tmp_path / "data", source=tmp_path / "cut.tar.gz")
    (tmp_path / "CASIA2.rar").write_bytes(b"Rar!")
    with pytest.raises(InputError, match="not supported"):
        fetch_dataset("casia", tmp_path / "data", source=tmp_path / "CASIA2.rar")
    assert dataset_status("casia", tmp_path / "data") == "absent"


@pytest.mark.parametrize("name, advice", [("CASIA2.tar.zst", "tar --zstd -xf CASIA2.tar.zst"),
                                          ("CASIA2.tzst", "tar --zstd -xf CASIA2.tzst"),
                                          ("CASIA2.zst", "zstd -d CASIA2.zst"),
                                          ("CASIA2.tar", "tar --zstd -xf CASIA2.tar")])  # known by its first bytes
def test_a_zstd_archive_is_refused_before_any_work(tmp_path, run_cli, name, advice):
    """Python's tarfile reads no zstd: taken for a loose file, the archive was copied, then found to hold no images."""
    folder = tmp_path / "casia-folder"
    folder.mkdir()
    (tmp_path / name).write_bytes(b"\x28\xb5\x2f\xfd not really zstd")
    code, _, err = run_cli("fetch-data", "casia", "--from", folder, "--from", tmp_path / name,
                           "--data-root", tmp_path / "data")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / name}: zstd-compressed" in err and advice in err and "pass the folder with --from" in err
    assert not (tmp_path / "data").exists()


def _folder(path: Path, members: list[tuple[str, bytes]]) -> Path:
    for name, data in members:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


ZSTD = b"\x28\xb5\x2f\xfd not really zstd"


@pytest.mark.parametrize("make, holder, member, advice", [
    (lambda p: _folder(p / "casia", GOOD_MEMBERS + [("CASIA2/Tp/more.rar", b"Rar!")]),
     "casia", "CASIA2/Tp/more.rar", "unrar x more.rar) where it is, remove it, and run again"),
    (lambda p: _folder(p / "casia", GOOD_MEMBERS + [("CASIA2/Au.tar", ZSTD)]),  # known by its first bytes
     "casia", "CASIA2/Au.tar", "tar --zstd -xf Au.tar) where it is"),
    (lambda p: _zip(p / "casia.zip", GOOD_MEMBERS + [("CASIA2/more.7z", b"7z")]),
     "casia.zip", "CASIA2/more.7z", "7z x more.7z) in the unpacked casia.zip, remove it, and pass that folder"),
    (lambda p: _tar(p / "casia.tar.gz", GOOD_MEMBERS + [("CASIA2/Tp.tar.zst", ZSTD)]),
     "casia.tar.gz", "CASIA2/Tp.tar.zst", "tar --zstd -xf Tp.tar.zst) in the unpacked casia.tar.gz"),
    (lambda p: _tar(p / "casia.tar", GOOD_MEMBERS + [("CASIA2/more.7z", b"7z")]),
     "casia.tar", "CASIA2/more.7z", "7z x more.7z) in the unpacked casia.tar, remove it, and pass that folder"),
    (lambda p: _folder(p / "casia", [("CASIA2.zip", _zip(p / "inner.zip", [("CASIA2/Au.rar", b"Rar!")]).read_bytes())]),
     "casia/CASIA2.zip", "CASIA2/Au.rar", "unrar x Au.rar) in the unpacked CASIA2.zip"),
], ids=["rar-in-folder", "zstd-tar-in-folder", "7z-in-zip", "zst-in-tar-gz", "7z-in-tar", "rar-in-zip-in-folder"])
def test_an_archive_ganfp_cannot_unpack_inside_the_source_is_refused_naming_both(tmp_path, run_cli, make, holder,
                                                                                  member, advice):
    """A .rar, .7z or zstd archive inside a --from folder or archive was kept as a loose file: the dataset was
    installed without its images, with at most a warning that a file was not read."""
    source = make(tmp_path)
    code, _, err = run_cli("fetch-data", "casia", "--from", source, "--data-root", tmp_path / "data")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"error: {tmp_path / holder}: holds {member}, " in err and advice in err
    assert "Traceback" not in err and not (tmp_path / "data").exists()


@pytest.mark.parametrize("make, holder", [
    (lambda p: _tar(p / "casia.tar", GOOD_MEMBERS + [("CASIA2/more.7z", b"7z")]), "casia.tar"),
    (lambda p: _folder(p / "casia", [("CASIA2.tar", _tar(p / "inner.tar", GOOD_MEMBERS + [("CASIA2/more.7z", b"7z")])
                                      .read_bytes())]), "casia/CASIA2.tar"),
], ids=["tar", "tar-in-folder"])
def test_an_archive_ganfp_cannot_unpack_inside_a_tar_is_refused_before_anything_is_unpacked(tmp_path, run_cli,
                                                                                          monkeypatch, make, holder):
    """A zip's members were checked before any work, a tar's only as it was unpacked: after the members before it,
    gigabytes maybe. An uncompressed tar's headers are as cheap to list (tarfile seeks over the data)."""
    source, written = make(tmp_path), []
    monkeypatch.setattr(archive, "_write", lambda *args: written.append(args[2]))
    code, _, err = run_cli("fetch-data", "casia", "--from", source, "--data-root", tmp_path / "data")
    assert code == 2 and err.strip().splitlines() == [
        f"error: {tmp_path / holder}: holds CASIA2/more.7z, .7z archives are not supported; unpack it yourself "
        f"(7z x more.7z) in the unpacked {Path(holder).name}, remove it, and pass that folder with --from"], err
    assert written == [] and not (tmp_path / "data").exists()


def test_a_compressed_tar_is_not_listed_before_work_even_when_named_tar(tmp_path):
    """Listing a compressed tar decompresses all of it (a fifth to most of an unpack's time): its members are
    checked as it is unpacked, once. A `.tar` is listed by its headers alone."""
    members = GOOD_MEMBERS + [("CASIA2/more.7z", b"7z")]
    with pytest.raises(InputError, match="casia.tar: holds CASIA2/more.7z"):
        archive.check_members(_tar(tmp_path / "casia.tar", members))
    gzipped = _tar(tmp_path / "casia.tar.gz", members)
    (tmp_path / "gzipped.tar").write_bytes(gzipped.read_bytes())
    for made in (gzipped, tmp_path / "gzipped.tar"):
        archive.check_members(made)  # not listed
        with pytest.raises(InputError, match=f"{made.name}: holds CASIA2/more.7z"):
            unpack(made, tmp_path / f"out-{made.name}", max_bytes=10**6)


def test_pillow_image_size_limit_stays_on():
    import ganfp.data.adapters  # noqa: F401
    import ganfp.fetch  # noqa: F401

    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 2**28


def test_macos_resource_forks_are_not_unpacked(tmp_path):
    """A zip made on macOS holds `__MACOSX/` with a `._NAME` resource fork per file: a copy of the data's tree that
    read as a second ImageCLEF development set ("several dev sets found"), refusing the archive."""
    real = [(f"dev/{part}/{part}_{i}.png", _png(i)) for part in ("used", "not_used", "generated") for i in range(2)]
    forks = [(f"__MACOSX/{Path(name).parent}/._{Path(name).name}", b"\x00\x05\x16\x07Mac OS X") for name, _ in real]
    root = tmp_path / "data"
    for made in (_zip(tmp_path / "mac.zip", real + forks), _tar(tmp_path / "mac.tar.gz", real + forks)):
        fetch_dataset("imageclef-gans-2023", root, source=made, force=True)
        assert not list(root.rglob("__MACOSX")) and len(list((root / "imageclef-gans-2023").rglob("*.png"))) == 6


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), value).save(buf, format="PNG")
    return buf.getvalue()


def test_a_zip_compression_python_cannot_read_is_refused_before_writing(tmp_path):
    """Windows compresses large files with Deflate64 (method 9), which zipfile cannot read: it was a traceback."""
    good = _zip(tmp_path / "good.zip", GOOD_MEMBERS)
    raw = bytearray(good.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local headers, central directory
        at = raw.find(signature)
        while at >= 0:
            raw[at + offset:at + offset + 2] = (9).to_bytes(2, "little")
            at = raw.find(signature, at + 4)
    (tmp_path / "win.zip").write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"win.zip: member 'CASIA2/Au/Au_ani_00001.jpg' is compressed with Deflate64"):
        unpack(tmp_path / "win.zip", tmp_path / "out", max_bytes=10**6)
    assert not list((tmp_path / "out").rglob("*.jpg"))


@pytest.mark.parametrize("name", ["CASIA2 (1)", "CASIA2.gz"])
def test_an_archive_not_named_as_one_is_refused_not_kept_as_a_loose_file(tmp_path, name):
    """A browser's `download` or a `.tar.gz` saved as `.gz` was copied as a loose file, and the fetch failed with
    "no CASIA images found" with no word of why."""
    made = _zip(tmp_path / "a.zip", GOOD_MEMBERS) if "(" in name else _tar(tmp_path / "a.tar.gz", GOOD_MEMBERS)
    made.rename(tmp_path / name)
    with pytest.raises(InputError, match=rf"--from .*{re.escape(name)}: a (zip|tar) archive whose name does not end"):
        fetch_dataset("casia", tmp_path / "data", source=tmp_path / name)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("make", [_zip, _tar], ids=["zip", "tar"])
@pytest.mark.parametrize("long_name", ["n" * 300 + ".png", "/".join(["d" * 200] * 25) + "/x.png"],
                         ids=["name-over-255-bytes", "path-over-path-max"])
def test_a_member_path_too_long_for_the_file_system_is_one_short_input_error(tmp_path, run_cli, long_name, make):
    """It was exit 1, 'fetching ... failed: [Errno 36] File name too long: ' and the whole path (5,000 characters):
    the archive's names are at fault, not the machine."""
    bad = make(tmp_path / f"long.{'zip' if make is _zip else 'tar.gz'}",
               GOOD_MEMBERS + [(f"CASIA2/Au/{long_name}", b"x")])
    root = tmp_path / "data"
    code, _, err = run_cli("fetch-data", "casia", "--from", bad, "--data-root", root)
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and len(line) < 400, line
    assert line.startswith(f"error: {bad}: 'CASIA2/Au/") and "too long a path for this file system" in line
    assert f"({len('CASIA2/Au/' + long_name)} characters)" in line
    _outside_untouched(tmp_path, root)


def test_apple_double_forks_beside_the_files_are_neither_unpacked_nor_copied(tmp_path):
    """macOS writes `._NAME` beside every file on a FAT/exFAT stick or a share (and into the tars it makes): a
    `._dev.zip` beside `dev.zip` was unpacked as a nested archive and refused the fetch as damaged, naming a staging
    path; a `._Tp.7z` was refused as a 7z archive ganfp cannot unpack."""
    real = [(f"dev/{part}/{part}_{i}.png", _png(i)) for part in ("used", "not_used", "generated") for i in range(2)]
    fork = b"\x00\x05\x16\x07Mac OS X        "
    stick = tmp_path / "stick"
    stick.mkdir()
    _zip(stick / "dev.zip", real)
    for name in ("._dev.zip", "._Tp.7z", "._.DS_Store"):
        (stick / name).write_bytes(fork)
    inner = [("dev.zip", (stick / "dev.zip").read_bytes()), ("._dev.zip", fork)]
    sources = [stick, _zip(tmp_path / "outer.zip", inner),
               _tar(tmp_path / "mac.tar.gz", real + [(f"dev/used/._used_{i}.png", fork) for i in range(2)])]
    root = tmp_path / "data"
    for source in sources:
        fetch_dataset("imageclef-gans-2023", root, source=source, force=True)
        installed = root / "imageclef-gans-2023"
        assert not list(installed.rglob("._*")) and len(list(installed.rglob("*.png"))) == 6, source


@pytest.mark.parametrize("inner, reason", [
    (lambda p: (p / "dev.zip").write_bytes(b"PK\x03\x04 not really a zip"), "damaged or incomplete archive"),
    (lambda p: _zip(p / "dev.zip", GOOD_MEMBERS + [("../evil.txt", b"x")]), "member '../evil.txt' points outside"),
    (lambda p: _tar(p / "dev.tar.gz", GOOD_MEMBERS, symlinks={"CASIA2/evil": "/etc/passwd"}), "link 'CASIA2/evil'"),
    (lambda p: _zip(p / "dev.zip", [("a", b"x"), ("a/b", b"y")]), "a is both a file and a folder"),
], ids=["damaged", "dotdot", "link-out", "file-and-folder"])
def test_a_refused_archive_inside_the_source_is_named_by_its_place_there(tmp_path, inner, reason):
    """It was named by its path in the staging folder, which the failed fetch then deleted."""
    (tmp_path / "in").mkdir()
    inner(tmp_path / "in")
    made = next((tmp_path / "in").iterdir())
    outer = _zip(tmp_path / "outer.zip", [(f"parts/{made.name}", made.read_bytes())])
    with pytest.raises(InputError) as caught:
        fetch_dataset("imageclef-gans-2023", tmp_path / "data", source=outer)
    assert str(caught.value).startswith(f"parts/{made.name}: "), caught.value
    assert reason in str(caught.value) and ".tmp-" not in str(caught.value)
