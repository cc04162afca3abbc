"""The generator zoo: seeded splits from every family, both layouts, the memoriser memorises, the control
trains on neither real set."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganfp.data.demo import build_demo
from ganfp.data.demo_attribution import ensure_attribution_demo
from ganfp.data.zoo import FAMILIES, MembershipSplit, build_split, fit_family, real_slices, write_split
from ganfp.data.zoo import classic
from ganfp.errors import InputError, RuntimeFailure

TINY = {"used": 6, "not_used": 5, "generated": 9, "size": 16, "quick": True}


@pytest.fixture(params=FAMILIES.names())
def family(request) -> str:
    return request.param


def test_family_entries_declare_their_facts(family):
    meta = FAMILIES.entry(family).meta
    assert isinstance(meta["leaks"], bool) and meta["size"] in (64, 128, 256) and meta["description"]


def test_every_family_builds_a_seeded_uint8_split(family):
    a, b = build_split(family, seed=3, **TINY), build_split(family, seed=3, **TINY)
    assert (a.family, a.seed, a.size) == (family, 3, 16)
    for part, n in (("used", 6), ("not_used", 5), ("generated", 9)):
        x = getattr(a, part)
        assert x.dtype == np.uint8 and x.shape == (n, 16, 16)
        assert x.tobytes() == getattr(b, part).tobytes()  # same seed, same bytes
    assert a.generated.std() > 0  # not a blank image
    other = build_split(family, seed=4, **TINY)
    assert other.used.tobytes() != a.used.tobytes() and other.generated.tobytes() != a.generated.tobytes()


def test_fit_family_is_the_generator_build_split_samples(family):
    """A white-box check asks the generator itself: it must be the one whose samples the benchmark scored."""
    split = build_split(family, seed=3, **TINY)
    fitted = fit_family(family, seed=3, **{k: v for k, v in TINY.items() if k != "generated"})
    assert fitted.used.tobytes() == split.used.tobytes() and fitted.not_used.tobytes() == split.not_used.tobytes()
    assert fitted.sampler.sample(9, fitted.sample_seed).tobytes() == split.generated.tobytes()
    with pytest.raises(InputError, match=r"seed=-1: must be at least 0"):
        fit_family(family, seed=-1)


def test_real_slices_take_a_size():
    x = real_slices(np.random.default_rng(0), 2, 32)
    assert x.shape == (2, 32, 32) and x.dtype == np.uint8


def test_generators_train_on_used_only_and_the_control_on_neither(monkeypatch):
    seen = []
    fit = classic.PcaGmm.fit
    def spy(self, train, seed):
        seen.append(train.copy())
        return fit(self, train, seed)

    monkeypatch.setattr(classic.PcaGmm, "fit", spy)
    leaky = build_split("pcagmm", seed=1, **TINY)
    control = build_split("noleak", seed=1, **TINY)
    assert FAMILIES.entry("noleak").meta["leaks"] is False
    assert np.array_equal(seen[0], leaky.used)
    assert np.array_equal(control.used, leaky.used) and np.array_equal(control.not_used, leaky.not_used)
    real = {img.tobytes() for img in np.concatenate([control.used, control.not_used])}
    assert len(seen[1]) == 6 and not real & {img.tobytes() for img in seen[1]}


def test_bad_arguments_are_one_line_input_errors():
    with pytest.raises(InputError, match="unknown generator family 'nope'"):
        build_split("nope", seed=0)
    with pytest.raises(InputError, match="size"):
        build_split("pcagmm", seed=0, size=24)
    with pytest.raises(InputError, match="used"):
        build_split("pcagmm", seed=0, used=1)
    with pytest.raises(InputError, match="layout"):
        write_split(build_split("pcagmm", seed=0, **TINY), Path("x"), layout="train")


@pytest.mark.parametrize("arguments, message", [
    ({"seed": -1}, r"seed=-1: must be at least 0"),
    ({"seed": 2**32}, r"seed=4294967296: must be at most 4294967295"),
    ({"seed": 1.5}, r"seed=1.5: must be a whole number"),
    ({"seed": "3"}, r"seed='3': must be a whole number"),
    ({"seed": 0, "used": -5}, r"used: at least 2 images, not -5"),
    ({"seed": 0, "not_used": 0}, r"not_used: at least 1 image, not 0"),
    ({"seed": 0, "generated": 2.5}, r"generated=2.5: must be a whole number"),
    ({"seed": 0, "size": 32.0}, r"size=32.0: must be a whole number"),
    ({"seed": 0, "cache": ["x"]}, r"cache=\['x'\]: must be a path"),
])
def test_seed_counts_and_cache_are_checked_before_any_draw(arguments, message):
    with pytest.raises(InputError, match=message):
        build_split("pcagmm", **arguments)


@pytest.mark.parametrize("seed, message", [(-1, "at least 0"), (2**32, "at most 4294967295"), (0.5, "a whole number")])
def test_the_demo_builders_check_their_seed(seed, message, tmp_path):
    with pytest.raises(InputError, match=rf"seed={seed!r}: must be {message}"):
        build_demo(tmp_path / "demo", seed=seed)
    with pytest.raises(InputError, match=rf"seed={seed!r}: must be {message}"):
        ensure_attribution_demo("attribution-2025", tmp_path, seed=seed)
    assert not list(tmp_path.iterdir())


def test_an_unknown_attribution_demo_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"unknown attribution demo 'attribution-2023'; choose one of: attribution-20"):
        ensure_attribution_demo("attribution-2023", tmp_path)
    assert not list(tmp_path.iterdir())


def test_cache_returns_the_same_split(tmp_path):
    first = build_split("memoriser", seed=2, cache=tmp_path, **TINY)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and "memoriser-s2" in files[0].name
    again = build_split("memoriser", seed=2, cache=tmp_path, **TINY)
    assert again.generated.tobytes() == first.generated.tobytes() and again.used.tobytes() == first.used.tobytes()
    build_split("memoriser", seed=2, cache=tmp_path, **{**TINY, "generated": 10})
    assert len(list(tmp_path.glob("*.npz"))) == 2  # another shape, another file


def _emptied(data: bytes) -> bytes:
    return b""


def _cut_short(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _zero_filled(data: bytes) -> bytes:
    return bytes(len(data))


def _zeros_in_the_generated_images(data: bytes) -> bytes:
    """A block of the last member's pixels zeroed, the file's length kept: only the member's CRC-32 tells."""
    at = len(data) - 600
    return data[:at] + bytes(200) + data[at + 200 :]


