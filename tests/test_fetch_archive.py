"""Safe unpacking: zip-slip, absolute paths and outward links refused, bombs capped, nothing written outside."""

from __future__ import annotations

import io
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


def test_pillow_image_size_limit_stays_on():
    import ganfp.data.adapters  # noqa: F401
    import ganfp.fetch  # noqa: F401

    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 2**28
