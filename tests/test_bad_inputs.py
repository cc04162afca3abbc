"""The bad-input suite: broken and hostile inputs to every command get one line, the right exit code, no escape.

Each case runs `ganfp ARGS` in-process (the `run_cli` fixture) inside its own target folder (the
working directory, the runs folder and every output live there) and asserts:

- the exit code: 2 for a usage or input error, 1 for a runtime failure;
- the output, stdout and stderr together, is exactly one non-empty line, starting with "error:",
  and holds no "Traceback". Click's usage errors count the same way: `ganfp.cli.main` prints them
  as one line ("error: Missing option '--out'. (see 'ganfp train-stage --help')"), not as click's
  usage block, so there is nothing to discount;
- nothing was written outside the target: the shared inputs (recursively) and the folders around
  the target (their entries) are the same before and after.

Nothing here trains: inputs are refused before the first epoch (the few that could start are
tiny: conv5, 16 px, one epoch).
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from helpers.images import write_frames
from PIL import Image

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ----------------------------------------------------------------------------------------------- inputs


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb when large), with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def images(folder: Path, n: int, size=(16, 16), prefix: str = "i", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{prefix}{i:03d}.png")
    return folder


def build_world(w: Path) -> dict[str, Path]:
    """Every input the cases name, built once; cases only read these."""
    p: dict[str, Path] = {}
    p["real"] = images(w / "real", 6, prefix="r")
    p["gen"] = images(w / "gen", 6, prefix="g", seed=1)
    p["empty"] = w / "empty"
    p["empty"].mkdir()
    p["afile"] = w / "afile"
    p["afile"].write_text("not a folder\n")
    p["missing"] = w / "missing"
    for cls, seed in (("a", 2), ("b", 3)):
        images(w / "ds" / cls, 8, prefix=cls, seed=seed)
    p["ds"] = w / "ds"
    p["oneclass"] = w / "oneclass"
    images(p["oneclass"] / "only", 8, prefix="o")
    p["bomb_real"] = images(w / "bomb_real", 3, prefix="b")
    (p["bomb_real"] / "bomb.png").write_bytes(png_header(40000, 40000))
    p["bomb_gen"] = images(w / "bomb_gen", 3, prefix="bg")
    (p["bomb_gen"] / "bomb.png").write_bytes(png_header(40000, 40000))
    p["bomb_ds"] = w / "bomb_ds"
    images(p["bomb_ds"] / "a", 4, prefix="a")
    images(p["bomb_ds"] / "b", 4, prefix="b")
    (p["bomb_ds"] / "b" / "bomb.png").write_bytes(png_header(40000, 40000))
    p["corrupt_real"] = images(w / "corrupt_real", 3, prefix="c")
    (p["corrupt_real"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    p["truncated_real"] = images(w / "truncated_real", 3, prefix="t")
    full = (p["truncated_real"] / "t000.png").read_bytes()
    (p["truncated_real"] / "t000.png").write_bytes(full[:60])
    p["volume_real"] = images(w / "volume_real", 3, prefix="v")
    write_frames(p["volume_real"] / "volume.tif", 3)
    p["volume_ds"] = w / "volume_ds"
    images(p["volume_ds"] / "a", 4, prefix="a")
    images(p["volume_ds"] / "b", 4, prefix="b")
    write_frames(p["volume_ds"] / "b" / "cine.gif", 3)
    p["textpng_real"] = images(w / "textpng_real", 3, prefix="x")
    p["empty_png_gen"] = images(w / "empty_png_gen", 3, prefix="e")
    (p["empty_png_gen"] / "e999.png").write_bytes(b"")
    (p["textpng_real"] / "notes.png").write_text("hello")
    p["mixed_sizes"] = images(w / "mixed_sizes", 3, prefix="m")
    images(p["mixed_sizes"], 2, size=(24, 24), prefix="n")
    p["nonsquare"] = images(w / "nonsquare", 3, size=(16, 12), prefix="q")
    for name in ("broken_link_real", "broken_link_gen"):
        p[name] = images(w / name, 3, prefix=name[-4:])
        if hasattr(os, "symlink") and os.name != "nt":
            (p[name] / "gone.png").symlink_to(w / "moved" / "gone.png")
    if hasattr(os, "symlink") and os.name != "nt":  # loops: a link to the folder itself, and a class's to its parent
        (images(w / "loop_real", 3, prefix="lr") / "again").symlink_to(".", target_is_directory=True)
        images(w / "loop_dev" / "not_used", 3, prefix="ln")
        (images(w / "loop_dev" / "used", 3, prefix="lu") / "up").symlink_to("..", target_is_directory=True)
    p["loop_real"], p["loop_dev"] = w / "loop_real", w / "loop_dev"
    p["tiny"] = images(w / "tiny", 3, size=(5, 5), prefix="y")
    p["tiny_gen"] = images(w / "tiny_gen", 3, size=(5, 5), prefix="yg")
    p["dup_ids"] = images(w / "dup_ids", 3, prefix="d")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(p["dup_ids"] / "d000.jpg")
    p["comma_id"] = images(w / "comma_id", 3, prefix="k")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(p["comma_id"] / "a,b.png")
    p["two_tests"] = w / "two_tests"
    for i in (1, 2):
        images(p["two_tests"] / f"real_unknown_{i}", 3, prefix=f"u{i}_")
        images(p["two_tests"] / f"generated_{i}", 3, prefix=f"g{i}_")
    p["dev_tiny"] = w / "dev_tiny"
    for part, prefix in (("used", "dt"), ("not_used", "dn"), ("generated", "dg")):
        images(p["dev_tiny"] / part, 3, size=(5, 5), prefix=prefix)
    p["dev_no_gen"] = w / "dev_no_gen"
    images(p["dev_no_gen"] / "used", 3, prefix="du")
    images(p["dev_no_gen"] / "not_used", 3, prefix="dn")
    p["dev_no_not_used"] = w / "dev_no_not_used"
    p["mixed_sizes_dev"] = w / "mixed_sizes_dev"
    for part, prefix in (("used", "mu"), ("not_used", "mn")):
        images(p["mixed_sizes_dev"] / part, 2, prefix=prefix)
    images(p["mixed_sizes_dev"] / "generated", 3, size=(24, 24), prefix="mg")
    p["truncated_dev"] = w / "truncated_dev"
    for part, prefix in (("used", "tu"), ("not_used", "tn"), ("generated", "tg")):
        images(p["truncated_dev"] / part, 3, prefix=prefix)
    cut = p["truncated_dev"] / "used" / "tu000.png"
    cut.write_bytes(cut.read_bytes()[:60])  # the header reads; the pixels do not
    images(p["dev_no_not_used"] / "used", 3, prefix="du")
    images(p["dev_no_not_used"] / "generated", 3, prefix="dg")
    p["unreadable"] = images(w / "unreadable", 3, prefix="z")
    p["mixed_layout"] = images(w / "mixed_layout", 3, prefix="l")
    images(p["mixed_layout"] / "batch2", 2, prefix="s")
    _ids_files(w, p)
    _csv_files(w, p)
    _archives(w, p)
    _chains(w, p)
    _checkpoints(w, p)
    _stages_in_out(w, p)
    _train_audit(w, p)
    _attribution_sets(w, p)
    return p


def _attribution_sets(w: Path, p: dict) -> None:
    p["comma_class_ds"] = w / "comma_class_ds"
    images(p["comma_class_ds"] / "a,b", 4, prefix="a")
    images(p["comma_class_ds"] / "c", 4, prefix="c", seed=1)


def _ids_files(w: Path, p: dict) -> None:
    real_ids = [f"r{i:03d}" for i in range(6)]
    p["ids_extra"] = w / "ids_extra.txt"
    p["ids_extra"].write_text("\n".join(real_ids + ["zzz"]) + "\n")
    p["ids_short"] = w / "ids_short.txt"
    p["ids_short"].write_text("\n".join(real_ids[:4]) + "\n")
    p["ids_empty"] = w / "ids_empty.txt"
    p["ids_empty"].write_text("")
    p["ids_dup"] = w / "ids_dup.txt"
    p["ids_dup"].write_text("\n".join(real_ids + ["r000"]) + "\n")


CSV_FILES = {
    "labels": "id,label\na,1\nb,0\nc,1\nd,0\n",
    "official": "a,1\nb,0\nc,1\nd,0\n",
    "scores": "id,score\na,0.9\nb,0.1\nc,0.8\nd,0.2\n",
    "empty_csv": "",
    "header_only": "id,label\n",
    "unknown_header": "name,prob,extra\na,1,2\n",
    "three_tokens": "a,1,0\nb,0\nc,1\nd,0\n",
    "label_2": "a,2\nb,0\nc,1\nd,0\n",
    "label_neg": "a,-1\nb,0\nc,1\nd,0\n",
    "label_word": "a,yes\nb,0\nc,1\nd,0\n",
    "label_float": "a,0.5\nb,0\nc,1\nd,0\n",
    "dup_id": "a,1\na,0\nc,1\nd,0\n",
    "missing_id": "a,1\nb,0\nc,1\n",
    "extra_id": "a,1\nb,0\nc,1\nd,0\ne,1\n",
    "empty_line": "a,1\n\nb,0\nc,1\nd,0\n",
    "empty_id": ",1\nb,0\nc,1\nd,0\n",
    "score_nan": "id,score\na,nan\nb,0.1\nc,0.8\nd,0.2\n",
    "score_inf": "id,score\na,inf\nb,0.1\nc,0.8\nd,0.2\n",
    "score_word": "id,score\na,high\nb,0.1\nc,0.8\nd,0.2\n",
    "score_short_row": "id,score\na\nb,0.1\nc,0.8\nd,0.2\n",
    "headered_label_2": "id,label\na,2\nb,0\nc,1\nd,0\n",
    "headered_dup": "id,label\na,1\na,0\nc,1\nd,0\n",
    "headered_empty_id": "id,label\n,1\nb,0\nc,1\nd,0\n",
    "headered_empty_line": "id,label\na,1\n\nc,1\nd,0\n",
    "two_id_columns": "id,image_id,label\na,a,1\n",
    "two_label_columns": "id,label,predicted_class\na,1,1\n",
    "labels_with_scores": "id,label,score\na,1,0.9\nb,0,0.1\nc,1,0.8\nd,0,0.2\n",
    "labels_3": "id,label\na,3\nb,0\nc,1\nd,0\n",
    "path_class_bad": "image_path,predicted_class\nx/a.png,used\n",
    "only_commas": ",,,\n",
    "clusters": "id,cluster\na,0\nb,1\nc,0\nd,1\n",
    "semicolons": "id;score\r\na;0,9\r\nb;0,1\r\nc;0,8\r\nd;0,2\r\n",  # a spreadsheet's export in a European locale
    "tabs": "a\t1\nb\t0\nc\t1\nd\t0\n",
    "trailing_empty_columns": "id,score,,\na,0.9,,\nb,0.1,,\nc,0.8,,\nd,0.2,,\n",
    "pandas_index": ",id,score\n0,a,0.9\n1,b,0.1\n2,c,0.8\n3,d,0.2\n",
    "classes": "id,label\na,gan\nb,diffusion\nc,gan\nd,diffusion\n",
    "attributed": "image_path,predicted_class\na.png,gan\nb.png,gan\nc.png,gan\nd.png,diffusion\n",
    "clusters_no_header": "a,0\nb,1\nc,0\nd,1\n",
    "clusters4_no_header": "a,3\nb,2\nc,1\nd,0\n",
    "zero_padded_labels": "id,label\n007,1\n008,0\n",
    "plain_number_preds": "id,label\n7,1\n8,0\n",
    "classes_semicolons": "image_path;predicted_class\na.png;gan\nb.png;diffusion\n",
}


def _csv_files(w: Path, p: dict) -> None:
    for name, text in CSV_FILES.items():
        p[name] = w / f"{name}.csv"
        p[name].write_text(text, encoding="utf-8")
    p["binary_csv"] = w / "binary.csv"
    p["binary_csv"].write_bytes(b"\x00\x01\x02a,1\n")
    p["latin1_csv"] = w / "latin1.csv"
    p["latin1_csv"].write_bytes("caf\xe9,1\n".encode("latin-1"))
    p["csv_dir"] = w / "csv_dir.csv"
    p["csv_dir"].mkdir()
    p["utf16_csv"] = w / "utf16.csv"
    p["utf16_csv"].write_bytes(CSV_FILES["scores"].encode("utf-16"))
    p["gzip_csv"] = w / "scores.csv.gz"
    p["gzip_csv"].write_bytes(gzip.compress(CSV_FILES["scores"].encode()))
    p["xlsx"] = w / "scores.xlsx"
    with zipfile.ZipFile(p["xlsx"], "w") as book:
        book.writestr("xl/workbook.xml", "<workbook/>")


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> Path:
    import io

    with tarfile.open(path, mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def _archives(w: Path, p: dict) -> None:
    p["bad_tbz"] = w / "bad.tar.bz2"
    p["bad_tbz"].write_bytes(b"BZh91AY&SY" + b"\0" * 200)
    good = _tar(w / "big.tar.bz2", [("x/noise.bin", np.random.default_rng(0).bytes(2_500_000))], "w:bz2")
    data = bytearray(good.read_bytes())
    for i in range(len(data) - 20000, len(data) - 19000):  # a damaged block in the middle of the stream
        data[i] ^= 0xFF
    p["corrupt_tbz"] = w / "corrupt.tar.bz2"
    p["corrupt_tbz"].write_bytes(bytes(data))
    good.unlink()
    p["trunc_tgz"] = w / "trunc.tar.gz"
    full = _tar(w / "full.tar.gz", [("x/a.txt", b"a" * 100_000)], "w:gz").read_bytes()
    p["trunc_tgz"].write_bytes(full[: len(full) // 2])
    (w / "full.tar.gz").unlink()
    p["trunc_zip"] = w / "trunc.zip"
    with zipfile.ZipFile(w / "full.zip", "w") as zf:
        zf.writestr("x/a.txt", b"a" * 10_000)
    p["trunc_zip"].write_bytes((w / "full.zip").read_bytes()[:40])
    (w / "full.zip").unlink()
    p["not_zip"] = w / "not.zip"
    p["not_zip"].write_text("plain text")
    p["dotdot_zip"] = w / "dotdot.zip"
    with zipfile.ZipFile(p["dotdot_zip"], "w") as zf:
        zf.writestr("../escape.txt", b"x")
    p["abs_zip"] = w / "abs.zip"
    with zipfile.ZipFile(p["abs_zip"], "w") as zf:
        zf.writestr("/tmp/escape.txt", b"x")
    link = tarfile.TarInfo("x/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
    p["symlink_tar"] = _tar(w / "symlink.tar", [link])
    hard = tarfile.TarInfo("x/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    p["hardlink_tar"] = _tar(w / "hardlink.tar", [hard])
    p["dotdot_tar"] = _tar(w / "dotdot.tar", [("../../escape.txt", b"x")])
    p["file_and_dir_tar"] = _tar(w / "file_and_dir.tar", [("x", b"file"), ("x/y", b"child")])
    p["rar"] = w / "data.rar"
    p["rar"].write_bytes(b"Rar!\x1a\x07\x00")
    p["seven_z"] = w / "data.7z"
    p["seven_z"].write_bytes(b"7z\xbc\xaf\x27\x1c")
    p["nul_zip"] = w / "nul.zip"
    with zipfile.ZipFile(p["nul_zip"], "w") as zf:
        zf.writestr("ok.txt", b"x")
    raw = p["nul_zip"].read_bytes().replace(b"ok.txt", b"o\0.txt")
    p["nul_zip"].write_bytes(raw)
    p["empty_zip"] = w / "empty.zip"
    with zipfile.ZipFile(p["empty_zip"], "w"):
        pass
    p["zip_no_suffix"] = w / "download"  # a browser's name for a zip it saved
    with zipfile.ZipFile(p["zip_no_suffix"], "w") as zf:
        zf.writestr("dev/used/a.png", b"x")
    p["deflate64_zip"] = w / "deflate64.zip"  # what Windows writes for large files; zipfile cannot read it
    with zipfile.ZipFile(p["deflate64_zip"], "w") as zf:
        zf.writestr("dev/used/a.png", b"x")
    raw = bytearray(p["deflate64_zip"].read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = raw.index(signature)
        raw[at + offset:at + offset + 2] = (9).to_bytes(2, "little")
    p["deflate64_zip"].write_bytes(bytes(raw))


CHAIN_TOMLS = {
    "valid": 'name = "x"\n[[stages]]\ndataset = "DS"\n',  # only with a bad command-line override
    "syntax": "name = \n[[stages]\n",
    "no_stages": 'name = "x"\n',
    "empty_stages": 'name = "x"\nstages = []\n',
    "stages_ints": 'name = "x"\nstages = [1, 2]\n',
    "defaults_int": 'name = "x"\ndefaults = 5\n[[stages]]\ndataset = "DS"\n',
    "epochs_string": 'name = "x"\n[defaults]\nepochs = "ten"\n[[stages]]\ndataset = "DS"\n',
    "image_size_string": 'name = "x"\n[defaults]\nimage_size = "big"\n[[stages]]\ndataset = "DS"\n',
    "extra_string": 'name = "x"\nextra = "oops"\n[[stages]]\ndataset = "DS"\n',
    "dataset_int": 'name = "x"\n[[stages]]\ndataset = 5\n',
    "epochs_negative": 'name = "x"\n[defaults]\nepochs = -1\n[[stages]]\ndataset = "DS"\n',
    "epochs_zero": 'name = "x"\n[defaults]\nepochs = 0\n[[stages]]\ndataset = "DS"\n',
    "patience_zero": 'name = "x"\n[defaults]\npatience = 0\n[[stages]]\ndataset = "DS"\n',
    "unknown_key": 'name = "x"\n[[stages]]\ndataset = "DS"\nepochz = 3\n',
    "no_dataset": 'name = "x"\n[[stages]]\nname = "a"\n',
    "dup_names": 'name = "x"\n[[stages]]\nname = "a"\ndataset = "DS"\n[[stages]]\nname = "a"\ndataset = "DS"\n',
    "name_dotdot": 'name = "../../x"\n[[stages]]\ndataset = "DS"\n',
    "stage_name_dotdot": 'name = "x"\n[[stages]]\nname = "../../../x"\ndataset = "DS"\n',
    "bad_dataset_2": ('name = "x"\n[[stages]]\nname = "a"\ndataset = "DS"\n'
                      '[[stages]]\nname = "b"\ndataset = "nope:nothing"\n'),
    "unknown_dataset": 'name = "x"\n[[stages]]\ndataset = "nope:nothing"\n',
    "model_key": 'name = "x"\n[[stages]]\ndataset = "DS"\nmodel = "vgg11"\n',  # was replaced by --model unsaid
    "defaults_name": 'name = "x"\n[defaults]\nname = "shared"\n[[stages]]\ndataset = "DS"\n',
    "pseudo_features_2": ('name = "x"\n[[stages]]\nname = "a"\ndataset = "DS"\n[[stages]]\nname = "b"\n'
                          'dataset = "DS"\npseudo_labels = "knn"\npseudo_features = "nope"\n'),
}
TINY_STAGE = {"image_size": 16, "batch_size": 4, "epochs": 1}


def _chains(w: Path, p: dict) -> None:
    defaults = "".join(f"{k} = {v}\n" for k, v in TINY_STAGE.items())
    for name, text in CHAIN_TOMLS.items():
        body = text.replace('"DS"', repr(str(p["ds"])).replace("'", '"'))
        if "[defaults]" not in body and "defaults =" not in body and "[[stages]]" in body:
            body = body.replace("[[stages]]", "[defaults]\n" + defaults + "[[stages]]", 1)
        p[f"chain_{name}"] = w / f"chain_{name}.toml"
        p[f"chain_{name}"].write_text(body)
    p["chain_binary"] = w / "chain_binary.toml"
    p["chain_binary"].write_bytes(b"\x00\xff\xfe binary")


def _checkpoints(w: Path, p: dict) -> None:
    """Stage folders whose model.safetensors carry broken metadata, and files that are no checkpoint."""
    import json

    from safetensors.numpy import save_file

    for name, meta in (("ckpt_no_classes", {"model": "conv5", "image_size": 16}),
                       ("ckpt_unknown_model", {"model": "nonet", "num_classes": 2, "image_size": 16}),
                       ("ckpt_conv5", {"model": "conv5", "num_classes": 2, "image_size": 16, "classes": ["a", "b"]})):
        folder = w / name
        folder.mkdir()
        save_file({"w": np.zeros(2, np.float32)}, str(folder / "model.safetensors"),
                  metadata={"ganfp": json.dumps(meta)})
        p[name] = folder
    p["ckpt_garbage"] = w / "garbage.safetensors"
    p["ckpt_garbage"].write_bytes(b"not a safetensors file")
    p["ckpt_pickle"] = w / "weights.pt"
    p["ckpt_pickle"].write_bytes(b"\x80\x04not really a pickle")


# ------------------------------------------------------------------------------------------------ cases


@dataclass
class Case:
    id: str
    args: list[str]  # "{name}" is replaced by the world path of that name, "{out}" by the target folder
    code: int = 2
    says: tuple[str, ...] = ()  # words the error line must hold
    patch: Callable | None = None  # patch(monkeypatch, paths): e.g. make a folder unreadable
    demo: bool = False  # needs the demo data, built (copied from the session fixture)
    marks: list = field(default_factory=list)


def unreadable(name: str):
    """Reading the folder fails with EACCES (works as root too, where chmod 000 does not stop reads)."""

    def patch(monkeypatch, paths):
        target = os.path.realpath(paths[name])
        real_scandir, real_listdir = os.scandir, os.listdir

        def deny(path="."):
            if isinstance(path, (str, os.PathLike)) and os.path.realpath(os.fspath(path)) == target:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return None

        monkeypatch.setattr(os, "scandir", lambda path=".": deny(path) or real_scandir(path))
        monkeypatch.setattr(os, "listdir", lambda path=".": deny(path) or real_listdir(path))

    return patch


def offline_imagenet(monkeypatch, paths):
    """No ImageNet weights cached and HF_HUB_OFFLINE set: refused in a second, the hub never tried."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(paths["out"] / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


