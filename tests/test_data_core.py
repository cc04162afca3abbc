"""Decoding, the folder adapter, the uint8 cache, batches, augmentation and the split."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from helpers.images import write_class_folder, write_frames, write_tiff_pages
from helpers.layouts import CASIA_SAMPLES

from ganfp.data import cache as cache_mod
from ganfp.data.adapters import load_manifest
from ganfp.data.augment import BatchAugment
from ganfp.data.cache import load_images
from ganfp.data.decode import decode_image, high_depth, image_header
from ganfp.data.loader import MEAN, STD, iterate_batches
from ganfp.data.split import split_indices
from ganfp.errors import InputError, RuntimeFailure


def test_decodes_every_mode_to_square_uint8(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    images = {
        "l.png": Image.fromarray(rgb[..., 0]),
        "rgb.jpg": Image.fromarray(rgb),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full((30, 50), 255, np.uint8)])),
        "p.png": Image.fromarray(rgb).convert("P"),
        "ct16.tif": Image.fromarray((rng.random((30, 50)) * 5000).astype(np.uint16)),
    }
    for name, img in images.items():
        img.save(tmp_path / name)
        out = decode_image(str(tmp_path / name), 24)
        assert out.shape == (24, 24) and out.dtype == np.uint8, name
    ct = decode_image(str(tmp_path / "ct16.tif"), 24)
    assert ct.max() > 200 and ct.min() < 50  # 16-bit CT is windowed into the full 8-bit range


def test_a_nan_in_a_float_image_leaves_the_rest_windowed(tmp_path):
    """A float CT slice with NaN outside its field of view decodes as without it, the NaN black (not all black)."""
    values = np.random.default_rng(0).random((16, 16)).astype(np.float32) * 3000 - 1000
    Image.fromarray(values).save(tmp_path / "clean.tif")
    values[:2, :] = np.nan
    Image.fromarray(values).save(tmp_path / "nan.tif")
    clean, with_nan = decode_image(str(tmp_path / "clean.tif"), 16), decode_image(str(tmp_path / "nan.tif"), 16)
    assert with_nan[:2].max() == 0
    assert np.abs(with_nan[2:].astype(int) - clean[2:]).max() <= 3  # its 2 rows moved the percentiles a little
    assert with_nan[2:].max() == 255


def test_transparent_pixels_become_black(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255  # white, but fully transparent
    Image.fromarray(rgba).save(tmp_path / "t.png")
    assert decode_image(str(tmp_path / "t.png"), 8).max() == 0


def test_real_casia_samples_decode():
    samples = CASIA_SAMPLES
    if not samples.is_dir():
        pytest.skip("../shared/data/casia2-samples is not present (a user's clone has no shared/)")
    for path in sorted(samples.iterdir()):
        assert decode_image(str(path), 64).shape == (64, 64)


def test_corrupt_file_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(InputError, match="broken.png: "):
        decode_image(str(bad), 8)


@pytest.mark.parametrize("name", ["volume.tif", "cine.gif", "cine.png"])
def test_a_file_of_several_frames_is_refused_not_read_as_its_first(tmp_path, name):
    """A CT volume in one TIFF (or an animation) decoded as its first frame: one slice scored for the whole file."""
    path = write_frames(tmp_path / name, 3)
    with pytest.raises(InputError, match=rf"{name}: holds 3 frames .*one image per slice"):
        decode_image(str(path), 16)


@pytest.mark.parametrize("layout", ["smaller pages after it", "a marked page after it", "a marked page first"])
def test_a_tiff_whose_other_pages_are_previews_is_read_as_its_image(tmp_path, layout):
    """Scanners and image editors store reduced-resolution copies beside the image (marked by NewSubfileType bit 0,
    or only smaller): the file holds one image, and was refused as a volume of several frames."""
    image = Image.open(write_frames(tmp_path / "plain.tif", 1, size=32))
    pages = {"smaller pages after it": ([image, image.resize((8, 8)), image.resize((16, 16))], ()),
             "a marked page after it": ([image, image.transpose(Image.Transpose.ROTATE_90)], (1,)),
             "a marked page first": ([image.resize((8, 8)).convert("RGB"), image], (0,))}[layout]
    path = write_tiff_pages(tmp_path / "scan.tif", *pages)
    assert np.array_equal(decode_image(str(path), 16), decode_image(str(tmp_path / "plain.tif"), 16))
    header = image_header(str(path))  # the image's header, not a preview's
    assert header == ((32, 32), image.mode) and high_depth(str(path)) is False


def test_a_volume_with_previews_is_refused_counting_its_slices(tmp_path):
    slices = [Image.open(write_frames(tmp_path / f"{n}.tif", 1, size=32, seed=n)) for n in range(3)]
    path = write_tiff_pages(tmp_path / "volume.tif", [p for s in slices for p in (s, s.resize((8, 8)))])
    with pytest.raises(InputError, match=r"volume\.tif: holds 3 frames .*one image per slice"):
        decode_image(str(path), 16)


def test_a_camera_jpeg_is_read_as_its_photo_and_a_damaged_volume_is_one_line(tmp_path):
    """An MPO's extra frames are previews of its first, the photo. A volume cut short after its first frame made
    PIL raise TypeError while counting frames."""
    mpo = write_frames(tmp_path / "photo.jpg", 3, size=64, format="MPO")
    with Image.open(mpo) as img:
        assert img.format == "MPO" and img.n_frames == 3
    plain = write_frames(tmp_path / "plain.jpg", 1, size=64)  # the same first frame, as a plain JPEG
    assert np.array_equal(decode_image(str(mpo), 16), decode_image(str(plain), 16))  # libjpeg's reduced-scale path
    volume = write_frames(tmp_path / "volume.tif", 3).read_bytes()
    first = len(write_frames(tmp_path / "first.tif", 1).read_bytes())  # the first frame is whole past this
    reasons = set()
    for end in range(first, len(volume), 5):
        (tmp_path / "cut.tif").write_bytes(volume[:end])
        with pytest.raises(InputError, match="cut.tif: ") as refused:
            decode_image(str(tmp_path / "cut.tif"), 16)
        reasons.add(str(refused.value).split(": ")[1].split()[0])
    assert reasons == {"holds", "cannot"}, reasons  # the frames counted, or where counting them failed


def test_importing_the_decoder_leaves_the_callers_warning_filters_alone():
    """numpy installs filters of its own when imported: those are numpy's business, so it is imported first."""
    code = ("import warnings, numpy, PIL.Image; before = list(warnings.filters); import ganfp.data.decode; "
            "assert warnings.filters == before, warnings.filters[:3]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_decoding_silences_pils_duplicate_warnings_and_leaves_the_filters_alone(tmp_path, monkeypatch):
    """A file ganfp refuses in one line made PIL warn too; silencing that must not touch the caller's filters,
    even while threads decode at once."""
    volume = write_frames(tmp_path / "volume.tif", 3).read_bytes()
    (tmp_path / "cut.tif").write_bytes(volume[: len(volume) - 40])  # its directories cut short: "Corrupt EXIF data"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16 * 16 - 1)  # over the limit, under twice it: PIL warns
    bomb = write_frames(tmp_path / "bomb.png", 1)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        with ThreadPoolExecutor(8) as pool:
            refused = list(pool.map(refusal, [str(tmp_path / "cut.tif"), str(bomb)] * 16))
        assert warnings.filters == before
        assert not shown, [str(w.message) for w in shown]
        warnings.warn("the caller's own", Image.DecompressionBombWarning)
        assert [str(w.message) for w in shown] == ["the caller's own"]
    assert {r.split(":")[0] for r in refused} == {str(tmp_path / "cut.tif"), str(bomb)}
    assert all("decompression bomb" in r for r in refused if "bomb.png" in r)


def refusal(path: str) -> str:
    with pytest.raises(InputError) as refused:
        decode_image(path, 16)
    return str(refused.value)


@pytest.mark.skipif(sys.platform == "win32", reason="Windows keeps it in %LOCALAPPDATA%")
def test_the_data_root_follows_flag_then_ganfp_data_then_xdg(tmp_path, monkeypatch):
    """docs/datasets.md's rule: --data-root, else $GANFP_DATA, else $XDG_DATA_HOME/ganfp, else ~/.local/share/ganfp.
    An empty variable is unset, as XDG reads its own (spaces alone are refused: tests/test_cli.py)."""
    from ganfp.paths import data_root, runs_root

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GANFP_DATA", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert data_root() == tmp_path / "home" / ".local" / "share" / "ganfp"
    for ignored in ("relative/xdg", "  "):  # the XDG spec: a relative value is invalid, to be ignored
        monkeypatch.setenv("XDG_DATA_HOME", ignored)
        assert data_root() == tmp_path / "home" / ".local" / "share" / "ganfp"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "ganfp"
    monkeypatch.setenv("GANFP_DATA", "")
    monkeypatch.setenv("GANFP_RUNS", "")
    assert data_root() == tmp_path / "xdg" / "ganfp" and runs_root() == Path("runs")
    monkeypatch.setenv("GANFP_DATA", str(tmp_path / "g"))
    assert data_root() == tmp_path / "g" and data_root(tmp_path / "flag") == tmp_path / "flag"


def test_a_file_named_in_another_encoding_can_be_trained_on(tmp_path):
    """Training writes no id: a Latin-1 file name (surrogates in Python) only has to survive the dataset fingerprint
    that chain re-runs and the decode cache compare, which failed with a UnicodeEncodeError."""
    import os

    root = write_class_folder(tmp_path / "ds", n_per_class=4)
    first = sorted((root / "a").iterdir())[0]
    os.rename(first, os.path.join(os.fsencode(root / "a"), b"caf\xe9.png"))
    manifest = load_manifest(str(root), data_root=tmp_path)
    assert any("caf\udce9" in it.path for it in manifest.items)
    assert load_images(manifest, 16, tmp_path).images.shape == (len(manifest), 16, 16)


def test_images_in_hidden_folders_are_not_part_of_the_set(tmp_path):
    """A file deleted on a Linux desktop moves to `.Trash-1000/files/` inside the folder; Jupyter keeps
    `.ipynb_checkpoints/`: their images became rows of a submission or training images of a class."""
    root = write_class_folder(tmp_path / "ds", n_per_class=4)
    for hidden in (".Trash-1000/files", ".ipynb_checkpoints"):
        (root / "a" / hidden).mkdir(parents=True)
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "a" / hidden / "deleted.png")
    manifest = load_manifest(str(root), data_root=tmp_path)
    assert len(manifest) == 8 and not any("deleted" in it.path for it in manifest.items)


