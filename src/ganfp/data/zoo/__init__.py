"""The generator zoo: seeded, offline membership benchmarks, one per generator family.

Each split has the shape of ImageCLEFmedical GANs 2023 (real slices "used" to train a generator,
real slices "not used", and the generator's output). The real slices are the demo's synthetic CT
slices, drawn fresh from the seed; the generator is fitted on the used slices only, except for the
control family (`leaks=False`), which is fitted on a third, disjoint set of slices of the same
distribution, so no scorer should tell used from not used there.

    split = build_split("vae", seed=0)                        # dev shape: 80 / 80 / 500
    write_split(split, Path("zoo/vae-dev"), layout="dev")     # used/ not_used/ generated/

`FAMILIES` lists the families; each entry's meta says whether it `leaks`, its native `size` (px)
and a `description`. Built splits can be cached on disk (`cache=`), keyed by everything that
decides their bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch

from ganfp.data.demo import (
    build_in_place,
    real_slices,
    write_membership_dev,
    write_membership_test,
)
from ganfp.data.zoo.classic import Memoriser, PcaGmm
from ganfp.data.zoo.nets import DCGAN, VAE
from ganfp.errors import InputError, RuntimeFailure, count, require_int, require_path, require_seed
from ganfp.fileio import atomic_path
from ganfp.registry import Registry

__all__ = ["FAMILIES", "FittedFamily", "MembershipSplit", "build_split", "fit_family", "write_split", "real_slices",
           "SHAPES", "shape_seed"]

log = logging.getLogger(__name__)

ZOO_VERSION = 1  # raise whenever the same arguments would give different bytes
LAYOUTS = ("dev", "test")
SHAPES = {
    "dev": {"used": 80, "not_used": 80, "generated": 500},
    "test": {"used": 100, "not_used": 100, "generated": 2000},
}


class Sampler(Protocol):
    def sample(self, n: int, seed: int) -> np.ndarray: ...


class Family(Protocol):
    def fit(self, train_u8: np.ndarray, seed: int) -> Sampler: ...

    def quick(self) -> Family: ...


FAMILIES: Registry[Family] = Registry("generator family")
FAMILIES.add("pcagmm", PcaGmm(), leaks=True, size=64,
             description="the demo's generator: PCA + a diagonal Gaussian mixture; smooth, ghostly slices")
FAMILIES.add("vae", VAE(), leaks=True, size=64,
             description="a small convolutional VAE; blurry slices")
FAMILIES.add("vae-400steps", VAE(steps=400), leaks=True, size=64,
             description="the VAE trained for half as long: blurrier, closer to the population")
FAMILIES.add("vae-latent16", VAE(latent=16), leaks=True, size=64,
             description="the VAE with a 16-d latent: more capacity, sharper samples")
FAMILIES.add("vae-kl0.5", VAE(beta=0.5), leaks=True, size=64,
             description="the VAE with half the KL weight: sharper, less regular samples")
FAMILIES.add("dcgan", DCGAN(), leaks=True, size=64,
             description="a small DCGAN drawing at 32 px, upsampled; soft slices with GAN artefacts")
FAMILIES.add("memoriser", Memoriser(), leaks=True, size=64,
             description="sharp near-copies of used slices (elastic warp, shift, rotation, gamma, noise), "
                         "half of them blends of two")
FAMILIES.add("memoriser-uniform", Memoriser(spread=None), leaks=True, size=64,
             description="the memoriser with shifts and rotations drawn uniformly up to their bounds, as the "
                         "independent benchmark draws them: raw-pixel distances fail it (GAN-Leaks below 0.65)")
FAMILIES.add("pcagmm128", PcaGmm(), leaks=True, size=128,
             description="the demo's generator at 128 px")
FAMILIES.add("noleak", PcaGmm(), leaks=False, size=64,
             description="control: the demo's generator fitted on real slices in neither used nor not used")


@dataclass(frozen=True, eq=False)
class MembershipSplit:
    """Real slices that trained the generator (`used`), real slices that did not, and its output (uint8)."""

    used: np.ndarray
    not_used: np.ndarray
    generated: np.ndarray
    family: str
    seed: int
    size: int


def shape_seed(seed: int, shape: str) -> int:
    """The split seed of a benchmark seed's dev or test shape: distinct, so their slices and fits differ."""
    return 2 * seed + list(SHAPES).index(shape)


def build_split(name: str, seed: int, used: int = 80, not_used: int = 80, generated: int = 500, size: int | None = None,
                quick: bool = False, cache: str | os.PathLike | None = None) -> MembershipSplit:
    """Draw the real slices, fit family `name` and sample it; `quick` trains briefly (for tests).

    With `cache`, a split built before with the same arguments is loaded from that folder instead (built again, and
    the file replaced, when it is damaged).
    """
    require_path("cache", cache, optional=True)
    size, family = _checked(name, seed, used, not_used, generated, size, quick)
    key = (name, seed, used, not_used, generated, size, quick)
    path = _cache_path(Path(cache), key, family) if cache is not None else None
    cached = _load(path, name, seed, size) if path is not None and path.is_file() else None
    if cached is not None:
        return cached
    fitted = _fit(name, family, seed, used, not_used, size)
    images = fitted.sampler.sample(generated, fitted.sample_seed)
    split = MembershipSplit(fitted.used, fitted.not_used, images, name, seed, size)
    if path is not None:
        _save(path, split)
    return split