CASES: list[Case] = []


def add(id: str, *args: str, code: int = 2, says: tuple[str, ...] | str = (), **kw) -> None:
    CASES.append(Case(id, list(args), code, (says,) if isinstance(says, str) else tuple(says), **kw))


# fetch-data -------------------------------------------------------------------------------------------
F = ("fetch-data",)
IC = ("fetch-data", "imageclef-gans-2023", "--data-root", "{out}/data")
add("fetch-no-name", *F, "--data-root", "{out}/data", says="name a dataset")
add("fetch-unknown-name", *F, "nope", "--data-root", "{out}/data", says="unknown dataset 'nope'")
add("fetch-seed-negative", *F, "demo", "--seed", "-1", says=("--seed", "-1"))
add("fetch-seed-word", *F, "demo", "--seed", "x", says="--seed")
add("fetch-seed-float", *F, "demo", "--seed", "1.5", says="--seed")
add("fetch-data-root-file", *F, "demo", "--data-root", "{afile}", says=("data root", "is a file"))
add("fetch-data-root-under-file", *F, "demo", "--data-root", "{afile}/sub", says=("data root", "is a file"))
add("fetch-list-data-root-file", *F, "--list", "--data-root", "{afile}", says="is a file")
add("fetch-demo-from", *F, "demo", "--from", "{real}", "--data-root", "{out}/data", says="--from")
add("fetch-demo-via", *F, "demo", "--via", "kaggle", "--data-root", "{out}/data", says="--via")
add("fetch-demo-runs-dir-file", *F, "demo", "--runs-dir", "{afile}", "--data-root", "{out}/data",
    says=("--runs-dir", "is a file"))