def test_files_not_read_as_images_are_warned_of_on_every_call_once_each(tmp_path, caplog):
    """The warning came once per process: a notebook that read the folder again heard nothing the second time.
    Within one call (classify reading a folder as the real images and as --calibrate's) it comes once."""
    from ganfp.data.real import read_real

    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(real / f"r{i}.png")
    (real / "scan.raw").write_bytes(bytes(64))

    def warnings() -> list[str]:
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        caplog.clear()
        return said

    for call in (1, 2):
        assert len(read_real(str(real), tmp_path)) == 3
        said = warnings()
        assert said == [f"{real}: 1 file skipped, not in an image format ganfp reads (first: scan.raw)"], call
    from ganfp.data.manifest import folder_warnings_once

    with folder_warnings_once():
        read_real(str(real), tmp_path)
        read_real(str(real), tmp_path)
    assert len(warnings()) == 1


def test_a_warning_kept_for_the_report_is_still_printed_from_python(tmp_path):
    """A call keeps what it logs for its report (`folder_warnings_once`) by a handler of its own; with no other
    handler (a plain script or a notebook), Python's last resort, which prints a warning on stderr, stayed silent."""
    folder = tmp_path / "real"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "a.png")
    (folder / "scan.raw").write_bytes(bytes(64))
    script = ("import sys; from ganfp.data.manifest import folder_warnings_once, with_logged; "
              "from ganfp.data.real import read_real\n"
              "with folder_warnings_once():\n    read_real(sys.argv[1], sys.argv[2]); print(with_logged([]))")
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(tmp_path / "data")], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    said = f"{folder}: 1 file skipped, not in an image format ganfp reads (first: scan.raw)"
    assert done.returncode == 0 and done.stderr.strip() == said and done.stdout.strip() == repr([said]), done