class FittedFamily(NamedTuple):
    """A split's real slices and its generator itself, as fitted before sampling: for white-box checks of how much
    a generator leaks (benchmarks/membership_ceiling.py asks its own decoder), which the samples alone cannot make."""

    used: np.ndarray
    not_used: np.ndarray
    sampler: Sampler
    sample_seed: int  # `sampler.sample(generated, sample_seed)` gives the split's generated images


def fit_family(name: str, seed: int, used: int = 80, not_used: int = 80, size: int | None = None,
               quick: bool = False) -> FittedFamily:
    """The generator `build_split` samples, with the same arguments: fitted on the same slices with the same seed."""
    size, family = _checked(name, seed, used, not_used, 1, size, quick)
    return _fit(name, family, seed, used, not_used, size)


def _checked(name: str, seed: int, used: int, not_used: int, generated: int, size: int | None,
             quick: bool) -> tuple[int, Family]:
    """The split's side (the family's unless given) and the family to fit, after every argument is checked."""
    entry = FAMILIES.entry(name)
    size = entry.meta["size"] if size is None else size
    require_seed("seed", seed)
    _check_counts(used, not_used, generated, size)
    return size, entry.obj.quick() if quick else entry.obj


def _fit(name: str, family: Family, seed: int, used: int, not_used: int, size: int) -> FittedFamily:
    """Draw the split's real slices and fit `family` on its training ones (the used slices, or the control's own)."""
    real_rng = np.random.default_rng(np.random.SeedSequence([seed, size]))
    leaks = FAMILIES.entry(name).meta["leaks"]
    real = real_slices(real_rng, used + not_used + (0 if leaks else used), size)
    train = real[:used] if leaks else real[used + not_used :]
    streams = np.random.SeedSequence([seed, zlib.crc32(name.encode())])
    fit_seed, sample_seed = (int(s) for s in streams.generate_state(2))
    return FittedFamily(real[:used], real[used : used + not_used], family.fit(train, fit_seed), sample_seed)


def _check_counts(used: int, not_used: int, generated: int, size: int) -> None:
    """Whole numbers in range, before any slice is drawn: `used=2.5` failed inside numpy's slicing."""
    for what, n, least in (("used", used, 2), ("not_used", not_used, 1), ("generated", generated, 1)):
        require_int(what, n)
        if n < least:
            raise InputError(f"{what}: at least {count(least, 'image')}, not {n}")
    require_int("size", size)
    if size < 16 or size > 256 or size & (size - 1):
        raise InputError(f"size: a power of two from 16 to 256 px, not {size}")


def _cache_path(folder: Path, key: tuple, family: Family) -> Path:
    """Everything that decides the bytes: the arguments, the family's settings, the zoo's version and the kernels."""
    digest = hashlib.sha256(repr((ZOO_VERSION, key, family, numeric_kernels())).encode()).hexdigest()[:16]
    name, seed, used, not_used, generated, size, quick = key
    tag = "-quick" if quick else ""
    return folder / f"{name}-s{seed}-{used}x{not_used}x{generated}-{size}px{tag}-{digest}.npz"


def numeric_kernels() -> tuple[str, str, str]:
    """What else decides a split's bytes: the VAEs and the DCGAN train with torch on the CPU, whose kernels differ by
    version and by the processor's vector instructions (a `vae` split built with AVX-512 and with torch's generic
    kernels differs by 6 grey levels per pixel on average). A split cached on another machine is not reused: it is
    not what a rebuild here gives."""
    return torch.__version__, np.__version__, torch.backends.cpu.get_cpu_capability()


def _save(path: Path, split: MembershipSplit) -> None:
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, used=split.used, not_used=split.not_used, generated=split.generated)
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot write the zoo cache: {exc.strerror or exc}") from exc


# What np.load raises for a cache file emptied, cut short or zero-filled (a disk that lost writes, a partial copy):
# EOFError, a ValueError (no .npz header), BadZipFile (no zip directory; a member's CRC-32 does not match its data).
DAMAGED_FILE_ERRORS = (EOFError, ValueError, KeyError, zipfile.BadZipFile)


def _load(path: Path, name: str, seed: int, size: int) -> MembershipSplit | None:
    """The cached split, or None (with a one-line warning) when its file is damaged: it failed with numpy's or
    zipfile's traceback, and no other run could use that cache entry until someone deleted it."""
    try:
        with np.load(path) as z:
            return MembershipSplit(z["used"], z["not_used"], z["generated"], name, seed, size)
    except DAMAGED_FILE_ERRORS as exc:
        log.warning("%s: a damaged zoo cache file (%s); building the split again", path, type(exc).__name__)
        return None


def write_split(split: MembershipSplit, folder: str | os.PathLike, layout: str) -> dict:
    """Write PNG folders as the 2023 task ships them; the folder appears complete or not at all.

    "dev": used/ not_used/ generated/. "test": real_unknown_1/ (used and not used in shuffled
    order) and generated_1/, plus labels.csv (id,label; 1 = used). Staged as the demo is
    (`build_in_place`), so a killed write's leftover is removed by the next write of any process.
    """
    if not isinstance(split, MembershipSplit):
        raise InputError(f"split={split!r}: must be a MembershipSplit, as build_split returns")
    require_path("folder", folder)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    parts = {"used": split.used, "not_used": split.not_used, "generated": split.generated}

    def write(tmp: Path) -> dict:
        if layout == "dev":
            return write_membership_dev(tmp, parts)
        return write_membership_test(tmp, tmp / "labels.csv", np.random.default_rng(split.seed), parts)

    counts = build_in_place(folder, write, what="write the split")
    return {k.split("/", 1)[1]: v for k, v in counts.items()}
