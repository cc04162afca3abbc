"""The built-in demo data: a small, seeded, synthetic stand-in for every dataset of the chain.

Real datasets cannot ship with ganfp nor be fetched in tests, so `build_demo` draws them in
seconds: CASIA-like tampered/authentic "photos", COVID-CTset-like 16-bit CT slices, and two
ImageCLEF-GANs-like sets whose generated images come from a real generative model (PCA + Gaussian
mixture) fitted only on that set's "used" slices, so the membership signal is genuine.
The folder appears complete or not at all: it is built beside the target and renamed into place;
a file that comes out byte-identical to the one it replaces keeps that file's dates.
"""

from __future__ import annotations

import filecmp
import io
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image

from ganfp.data.adapters.demo import TEST_LABELS  # the adapter names the files it serves
from ganfp.data.demo_ct import random_patient, render_slice, to_ctset, to_display
from ganfp.data.demo_photo import CATEGORIES, SIZES, copy_move, photo, splice
from ganfp.errors import InputError, RuntimeFailure, require_path, require_seed
from ganfp.fileio import sync_folder, sync_tree, write_json, write_text

if TYPE_CHECKING:  # imported by fit_pcagmm: reading a built demo set (demo_ready's version) needs no scikit-learn
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

DEMO_VERSION = 1
CASIA_AUTHENTIC, CASIA_TAMPERED = 160, 160
COVID_PATIENTS_PER_CLASS, COVID_SLICES, COVID_SIZE = 12, 10, 128
GANS_SIZE = 64
GANS_DEV = {"used": 80, "not_used": 80, "generated": 500}
GANS_TEST = {"used": 50, "not_used": 50, "generated": 2000}
PCA_COMPONENTS = 8  # generator capacity: more components or mixtures memorise more
USED_PER_MIXTURE = 8  # one Gaussian per 8 training images
STALE_AFTER_S = 3600

DESCRIPTION = (
    "Synthetic demo data drawn by ganfp, not real images. casia: authentic 'photos' and copy-move/splice "
    "forgeries of them (mirrors CASIA v2). covid: 16-bit CT-like slices of normal patients and patients "
    "with ground-glass opacities (mirrors COVID-CTset). gans-dev, gans-test: 8-bit CT-like slices and the "
    "output of a PCA + Gaussian-mixture generator fitted on the 'used' slices only (mirrors ImageCLEFmedical "
    "GANs 2023); the test labels are in gans-test-labels.csv."
)


def build_demo(target: str | os.PathLike, seed: int = 0) -> dict:
    """Build the whole demo into `target` atomically and return its meta.json content."""
    require_path("target", target)
    require_seed("seed", seed)
    seed = int(seed)  # a numpy seed was recorded as "3", which no later run matched: a rebuild, or one of seed 0
    return build_in_place(target, lambda root: _build_into(root, seed))


def build_in_place(target: str | os.PathLike, build: Callable[[Path], dict], what: str = "build the demo data") -> dict:
    """Run `build` in `.NAME.tmp-PID` beside `target`, then swap it in; returns what `build` returned.

    `target` is whole or absent at every moment, and its files whose bytes the build did not change keep their
    dates (`_keep_dates_of_unchanged`). A build killed midway leaves its `.NAME.tmp-PID`
    (or `.NAME.old-PID`) folder, which the next build of any process removes first and which
    `fetch-data --list` shows as partial meanwhile (`ganfp.fetch.store.BUILD_LEFTOVER`). A `build`
    that writes meta.json last (the demo sets) lets a concurrent build that finished first win.
    `what` ("cannot {what}") names the job in errors.
    """
    target = Path(target).expanduser()  # `~/demo` was built in a folder `~`, its temporary folder in the home folder
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder; cannot {what} there")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(target)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            meta = build(tmp)
            _keep_dates_of_unchanged(tmp, target)
            return _swap_in(tmp, target, meta)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise RuntimeFailure(f"{exc.filename or target}: cannot {what}: {exc.strerror or exc}") from exc


def _build_into(root: Path, seed: int) -> dict:
    casia_rng, covid_rng, dev_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    counts = {}
    counts.update(build_casia(root / "casia", casia_rng))
    counts.update(build_covid(root / "covid", covid_rng))
    dev = build_membership_set(dev_rng, **GANS_DEV)
    counts.update(write_membership_dev(root / "gans-dev", dev))
    test = build_membership_set(test_rng, **GANS_TEST)
    counts.update(write_membership_test(root / "gans-test", root / TEST_LABELS, test_rng, test))
    meta = {"status": "ready", "seed": seed, "version": DEMO_VERSION, "counts": counts, "description": DESCRIPTION}
    write_json(root / "meta.json", meta)  # last: its presence means the rest is complete
    return meta