add("fetch-runs-dir-not-demo", *IC, "--runs-dir", "{out}/runs", says=("--runs-dir", "not the demo"))
add("fetch-manual-no-route", *IC, says="cannot be downloaded")
add("fetch-unknown-route", *F, "covid-ctset", "--via", "nope", "--data-root", "{out}/data",
    says="no download route 'nope'")
add("fetch-from-and-via", *IC, "--from", "{real}", "--via", "x", says="--via")
add("fetch-add-without-from", *IC, "--add", says="--add")
add("fetch-from-missing", *IC, "--from", "{missing}", says="no such file")
add("fetch-from-bad-tbz", *IC, "--from", "{bad_tbz}", says=("bad.tar.bz2", "damaged"))
add("fetch-from-corrupt-tbz", *IC, "--from", "{corrupt_tbz}", says=("corrupt.tar.bz2", "damaged"))
add("fetch-from-truncated-tgz", *IC, "--from", "{trunc_tgz}", says=("trunc.tar.gz", "damaged"))
add("fetch-from-truncated-zip", *IC, "--from", "{trunc_zip}", says=("trunc.zip", "damaged"))
add("fetch-from-not-zip", *IC, "--from", "{not_zip}", says=("not.zip", "damaged"))
add("fetch-from-dotdot-zip", *IC, "--from", "{dotdot_zip}", says="outside the archive")
add("fetch-from-abs-zip", *IC, "--from", "{abs_zip}", says="absolute path")
add("fetch-from-symlink-tar", *IC, "--from", "{symlink_tar}", says="outside the archive")
add("fetch-from-hardlink-tar", *IC, "--from", "{hardlink_tar}", says="outside the archive")
add("fetch-from-dotdot-tar", *IC, "--from", "{dotdot_tar}", says="outside the archive")
add("fetch-from-file-and-dir-tar", *IC, "--from", "{file_and_dir_tar}", says="both a file and a folder")
add("fetch-from-rar", *IC, "--from", "{rar}", says="not supported")
add("fetch-from-7z", *IC, "--from", "{seven_z}", says="not supported")
add("fetch-from-nul-name-zip", *IC, "--from", "{nul_zip}", says="nul.zip")
add("fetch-from-empty-zip", *IC, "--from", "{empty_zip}", says="no ImageCLEF GANs layout")
add("fetch-from-empty-folder", *IC, "--from", "{empty}", says="no ImageCLEF GANs layout")
add("fetch-from-flat-images", *IC, "--from", "{real}", says="no ImageCLEF GANs layout")
add("fetch-from-flat-images-link", *IC, "--from", "{real}", "--link", says="no ImageCLEF GANs layout")
add("fetch-from-loose-file", *IC, "--from", "{labels}", says="no ImageCLEF GANs layout")
add("fetch-from-unreadable", *IC, "--from", "{unreadable}", says=("unreadable", "Permission denied"),
    patch=unreadable("unreadable"))
add("fetch-extra-argument", *F, "demo", "extra", "--data-root", "{out}/data", says="extra")
add("fetch-via-without-value", *F, "covid-ctset", "--via", says="--via")
add("fetch-unknown-option", *F, "demo", "--frobnicate", says="--frobnicate")

# train-stage ------------------------------------------------------------------------------------------
T = ("train-stage", "--model", "conv5", "--image-size", "16", "--batch-size", "4", "--epochs", "1",
     "--data-root", "{out}/data")
TD = (*T, "--data", "{ds}")
add("train-no-out", *T, "--data", "{ds}", says="--out")
add("train-no-data", *T, "--out", "{out}/o", says="--data")
add("train-data-missing", *T, "--data", "{missing}", "--out", "{out}/o", says="error: --data: unknown dataset")
add("train-data-file", *T, "--data", "{afile}", "--out", "{out}/o", says="afile")
add("train-data-empty-folder", *T, "--data", "{empty}", "--out", "{out}/o", says="no images")
add("train-data-unknown-adapter-part", *T, "--data", "demo:nope", "--out", "{out}/o",
    says="error: --data: unknown demo part 'nope'")
# a misspelt demo part was found when the images were read: named by no option, and not the part meant
add("train-data-demo-part-typo-names-the-one-meant", *T, "--data", "demo:gans-tset", "--out", "{out}/o",
    says="error: --data: unknown demo part 'gans-tset' (did you mean 'gans-test'?); choose one of: casia,")
add("train-data-folder-no-path", *T, "--data", "folder:", "--out", "{out}/o", says="folder")
add("train-data-unreadable", *T, "--data", "{unreadable}", "--out", "{out}/o", says="Permission denied",
    patch=unreadable("unreadable"))
add("train-data-bomb", *T, "--data", "{bomb_ds}", "--out", "{out}/o", says=("bomb.png", "decompression bomb"))
add("train-data-corrupt", *T, "--data", "{corrupt_real}", "--out", "{out}/o", says="corrupt_real")
add("train-data-multi-frame", *T, "--data", "{volume_ds}", "--out", "{out}/o", says=("cine.gif", "holds 3 frames"))
add("train-out-file", *TD, "--out", "{afile}", says=("--out", "is a file"))
add("train-out-under-file", *TD, "--out", "{afile}/o", says=("--out", "is a file"))
add("train-out-read-only", *TD, "--out", "{ro}/o", says="read-only",
    marks=[pytest.mark.skipif(IS_ROOT, reason="root writes to read-only folders")])
add("train-model-unknown", *TD, "--out", "{out}/o", "--model", "resnet19",
    says="error: --model: unknown model 'resnet19'")
add("train-image-size-0", *TD, "--out", "{out}/o", "--image-size", "0", says=("--image-size", "minimum"))
add("train-image-size-huge", *TD, "--out", "{out}/o", "--image-size", "99999", says=("--image-size", "maximum"))
add("train-image-size-word", *TD, "--out", "{out}/o", "--image-size", "big", says="--image-size")
add("train-batch-size-0", *TD, "--out", "{out}/o", "--batch-size", "0", says=("--batch-size", "minimum"))
add("train-batch-size-negative", *TD, "--out", "{out}/o", "--batch-size", "-3", says="--batch-size")
add("train-seed-negative", *TD, "--out", "{out}/o", "--seed", "-1", says="--seed")
add("train-memory-budget-negative", *TD, "--out", "{out}/o", "--memory-budget", "-1", says="--memory-budget")
add("train-memory-budget-nan", *TD, "--out", "{out}/o", "--memory-budget", "nan", says="--memory-budget")
add("train-epochs-word", *TD, "--out", "{out}/o", "--epochs", "many", says="--epochs")
add("train-device-unknown", *TD, "--out", "{out}/o", "--device", "tpu", says="tpu")
add("train-device-missing-gpu", *TD, "--out", "{out}/o", "--device", "cuda:7", says="cuda")
add("train-data-root-file", *TD, "--out", "{out}/o", "--data-root", "{afile}", says=("data root", "is a file"))
add("train-unknown-option", *TD, "--out", "{out}/o", "--frobnicate", says="--frobnicate")
add("train-data-mixed-layout", *T, "--data", "{mixed_layout}", "--out", "{out}/o", says=("batch2", "sub-folders"))
add("train-pseudo-features-unknown", *TD, "--out", "{out}/o", "--pseudo-labels", "knn", "--pseudo-features", "nope",
    says="error: --pseudo-features nope: not one of pixels[N]")  # it said `--pseudo-features: --features nope:`
add("train-init-other-model", *TD, "--out", "{out}/o", "--model", "resnet18", "--init", "{ckpt_conv5}",
    says=("error: --init ", "ckpt_conv5: holds a conv5 model (", "ckpt_conv5/model.safetensors), not the resnet18 "
          "this stage trains"))  # it said `--init: .../model.safetensors: holds ...`, before that `stage o: init: ...`
add("train-pseudo-knn-without-generated", *T, "--data", "{real}", "--out", "{out}/o", "--init", "{ckpt_conv5}",
    "--pseudo-labels", "knn", says="needs a dataset with generated images")
add("train-init-missing", *TD, "--out", "{out}/o", "--init", "{missing}",
    says=("error: --init ", "missing: no such weights file or stage folder"))
add("train-init-garbage", *TD, "--out", "{out}/o", "--init", "{ckpt_garbage}", says="garbage.safetensors")
add("train-init-pickle", *TD, "--out", "{out}/o", "--init", "{ckpt_pickle}", says="weights.pt")
add("train-init-text-file", *TD, "--out", "{out}/o", "--init", "{afile}",
    says=("afile", "cannot be read as weights: damaged, cut short, or not a torch.save"))
add("train-init-empty-folder", *TD, "--out", "{out}/o", "--init", "{empty}", says="empty")
add("train-pseudo-unknown", *TD, "--out", "{out}/o", "--pseudo-labels", "nope",
    says="error: --pseudo-labels: unknown pseudo-label source")
add("train-epochs-0", *TD, "--out", "{out}/o", "--epochs", "0", says="epochs")
add("train-epochs-negative", *TD, "--out", "{out}/o", "--epochs", "-2", says="epochs")
add("train-patience-0", *TD, "--out", "{out}/o", "--patience", "0", says="patience")
add("train-lr-negative", *TD, "--out", "{out}/o", "--lr", "-0.1", says="lr")
add("train-lr-nan", *TD, "--out", "{out}/o", "--lr", "nan", says="lr")
add("train-momentum-2", *TD, "--out", "{out}/o", "--momentum", "2", says="momentum")
add("train-weight-decay-negative", *TD, "--out", "{out}/o", "--weight-decay", "-1", says="error: --weight-decay:")
add("train-val-fraction-0", *TD, "--out", "{out}/o", "--val-fraction", "0", says="error: --val-fraction:")
add("train-val-fraction-1", *TD, "--out", "{out}/o", "--val-fraction", "1", says="error: --val-fraction:")
add("train-val-fraction-1.5", *TD, "--out", "{out}/o", "--val-fraction", "1.5", says="error: --val-fraction:")
add("train-pseudo-fraction-0.9", *T, "--data", "{real}", "--out", "{out}/o", "--init", "{ckpt_conv5}",
    "--pseudo-labels", "self", "--pseudo-fraction", "0.9", says="error: --pseudo-fraction:")
add("train-one-class-folder", *T, "--data", "{oneclass}", "--out", "{out}/o", says="class")
add("train-name-dotdot", *TD, "--out", "{out}/o", "--name", "../../x", says="name")
add("train-name-slash", *TD, "--out", "{out}/o", "--name", "a/b", says="name")
add("train-init-meta-no-num-classes", *TD, "--out", "{out}/o", "--init", "{ckpt_no_classes}", says="num_classes")
add("train-init-meta-unknown-model", *TD, "--out", "{out}/o", "--init", "{ckpt_unknown_model}",
    says="ckpt_unknown_model")

# chain ------------------------------------------------------------------------------------------------
C = ("chain", "--model", "conv5", "--runs-dir", "{out}/runs", "--data-root", "{out}/data")
add("chain-model-unknown", "chain", "--model", "resnet19", "--runs-dir", "{out}/runs", says="--model: unknown model")
add("chain-unknown-builtin", *C, "--chain", "nope", says="--chain: unknown chain 'nope'")
add("chain-file-missing", *C, "--chain", "{out}/none.toml", says="not found")
add("chain-file-is-folder", *C, "--chain", "{empty}", says="empty")
add("chain-binary", *C, "--chain", "{chain_binary}", says="chain_binary.toml")
for _name in [n for n in CHAIN_TOMLS if n != "valid"]:
    _says = {"syntax": "invalid TOML", "no_stages": "[[stages]]", "empty_stages": "[[stages]]", "unknown_key": "epochz",
             "no_dataset": "no dataset", "dup_names": "unique", "unknown_dataset": "nope",
             "model_key": ("chain_model_key.toml:8", "sets model", "--model"),
             "defaults_name": ("chain_defaults_name.toml:3", "[defaults] sets name"),
             "pseudo_features_2": ("chain_pseudo_features_2.toml:13", "pseudo_features", "nope")}.get(_name, "chain_")
    add(f"chain-{_name.replace('_', '-')}", *C, "--chain", f"{{chain_{_name}}}", says=_says)