@pytest.mark.parametrize("damage", [_emptied, _cut_short, _zero_filled, _zeros_in_the_generated_images])
def test_a_damaged_cached_split_is_built_again(tmp_path, caplog, damage):
    """A cache file a disk left short, empty or zero-filled failed with numpy's or zipfile's traceback on every later
    run; it is a miss now, named in one warning, and the rebuilt split replaces it."""
    fresh = build_split("memoriser", seed=2, **TINY)
    build_split("memoriser", seed=2, cache=tmp_path, **TINY)
    (file,) = tmp_path.glob("*.npz")
    file.write_bytes(damage(file.read_bytes()))
    again = build_split("memoriser", seed=2, cache=tmp_path, **TINY)
    for part in ("used", "not_used", "generated"):
        assert getattr(again, part).tobytes() == getattr(fresh, part).tobytes()
    (record,) = caplog.records
    assert record.getMessage().startswith(f"{file}: a damaged zoo cache file (")
    assert record.getMessage().endswith("; building the split again")
    with np.load(file) as z:  # replaced: the next run reads it
        assert z["generated"].tobytes() == fresh.generated.tobytes()


def test_a_split_cached_with_other_cpu_kernels_is_built_again(tmp_path, monkeypatch):
    """The VAEs and the DCGAN train with torch on the CPU, whose result depends on the processor: a cache copied
    from a machine with other vector instructions gave that machine's splits, not what a rebuild here gives."""
    import torch

    build_split("memoriser", seed=2, cache=tmp_path, **TINY)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    build_split("memoriser", seed=2, cache=tmp_path, **TINY)
    assert len(list(tmp_path.glob("*.npz"))) == 2