def _keep_dates_of_unchanged(tmp: Path, target: Path) -> None:
    """Date each file of `tmp` whose bytes equal those of the file it will replace in `target` as that file.

    Chain re-runs and the decode caches tell a changed image by its path, size and mtime (`Manifest.fingerprint`):
    a rebuild that draws the same images (`fetch-data demo --force`, same seed) must not read as new images and
    retrain every stage. The new copy takes the old dates rather than the old file being moved in, so `target`
    stays untouched, whole, until the one swap.
    """
    if not target.is_dir():
        return
    for new in tmp.rglob("*"):
        old = target / new.relative_to(tmp)
        if not (new.is_file() and old.is_file()):
            continue
        try:
            same = filecmp.cmp(old, new, shallow=False)
        except OSError:
            continue  # an old file that cannot be read is replaced, as a changed one is
        if same:
            st = old.stat()
            os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))


def _swap_in(tmp: Path, target: Path, meta: dict) -> dict:
    """Replace `target` by the finished `tmp`; an older target is moved aside first, then deleted.

    `tmp`'s files reach the disk before the rename, which reaches it before the old copy goes: after a power cut
    `target` is the old copy or the whole new one, never a ready meta.json beside empty files.
    """
    sync_tree(tmp)
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if not (target / "meta.json").is_file():
            raise
        meta = json.loads((target / "meta.json").read_text())  # a concurrent build finished first
    sync_folder(target.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
        sync_folder(target.parent)
    return meta


def _remove_stale_builds(target: Path) -> None:
    """Delete temporary folders left by builds that crashed (their process is gone, or they are old)."""
    for leftover in list(target.parent.glob(f".{target.name}.tmp-*")) + list(target.parent.glob(f".{target.name}.old-*")):
        pid = leftover.name.rpartition("-")[2]
        try:
            age = time.time() - leftover.stat().st_mtime
        except OSError:
            continue
        if pid == str(os.getpid()) or age > STALE_AFTER_S or not _process_alive(pid):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: str) -> bool:
    if os.name != "posix" or not pid.isdigit():
        return True  # cannot tell: leave it to the age rule
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# --- CASIA-like: authentic and tampered photos -------------------------------------------------