add("chain-runs-dir-file", "chain", "--model", "conv5", "--runs-dir", "{afile}", says=("--runs-dir", "is a file"))
add("chain-runs-dir-under-file", "chain", "--model", "conv5", "--runs-dir", "{afile}/r",
    says=("--runs-dir", "is a file"))
add("chain-runs-dir-read-only", "chain", "--model", "conv5", "--runs-dir", "{ro}/r", says="read-only",
    marks=[pytest.mark.skipif(IS_ROOT, reason="root writes to read-only folders")])
add("chain-data-root-file", "chain", "--model", "conv5", "--runs-dir", "{out}/runs", "--data-root", "{afile}",
    says=("data root", "is a file"))
add("chain-image-size-0", *C, "--image-size", "0", says="--image-size")
add("chain-batch-size-0", *C, "--batch-size", "0", says="--batch-size")
add("chain-seed-negative", *C, "--seed", "-1", says="--seed")
add("chain-seed-too-large", *C, "--seed", "4294967296", says=("--seed", "maximum 4294967295"))
add("chain-memory-budget-negative", *C, "--memory-budget", "-5", says="--memory-budget")
add("chain-epochs-word", *C, "--epochs", "x", says="--epochs")
add("chain-epochs-0", *C, "--chain", "{chain_valid}", "--epochs", "0", says="epochs")
add("chain-patience-0", *C, "--chain", "{chain_valid}", "--patience", "0", says="patience")
add("chain-from-stage-unknown", *C, "--chain", "{chain_valid}", "--from-stage", "zzz", says="zzz")
add("chain-unknown-option", *C, "--frobnicate", says="--frobnicate")
add("chain-extra-argument", *C, "extra", says="extra")

# train-stage --out over a stage already there, and chain stages past the first (harden-train) --------


def _stages_in_out(w: Path, p: dict) -> None:
    """Stage folders as training leaves them: finished (other settings) and interrupted after epoch 3."""
    import json

    from safetensors.numpy import save_file

    # a resume header as complete as train-stage writes it (`resume_problem`), interrupted after epoch 3
    resume_header = {"param_groups": [], "optimizer_scalars": {}, "state": {
        "digest": "0", "epoch": 3, "best_epoch": 3, "bad_epochs": 0, "best_val_loss": 0.5, "history": [{}] * 3}}
    meta = {"model": "conv5", "num_classes": 2, "image_size": 16, "classes": ["a", "b"]}
    p["stage_done"] = w / "stage_done"
    p["stage_done"].mkdir()
    save_file({"w": np.zeros(2, np.float32)}, str(p["stage_done"] / "model.safetensors"),
              metadata={"ganfp": json.dumps(meta)})
    (p["stage_done"] / "meta.json").write_text(json.dumps(
        {**meta, "status": "complete", "digest": "0", "run_id": "0", "config": {"epochs": 7, "lr": 0.001}}))
    p["stage_interrupted"] = w / "stage_interrupted"
    p["stage_interrupted"].mkdir()
    save_file({"w": np.zeros(2, np.float32)}, str(p["stage_interrupted"] / "model.safetensors"),  # its best epoch
              metadata={"ganfp": json.dumps(meta)})
    save_file({"model.w": np.zeros(2, np.float32)}, str(p["stage_interrupted"] / "last.safetensors"),
              metadata={"ganfp": json.dumps(resume_header)})
    p["run_interrupted"] = w / "run_interrupted"  # a chain run whose stage 2 was interrupted
    shutil.copytree(p["stage_done"], p["run_interrupted"] / "01-one")
    shutil.copytree(p["stage_interrupted"], p["run_interrupted"] / "02-two")
    (p["run_interrupted"] / "chain.json").write_text(json.dumps(
        {"stages": [{"dir": "01-one", "status": "complete"}, {"dir": "02-two", "status": "pending"}]}))
    tiny = "".join(f"{k} = {v}\n" for k, v in TINY_STAGE.items())
    first = f'[defaults]\n{tiny}[[stages]]\nname = "one"\ndataset = "{p["ds"]}"\n'
    for name, second in (("late_missing", f'dataset = "folder:{w / "missing"}"\n'),
                         ("late_one_class", f'dataset = "{p["oneclass"]}"\n'),
                         ("late_knn", f'dataset = "{p["ds"] / "a"}"\npseudo_labels = "knn"\n'),
                         ("late_init", f'dataset = "{p["ds"]}"\ninit = "none"\n')):
        p[f"chain_{name}"] = w / f"chain_{name}.toml"
        p[f"chain_{name}"].write_text(first + f'[[stages]]\nname = "two"\n{second}')


add("train-out-holds-finished-stage", *TD, "--out", "{stage_done}",
    says=("--out", "finished with other settings (epochs 7 -> 1)", "--force"))
add("train-out-holds-finished-stage-resume", *TD, "--out", "{stage_done}", "--resume",
    says=("--out", "other settings", "--force"))
add("train-out-holds-interrupted-stage", *TD, "--out", "{stage_interrupted}",
    says=("--out", "interrupted, saved after epoch 3", "--force"))
add("train-init-interrupted-stage", *TD, "--out", "{out}/o", "--init", "{stage_interrupted}",
    says=("error: --init ", "stage_interrupted: stage interrupted, saved after epoch 3"))
add("train-force-and-resume", *TD, "--out", "{out}/o", "--force", "--resume", says=("--force", "--resume"))
add("train-data-unlabelled-without-pseudo-labels", *T, "--data", "{real}", "--out", "{out}/o",
    says=("real", "no labels", "pseudo_labels"))
add("chain-late-stage-folder-missing", *C, "--chain", "{chain_late_missing}",
    says=("chain_late_missing.toml:10", "stage 2 (two)", "no such folder"))
add("chain-late-stage-one-class", *C, "--chain", "{chain_late_one_class}",
    says=("chain_late_one_class.toml:10", "stage 2 (two)", "only one class"))
add("chain-late-stage-init", *C, "--chain", "{chain_late_init}",
    says=("chain_late_init.toml:11", "stage 2 init", "only the first stage"))
add("chain-init-imagenet-conv5", *C, "--chain", "{chain_valid}", "--init", "imagenet",
    says=("--init", "conv5 has no ImageNet weights"))
add("chain-late-stage-knn-without-generated", *C, "--chain", "{chain_late_knn}",
    says=("chain_late_knn.toml:10", "stage 2 (two)", "needs a dataset with generated images"))

# train-audit: what a new user's first runs of train-stage and chain met -------------------------------------------


def _train_audit(w: Path, p: dict) -> None:
    """A folder of the user's own files named like a stage's, a stage whose last.safetensors was cut short, a
    dataset of one image per class, plain state_dicts of conv5 and of another architecture, a stage of three classes
    and an unlabelled set too small to pseudo-label."""
    import json

    import torch
    from safetensors.numpy import save_file

    p["own_files"] = w / "own_files"
    p["own_files"].mkdir()
    (p["own_files"] / "meta.json").write_text('{"project": "mine"}\n')
    (p["own_files"] / "history.csv").write_text("date,value\n")
    p["stage_damaged"] = w / "stage_damaged"
    shutil.copytree(p["stage_interrupted"], p["stage_damaged"])
    last = p["stage_damaged"] / "last.safetensors"
    last.write_bytes(last.read_bytes()[:40])
    p["one_each"] = w / "one_each"
    for cls in ("a", "b"):
        images(p["one_each"] / cls, 1, prefix=cls)
    p["ckpt_plain_other"] = w / "other_net.pt"
    torch.save({"encoder.weight": torch.zeros(4, 4)}, p["ckpt_plain_other"])
    from ganfp.models import create_model

    p["ckpt_plain_conv5"] = w / "conv5_weights.pt"
    torch.save(create_model("conv5", 2, 16).state_dict(), p["ckpt_plain_conv5"])
    p["ckpt_three_classes"] = w / "ckpt_three_classes"
    shutil.copytree(p["ckpt_conv5"], p["ckpt_three_classes"])
    meta = {"model": "conv5", "num_classes": 3, "image_size": 16, "classes": ["a", "b", "c"]}
    save_file({"w": np.zeros(2, np.float32)}, str(p["ckpt_three_classes"] / "model.safetensors"),
              metadata={"ganfp": json.dumps(meta)})
    p["three_images"] = images(w / "three_images", 3, prefix="t")


add("train-out-holds-the-users-files", *TD, "--out", "{own_files}",
    says=("--out", "own_files", "holds meta.json and history.csv but no stage", "--force"))
add("train-out-holds-damaged-resume-file", *TD, "--out", "{stage_damaged}", "--resume",
    says=("--out", "last.safetensors cannot be read", "--force"))
add("train-out-empty", *TD, "--out", "", says=("--out ''", "empty path"))
add("train-out-inside-the-data", *TD, "--out", "{ds}/run", says=("--out", "ds/run", "inside the dataset --data"))
add("train-name-empty", *TD, "--out", "{out}/o", "--name", "", says=("error: --name:", "non-empty"))
add("train-val-fraction-leaves-no-training-class", *TD, "--out", "{out}/o", "--val-fraction", "0.95",
    says=("val_fraction 0.95", "15 of the 16 images", "use at most 0.87"))
add("train-one-image-per-class", *T, "--data", "{one_each}", "--out", "{out}/o", says="at least 2 images")
add("train-pseudo-labels-on-a-labelled-set", *TD, "--out", "{out}/o", "--init", "{ckpt_conv5}", "--pseudo-labels",
    "self", says=("ds", "is labelled (classes a, b)", "drop pseudo_labels"))
add("train-pseudo-k-with-self", *T, "--data", "{real}", "--out", "{out}/o", "--init", "{ckpt_conv5}",
    "--pseudo-labels", "self", "--pseudo-k", "3", says=("--pseudo-k 3", "self does not use it", "knn"))
add("train-pseudo-labels-from-three-classes", *T, "--data", "{real}", "--out", "{out}/o", "--init",
    "{ckpt_three_classes}", "--pseudo-labels", "self",
    says=("error: --pseudo-labels:", "two-class model", "has 3 classes"))
add("train-pseudo-labels-from-plain-weights", *T, "--data", "{real}", "--out", "{out}/o", "--init",
    "{ckpt_plain_conv5}", "--pseudo-labels", "self",
    says=("error: --pseudo-labels:", "need a ganfp stage", "conv5_weights.pt"))
add("train-pseudo-labels-too-few-images", *T, "--data", "{three_images}", "--out", "{out}/o", "--init",
    "{ckpt_conv5}", "--pseudo-labels", "self", says=("three_images", "too few images (3)", "at least 4"))
add("train-init-plain-other-architecture", *TD, "--out", "{out}/o", "--init", "{ckpt_plain_other}",
    says=("init", "other_net.pt", "do not match model conv5"))