def pngs(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def test_write_split_dev_layout(tmp_path):
    split = build_split("pcagmm", seed=0, **TINY)
    counts = write_split(split, tmp_path / "dev", layout="dev")
    assert counts == {"used": 6, "not_used": 5, "generated": 9}
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == ["generated", "not_used", "used"]
    for part in ("used", "not_used", "generated"):
        assert np.array_equal(pngs(tmp_path / "dev" / part), getattr(split, part))
    write_split(split, tmp_path / "dev", layout="dev")  # rewriting replaces the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev"]


@pytest.mark.skipif(os.name != "posix", reason="whether a process lives is told by its pid on POSIX only")
def test_write_split_removes_what_a_killed_write_left_and_spares_a_live_one(tmp_path):
    dead = tmp_path / ".dev.tmp-999999999"  # above any pid_max: its process is gone
    (dead / "used").mkdir(parents=True)
    live = tmp_path / f".dev.tmp-{os.getppid()}"  # a concurrent write whose process still runs
    live.mkdir()
    write_split(build_split("pcagmm", seed=0, **TINY), tmp_path / "dev", layout="dev")
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "dev"]


def test_write_split_over_a_file_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    split = build_split("pcagmm", seed=0, **TINY)
    with pytest.raises(InputError, match="file: exists and is not a folder; cannot write the split"):
        write_split(split, blocker, layout="dev")
    with pytest.raises(RuntimeFailure, match="cannot write the split"):
        write_split(split, blocker / "dev", layout="dev")


def test_write_split_test_layout_hides_the_labels_in_labels_csv(tmp_path):
    split = build_split("pcagmm", seed=0, **{**TINY, "used": 8, "not_used": 8})
    write_split(split, tmp_path / "test", layout="test")
    root = tmp_path / "test"
    assert sorted(p.name for p in root.iterdir()) == ["generated_1", "labels.csv", "real_unknown_1"]
    with open(root / "labels.csv", newline="") as f:
        labels = {r["id"]: int(r["label"]) for r in csv.DictReader(f)}
    files = sorted((root / "real_unknown_1").glob("*.png"))
    assert [p.stem for p in files] == sorted(labels) and sum(labels.values()) == 8
    used = {img.tobytes() for img in split.used}
    for p in files:
        assert (np.asarray(Image.open(p)).tobytes() in used) == bool(labels[p.stem])
    assert [labels[p.stem] for p in files] != sorted(labels.values(), reverse=True)  # shuffled, not used-first
    assert np.array_equal(pngs(root / "generated_1"), split.generated)


def shift_tolerant_nearest(real: np.ndarray, gen: np.ndarray, shift: int = 3) -> np.ndarray:
    """Per real image: L2 to the nearest generated image over every shift up to `shift` px (centre crop)."""
    s = real.shape[1]
    crop = real[:, shift : s - shift, shift : s - shift].reshape(len(real), -1).astype(np.float64)
    best = np.full(len(real), np.inf)
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            g = gen[:, dy : dy + s - 2 * shift, dx : dx + s - 2 * shift].reshape(len(gen), -1).astype(np.float64)
            d = ((crop[:, None, :] - g[None]) ** 2).sum(-1).min(1)
            best = np.minimum(best, d)
    return np.sqrt(best)


def test_memoriser_samples_sit_next_to_used_slices():
    split: MembershipSplit = build_split("memoriser", seed=0, used=12, not_used=12, generated=60, size=32)
    d_used = shift_tolerant_nearest(split.used, split.generated)
    d_not = shift_tolerant_nearest(split.not_used, split.generated)
    assert np.median(d_used) < 0.8 * np.median(d_not)
    assert (d_used[:, None] < d_not[None, :]).mean() > 0.8  # shift-tolerant AUC
