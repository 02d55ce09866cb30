"""Whether a soft step's kept activations fit in the memory free now; `--recompute`'s default.

A soft DNAS or DARTS step keeps every candidate's activations for its backward pass, in proportion to the
batch. One forward of two images, counting the distinct storages autograd saves (the parameters aside),
prices them per image; when the batch's share would take more than `FREE_SHARE` of the memory free on the
device (CUDA's free memory; on the CPU, the kernel's available memory within the process's cgroup limit),
the mixtures are recomputed in the backward pass (`hwnas.supernet.recomputation`) and a log line says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..engine.buffers import restore_buffers, snapshot_buffers

if TYPE_CHECKING:
    from ..engine.trainer import Trainer

logger = logging.getLogger(__name__)

FREE_SHARE = 0.6  # the rest is for gradients, the optimizer's state, the data and everything else
PROBE_BATCH = 2


def saved_bytes(model: nn.Module, run: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of `run()`, `model`'s parameters
    aside."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(kept.values())


def _cgroup_free() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def free_bytes(device: torch.device) -> int | None:
    """Memory free for this process on `device` now (None: unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    cgroup = _cgroup_free()
    return available if cgroup is None else min(available, cgroup)


def recompute_default(option: bool | None, trainer: Trainer, forward: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """`option` when given; else whether a batch's activations of `forward` (a soft step's forward of
    `trainer.model` in training mode) would take more than FREE_SHARE of the free memory on the trainer's
    device. The probe leaves the model's buffers and the random state as they were."""
    if option is not None:
        return option
    device = trainer.device
    free = free_bytes(device)
    if free is None:
        return False
    x = torch.zeros(PROBE_BATCH, *trainer.preprocess.shape, device=device)
    if trainer.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    batch = trainer.cfg.batch_size // trainer.ctx.world
    buffers = snapshot_buffers(trainer.model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        need = saved_bytes(trainer.model, lambda: forward(x)) * batch / PROBE_BATCH
    restore_buffers(buffers)
    if need <= FREE_SHARE * free:
        return False
    logger.info(
        f"hwnas: recompute on: a soft step at batch {batch} keeps about {need / 2**30:.1f} GiB of activations and "
        f"{free / 2**30:.1f} GiB is free on {device}; each layer's candidates run again in the backward pass "
        f"instead (the same gradients, 1.1-1.4x the time; --no-recompute keeps them)"
    )
    return True
