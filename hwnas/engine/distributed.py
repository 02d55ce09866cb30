"""torchrun / DistributedDataParallel plumbing: process group, device choice, metric reduction."""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from ..errors import HwnasError

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), pick_device(device)
    ctx = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(ctx.local_rank)
        chosen = torch.device("cuda", ctx.local_rank)
    else:
        if device.startswith("cuda"):
            raise HwnasError(f"--device {device}: CUDA is not available on this machine")
        chosen = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        atexit.register(gc.collect)  # see `shutdown`: what still holds the group goes before the interpreter does
    return ctx, chosen


def pick_device(device: str) -> torch.device:
    """`auto`: the CUDA device with the most free memory, else the CPU."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
        return torch.device("cuda", max(range(len(free)), key=free.__getitem__))
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise HwnasError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise HwnasError(f"--device {device}: CUDA is not available on this machine")
    return chosen


def all_reduce_sum(values: list[float], device: torch.device, ctx: Dist) -> list[float]:
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def rank_zero(ctx: Dist, action: Callable[[], T]) -> T | None:
    """`action()` on rank 0 (None elsewhere); an HwnasError it raises is raised on every rank, so no rank
    waits forever in a collective that rank 0 will never join."""
    result, error = None, None
    if ctx.main:
        try:
            result = action()
        except HwnasError as exc:
            error = exc
    if ctx.enabled:
        box = [None if error is None else str(error)]
        dist.broadcast_object_list(box, src=0)
        if error is None and box[0] is not None:
            raise HwnasError(box[0])
    if error is not None:
        raise error
    return result


def barrier(ctx: Dist) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: Dist) -> None:
    """Leave the process group together: a rank that tears gloo down while a peer still works aborts. Objects that
    still hold the group (a finished DDP wrapper in a reference cycle) are collected first, and whatever the group's
    destruction frees is collected next, while the interpreter is whole: gloo's worker threads left for the
    interpreter's own teardown ended runs with `terminate called without an active exception` (SIGABRT); what the
    caller still holds at this point is collected at exit, before the interpreter goes (`init_distributed`)."""
    if ctx.enabled and dist.is_initialized():
        gc.collect()
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
            gc.collect()
