"""The built-in demo data: layout, formats, determinism, the membership signal, atomic builds."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

import ganfp.data.demo as demo
from ganfp.data.adapters import load_manifest
from ganfp.data.adapters.demo import demo_ready
from ganfp.data.demo import DEMO_VERSION, build_demo
from ganfp.data.manifest import UNLABELLED
from ganfp.errors import InputError, RuntimeFailure


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data root whose demo was built by the adapter on first use (seed 0)."""
    root = tmp_path_factory.mktemp("data")
    assert not demo_ready(root)
    load_manifest("demo:casia", data_root=root)
    return root


@pytest.fixture(scope="module")
def built(data_root) -> Path:
    return data_root / "demo"


# The same code at a fraction of the counts: for the tests that need several builds.
SMALL = {
    "CASIA_AUTHENTIC": 16, "CASIA_TAMPERED": 16, "COVID_PATIENTS_PER_CLASS": 2, "COVID_SLICES": 3,
    "GANS_DEV": {"used": 16, "not_used": 16, "generated": 40}, "GANS_TEST": {"used": 10, "not_used": 10, "generated": 40},
}


def shrink(mp: pytest.MonkeyPatch) -> None:
    for name, value in SMALL.items():
        mp.setattr(demo, name, value)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """Small builds: seed 0, seed 0 again over a crashed build's debris, and seed 1."""
    base = tmp_path_factory.mktemp("small")
    with pytest.MonkeyPatch.context() as mp:
        shrink(mp)
        build_demo(base / "first" / "demo", seed=0)
        rebuilt = base / "rebuilt" / "demo"
        stale = rebuilt.parent / ".demo.tmp-12345"  # a crashed build from two hours ago
        (stale / "casia").mkdir(parents=True)
        (stale / "casia" / "junk.jpg").write_bytes(b"half a file")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
        if os.name == "posix":  # a fresh leftover whose process is gone (999999999 is above any pid_max)
            (rebuilt.parent / ".demo.old-999999999").mkdir()
        (rebuilt / "covid").mkdir(parents=True)  # an incomplete target: no meta.json
        (rebuilt / "covid" / "junk.tif").write_bytes(b"half a file")
        build_demo(rebuilt, seed=0)
        build_demo(base / "other" / "demo", seed=1)
    return {"first": base / "first" / "demo", "rebuilt": rebuilt, "other": base / "other" / "demo"}


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def pixels(files) -> np.ndarray:
    return np.stack([np.asarray(Image.open(f), dtype=np.float64).ravel() for f in files])


def nearest_distance(real: np.ndarray, generated: np.ndarray) -> np.ndarray:
    sq = (real**2).sum(1)[:, None] + (generated**2).sum(1)[None] - 2 * real @ generated.T
    return np.sqrt(np.maximum(sq, 0)).min(axis=1)


def test_meta_is_written_and_ready(built):
    meta = json.loads((built / "meta.json").read_text())
    assert meta["status"] == "ready" and meta["seed"] == 0 and meta["version"] == DEMO_VERSION
    assert "synthetic" in meta["description"].lower()
    assert meta["counts"] == {
        "casia/authentic": 160, "casia/tampered": 160, "covid/normal": 120, "covid/covid": 120,
        "gans-dev/used": 80, "gans-dev/not_used": 80, "gans-dev/generated": 500,
        "gans-test/real_unknown_1": 100, "gans-test/generated_1": 2000,
    }


def test_casia_layout(built):
    authentic = names(built / "casia" / "authentic")
    tampered = names(built / "casia" / "tampered")
    assert len(authentic) == 160 and len(tampered) == 160
    assert all(re.fullmatch(r"Au_(ani|arc|art|cha|nat|pla|sec|txt)_\d{5}\.jpg", n) for n in authentic)
    assert all(re.fullmatch(r"Tp_[SD]_NRN_[SML]_N_[a-z]{3}\d{5}_[a-z]{3}\d{5}_\d{5}\.(jpg|tif)", n) for n in tampered)
    copy_moves = [n for n in tampered if n.startswith("Tp_S_")]
    assert 0 < len(copy_moves) < 160
    for n in copy_moves:  # copy-move: source and target are the same image
        src, dst = n.split("_")[5:7]
        assert src == dst
    suffixes = {Path(n).suffix for n in tampered}
    assert suffixes == {".jpg", ".tif"}


def test_covid_layout(built):
    patients = {cls: names(built / "covid" / cls) for cls in ("normal", "covid")}
    assert len(patients["normal"]) == 12 and len(patients["covid"]) == 12
    assert not set(patients["normal"]) & set(patients["covid"])  # patient ids are unique across classes
    for cls, plist in patients.items():
        for p in plist:
            slices = names(built / "covid" / cls / p)
            assert len(slices) == 10 and all(re.fullmatch(r"IM\d{5}\.tif", s) for s in slices)