def test_a_warning_logged_inside_nested_collectors_is_printed_once_from_python(tmp_path):
    """A chain's stage keeps its warnings inside the chain's own collector: each kept them by a handler of its own,
    and each printed the warning through Python's last resort, so a notebook running a chain saw it twice."""
    script = ("import logging; from ganfp.data.manifest import logged_warnings\n"
              "with logged_warnings() as outer, logged_warnings() as inner:\n"
              "    logging.getLogger('ganfp.data').warning('said once')\n"
              "print(outer, inner)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert done.returncode == 0 and done.stderr == "said once\n", done
    assert done.stdout.strip() == "['said once'] ['said once']", done


def test_a_call_keeps_the_warnings_logged_on_its_own_thread_only():
    """Two library calls at once in two threads (a notebook's thread pool) each kept the other's warnings as their
    own, in their reports and stage summaries: one handler on the logger took every thread's records."""
    import logging
    import threading

    from ganfp.data.manifest import logged_warnings

    logger, opened, other_logged = logging.getLogger("ganfp.data"), threading.Event(), threading.Event()
    kept: dict[str, list[str]] = {}

    def call() -> None:
        with logged_warnings() as mine:
            opened.set()
            other_logged.wait(10)
            logger.warning("the thread's")
        kept["thread"] = mine

    worker = threading.Thread(target=call)
    worker.start()
    opened.wait(10)
    with logged_warnings() as main:
        logger.warning("the main thread's")
    other_logged.set()
    worker.join(10)
    assert main == ["the main thread's"] and kept["thread"] == ["the thread's"], (main, kept)


def test_a_macos_forks_folder_is_no_class_and_no_images(tmp_path):
    """A zip made on a Mac and unzipped elsewhere leaves `__MACOSX/`, a copy of its tree holding `._NAME` resource
    forks: read as a class of images (its files hidden), the dataset was refused for an empty class."""
    from ganfp.data.real import read_real

    root = write_class_folder(tmp_path / "ds", n_per_class=4)
    flat = tmp_path / "real"
    flat.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(flat / f"r{i}.png")
    for folder in (root, flat):
        (folder / "__MACOSX" / "a").mkdir(parents=True)
        (folder / "__MACOSX" / "a" / "._a0.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    manifest = load_manifest(str(root), data_root=tmp_path)
    assert manifest.classes == ["a", "b"] and len(manifest) == 8
    assert [Path(it.path).name for it in read_real(str(flat), tmp_path).items] == ["r0.png", "r1.png", "r2.png"]


def test_folder_adapter_labels_groups_and_flat_folders(tmp_path):
    root = write_class_folder(tmp_path / "ds", n_per_class=6, groups=3)
    manifest = load_manifest(str(root), data_root=tmp_path)
    assert manifest.classes == ["a", "b"] and manifest.labelled
    assert manifest.class_counts() == {"a": 6, "b": 6}
    assert manifest.items[0].group == "a/p0"
    flat = load_manifest(f"folder:{root / 'a' / 'p0'}", data_root=tmp_path)
    assert not flat.labelled and len(flat) == 2 and flat.classes == []
    with pytest.raises(InputError, match="no images found"):
        load_manifest(f"folder:{tmp_path}/empty", data_root=tmp_path) if (tmp_path / "empty").mkdir() is None else None
    with pytest.raises(InputError, match="unknown dataset"):
        load_manifest("nope:thing", data_root=tmp_path)
    meant = r"unknown dataset 'imagecelf-gans-2023:dev' \(did you mean 'imageclef-gans-2023'\?\)"
    with pytest.raises(InputError, match=meant):  # a typo: the list of adapters did not say which was meant
        load_manifest("imagecelf-gans-2023:dev", data_root=tmp_path)


def test_cache_is_built_once_and_rebuilt_when_files_or_size_change(tmp_path, monkeypatch):
    root = write_class_folder(tmp_path / "ds", n_per_class=4, size=16)
    calls = []
    real = cache_mod.decode_with_depth
    monkeypatch.setattr(cache_mod, "decode_with_depth", lambda p, s, *read: calls.append(p) or real(p, s, *read))
    manifest = load_manifest(str(root), data_root=tmp_path)
    first = load_images(manifest, 16, data_root=tmp_path)
    assert len(calls) == 8 and not first.reused and first.images.dtype == torch.uint8
    again = load_images(load_manifest(str(root), data_root=tmp_path), 16, data_root=tmp_path)
    assert len(calls) == 8 and again.reused and torch.equal(again.images, first.images)
    load_images(manifest, 8, data_root=tmp_path)  # another size: decoded again
    assert len(calls) == 16
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(root / "a" / "a000.png")  # a file changes
    changed = load_images(load_manifest(str(root), data_root=tmp_path), 16, data_root=tmp_path)
    assert len(calls) == 24 and not changed.reused and changed.images[0].max() == 7


def test_a_cache_record_without_depths_gets_them_from_the_headers_without_decoding(tmp_path, monkeypatch):
    """A record an older ganfp wrote has no "depths": they are read from the files' headers, no image decoded again,
    and written into the record; a header that cannot be read leaves them unknown (None), the run unharmed."""
    root = write_class_folder(tmp_path / "ds", n_per_class=4, size=16)
    Image.fromarray(np.full((16, 16), 3000, np.uint16)).save(root / "b" / "b001.png")  # 16-bit
    manifest = load_manifest(str(root), data_root=tmp_path)
    first = load_images(manifest, 16, data_root=tmp_path)
    (record,) = (tmp_path / "cache" / "images").glob("*.json")
    old = json.loads(record.read_text())
    del old["depths"]
    record.write_text(json.dumps(old))
    decoded = []
    real = cache_mod.decode_with_depth
    monkeypatch.setattr(cache_mod, "decode_with_depth", lambda p, s, *read: decoded.append(p) or real(p, s, *read))
    again = load_images(manifest, 16, data_root=tmp_path)
    assert again.reused and decoded == [] and again.depths == first.depths == ["8-bit"] * 5 + ["16-bit"] + ["8-bit"] * 2
    assert json.loads(record.read_text())["depths"] == first.depths
    record.write_text(json.dumps(old))

    def unreadable(*manifests):
        raise InputError(f"{root / 'a' / 'a000.png'}: cannot read it")

    monkeypatch.setattr(cache_mod, "image_headers", unreadable)
    assert load_images(manifest, 16, data_root=tmp_path).depths is None and decoded == []
    assert "depths" not in json.loads(record.read_text())


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="no posix_fallocate (macOS, Windows)")
def test_a_cache_the_disk_has_no_room_for_fails_in_one_line_before_any_image_is_decoded(tmp_path, monkeypatch):
    """The array was memory-mapped sparse and written page by page: on a full disk the process died of SIGBUS."""
    root = write_class_folder(tmp_path / "ds", n_per_class=4, size=16)
    decoded = []
    real = cache_mod.decode_with_depth
    monkeypatch.setattr(cache_mod, "decode_with_depth", lambda p, s, *read: decoded.append(p) or real(p, s, *read))

    def full_disk(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full_disk)
    with pytest.raises(RuntimeFailure, match=r"\.npy: cannot write it \(No space left on device\)"):
        load_images(load_manifest(str(root), data_root=tmp_path), 16, data_root=tmp_path)
    assert decoded == [] and not list((tmp_path / "cache" / "images").glob("*.npy*"))


@pytest.mark.parametrize("damage", ["empty", "cut short", "zero-filled"])
def test_a_damaged_cache_array_is_decoded_again(tmp_path, damage):
    """What a power cut can leave of a file renamed before its data was on disk (ganfp syncs it first; a copied or
    restored cache may not be): a miss, decoded again. The empty file failed every later run with numpy's EOFError."""
    manifest = load_manifest(str(write_class_folder(tmp_path / "ds", n_per_class=4, size=16)), data_root=tmp_path)
    first = load_images(manifest, 16, data_root=tmp_path)
    data = first.path.read_bytes()
    first.path.write_bytes({"empty": b"", "cut short": data[: len(data) // 2], "zero-filled": bytes(len(data))}[damage])
    again = load_images(manifest, 16, data_root=tmp_path)
    assert not again.reused and torch.equal(again.images, first.images)
    assert first.path.read_bytes() == data


def test_decode_progress_is_reported_on_the_callers_thread(tmp_path):
    """Progress bars are not thread-safe: reported from the decoding threads, one thread removed a finished
    bar while another still advanced it (a KeyError out of `ganfp chain` on a 16-core machine)."""
    import threading

    root = write_class_folder(tmp_path / "ds", n_per_class=20, size=16)
    threads = []
    load_images(load_manifest(str(root), data_root=tmp_path), 16, data_root=tmp_path,
                on_image=lambda: threads.append(threading.get_ident()))
    assert threads == [threading.get_ident()] * 40


def test_cache_over_the_memory_budget_stays_memory_mapped(tmp_path):
    manifest = load_manifest(str(write_class_folder(tmp_path / "ds", 4, 16)), data_root=tmp_path)
    in_ram = load_images(manifest, 16, data_root=tmp_path)
    mapped = load_images(manifest, 16, data_root=tmp_path, memory_budget=0)
    assert mapped.memory_mapped and not in_ram.memory_mapped
    batches = list(iterate_batches(mapped.images, np.array([5, 1, 3]), 2, torch.device("cpu")))
    assert torch.allclose(batches[0][0][1, 0], (in_ram.images[1].float() / 255 - MEAN) / STD, atol=1e-5)


def test_skip_bad_drops_and_reports_unreadable_files(tmp_path):
    root = write_class_folder(tmp_path / "ds", n_per_class=3, size=8)
    (root / "b" / "zz.png").write_text("not an image")
    manifest = load_manifest(str(root), data_root=tmp_path)
    with pytest.raises(InputError, match=r"zz.png: not an image file.*--skip-bad"):
        load_images(manifest, 8, data_root=tmp_path)
    result = load_images(manifest, 8, data_root=tmp_path, skip_bad=True)
    assert len(result.manifest) == 6 and result.bad[0][0].endswith("zz.png")
    assert list(result.manifest.labels) == [0, 0, 0, 1, 1, 1]



def test_when_every_file_is_bad_the_error_shows_one_and_why(tmp_path):
    """--skip-bad with nothing left: "none could be decoded" alone leaves the user guessing at the cause."""
    for cls in ("a", "b"):
        (tmp_path / "ds" / cls).mkdir(parents=True)
        (tmp_path / "ds" / cls / f"{cls}.png").write_text("not an image")
    manifest = load_manifest(str(tmp_path / "ds"), data_root=tmp_path)
    with pytest.raises(InputError, match=r"none of the 2 images could be decoded \(e\.g\. .*a\.png: not an image file"):
        load_images(manifest, 8, data_root=tmp_path, skip_bad=True)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.png").write_text("not an image")
    manifest = load_manifest(str(tmp_path / "one"), data_root=tmp_path)
    with pytest.raises(InputError, match=r"its one image could not be decoded \(/.*a\.png: not an image file"):
        load_images(manifest, 8, data_root=tmp_path, skip_bad=True)

def test_batches_come_in_the_requested_order_and_normalised():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1).expand(5, 2, 2).contiguous()
    labels = torch.tensor([0, 1, 0, 1, 0])
    out = list(iterate_batches(images, np.array([4, 0, 2]), 2, torch.device("cpu"), labels))
    assert [x.shape for x, _ in out] == [(2, 1, 2, 2), (1, 1, 2, 2)]
    assert torch.allclose(out[0][0][:, 0, 0, 0], (torch.tensor([4.0, 0.0]) / 255 - MEAN) / STD, atol=1e-5)
    assert out[0][1].tolist() == [0, 0]


def test_augmentation_is_seeded_and_batched():
    x = torch.randn(6, 1, 12, 12)
    a, b = BatchAugment(seed=3)(x), BatchAugment(seed=3)(x)
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(BatchAugment(seed=4)(x), a)


def test_split_is_stratified_and_keeps_groups_together(tmp_path):
    manifest = load_manifest(str(write_class_folder(tmp_path / "ds", 20, 8, groups=10)), data_root=tmp_path)
    train, val = split_indices(manifest, 0.2, seed=0)
    assert len(set(train) | set(val)) == 40 and not set(train) & set(val)
    groups = manifest.groups
    assert not {groups[i] for i in train} & {groups[i] for i in val}
    assert set(manifest.labels[val]) == {0, 1}
    again, _ = split_indices(manifest, 0.2, seed=0)
    assert np.array_equal(train, again)
