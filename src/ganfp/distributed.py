"""PyTorch's own distributed engine when launched by torchrun; a no-op on one process."""

from __future__ import annotations

import atexit
import contextlib
import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched_as_main() -> bool:
    """Rank 0 (or a plain run), known before the process group is joined: torchrun sets RANK first."""
    return is_main() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0")) == 0


def setup(device_name: str) -> str:
    """Join the process group when torchrun started us; returns the device name this rank uses."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device_name
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)  # before NCCL starts, so each rank talks from its own GPU
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    atexit.register(_teardown)
    return f"cuda:{local}" if use_cuda else "cpu"


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