def test_gans_layout(built):
    dev, test = built / "gans-dev", built / "gans-test"
    assert names(dev) == ["generated", "not_used", "used"]
    assert names(dev / "used") == [f"used_{i:04d}.png" for i in range(1, 81)]
    assert names(dev / "not_used") == [f"not_used_{i:04d}.png" for i in range(1, 81)]
    assert names(dev / "generated") == [f"generated_{i:04d}.png" for i in range(1, 501)]
    assert names(test) == ["generated_1", "real_unknown_1"]  # the labels live outside
    assert names(test / "real_unknown_1") == [f"real_unknown_{i:04d}.png" for i in range(1, 101)]
    assert names(test / "generated_1") == [f"generated_{i:05d}.png" for i in range(1, 2001)]
    assert (built / "gans-test-labels.csv").is_file()


def test_file_formats(built):
    with Image.open(next((built / "casia" / "authentic").iterdir())) as im:
        assert (im.format, im.mode) == ("JPEG", "RGB") and 96 <= min(im.size) <= max(im.size) <= 128
    sizes = {Image.open(p).size for p in (built / "casia" / "authentic").iterdir()}
    assert len(sizes) > 3  # mixed sizes, as in CASIA v2
    for suffix, fmt in ((".tif", "TIFF"), (".jpg", "JPEG")):
        with Image.open(next((built / "casia" / "tampered").glob(f"*{suffix}"))) as im:
            assert (im.format, im.mode) == (fmt, "RGB")
    with Image.open(next((built / "covid" / "covid").glob("*/*.tif"))) as im:
        assert (im.format, im.mode) == ("TIFF", "I;16")
        values = np.asarray(im)
        assert values.dtype == np.uint16 and 255 < values.max() <= 5000
    for png in (built / "gans-dev" / "used" / "used_0001.png", built / "gans-test" / "generated_1" / "generated_00001.png"):
        with Image.open(png) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "L", (64, 64))


def test_covid_slices_have_ground_glass(built):
    """Covid lungs are brighter: the class is visible in the pixels (stage 2 can learn it)."""

    def lung_brightness(cls):
        values = []
        for f in sorted((built / "covid" / cls).glob("*/*.tif")):
            hu = np.asarray(Image.open(f), dtype=np.float64) - 1024
            lung = hu[(hu > -950) & (hu < -200)]
            values.append(np.percentile(lung, 90))
        return np.array(values)

    normal, covid = lung_brightness("normal"), lung_brightness("covid")
    labels = np.r_[np.zeros(len(normal)), np.ones(len(covid))]
    assert roc_auc_score(labels, np.r_[normal, covid]) > 0.8


