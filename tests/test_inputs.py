"""Inputs that are unusual but valid are read right: the ImageCLEF test layout, a BOM, an id named like a header."""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from ganfp.errors import InputError
from ganfp.fetch.archive import unpack
from ganfp.submission import read_predictions, write_submission


def _images(folder, n, prefix, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{prefix}{i}.png")


def test_classify_reads_the_imageclef_test_layout(tmp_path, run_cli):
    _images(tmp_path / "test" / "real_unknown_1", 6, "real_", 0)
    _images(tmp_path / "test" / "generated_1", 8, "gen_", 1)
    out = tmp_path / "sub.csv"
    code, stdout, err = run_cli("classify", tmp_path / "test", "--out", out, "--method", "knn", "--k", "2",
                                "--data-root", tmp_path / "root", "--json")
    assert code == 0, err
    assert sorted(read_predictions(out).ids) == [f"real_{i}" for i in range(6)]  # generated_1/ is not a real class
    assert json.loads(stdout)["generated"] == 8  # it is the generated set


def test_a_test_set_is_never_compared_with_another_test_sets_generated_images(tmp_path, run_cli):
    """`real_unknown_2/` beside a lone `generated_1/` was scored against generated_1/ (another generator's images,
    in the 2024 layout); given alone, the hint told the user to pass that folder."""
    _images(tmp_path / "test" / "real_unknown_2", 6, "real_", 0)
    _images(tmp_path / "test" / "generated_1", 8, "gen_", 1)
    out, root = tmp_path / "sub.csv", ["--data-root", tmp_path / "root", "--runs-dir", tmp_path / "runs"]
    code, _, err = run_cli("classify", tmp_path / "test", "--out", out, *root)
    assert code == 2 and "Traceback" not in err, err
    assert "real_unknown_2: no generated_2/ beside it (generated_1/: another test set's" in err, err
    code, _, err = run_cli("classify", tmp_path / "test" / "real_unknown_2", "--out", out, *root)
    assert code == 2 and "pass --generated GEN_DIR" in err and "generated_1" not in err, err
    assert not out.exists()
    _images(tmp_path / "test" / "generated_2", 8, "gen2_", 2)  # its own generated set: read, as before
    code, stdout, err = run_cli("classify", tmp_path / "test", "--out", out, "--method", "knn", "--k", "2", "--json",
                                *root)
    assert code == 0, err
    assert json.loads(stdout)["generated"] == 8


def test_a_test_sets_own_generated_folder_without_loose_images_is_read_or_refused(tmp_path, run_cli):
    """An empty `generated_1/` (an unpacking that failed) left the test set without generated images in silence
    (classify ran the classifier), though an empty `generated/` beside real images is refused; one whose images
    sit in sub-folders was not read either."""
    _images(tmp_path / "test" / "real_unknown_1", 6, "real_", 0)
    (tmp_path / "test" / "generated_1").mkdir()
    out, root = tmp_path / "sub.csv", ["--data-root", tmp_path / "root", "--runs-dir", tmp_path / "runs"]
    code, _, err = run_cli("classify", tmp_path / "test", "--out", out, *root)
    assert code == 2 and "Traceback" not in err, err
    assert "generated_1: the generated images folder holds no images" in err, err
    _images(tmp_path / "test" / "generated_1" / "batch1", 8, "gen_", 1)
    code, stdout, err = run_cli("classify", tmp_path / "test", "--out", out, "--method", "knn", "--k", "2", "--json",
                                *root)
    assert code == 0, err
    assert json.loads(stdout)["generated"] == 8


def test_real_images_beside_several_generated_folders_ask_which(tmp_path, run_cli):
    """`real/` with `generated_1/` and `generated_2/` inside read neither and ran the classifier in silence."""
    _images(tmp_path / "real", 6, "real_", 0)
    for n in (1, 2):
        _images(tmp_path / "real" / f"generated_{n}", 8, f"gen{n}_", n)
    out, root = tmp_path / "sub.csv", ["--data-root", tmp_path / "root", "--runs-dir", tmp_path / "runs"]
    code, _, err = run_cli("classify", tmp_path / "real", "--out", out, *root)
    assert code == 2 and "Traceback" not in err, err
    assert "holds several generated folders (generated_1/, generated_2/); pass --generated" in err, err
    code, stdout, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "real" / "generated_2",
                                "--out", out, "--method", "knn", "--k", "2", "--json", *root)
    assert code == 0, err
    assert json.loads(stdout)["images"] == 6