def _jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def build_casia(folder: Path, rng: np.random.Generator) -> dict:
    """Authentic JPEGs `Au_<cat>_<nnnnn>.jpg`; forgeries of them named like CASIA v2, JPEG or TIFF."""
    (folder / "authentic").mkdir(parents=True)
    (folder / "tampered").mkdir(parents=True)
    authentic = []  # (name in tampered file names, decoded pixels as stored)
    for i in range(CASIA_AUTHENTIC):
        cat = CATEGORIES[i % len(CATEGORIES)]
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        data = _jpeg_bytes(photo(rng, cat, w, h), int(rng.integers(80, 96)))
        (folder / "authentic" / f"Au_{cat}_{i + 1:05d}.jpg").write_bytes(data)
        authentic.append((f"{cat}{i + 1:05d}", np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
    kinds = rng.permutation(np.arange(CASIA_TAMPERED) % 2)  # half copy-move (0), half splice (1)
    targets = rng.permutation(CASIA_AUTHENTIC)[:CASIA_TAMPERED]  # each authentic image edited at most once
    for j, (kind, t) in enumerate(zip(kinds, targets)):
        t_name, img = authentic[t]
        if kind:
            d = int((t + 1 + rng.integers(CASIA_AUTHENTIC - 1)) % CASIA_AUTHENTIC)  # any other image
            d_name, donor = authentic[d]
            edited, mask = splice(rng, img, donor)
        else:
            d_name = t_name
            edited, mask = copy_move(rng, img)
        size = "S" if mask.mean() < 0.12 else "M" if mask.mean() < 0.2 else "L"
        stem = f"Tp_{'D' if kind else 'S'}_NRN_{size}_N_{t_name}_{d_name}_{j + 1:05d}"
        if rng.random() < 0.6:  # CASIA v2: about 60% of the tampered images are TIFF
            Image.fromarray(edited).save(folder / "tampered" / f"{stem}.tif", "TIFF")
        else:
            (folder / "tampered" / f"{stem}.jpg").write_bytes(_jpeg_bytes(edited, 90))
    return {"casia/authentic": CASIA_AUTHENTIC, "casia/tampered": CASIA_TAMPERED}


# --- COVID-CTset-like: 16-bit slices, patients of two classes ----------------------------------


def build_covid(folder: Path, rng: np.random.Generator) -> dict:
    """`<class>/patient<k>/IM<nnnnn>.tif`, 16-bit; covid patients have ground-glass opacities."""
    n = COVID_PATIENTS_PER_CLASS
    numbers = rng.permutation(2 * n) + 1  # patient numbers do not reveal the class
    for k in range(2 * n):
        cls = "normal" if k < n else "covid"
        patient = random_patient(rng, lesions=cls == "covid")
        pdir = folder / cls / f"patient{numbers[k]}"
        pdir.mkdir(parents=True)
        z0, first = rng.uniform(0.05, 0.35), int(rng.integers(1, 60))
        for s in range(COVID_SLICES):
            hu = render_slice(patient, z0 + 0.06 * s, COVID_SIZE, rng)
            Image.fromarray(to_ctset(hu)).save(pdir / f"IM{first + s:05d}.tif", "TIFF")
    return {"covid/normal": n * COVID_SLICES, "covid/covid": n * COVID_SLICES}


# --- ImageCLEF-GANs-like: real slices and a generator that saw some of them --------------------


def real_slices(rng: np.random.Generator, count: int, size: int = GANS_SIZE) -> np.ndarray:
    """`count` 8-bit slices of `size` px, one random patient and height each (shared with the zoo)."""
    return np.stack([to_display(render_slice(random_patient(rng), rng.uniform(0.15, 0.85), size, rng)) for _ in range(count)])


def fit_pcagmm(used: np.ndarray, random_state: int, components: int = PCA_COMPONENTS,
               used_per_mixture: int = USED_PER_MIXTURE) -> tuple[PCA, GaussianMixture]:
    """PCA on the pixels of `used` only, then a diagonal Gaussian mixture on the PCA codes.

    With few training images each Gaussian sits on a handful of them, so samples land near the
    training images: the small-data memorisation that membership scorers detect.
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    x = used.reshape(len(used), -1).astype(np.float64) / 255.0
    pca = PCA(n_components=min(components, len(used) - 1), svd_solver="full").fit(x)
    mixture = GaussianMixture(
        n_components=max(1, len(used) // used_per_mixture), covariance_type="diag", reg_covar=1e-3,
        random_state=random_state,
    ).fit(pca.transform(x))
    return pca, mixture


def sample_pcagmm(pca: PCA, mixture: GaussianMixture, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` flat 8-bit samples; the mixture draws from its own `random_state`, `rng` shuffles them."""
    codes, _ = mixture.sample(count)  # grouped by component: shuffle
    pixels = pca.inverse_transform(codes[rng.permutation(count)])
    return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


def generate(used: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Fit PCA + a diagonal Gaussian mixture on `used` only and sample `count` 8-bit images."""
    pca, mixture = fit_pcagmm(used, int(rng.integers(2**31 - 1)))
    return sample_pcagmm(pca, mixture, count, rng).reshape(count, *used.shape[1:])


def build_membership_set(rng: np.random.Generator, used: int, not_used: int, generated: int) -> dict:
    """Real slices split at random into used / not used (one distribution) and the generator's output."""
    real = real_slices(rng, used + not_used)
    return {"used": real[:used], "not_used": real[used:], "generated": generate(real[:used], generated, rng)}


def save_pngs(folder: Path, prefix: str, images: np.ndarray, digits: int) -> None:
    """One PNG per image, encoded on every core: Pillow releases the GIL while it compresses."""
    folder.mkdir(parents=True)

    def save(i: int) -> None:
        Image.fromarray(images[i]).save(folder / f"{prefix}_{i + 1:0{digits}d}.png", "PNG")

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(save, range(len(images))))


def write_membership_dev(folder: Path, s: dict) -> dict:
    for name in ("used", "not_used", "generated"):
        save_pngs(folder / name, name, s[name], 4)
    return {f"gans-dev/{name}": len(s[name]) for name in ("used", "not_used", "generated")}


def write_membership_test(folder: Path, labels_file: Path, rng: np.random.Generator, s: dict) -> dict:
    real = np.concatenate([s["used"], s["not_used"]])
    labels = np.r_[np.ones(len(s["used"]), int), np.zeros(len(s["not_used"]), int)]
    order = rng.permutation(len(real))  # ids must not reveal the labels
    save_pngs(folder / "real_unknown_1", "real_unknown", real[order], 4)
    save_pngs(folder / "generated_1", "generated", s["generated"], 5)
    rows = [f"real_unknown_{i + 1:04d},{labels[j]}" for i, j in enumerate(order)]
    write_text(labels_file, "id,label\n" + "\n".join(rows) + "\n")
    return {"gans-test/real_unknown_1": len(real), "gans-test/generated_1": len(s["generated"])}