def test_test_labels_match_ids_and_are_balanced(built):
    with open(built / "gans-test-labels.csv", newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["id", "label"]
        rows = list(reader)
    ids = [Path(n).stem for n in names(built / "gans-test" / "real_unknown_1")]
    assert sorted(r[0] for r in rows) == ids
    labels = [int(r[1]) for r in sorted(rows)]
    assert sum(labels) == 50 and set(labels) == {0, 1}
    assert 0 < sum(labels[:50]) < 50  # shuffled: ids do not give the labels away


def test_same_seed_gives_identical_bytes(small):
    first, rebuilt = digests(small["first"]), digests(small["rebuilt"])
    assert len(first) > 100 and first == rebuilt
    assert (small["first"] / "gans-test-labels.csv").read_bytes() == (small["rebuilt"] / "gans-test-labels.csv").read_bytes()


def test_other_seed_differs(small):
    first, other = digests(small["first"]), digests(small["other"])
    assert len(other) == len(first)
    assert json.loads((small["other"] / "meta.json").read_text())["seed"] == 1
    common = [k for k in first.keys() & other.keys() if k != "meta.json"]  # some file names depend on the seed
    assert len(common) > 100
    assert not [k for k in common if first[k] == other[k]]


def _membership(real_files, labels, generated_files):
    real, generated = pixels(real_files), pixels(generated_files)
    dist = nearest_distance(real, generated)
    labels = np.asarray(labels)
    return dist[labels == 1].mean(), dist[labels == 0].mean(), roc_auc_score(labels, -dist), roc_auc_score(labels, real.mean(1))


def test_generator_remembers_used_images_dev(built):
    dev = built / "gans-dev"
    used, not_used = sorted((dev / "used").glob("*.png")), sorted((dev / "not_used").glob("*.png"))
    d_used, d_not, auc, auc_intensity = _membership(used + not_used, [1] * 80 + [0] * 80, sorted((dev / "generated").glob("*.png")))
    assert d_used < d_not
    assert 0.6 < auc < 0.99  # a real signal, not a giveaway
    assert 0.35 < auc_intensity < 0.65  # the real images alone do not tell used from not used


def test_generator_remembers_used_images_test(built):
    with open(built / "gans-test-labels.csv", newline="") as f:
        labels = {r["id"]: int(r["label"]) for r in csv.DictReader(f)}
    real = sorted((built / "gans-test" / "real_unknown_1").glob("*.png"))
    d_used, d_not, auc, _ = _membership(real, [labels[p.stem] for p in real], sorted((built / "gans-test" / "generated_1").glob("*.png")))
    assert d_used < d_not
    assert 0.6 < auc < 0.99


def test_generator_is_fitted_on_used_images_only():
    """Swapping which images are 'used' moves the generated images towards the new used set."""
    rng = np.random.default_rng(3)
    real = demo.real_slices(rng, 60)
    a, b = real[:30].reshape(30, -1).astype(float), real[30:].reshape(30, -1).astype(float)
    gen = demo.generate(real[:30], 200, np.random.default_rng(4)).reshape(200, -1).astype(float)
    assert gen.shape == (200, 64 * 64)
    assert nearest_distance(a, gen).mean() < nearest_distance(b, gen).mean()
    gen_b = demo.generate(real[30:], 200, np.random.default_rng(4)).reshape(200, -1).astype(float)
    assert nearest_distance(b, gen_b).mean() < nearest_distance(a, gen_b).mean()


def test_rebuild_replaces_debris(small):
    rebuilt = small["rebuilt"]
    assert json.loads((rebuilt / "meta.json").read_text())["status"] == "ready"
    assert not (rebuilt / "covid" / "junk.tif").exists()
    assert sorted(p.name for p in rebuilt.parent.iterdir()) == ["demo"]  # no temp or old folders left


def test_failed_build_leaves_previous_demo_untouched(small, monkeypatch):
    target = small["other"]
    before = digests(target)
    shrink(monkeypatch)

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(demo, "build_covid", crash)
    with pytest.raises(RuntimeError):
        build_demo(target, seed=5)
    assert digests(target) == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo"]


def test_rebuild_replaces_a_complete_demo_and_spares_a_live_build(small, monkeypatch, tmp_path):
    target = tmp_path / "demo"
    shutil.copytree(small["other"], target)
    live = tmp_path / f".demo.tmp-{os.getppid()}"  # a concurrent build whose process still runs
    live.mkdir()
    shrink(monkeypatch)
    meta = build_demo(target, seed=0)
    assert meta["seed"] == 0
    assert digests(target) == digests(small["first"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "demo"]


def test_unwritable_target_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RuntimeFailure, match="cannot build the demo data") as exc:
        build_demo(blocker / "demo")
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="not a folder"):
        build_demo(blocker)


def test_adapter_covid_has_two_classes_and_patient_groups(data_root):
    meta_mtime = (data_root / "demo" / "meta.json").stat().st_mtime_ns
    m = load_manifest("demo:covid", data_root=data_root)
    assert (data_root / "demo" / "meta.json").stat().st_mtime_ns == meta_mtime  # ready: not rebuilt
    assert m.classes == ["normal", "covid"] and len(m) == 240
    assert m.class_counts() == {"normal": 120, "covid": 120}
    groups = {}
    for item in m.items:
        groups.setdefault(item.group, set()).add(item.label)
    assert len(groups) == 24 and all(len(labels) == 1 for labels in groups.values())


def test_adapter_gans_parts(data_root):
    dev = load_manifest("demo:gans-dev", data_root=data_root)
    assert dev.classes == ["not_used", "used"] and dev.class_counts() == {"not_used": 80, "used": 80}
    assert len(list(Path(dev.info["generated"]).glob("*.png"))) == 500
    test = load_manifest("demo:gans-test", data_root=data_root)
    assert len(test) == 100 and not test.labelled and all(it.label == UNLABELLED for it in test.items)
    assert len(list(Path(test.info["generated"]).glob("*.png"))) == 2000
    assert Path(test.info["labels"]).is_file() and Path(test.info["labels"]).parent == data_root / "demo"