# evaluate ---------------------------------------------------------------------------------------------
E = ("evaluate",)
add("eval-no-arguments", *E, says="PREDS")
add("eval-one-argument", *E, "{official}", says="LABELS")
add("eval-preds-missing", *E, "{missing}", "{labels}", says=("missing", "no such file"))
add("eval-labels-missing", *E, "{official}", "{missing}", says=("missing", "no such file"))
add("eval-preds-folder", *E, "{csv_dir}", "{labels}", says="folder")
add("eval-labels-folder", *E, "{official}", "{csv_dir}", says="folder")
for _name, _says in [
    ("empty_csv", "empty"), ("header_only", "no rows"), ("unknown_header", "unrecognised header"),
    ("three_tokens", "wrong format"), ("label_2", "greater than 1"), ("label_neg", "smaller than 0"),
    ("label_word", "not an int"), ("label_float", "not an int"), ("dup_id", "more than once"),
    ("missing_id", "not all figure ids"), ("extra_id", "wrong figure id"), ("empty_line", "empty line"),
    ("empty_id", "wrong figure id"), ("score_nan", "finite"), ("score_inf", "finite"), ("score_word", "finite"),
    ("score_short_row", "columns"), ("headered_label_2", "not 0 or 1"), ("headered_dup", "more than once"),
    ("headered_empty_id", "empty id"), ("headered_empty_line", "empty line"), ("two_id_columns", "header"),
    ("two_label_columns", "header"), ("path_class_bad", "not 0 or 1"), ("only_commas", "wrong format"),
    ("binary_csv", "binary"), ("latin1_csv", ("latin1.csv:1", "not UTF-8", "Latin-1", "save it as CSV UTF-8")),
    ("semicolons", ("semicolons.csv:1", "separated by ';'", "comma-separated")),
    ("tabs", ("tabs.csv:1", "separated by tabs")), ("trailing_empty_columns", ("column 3", "has no name")),
    ("pandas_index", ("column 1", "to_csv(index=False)")), ("utf16_csv", ("utf16.csv", "UTF-16", "CSV UTF-8")),
    ("gzip_csv", ("scores.csv.gz", "gzip-compressed")), ("xlsx", ("scores.xlsx", ".xlsx workbook")),
]:
    add(f"eval-preds-{_name.replace('_', '-')}", *E, f"{{{_name}}}", "{labels}", says=_says)
for _name, _says in [("empty_csv", "empty"), ("labels_with_scores", "ground truth"), ("labels_3", "not 0 or 1"),
                     ("binary_csv", "binary"), ("scores", "ground truth"), ("dup_id", "more than once")]:
    add(f"eval-labels-{_name.replace('_', '-')}", *E, "{official}", f"{{{_name}}}", says=_says)
add("eval-used-fraction-0", *E, "{scores}", "{labels}", "--used-fraction", "0", says="--used-fraction")
add("eval-used-fraction-1", *E, "{scores}", "{labels}", "--used-fraction", "1", says="--used-fraction")
add("eval-used-fraction-negative", *E, "{scores}", "{labels}", "--used-fraction", "-0.5", says="--used-fraction")
add("eval-used-fraction-2", *E, "{scores}", "{labels}", "--used-fraction", "2", says="--used-fraction")
add("eval-used-fraction-nan", *E, "{scores}", "{labels}", "--used-fraction", "nan", says="--used-fraction")
add("eval-used-fraction-word", *E, "{scores}", "{labels}", "--used-fraction", "half", says="--used-fraction")
add("eval-used-fraction-rounds-to-all", *E, "{scores}", "{labels}", "--used-fraction", "0.999",
    says=("labels all", "below"))
add("eval-threshold-nan", *E, "{scores}", "{labels}", "--threshold", "nan", says="--threshold")
add("eval-threshold-inf", *E, "{scores}", "{labels}", "--threshold", "inf", says="--threshold")
add("eval-threshold-on-labels", *E, "{official}", "{labels}", "--threshold", "0.5", says="needs scores")
add("eval-both-rules", *E, "{scores}", "{labels}", "--threshold", "0.5", "--used-fraction", "0.5",
    says=("--used-fraction", "--threshold", "not both"))
add("eval-both-rules-before-reading", *E, "{missing}", "{labels}", "--threshold", "0.5", "--used-fraction", "0.5",
    says="not both")  # the option, not the file: options are checked before the files are read
add("eval-plot-checked-before-reading", *E, "{missing}", "{labels}", "--plot", "{afile}/fig.png",
    says=("--plot", "is a file"))
add("eval-real-without-report", *E, "{scores}", "{labels}", "--real", "{real}", says=("--real", "--report"))
add("eval-plot-under-file", *E, "{scores}", "{labels}", "--plot", "{afile}/fig.png", says=("--plot", "is a file"))
add("eval-plot-folder", *E, "{scores}", "{labels}", "--plot", "{empty}", says=("--plot", "is a folder"))
add("eval-plot-read-only", *E, "{scores}", "{labels}", "--plot", "{ro}/fig.png", says="read-only",
    marks=[pytest.mark.skipif(IS_ROOT, reason="root writes to read-only folders")])
add("eval-report-over-preds", *E, "{scores}", "{labels}", "--report", "{scores}", "--real", "{real}",
    says=("--report", "would overwrite the input"))
add("eval-plot-same-as-report", *E, "{scores}", "{labels}", "--plot", "{out}/x.html", "--report", "{out}/x.html",
    "--real", "{real}", says=("--report", "the same file as --plot"))
add("eval-report-checkpoint-no-runs", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{real}",
    "--features", "checkpoint", says=("no finished chain run", "$GANFP_RUNS"))