def test_evaluate_report_never_shows_another_test_sets_generated_images(tmp_path, run_cli):
    """`evaluate --report --real test/` drew real_unknown_2/'s neighbours from a lone generated_1/."""
    pytest.importorskip("matplotlib")
    _images(tmp_path / "test" / "real_unknown_2", 6, "real_", 0)
    _images(tmp_path / "test" / "generated_1", 8, "gen_", 1)
    preds, labels = tmp_path / "preds.csv", tmp_path / "labels.csv"
    preds.write_text("".join(f"real_{i},{i % 2}\n" for i in range(6)))
    labels.write_text("id,label\n" + "".join(f"real_{i},{i % 2}\n" for i in range(6)))
    report = tmp_path / "r.html"
    code, _, err = run_cli("evaluate", preds, labels, "--report", report, "--real", tmp_path / "test")
    assert code == 2 and "Traceback" not in err, err
    assert "--real " in err and "real_unknown_2: no generated_2/ beside it" in err, err
    assert not report.exists()


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need a privilege on Windows")
def test_linked_images_are_named_by_their_links(tmp_path, run_cli):
    """DVC, git-annex and the Hugging Face cache link each named image to a blob named by its hash."""
    rng = np.random.default_rng(0)
    (tmp_path / "blobs").mkdir()
    (tmp_path / "real").mkdir()
    for i in range(6):
        blob = tmp_path / "blobs" / f"{i:02d}5e1f0c9a"
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(blob, format="PNG")
        (tmp_path / "real" / f"case_{i}.png").symlink_to(blob)
    _images(tmp_path / "generated", 8, "gen_", 1)
    out = tmp_path / "sub.csv"
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "generated", "--out", out,
                           "--method", "knn", "--k", "2", "--data-root", tmp_path / "root")
    assert code == 0, err
    assert sorted(read_predictions(out).ids) == [f"case_{i}" for i in range(6)]


def test_a_generated_set_of_flat_images_scores_finitely(tmp_path, run_cli):
    """A collapsed generator's all-black output: whitening by its spectrum divided by zero power."""
    _images(tmp_path / "real", 6, "real_", 0)
    (tmp_path / "generated").mkdir()
    for i in range(8):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "generated" / f"gen_{i}.png")
    scores = tmp_path / "scores.csv"
    code, _, err = run_cli("classify", tmp_path / "real", "--generated", tmp_path / "generated", "--out",
                           tmp_path / "sub.csv", "--scores", scores, "--data-root", tmp_path / "root")
    assert code == 0, err
    values = np.loadtxt(scores, delimiter=",", skiprows=1, usecols=(1, 2, 3, 4))
    assert values.shape == (6, 4) and np.isfinite(values).all()


def test_evaluate_reads_a_bom_and_says_the_organisers_would_not(tmp_path, run_cli):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\na,1\nb,0\n")
    for name, text in (("official.csv", "a,1\nb,0\n"), ("headered.csv", "id,label\na,1\nb,0\n")):
        preds = tmp_path / name
        preds.write_bytes(b"\xef\xbb\xbf" + text.encode())
        code, stdout, err = run_cli("evaluate", preds, labels, "--json")
        assert code == 0, err
        report = json.loads(stdout)
        assert report["metrics"]["accuracy"] == 1.0
        assert any("byte order mark" in note for note in report["notes"]) is (name == "official.csv")


def test_an_image_named_like_a_header_word_is_a_row(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, ["image", "b"], [1, 0])
    assert read_predictions(path, ids=["image", "b"]).ids == ["image", "b"]


def test_a_damaged_last_block_of_a_compressed_tar_is_refused(tmp_path):
    payload = np.random.default_rng(0).bytes(2_500_000)  # incompressible: several bzip2 blocks
    archive = tmp_path / "data.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tf:
        info = tarfile.TarInfo("x/noise.bin")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    data = bytearray(archive.read_bytes())
    for i in range(len(data) - 20000, len(data) - 19000):  # after the member's bytes tarfile reads
        data[i] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged or incomplete archive"):
        unpack(archive, tmp_path / "out", 10**9)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads folders without permission")
def test_a_folder_without_read_permission_is_one_line(tmp_path, run_cli):
    real = tmp_path / "real"
    _images(real, 3, "r", 0)
    real.chmod(0o000)
    try:
        code, _, err = run_cli("classify", real, "--generated", real, "--out", tmp_path / "s.csv",
                               "--data-root", tmp_path / "root")
    finally:
        real.chmod(0o755)
    assert code == 2 and "cannot read the folder" in err and len(err.strip().splitlines()) == 1