def test_first_use_says_once_that_the_demo_is_being_built(tmp_path, run_cli, monkeypatch):
    """The first `classify demo:gans-test` on a fresh data root waits for the build: one line says why, where, and
    that it is done once; the next command reuses the demo and says nothing of it."""
    shrink(monkeypatch)
    monkeypatch.setenv("GANFP_DATA", str(tmp_path / "data"))
    code, _, err = run_cli("classify", "demo:gans-test", "--out", tmp_path / "s.csv")
    assert code == 0, err
    said = [line for line in err.splitlines() if "demo data" in line]
    assert said == [f"building the demo data in {tmp_path / 'data' / 'demo'} (a few seconds, done once: later runs "
                    "reuse it)"]
    code, _, err = run_cli("classify", "demo:gans-test", "--out", tmp_path / "s.csv")
    assert code == 0 and "demo data" not in err, err


def dates(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_rebuild_rewrites_only_the_images_it_changes(tmp_path, run_cli, monkeypatch):
    """`fetch-data demo --force` with the same seed draws the same bytes: those files keep their dates, which chain
    re-runs and caches compare; a damaged file is rewritten, a stray one removed, and another seed rewrites all."""
    shrink(monkeypatch)
    root, parts = tmp_path / "data", ("demo:casia", "demo:covid", "demo:gans-dev", "demo:gans-test")
    assert run_cli("fetch-data", "demo", "--data-root", root)[0] == 0
    built = root / "demo"
    first, before = digests(built), dates(built)
    fingerprints = [load_manifest(spec, data_root=root).fingerprint() for spec in parts]
    damaged = built / "gans-dev" / "used" / "used_0001.png"
    damaged.write_bytes(b"not a png")
    (built / "casia" / "stray.jpg").write_bytes(b"no longer part of the demo")
    code, _, err = run_cli("fetch-data", "demo", "--force", "--data-root", root)
    assert code == 0, err
    after = dates(built)
    assert digests(built) == first and after.keys() == before.keys()
    assert [name for name in after if after[name] != before[name]] == ["gans-dev/used/used_0001.png"]
    again = [load_manifest(spec, data_root=root).fingerprint() for spec in parts]
    assert [a == b for a, b in zip(fingerprints, again)] == [True, True, False, True]
    code, _, err = run_cli("fetch-data", "demo", "--force", "--seed", "1", "--data-root", root)
    assert code == 0, err
    other = [load_manifest(spec, data_root=root).fingerprint() for spec in parts]
    assert not set(other) & set(again)


def test_a_rebuild_replaces_an_old_file_it_cannot_read(tmp_path, monkeypatch):
    """Comparing is only to keep dates: an old file that cannot be read is written anew, not a failed build."""

    def build(tmp: Path) -> dict:
        (tmp / "a.png").write_bytes(b"pixels")
        return {}

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    demo.build_in_place(tmp_path / "set", build)
    monkeypatch.setattr(demo.filecmp, "cmp", unreadable)
    demo.build_in_place(tmp_path / "set", build)
    assert (tmp_path / "set" / "a.png").read_bytes() == b"pixels"


def test_a_chain_is_not_retrained_after_a_rebuild_of_the_same_images(tmp_path, run_cli, monkeypatch, one_torch_thread):
    """The cost the kept dates save: a chain re-run after `fetch-data demo --force` (same seed) skips its stages."""
    shrink(monkeypatch)
    chain = tmp_path / "mini.toml"
    chain.write_text('name = "mini"\n[defaults]\nimage_size = 16\nbatch_size = 8\nepochs = 1\n'
                     '[[stages]]\nname = "casia"\ndataset = "demo:casia"\n'
                     '[[stages]]\nname = "dev"\ndataset = "demo:gans-dev"\n')
    data = ("--data-root", tmp_path / "data")
    args = ("chain", "--model", "conv5", "--chain", chain, "--runs-dir", tmp_path / "runs", *data, "--json")

    def statuses() -> list[str]:
        code, out, err = run_cli(*args)
        assert code == 0, err
        return [row["status"] for row in json.loads(out)]

    assert statuses() == ["trained", "trained"]
    assert run_cli("fetch-data", "demo", "--force", *data)[0] == 0
    assert statuses() == ["skipped", "skipped"]
    assert run_cli("fetch-data", "demo", "--force", "--seed", "1", *data)[0] == 0
    assert statuses() == ["trained", "trained"]


def test_a_numpy_seed_is_recorded_as_a_number(monkeypatch, tmp_path):
    """Recorded as "3" (json's default=str), it matched no later run's seed: the next `fetch_dataset("demo",
    seed=3)` rebuilt the demo, and a `--force` without a seed rebuilt it as seed 0."""
    shrink(monkeypatch)
    meta = build_demo(tmp_path / "demo", seed=np.int64(3))
    recorded = json.loads((tmp_path / "demo" / "meta.json").read_text())["seed"]
    assert recorded == 3 and type(recorded) is int and type(meta["seed"]) is int
