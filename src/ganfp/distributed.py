"""PyTorch's own distributed engine when launched by torchrun; a no-op on one process."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

import torch
import torch.distributed as dist

from ganfp.errors import InputError


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched_as_main() -> bool:
    """Rank 0 (or a plain run), known before the process group is joined: torchrun sets RANK first."""
    return is_main() if dist.is_available() and dist.is_initialized() else _env_int("RANK", 0) == 0


def _env_int(name: str, default: int) -> int:
    """A whole number torchrun put in the environment; a hand-set one that is not fails here, naming it."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r}: not a whole number (torchrun sets it; start ganfp with torchrun, "
                         "or unset it)") from None


def launch_world_size() -> int:
    """The processes training together, known before the process group is joined: checks run before any work."""
    return world_size() if world_size() > 1 else _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's place on its machine: under torchrun, the index of its GPU."""
    return _env_int("LOCAL_RANK", 0)


def _uses_cuda(device_name: str) -> bool:
    return (device_name == "auto" or device_name.startswith("cuda")) and torch.cuda.is_available()


def process_device(device_name: str) -> str:
    """The device this process trains on: under torchrun its own GPU (cuda:LOCAL_RANK), or the CPU.

    Always the indexed GPU, also once the group is joined (a chain's later stages): a bare "cuda" would be
    whatever GPU is current, and DistributedDataParallel needs the index.
    """
    if launch_world_size() <= 1:
        return device_name
    return f"cuda:{local_rank()}" if _uses_cuda(device_name) else "cpu"


def process_device_problem(device_name: str) -> str | None:
    """Why this process has no GPU of its own for `device_name` under torchrun, or None.

    Asked before any image is decoded: torch.cuda.set_device with a LOCAL_RANK beyond the GPUs fails with an
    "invalid device ordinal" traceback, and a process given another one's GPU shares it silently.
    """
    if launch_world_size() <= 1:
        return None
    if device_name.startswith("mps"):
        return ("under torchrun ganfp trains on CUDA GPUs (one per process) or the CPU; use --device cpu, "
                "or run one process")
    if not _uses_cuda(device_name):
        return None
    local, count = local_rank(), torch.cuda.device_count()
    try:
        index = torch.device(device_name).index if device_name != "auto" else None
    except RuntimeError:
        return None  # not a device at all: device.device_problem says so
    if index is not None and index != local:
        return (f"under torchrun each process uses the GPU of its LOCAL_RANK (this one: cuda:{local}); "
                "use --device cuda or auto")
    if not 0 <= local < count:
        return (f"this process has LOCAL_RANK={local}, but the machine shows {count} CUDA "
                f"device{'s' * (count != 1)}, one per process; start at most {count} "
                f"(torchrun --nproc_per_node={count}), or use --device cpu")
    return None


def batch_share_problem(batch_size: int) -> str | None:
    """Why the processes cannot take equal shares of a `batch_size` batch, or None.

    DDP averages the processes' mean losses, which equals the batch's mean only for equal shares, and a process
    with no image in a batch would wait for the others forever.
    """
    world = launch_world_size()
    if world <= 1 or batch_size % world == 0:
        return None
    if batch_size < world:
        return (f"smaller than the {world} processes, so some would get no image of a batch; "
                f"use at least {world} (a multiple of {world})")
    return (f"not a multiple of the {world} processes, which take equal shares of each batch "
            f"(e.g. {batch_size // world * world} or {(batch_size // world + 1) * world})")


def setup(device_name: str) -> str:
    """Join the process group when torchrun started us; returns the device this process uses (its own GPU)."""
    if _env_int("WORLD_SIZE", 1) <= 1:
        return device_name
    why = process_device_problem(device_name)
    if why:
        raise InputError(f"--device {device_name}: {why}")
    device = process_device(device_name)
    if not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(local_rank())  # before NCCL starts, so each rank talks from its own GPU
        with _stdout_on_stderr():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        atexit.register(_teardown)
    return device


@contextlib.contextmanager
def _stdout_on_stderr():
    """Within it, what is written to file descriptor 1 goes to stderr. Joining a gloo group, torch 2.9's C++
    prints "[Gloo] Rank 0 is connected to 1 peer ranks" on stdout, past sys.stdout, and `train-stage --json`
    under torchrun printed it above the summary: stdout is the summary's alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _teardown() -> None:
    """Leave the group at exit: a clean shutdown, without NCCL's warning."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def local_world_size() -> int:
    """Processes on this machine: they share its RAM."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if world_size() > 1 else 1


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. it builds a shared cache) while the others wait, then they run it."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def broadcast_object(obj):
    """Rank 0's `obj` on every rank, so all ranks act on the same decision."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (batch-norm statistics) on every rank: all ranks then evaluate the model rank 0 saves."""
    if world_size() > 1:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)
