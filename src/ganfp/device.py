"""Device choice and the per-device settings that make it fast."""

from __future__ import annotations

import contextlib
import ctypes
import platform

import torch

from ganfp.errors import InputError

RUNS_ON = ("cpu", "cuda", "mps")  # the device kinds ganfp's models and scorers run on
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}
KEEP_FREED = {M_TRIM_THRESHOLD: 2**31 - 1, M_MMAP_MAX: 0}  # no block of its own per allocation, no heap given back


def device_name(device, what: str = "device") -> str:
    """The name of `device`, a name or a torch.device: from Python `device=0` or `device=["cpu"]` failed with an
    AttributeError deep in the first neighbour pass, and `device=torch.device("cpu")` with the same."""
    if isinstance(device, torch.device):
        return str(device)
    if isinstance(device, str):
        return device
    raise InputError(f"{what}={device!r}: must be a torch.device or a name (auto, cpu, cuda)")


def resolve_device(name: str | torch.device = "auto", what: str = "device") -> torch.device:
    """The device `--device NAME` (or a torch.device) means, checked before any work: a GPU the machine lacks fails
    here, not at the first tensor moved there (torch reports that as an "invalid device ordinal" traceback).
    `what` names the argument in the message refusing a value that is neither."""
    name = device_name(name, what)
    why = device_problem(name)
    if why:
        raise InputError(f"--device {name}: {why}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_problem(name: str | torch.device) -> str | None:
    """Why this machine has no device `name`, or None; a chain asks for every stage's before the first trains."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        return "must be a torch.device or a name (auto, cpu, cuda)"
    if name == "auto":
        return None
    if name.startswith("cuda") and not torch.cuda.is_available():
        return "CUDA is not available on this machine (use --device cpu or auto)"
    try:
        device = torch.device(name)
    except RuntimeError:
        return "not a device (use auto, cpu or cuda)"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine (use --device cpu or auto)"
    if device.type not in RUNS_ON:  # torch names a dozen kinds (xpu, meta, ...): each failed later, a traceback
        return "not a device ganfp runs on (use auto, cpu or cuda)"
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        return (f"this machine has {count} CUDA device{'s' * (count != 1)} "
                f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}; or cuda, auto)")
    return None


@contextlib.contextmanager
def rng_untouched(device: torch.device | None = None):
    """Within it torch's global RNG may be seeded and drawn from and is put back after: a model built to load
    weights into draws its random init from it, a stage seeds it, and a notebook's later random numbers must not
    depend on whether it called ganfp. The CPU generator is forked, and `device`'s when it is a GPU (one that
    trains there draws from it); models built to load weights into are built on the CPU."""
    cuda = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        yield


def seed_rng(seed: int, device: torch.device) -> None:
    """Seed torch's CPU generator and `device`'s when it is a GPU, and no other: `torch.manual_seed` seeds every
    GPU, while `rng_untouched` puts back only these two, so a notebook's other GPUs kept the stage's seed."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def _glibc():
    """The C library's handle when it is glibc (Linux), else None: only glibc has these malloc parameters."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


@contextlib.contextmanager
def freed_memory_kept(device: torch.device):
    """Within it, on the CPU under glibc, memory torch frees stays in the process for its next tensor.

    glibc maps each large allocation (from 128 KB; always from 32 MB) as pages of its own and unmaps them on free, so
    every training step's gradients and kernel buffers were new pages, zero-filled by the kernel at the first touch:
    vgg11 (a 411 MB gradient) spent as much CPU time in those page faults as in its own arithmetic, resnet18 a tenth.
    The same sums run on the same values, so results do not change. Glibc's defaults are put back after, and the
    memory kept is handed back then (`malloc_trim`), so a notebook does not hold a stage's peak after it.
    """
    libc = _glibc() if device.type == "cpu" else None
    if libc is None:
        yield
        return
    for param, value in KEEP_FREED.items():
        libc.mallopt(param, value)
    try:
        yield
    finally:
        for param, value in GLIBC_DEFAULTS.items():
            libc.mallopt(param, value)
        libc.malloc_trim(0)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; full fp32 on CPU, where bf16 is slower and changes numbers."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device` without stalling the GPU: pinned and non-blocking on CUDA.

    A plain `.to("cuda")` from pageable memory waits for the GPU to finish its queued work,
    which costs the overlap of data preparation and compute at every step.
    """
    if t.device.type != "cpu" or device.type != "cuda":
        return t.to(device)
    return t.contiguous().pin_memory().to(device, non_blocking=True)


@contextlib.contextmanager
def settings_kept():
    """Within it `configure` may change torch's global settings, which are put back after: a notebook that trained
    one stage with `deterministic=True` ran every later torch op under deterministic algorithms, and one that
    trained on a GPU kept TF32 matmuls on."""
    kept = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        yield
    finally:
        benchmark, matmul_tf32, cudnn_tf32, deterministic, warn_only = kept
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def configure(device: torch.device, deterministic: bool = False) -> None:
    """The fast settings of `device` (cuDNN autotuning, TF32), or repeatable kernels; global to torch, so callers
    outside the CLI run it within `settings_kept`."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