# --checkpoint where evaluate's report reads it: checked (and refused where unread) before any image is decoded
ER = (*E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{real}")
add("eval-checkpoint-without-report", *E, "{scores}", "{labels}", "--checkpoint", "{stage_done}",
    says=("--checkpoint describes the --report", "give --report too"))
add("eval-report-checkpoint-unread", *ER, "--checkpoint", "{stage_done}",
    says=("--checkpoint", "stage_done", "the report's --features std32 does not read it", "--features checkpoint"))
add("eval-report-checkpoint-missing", *ER, "--features", "checkpoint", "--checkpoint", "{missing}",
    says=("--checkpoint", "missing: not found"))
add("eval-report-checkpoint-empty-folder", *ER, "--features", "checkpoint", "--checkpoint", "{empty}",
    says=("empty: not a checkpoint", "model.safetensors"))
add("eval-report-checkpoint-not-safetensors", *ER, "--features", "checkpoint", "--checkpoint", "{ckpt_pickle}",
    says=("weights.pt: not a checkpoint"))
add("eval-report-checkpoint-garbage", *ER, "--features", "checkpoint", "--checkpoint", "{ckpt_garbage}",
    says=("garbage.safetensors", "not a readable safetensors"))
add("eval-report-over-an-image", *E, "{scores}", "{labels}", "--report", "{gen}/g000.png", "--real", "{real}",
    says=("--report", "is an image"))
add("eval-plot-latex-only", *E, "{scores}", "{labels}", "--plot", "{out}/fig.pgf", says=("--plot", ".pgf"))
add("eval-plot-type-before-report", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{real}",
    "--plot", "{out}/fig.xyz", says=("--plot", ".xyz"))
add("eval-task-clustering-on-scores", *E, "{scores}", "{labels}", "--task", "clustering",
    says=("scores.csv:1", "'score' column", "not clusters", "--task membership"))
add("eval-task-attribution-on-scores", *E, "{scores}", "{labels}", "--task", "attribution",
    says=("scores.csv:1", "'score' column", "not classes", "--task membership"))
add("eval-task-attribution-on-clusters", *E, "{clusters}", "{labels}", "--task", "attribution",
    says=("clusters.csv:1", "'cluster' column", "not classes", "--task clustering"))
add("eval-task-attribution-on-score-labels", *E, "{official}", "{scores}", "--task", "attribution",
    says=("scores.csv:1", "'score' column", "--task membership"))
# PREDS and LABELS given the other way round: scored so, macro-F1 and the confusion were the predictions' own, and
# a cluster column in LABELS was sent to --task clustering, which scored the swap
add("eval-attribution-swapped", *E, "{classes}", "{attributed}",
    says=("attributed.csv:1", "'predicted_class' column holds predictions", "PREDS first, then LABELS"))
for _task in ((), ("--task", "clustering"), ("--task", "attribution")):
    add(f"eval-clustering-swapped{'-' + _task[1] if _task else ''}", *E, "{classes}", "{clusters}", *_task,
        says=("clusters.csv:1", "'cluster' column holds predictions", "PREDS first, then LABELS"))
add("eval-labels-semicolons", *E, "{official}", "{semicolons}", says=("semicolons.csv:1", "separated by ';'"))
add("eval-ids-without-leading-zeros", *E, "{plain_number_preds}", "{zero_padded_labels}",
    says=("plain_number_preds.csv:2", "id '7' is not in", "it has '007'"))
add("eval-clusters-without-header", *E, "{clusters_no_header}", "{classes}",  # 0/1 clusters: read as membership
    says=("classes.csv:2", "not 0 or 1", "clusters without a header: --task clustering"))
add("eval-more-clusters-without-header", *E, "{clusters4_no_header}", "{classes}",
    says=("clusters4_no_header.csv:1", "not a class", "a clustering without a header needs --task clustering"))
add("eval-classes-semicolons", *E, "{classes_semicolons}", "{classes}",
    says=("classes_semicolons.csv:1", "one column", "separated by ';'"))
add("eval-extra-argument", *E, "{official}", "{labels}", "more", says="more")
add("eval-unknown-option", *E, "{official}", "{labels}", "--frobnicate", says="--frobnicate")

# classify ---------------------------------------------------------------------------------------------
K = ("classify", "--data-root", "{out}/data")
KR = (*K, "{real}", "--generated", "{gen}")
add("classify-no-out", *KR, says="--out")
add("classify-no-real", *K, "--out", "{out}/s.csv", says="real")
add("classify-real-missing", *K, "{missing}", "--generated", "{gen}", "--out", "{out}/s.csv", says="missing")
add("classify-real-file", *K, "{afile}", "--generated", "{gen}", "--out", "{out}/s.csv", says=("afile", "is a file"))
add("classify-real-empty", *K, "{empty}", "--generated", "{gen}", "--out", "{out}/s.csv", says="no images")
add("classify-real-unreadable", *K, "{unreadable}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says=("unreadable", "cannot read"), patch=unreadable("unreadable"))
add("classify-real-bad-spec", *K, "demo:nope", "--out", "{out}/s.csv",
    says="error: REAL demo:nope: unknown demo part 'nope'")
add("classify-real-demo-part-typo-names-the-one-meant", *K, "demo:gans-tset", "--out", "{out}/s.csv",
    says="error: REAL demo:gans-tset: unknown demo part 'gans-tset' (did you mean 'gans-test'?); choose one of:")
add("classify-real-unknown-adapter", *K, "nope:x", "--out", "{out}/s.csv", says="unknown dataset")
add("classify-generated-missing", *K, "{real}", "--generated", "{missing}", "--out", "{out}/s.csv", says="not found")
add("classify-generated-a-spec", *K, "{real}", "--generated", "demo:gans-dev", "--out", "{out}/s.csv",
    says=("--generated demo:gans-dev", "not found", "takes a folder, not a dataset spec"))
add("classify-generated-file", *K, "{real}", "--generated", "{afile}", "--out", "{out}/s.csv", says="is a file")
add("classify-generated-empty", *K, "{real}", "--generated", "{empty}", "--out", "{out}/s.csv", says="no images")
add("classify-generated-unreadable", *K, "{real}", "--generated", "{unreadable}", "--out", "{out}/s.csv",
    says=("unreadable", "cannot read"), patch=unreadable("unreadable"))
add("classify-out-folder", *KR, "--out", "{empty}", says=("--out", "is a folder"))
add("classify-out-under-file", *KR, "--out", "{afile}/s.csv", says=("--out", "is a file"))
add("classify-out-read-only", *KR, "--out", "{ro}/s.csv", says="read-only",
    marks=[pytest.mark.skipif(IS_ROOT, reason="root writes to read-only folders")])
add("classify-scores-folder", *KR, "--out", "{out}/s.csv", "--scores", "{empty}", says=("--scores", "is a folder"))
add("classify-scores-under-file", *KR, "--out", "{out}/s.csv", "--scores", "{afile}/x.csv",
    says=("--scores", "is a file"))
add("classify-real-mixed-layout", *K, "{mixed_layout}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says=("mixed_layout", "batch2"))
add("classify-scores-same-as-out", *KR, "--out", "{out}/s.csv", "--scores", "{out}/s.csv",
    says=("--scores", "the same file as --out"))
add("classify-report-same-as-scores", *KR, "--out", "{out}/s.csv", "--scores", "{out}/t.csv", "--report",
    "{out}/t.csv", says=("--report", "the same file as --scores"))
add("classify-out-over-input-image", *KR, "--out", "{real}/r000.png", says=("--out", "is an image"))
# a new file named like an image inside an input folder: the next run read it as an image (or failed on it)
add("classify-report-named-like-an-image-in-real", *KR, "--out", "{out}/s.csv", "--report", "{real}/report.png",
    says=("--report", "named like an image inside the input folder", "real"))
add("classify-out-named-like-an-image-in-gen", *KR, "--out", "{gen}/new/s.png",
    says=("--out", "named like an image inside the input folder", "gen"))
add("eval-plot-new-image-in-real", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{real}",
    "--plot", "{real}/fig.png", says=("--plot", "named like an image inside the input folder"))
add("eval-plot-over-input-image", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{real}",
    "--plot", "{real}/r000.png", says=("--plot", "would overwrite the input"))
# the same with the real images given as a dataset spec: its folder counts as an input folder too
add("eval-plot-new-image-in-a-folder-spec", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real",
    "folder:{real}", "--plot", "{real}/fig.png", says=("--plot", "named like an image inside the input folder"))
add("eval-plot-over-an-image-of-a-folder-spec", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real",
    "folder:{real}", "--plot", "{real}/r000.png", says=("--plot", "would overwrite the input"))
add("eval-plot-new-image-in-the-demo", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real",
    "demo:gans-test", "--plot", "{out}/data/demo/gans-test/real_unknown_1/fig.png", demo=True,
    says=("--plot", "named like an image inside the input folder", "demo"))
add("eval-plot-new-image-in-a-covid-ctset-generated-folder", *E, "{scores}", "{labels}", "--report", "{out}/r.html",
    "--real", "covid-ctset:real-vs-generated={gen}", "--plot", "{gen}/fig.png", "--data-root", "{out}/data",
    says=("--plot", "named like an image inside the input folder", "gen"))
add("classify-spec-out-over-an-image", *K, "demo:gans-test", "--out", "{gen}/g001.png", demo=True,
    says=("--out", "is an image"))
add("classify-out-over-ids", *KR, "--out", "{ids_short}", "--ids", "{ids_short}", says="would overwrite the input")
# an output named as another kind of file than the one written there, found only when it was opened
add("classify-report-named-pdf", *KR, "--out", "{out}/s.csv", "--report", "{out}/r.pdf",
    says=("--report", "an HTML page is written there", "name it .html"))
add("classify-out-and-report-swapped", *KR, "--out", "{out}/o.html", "--report", "{out}/o.csv",
    says=("--out", "a CSV file is written there", "name it .csv"))
add("classify-scores-named-like-an-image", *KR, "--out", "{out}/s.csv", "--scores", "{out}/scores.png",
    says=("--scores", "a CSV file is written there"))
add("classify-out-dash", *KR, "--out", "-", says=("--out -", "not to standard output"))
add("attribute-report-named-csv", "attribute", "{gen}", "--clusters", "2", "--out", "{out}/c.csv", "--report",
    "{out}/c2.csv", says=("--report", "an HTML page is written there"))
add("eval-report-named-json", *E, "{scores}", "{labels}", "--report", "{out}/r.json",
    says=("--report", "an HTML page is written there"))
for _window in ("nan,100", "inf,1", "40,inf"):
    add(f"classify-window-{_window}", *KR, "--out", "{out}/s.csv", "--window", _window, says=("--window", "finite"))
for _opt, _value, _kind in (("--window", "bone", "DICOM or NIfTI"), ("--window", "40,400", "DICOM or NIfTI"),
                             ("--id-from", "uid", "DICOM file"), ("--id-from", "name", "DICOM file"),
                             ("--slices", "3", "NIfTI volume")):
    add(f"classify-{_opt.strip('-')}-{_value}-without-medical-images", *KR, "--out", "{out}/s.csv", _opt, _value,
        says=(_opt, f"no {_kind}", "would change nothing"))
add("classify-window-on-a-dataset-spec", *K, "demo:gans-test", "--out", "{out}/s.csv", "--window", "bone", demo=True,
    says=("--window", "would change nothing"))
add("classify-data-root-file", "classify", "{real}", "--generated", "{gen}", "--out", "{out}/s.csv",
    "--data-root", "{afile}", says=("data root", "is a file"))
for _opt, _value, _says in [
    ("--batch-size", "0", "minimum"), ("--batch-size", "-1", "minimum"), ("--k", "0", "minimum"),
    ("--k", "-5", "minimum"), ("--image-size", "4", "minimum"), ("--image-size", "99999", "maximum"),
    ("--seed", "-1", "minimum"), ("--seed", "4294967296", "maximum 4294967295"),
    ("--used-fraction", "0", "between 0 and 1"),
    ("--used-fraction", "1", "between 0 and 1"),
    ("--used-fraction", "1.5", "between 0 and 1"), ("--used-fraction", "nan", "between 0 and 1"),
    ("--threshold", "nan", "finite"), ("--threshold", "-inf", "finite"), ("--k", "ten", "--k"),
    ("--method", "nearest", "nearest"), ("--features", "nope", "nope"), ("--features", "pixels2", "pixels2"),
]:
    add(f"classify-{_opt.strip('-')}-{_value}", *KR, "--out", "{out}/s.csv", _opt, _value, says=(_opt, _says))
# a misspelt name is pointed at the one meant, as fetch-data's dataset names are: the list alone did not say which
for _opt, _value, _meant in (("--method", "knnn", "knn"), ("--method", "Knn", "knn"), ("--method", "loacl", "local"),
                             ("--features", "whit48", "white48"), ("--features", "WHITE48", "white48"),
                             ("--features", "pixel32", "pixels32"), ("--features", "restnet18", "resnet18")):
    _asked = {"--method": "knn", _opt: _value}  # --features with a method that reads it
    add(f"classify-{_opt.strip('-')}-{_value}-did-you-mean", *KR, "--out", "{out}/s.csv",
        *[word for pair in _asked.items() for word in pair], says=(f"{_opt} {_value}", f"(did you mean {_meant!r}?)"))
add("classify-local-in-an-image-space", *KR, "--out", "{out}/s.csv", "--method", "local", "--features", "ncc32",
    says=("--method local", "ncc32"))
add("classify-k-the-default-does-not-read", *KR, "--out", "{out}/s.csv", "--k", "10",
    says=("--k 10", "ensemble", "does not read it", "knn"))
add("classify-features-the-default-does-not-read", *KR, "--out", "{out}/s.csv", "--features", "std32",
    says=("--features std32", "ensemble", "does not read it"))
add("classify-features-autoencoder", *KR, "--out", "{out}/s.csv", "--method", "autoencoder", "--features", "std16",
    says=("--features std16", "--method autoencoder", "does not read it"))
add("classify-k-retrieval", *KR, "--out", "{out}/s.csv", "--method", "retrieval", "--k", "3",
    says=("--k 3", "--method retrieval", "does not read it"))
add("classify-features-with-calibrate", *KR, "--out", "{out}/s.csv", "--calibrate", "{real}", "--features", "std32",
    says=("--features std32", "--calibrate chooses"))
add("classify-local-in-an-image-space-names-wstd", *KR, "--out", "{out}/s.csv", "--method", "local", "--features",
    "ncc32", says=("wstd[N]",))
add("classify-both-rules", *KR, "--out", "{out}/s.csv", "--used-fraction", "0.5", "--threshold", "0.1", says="not both")
add("classify-method-without-generated", *K, "{real}", "--method", "knn", "--out", "{out}/s.csv", says="--generated")
add("classify-calibrate-without-generated", *K, "{real}", "--calibrate", "{dev_no_gen}", "--method", "knn",
    "--out", "{out}/s.csv", says="--generated")
add("classify-calibrate-missing", *KR, "--out", "{out}/s.csv", "--calibrate", "{missing}", says="missing")
add("classify-calibrate-file", *KR, "--out", "{out}/s.csv", "--calibrate", "{afile}", says=("--calibrate", "is a file"))
add("classify-calibrate-unlabelled", *KR, "--out", "{out}/s.csv", "--calibrate", "{real}", says="real")
add("classify-calibrate-no-generated", *KR, "--out", "{out}/s.csv", "--calibrate", "{dev_no_gen}", says="generated")
add("classify-ids-missing", *KR, "--out", "{out}/s.csv", "--ids", "{missing}", says="missing")
add("classify-ids-extra", *KR, "--out", "{out}/s.csv", "--ids", "{ids_extra}", says="without an image")
add("classify-ids-short", *KR, "--out", "{out}/s.csv", "--ids", "{ids_short}", says="not listed")
add("classify-ids-empty", *KR, "--out", "{out}/s.csv", "--ids", "{ids_empty}", says="no ids")
add("classify-ids-duplicate", *KR, "--out", "{out}/s.csv", "--ids", "{ids_dup}", says="twice")
add("classify-ids-folder", *KR, "--out", "{out}/s.csv", "--ids", "{empty}", says="folder")
add("classify-real-bomb", *K, "{bomb_real}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says=("bomb.png", "decompression bomb"))
add("classify-real-bomb-resized", *K, "{bomb_real}", "--generated", "{gen}", "--out", "{out}/s.csv",
    "--image-size", "16", says=("bomb.png", "decompression bomb"))
add("classify-generated-bomb", *K, "{real}", "--generated", "{bomb_gen}", "--out", "{out}/s.csv",
    says=("bomb.png", "decompression bomb"))
add("classify-real-corrupt", *K, "{corrupt_real}", "--generated", "{gen}", "--out", "{out}/s.csv", says="broken.png")
add("classify-real-truncated", *K, "{truncated_real}", "--generated", "{gen}", "--out", "{out}/s.csv",
    "--image-size", "16", says="t000.png")
add("classify-generated-empty-png", *K, "{real}", "--generated", "{empty_png_gen}", "--out", "{out}/s.csv",
    says=("e999.png", "empty file (0 bytes)"))
add("classify-real-multi-frame", *K, "{volume_real}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says=("volume.tif", "holds 3 frames"))
add("classify-real-text-as-png", *K, "{textpng_real}", "--generated", "{gen}", "--out", "{out}/s.csv", says="notes.png")
add("classify-real-mixed-sizes", *K, "{mixed_sizes}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says="different sizes")
add("classify-real-not-square", *K, "{nonsquare}", "--generated", "{nonsquare}", "--out", "{out}/s.csv",
    says="not square")
add("classify-images-below-8-px", *K, "{tiny}", "--generated", "{tiny_gen}", "--out", "{out}/s.csv",
    says=("y000.png", "5x5", "--image-size"))
add("classify-calibrate-images-below-8-px", *KR, "--out", "{out}/s.csv", "--calibrate", "{dev_tiny}",
    says=("dev_tiny", "5x5", "--image-size"))
NO_LINKS = [pytest.mark.skipif(os.name == "nt", reason="symbolic links need a privilege on Windows")]
add("classify-real-broken-link", *K, "{broken_link_real}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says=("gone.png", "broken link"), marks=NO_LINKS)
add("classify-generated-broken-link", *K, "{real}", "--generated", "{broken_link_gen}", "--out", "{out}/s.csv",
    says=("gone.png", "broken link"), marks=NO_LINKS)
add("classify-real-link-loop", *K, "{loop_real}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says=("loop_real/again: a link to .", "a loop"), marks=NO_LINKS)
add("classify-class-link-loop", *K, "{loop_dev}", "--generated", "{gen}", "--out", "{out}/s.csv",
    says=("used/up: a link to ..", "a loop"), marks=NO_LINKS)
add("classify-real-duplicate-ids", *K, "{dup_ids}", "--generated", "{gen}", "--out", "{out}/s.csv", says="d000")
add("classify-real-comma-id", *K, "{comma_id}", "--generated", "{gen}", "--out", "{out}/s.csv", says="a,b")
add("classify-two-test-sets", *K, "{two_tests}", "--out", "{out}/s.csv", says=("real_unknown_1", "real_unknown_2"))
add("classify-checkpoint-missing", *K, "{real}", "--method", "classifier", "--checkpoint", "{missing}",
    "--out", "{out}/s.csv", says="missing")
add("classify-checkpoint-garbage", *K, "{real}", "--method", "classifier", "--checkpoint", "{ckpt_garbage}",
    "--out", "{out}/s.csv", says="garbage.safetensors")
add("classify-checkpoint-empty-folder", *K, "{real}", "--method", "classifier", "--checkpoint", "{empty}",
    "--out", "{out}/s.csv", says="empty")
add("classify-no-checkpoint-no-runs", *K, "{real}", "--out", "{out}/s.csv", "--runs-dir", "{out}/runs",
    says="runs")
add("classify-checkpoint-meta-no-num-classes", *K, "{real}", "--method", "classifier", "--checkpoint",
    "{ckpt_no_classes}", "--out", "{out}/s.csv", says="num_classes")
add("classify-checkpoint-meta-unknown-model", *K, "{real}", "--method", "classifier", "--checkpoint",
    "{ckpt_unknown_model}", "--out", "{out}/s.csv", says="ckpt_unknown_model")
add("classify-features-offline", *KR, "--out", "{out}/s.csv", "--method", "knn", "--features", "resnet18", code=1,
    patch=offline_imagenet, says=("resnet18", "not cached", "--features checkpoint"))
add("classify-checkpoint-interrupted-stage", *K, "{real}", "--method", "classifier", "--checkpoint",
    "{stage_interrupted}", "--out", "{out}/s.csv",
    says=("stage_interrupted", "interrupted, saved after epoch 3", "best epoch so far", "train-stage", "--resume"))
add("classify-features-checkpoint-interrupted-stage", *KR, "--out", "{out}/s.csv", "--method", "knn", "--features",
    "checkpoint", "--checkpoint", "{stage_interrupted}", says=("stage_interrupted", "interrupted, saved after epoch 3"))
add("classify-checkpoint-interrupted-chain-stage", *K, "{real}", "--method", "classifier", "--checkpoint",
    "{run_interrupted}/02-two", "--out", "{out}/s.csv",
    says=("02-two", "interrupted, saved after epoch 3", "ganfp chain", "run_interrupted for its last finished stage"))
add("classify-checkpoint-typo-unused", *KR, "--out", "{out}/s.csv", "--checkpoint", "{missing}", says="missing")
add("classify-checkpoint-unused", *KR, "--out", "{out}/s.csv", "--checkpoint", "{ckpt_conv5}",
    says=("--checkpoint", "do not read it"))
add("classify-used-fraction-rounds-to-none", *KR, "--out", "{out}/s.csv", "--used-fraction", "0.05",
    says=("--used-fraction 0.05", "labels none of the 6 images", "at least 0.0834"))
add("classify-device-unknown", *KR, "--out", "{out}/s.csv", "--device", "tpu", says="tpu")
add("classify-device-not-built", *KR, "--out", "{out}/s.csv", "--device", "xpu", says=("--device xpu", "cpu or cuda"))
add("classify-device-meta", *KR, "--out", "{out}/s.csv", "--device", "meta", says=("--device meta", "cpu or cuda"))
add("classify-unknown-option", *KR, "--out", "{out}/s.csv", "--frobnicate", says="--frobnicate")

# attribute --------------------------------------------------------------------------------------------
A = ("attribute", "{real}", "--train", "{ds}", "--out", "{out}/a.csv", "--data-root", "{out}/data")
ACNN = (*A, "--method", "cnn", "--epochs", "1", "--image-size", "16", "--batch-size", "4")
add("attribute-runs-dir-file", *ACNN, "--runs-dir", "{afile}", says=("--runs-dir", "is a file"))
add("attribute-runs-dir-under-file", *ACNN, "--runs-dir", "{afile}/r", says=("--runs-dir", "is a file"))
add("attribute-runs-dir-read-only", *ACNN, "--runs-dir", "{ro}/r", says=("--runs-dir", "read-only"),
    marks=[pytest.mark.skipif(IS_ROOT, reason="root writes to read-only folders")])
add("attribute-out-over-input-image", "attribute", "{real}", "--train", "{ds}", "--out", "{real}/r001.png",
    says=("--out", "is an image"))
add("attribute-model-unknown", *ACNN, "--model", "resnet19", says=("--model", "unknown model 'resnet19'"))
add("attribute-fusion-model-unknown", *A, "--method", "fusion", "--model", "resnet19",
    says=("--model", "unknown model 'resnet19'"))
add("attribute-unknown-multi-frame", "attribute", "{volume_real}", "--train", "{ds}", "--out", "{out}/a.csv",
    "--data-root", "{out}/data", says=("volume.tif", "holds 3 frames"))
add("attribute-train-multi-frame", "attribute", "{real}", "--train", "{volume_ds}", "--out", "{out}/a.csv",
    "--data-root", "{out}/data", says=("cine.gif", "holds 3 frames"))
# attribute reads two image sets: a misspelt IMAGES spec said of neither which one held it
add("attribute-images-demo-part-typo-names-the-argument", "attribute", "demo:attribtion-2025", "--out", "{out}/a.csv",
    "--data-root", "{out}/data",
    says="error: IMAGES demo:attribtion-2025: unknown demo part 'attribtion-2025' (did you mean 'attribution-2025'?)")
add("attribute-clusters-images-missing-names-the-argument", "attribute", "{missing}", "--clusters", "2", "--out",
    "{out}/a.csv", says=("error: IMAGES ", "not an existing folder"))
add("attribute-columns-first-not-an-id", *A, "--columns", "label,id", says=("--columns 'label,id'", "id column"))
add("attribute-columns-cluster-value", *A, "--columns", "id,cluster", says=("--columns 'id,cluster'", "clustering"))
add("attribute-columns-score-value", *A, "--columns", "id,score", says=("--columns 'id,score'", "membership"))
add("attribute-clusters-columns-no-cluster", "attribute", "{real}", "--clusters", "2", "--columns", "id,generator",
    "--out", "{out}/a.csv", says=("--columns 'id,generator'", "cluster_id"))
add("attribute-checkpoint-no-runs", *A, "--features", "checkpoint", "--runs-dir", "{out}/runs",
    says=("no finished chain run", "--runs-dir"))
# --checkpoint where attribute reads it: checked (and refused where unread) before any image is decoded
add("attribute-checkpoint-unread-by-the-default", *A, "--checkpoint", "{stage_done}",
    says=("--checkpoint", "stage_done", "the knn method with --features white64 does not read it",
          "--features checkpoint"))
add("attribute-checkpoint-unread-by-cnn", *ACNN, "--checkpoint", "{stage_done}",
    says=("--checkpoint", "the cnn method does not read it"))
add("attribute-clusters-checkpoint-unread", "attribute", "{real}", "--clusters", "2", "--out", "{out}/c.csv",
    "--checkpoint", "{stage_done}", says=("--checkpoint", "--clusters with --features residual does not read it"))
add("attribute-checkpoint-missing", *A, "--features", "checkpoint", "--checkpoint", "{missing}",
    says=("--checkpoint", "missing: not found"))
add("attribute-checkpoint-empty-folder", *A, "--features", "checkpoint", "--checkpoint", "{empty}",
    says=("empty: not a checkpoint"))
add("attribute-checkpoint-not-safetensors", *A, "--features", "checkpoint", "--checkpoint", "{ckpt_pickle}",
    says=("weights.pt: not a checkpoint"))
add("attribute-checkpoint-garbage", *A, "--features", "checkpoint", "--checkpoint", "{ckpt_garbage}",
    says=("garbage.safetensors", "not a readable safetensors"))
add("attribute-runs-dir-beside-checkpoint", *A, "--features", "checkpoint", "--checkpoint", "{stage_done}",
    "--runs-dir", "{out}/runs", says=("--runs-dir", "does not read it", "without --checkpoint"))
add("attribute-features-offline", *A, "--features", "resnet18", code=1, patch=offline_imagenet,
    says=("resnet18", "not cached", "--features checkpoint"))

# harden-fetch: options that would be ignored, inputs named by their option ------------------------------
add("fetch-demo-link", *F, "demo", "--link", "--data-root", "{out}/data", says=("demo", "--link"))
add("fetch-demo-add", *F, "demo", "--add", "--data-root", "{out}/data", says=("demo", "--add"))
add("fetch-link-download-route", *F, "covid-ctset", "--link", "--data-root", "{out}/data",
    says=("--link", "no --from"))
add("fetch-link-archive", *IC, "--from", "{empty_zip}", "--link", says=("--link", "empty.zip", "not a folder"))
add("fetch-from-missing-names-from", *IC, "--from", "{missing}", says=("--from", "missing", "no such file"))
add("fetch-seed-not-demo", *F, "casia", "--seed", "1", "--data-root", "{out}/data", says=("--seed", "casia"))
add("fetch-list-unknown-name", *F, "--list", "nope", "--data-root", "{out}/data", says="unknown dataset 'nope'")
add("fetch-list-with-from", *F, "--list", "--from", "{real}", "--data-root", "{out}/data", says=("--list", "--from"))
add("fetch-list-with-force", *F, "--list", "demo", "--force", "--data-root", "{out}/data", says=("--list", "--force"))
add("fetch-list-with-seed", *F, "--list", "--seed", "3", "--data-root", "{out}/data", says=("--list", "--seed"))


def hand_placed(monkeypatch, paths):
    """Files a user put in the dataset's folder themselves (no ready meta.json): a fetch must not delete them."""
    (paths["out"] / "data" / "imageclef-gans-2023").mkdir(parents=True)
    (paths["out"] / "data" / "imageclef-gans-2023" / "notes.txt").write_text("mine")


# fetch-audit: empty paths, misnamed or unreadable archives, files put in the data root by hand -------------
add("fetch-from-empty-path", *IC, "--from", "", says=("--from ''", "empty path"))
add("fetch-data-root-empty-path", *F, "demo", "--data-root", "", says=("--data-root ''", "empty path"))
add("fetch-list-data-root-empty-path", *F, "--list", "--data-root", "", says=("--data-root ''", "empty path"))
add("fetch-list-data-root-under-file", *F, "--list", "--data-root", "{afile}/sub", says=("data root", "is a file"))
add("fetch-runs-dir-empty-path", *F, "demo", "--runs-dir", "", "--data-root", "{out}/data",
    says=("--runs-dir ''", "empty path"))
add("classify-runs-dir-empty-path", *KR, "--out", "{out}/s.csv", "--runs-dir", "", says=("--runs-dir ''", "empty path"))
add("fetch-add-with-force", *IC, "--from", "{real}", "--add", "--force", says=("--add", "--force", "give one"))
add("fetch-from-zip-without-suffix", *IC, "--from", "{zip_no_suffix}", says=("download", "zip archive", "rename it"))
add("fetch-from-deflate64-zip", *IC, "--from", "{deflate64_zip}", says=("deflate64.zip", "Deflate64"))
add("fetch-over-files-put-there-by-hand", *IC, "--from", "{dev_tiny}", patch=hand_placed,
    says=("imageclef-gans-2023 holds files that ganfp did not install", "--from"))
add("classify-generated-missing-names-option", *K, "{real}", "--generated", "{missing}", "--out", "{out}/s.csv",
    says=("--generated", "missing", "not found"))
add("classify-generated-file-names-option", *K, "{real}", "--generated", "{afile}", "--out", "{out}/s.csv",
    says=("--generated", "afile", "is a file"))
add("classify-generated-empty-names-option", *K, "{real}", "--generated", "{empty}", "--out", "{out}/s.csv",
    says=("--generated", "empty", "no images"))
add("classify-generated-unreadable-names-option", *K, "{real}", "--generated", "{unreadable}", "--out",
    "{out}/s.csv", says=("--generated", "unreadable", "cannot read"), patch=unreadable("unreadable"))
add("classify-calibrate-no-generated-names-option", *KR, "--out", "{out}/s.csv", "--calibrate", "{dev_no_gen}",
    says=("--calibrate", "dev_no_gen", "generated"))
add("eval-report-generated-missing", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{real}",
    "--generated", "{missing}", says=("--generated", "missing", "not found"))
add("eval-report-real-missing", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{missing}",
    says=("--real", "missing"))
add("eval-report-real-empty", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real", "{empty}",
    says=("--real", "empty", "no images"))
add("eval-report-real-spec-typo-names-value", *E, "{scores}", "{labels}", "--report", "{out}/r.html", "--real",
    "demo:nope", "--data-root", "{out}/data", says="error: --real demo:nope: unknown demo part 'nope'")
add("attribute-train-missing-names-option", "attribute", "{real}", "--train", "{missing}", "--out", "{out}/a.csv",
    says=("--train", "missing"))
add("attribute-train-file-names-option", "attribute", "{real}", "--train", "{labels}", "--out", "{out}/a.csv",
    says=("--train", "labels.csv"))
# a mistyped name says which option holds it, and the value it is about (they said "unknown attribution method 'x'",
# "unknown clustering method 'x'" and "--train unknown demo part 'x'")
add("attribute-method-unknown-names-option", *A, "--method", "knnn",
    says="error: --method knnn (did you mean 'knn'?): choose one of: centroid")
add("attribute-clusters-method-unknown-names-option", "attribute", "{real}", "--clusters", "2", "--method", "kmean",
    "--out", "{out}/c.csv", says="error: --method kmean (did you mean 'kmeans'?): choose one of (with --clusters)")
add("attribute-train-spec-typo-names-value", "attribute", "{real}", "--train", "demo:nope", "--out", "{out}/a.csv",
    "--data-root", "{out}/data", says="error: --train demo:nope: unknown demo part 'nope'")

# harden-attr: an option the chosen mode would ignore is refused (its default is None, so a given value shows) --------
AC = ("attribute", "{real}", "--clusters", "2", "--out", "{out}/c.csv", "--data-root", "{out}/data")
for _method in ("centroid", "linear"):
    add(f"attribute-k-with-{_method}", *A, "--method", _method, "--k", "3", says=("--k 3", _method, "knn or fusion"))
add("attribute-k-with-cnn", *ACNN, "--k", "3", says=("--k 3", "cnn", "knn or fusion"))
add("attribute-k-with-clusters", *AC, "--k", "3", says=("--clusters", "drop --k"))
add("attribute-max-clusters-with-fixed-k", *AC, "--max-clusters", "4",
    says=("--max-clusters 4", "--clusters auto", "not --clusters 2"))
add("attribute-max-clusters-without-clusters", *A, "--max-clusters", "4", says=("--max-clusters 4", "--clusters auto"))
add("attribute-model-with-knn", *A, "--method", "knn", "--model", "resnet18",
    says=("--model resnet18", "knn", "cnn or fusion"))
add("attribute-epochs-with-linear", *A, "--method", "linear", "--epochs", "3",
    says=("--epochs 3", "linear", "cnn or fusion"))
add("attribute-model-with-clusters", *AC, "--model", "conv5", says=("--clusters", "drop --model"))
add("attribute-epochs-with-clusters", *AC, "--epochs", "3", says=("--clusters", "drop --epochs"))
add("attribute-features-with-cnn", *ACNN, "--features", "spectrum",
    says=("--features spectrum", "cnn", "centroid or knn or linear or fusion"))
add("attribute-runs-dir-with-the-default", *A, "--runs-dir", "{out}/runs",
    says=("--runs-dir", "the knn method with --features white64", "--features checkpoint"))
add("attribute-runs-dir-with-clusters", *AC, "--runs-dir", "{out}/runs",
    says=("--runs-dir", "--clusters", "--features residual does not", "--features checkpoint"))

# attr-audit: what a first run on real-world folders met ----------------------------------------------------------
add("attribute-unknown-comma-in-name", "attribute", "{comma_id}", "--train", "{ds}", "--out", "{out}/a.csv",
    "--data-root", "{out}/data", says=("comma_id/a,b.png", "'a,b.png'", "rename the file"))
add("attribute-clusters-comma-in-name", "attribute", "{comma_id}", "--clusters", "2", "--out", "{out}/c.csv",
    "--data-root", "{out}/data", says=("comma_id/a,b.png", "'a,b'"))
add("attribute-class-comma-in-name", "attribute", "{real}", "--train", "{comma_class_ds}", "--out", "{out}/a.csv",
    "--data-root", "{out}/data", says=("--train", "comma_class_ds", "class 'a,b'", "rename its folder"))
add("attribute-images-below-8-px", "attribute", "{tiny}", "--clusters", "2", "--out", "{out}/c.csv", "--data-root",
    "{out}/data", says=("y000.png", "5x5", "--image-size N (at least 8)"))
add("attribute-mixed-sizes-names-a-file-of-each", "attribute", "{mixed_sizes}", "--clusters", "2", "--out",
    "{out}/c.csv", "--data-root", "{out}/data",
    says=("different sizes", "16x16 (3 files, e.g.", "mixed_sizes/m0", "mixed_sizes/n0"))
add("attribute-out-empty", "attribute", "{real}", "--clusters", "2", "--out", "", "--data-root", "{out}/data",
    says=("--out ''", "empty path"))
add("classify-scores-empty", *KR, "--out", "{out}/s.csv", "--scores", "", says=("--scores ''", "empty path"))
# attribute's feature spaces are pointed at as classify's are (its methods: the two rows above)
for _name, _args, _said, _meant in (("features", ("--features", "spectrun"), "--features spectrun", "spectrum"),
                                    ("space", ("--method", "knn", "--features", "whit48"), "--features whit48",
                                     "white48")):
    add(f"attribute-{_name}-did-you-mean", *A, *_args, says=(_said, f"(did you mean {_meant!r}?)"))
add("attribute-features-repeated", *A, "--features", "residual+residual",
    says=("--features residual+residual", "residual given twice"))
add("attribute-clusters-features-repeated", *AC, "--features", "pixels16+residual+pixels16",
    says="pixels16 given twice")
add("attribute-features-alias-repeated", *A, "--method", "linear", "--features", "pixels+pixels64",
    says=("--features pixels+pixels64", "pixels and pixels64 are both pixels64"))
add("attribute-clusters-features-alias-repeated", *AC, "--features", "std32+std", says="std32 and std are both std32")
add("attribute-features-size-out-of-range", *A, "--features", "pixels0", says=("pixels0", "between 8 and 1024"))
add("attribute-pair-features-size-out-of-range", *A, "--features", "white2000",
    says=("white2000", "between 8 and 1024"))
add("attribute-images-are-the-training-images", "attribute", "{ds}", "--train", "{ds}", "--out", "{out}/a.csv",
    "--data-root", "{out}/data", says=("ds: 16 of its 16 images are training images too", "generated_unknown/"))
add("attribute-use-real-with-class-folders", *A, "--use-real",
    says=("--use-real: --train", "holds the class folders themselves", "the folder holding both"))

# classify-audit: a new user's misuses of the membership path ---------------------------------------------------
add("classify-out-ends-with-a-separator", *KR, "--out", "{out}/results/", says=("--out", "results/", "names a folder"))
add("classify-scores-ends-with-a-separator", *KR, "--out", "{out}/s.csv", "--scores", "{out}/sc/",
    says=("--scores", "names a folder"))
add("eval-plot-ends-with-a-separator", *E, "{scores}", "{labels}", "--plot", "{out}/fig/",
    says=("--plot", "fig/", "names a folder"))
add("classify-report-n-without-report", *KR, "--out", "{out}/s.csv", "--report-n", "5",
    says=("--report-n 5", "give --report too"))
add("eval-report-n-without-report", *E, "{scores}", "{labels}", "--report-n", "5", says=("--report-n", "--report too"))
add("classify-calibrate-no-not-used", *KR, "--out", "{out}/s.csv", "--calibrate", "{dev_no_not_used}",
    says=("--calibrate", "dev_no_not_used/not_used", "folder missing", "holds generated/, used/"))
add("classify-calibrate-unknown-spec-part", *KR, "--out", "{out}/s.csv", "--calibrate", "demo:nope",
    says=("--calibrate demo:nope:", "unknown demo part 'nope'"))
add("classify-calibrate-mixed-sizes", *KR, "--out", "{out}/s.csv", "--calibrate", "{mixed_sizes_dev}",
    says=("--calibrate", "mixed_sizes_dev", "different sizes"))
add("classify-calibrate-truncated", *KR, "--out", "{out}/s.csv", "--calibrate", "{truncated_dev}", "--method", "knn",
    says=("--calibrate", "truncated_dev:", "tu000.png", "truncated"))

# top level
add("top-unknown-command", "frobnicate", says="frobnicate")
add("top-unknown-option", "--frobnicate", says="--frobnicate")


# ------------------------------------------------------------------------------------------------ runner


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return build_world(tmp_path_factory.mktemp("world"))


def snapshot(world_root: Path, around: list[Path]) -> dict:
    """Every file under the inputs (size, mtime), and the entries of the folders around the target."""
    files = {}
    for top, dirs, names in os.walk(world_root):
        for n in dirs + names:
            p = os.path.join(top, n)
            st = os.lstat(p)
            files[p] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return {"inputs": files, "around": {str(d): sorted(os.listdir(d)) for d in around}}


def one_line(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id, marks=c.marks) for c in CASES],
)
def test_bad_input(case: Case, world, run_cli, tmp_path, monkeypatch, request, capsys):
    target = tmp_path / "target"
    target.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    paths = {**world, "out": target, "ro": ro}
    args = [a.format(**{k: str(v) for k, v in paths.items()}) for a in case.args]
    monkeypatch.chdir(target)
    if case.demo:  # the demo already built, as after a user's first run: its build line is not this command's
        shutil.copytree(request.getfixturevalue("demo_root") / "demo", target / "data" / "demo")
        capsys.readouterr()
    monkeypatch.setenv("GANFP_DATA", str(target / "data"))
    monkeypatch.setenv("GANFP_RUNS", str(target / "runs"))
    monkeypatch.setenv("GANFP_DEBUG", "")
    if case.patch:
        case.patch(monkeypatch, paths)
    world_root = Path(next(iter(world.values()))).parent
    around = [tmp_path, tmp_path.parent, world_root.parent]
    ro.chmod(0o555)
    try:
        before = snapshot(world_root, around)
        code, out, err = run_cli(*args)
        after = snapshot(world_root, around)
    finally:
        ro.chmod(0o755)
    lines = one_line(out + err)
    assert code == case.code, f"exit {code}, expected {case.code}: {out + err}"
    assert "Traceback" not in out + err, out + err
    assert len(lines) == 1 and lines[0].startswith("error:"), f"expected one error line, got: {out + err}"
    for word in case.says:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert after == before, "something was written outside the target folder"


def test_enough_cases_over_every_command():
    commands = {c.args[0] for c in CASES}
    assert len(CASES) >= 150
    assert {"fetch-data", "train-stage", "chain", "evaluate", "classify", "attribute"} <= commands
