"""`EpochLoader`: batches of an ImageSet in a seeded order, sharded over DDP ranks, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from .imageset import Batch, ImageSet, TensorSource

PASSES_PER_EPOCH = 1_000_003  # shuffle seeds of the passes of one epoch never meet another epoch's


def _as_is(batch: Batch) -> Batch:
    return batch


class EpochLoader:
    """Training order: `DistributedSampler` (shuffled by seed and epoch, each rank its share, last partial
    global batch dropped). Evaluation order: rank r reads samples r, r + world, ... in order, none twice.
    `epoch(e, start=k)` skips the first k batches without reading them (resume inside an epoch).
    With `steps`, a training epoch is exactly that many batches, cycling through reshuffled passes
    (a small split that must keep pace with a larger one, e.g. DNAS's θ split beside the weights').
    """

    def __init__(
        self,
        dataset: ImageSet,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        workers: int = 0,
        steps: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.steps = steps
        self.batch_size = batch_size
        self.train = train
        self.rank, self.world = rank, world
        # decoded tensors are read in this process; files and callers' datasets in `workers` processes
        self.workers = 0 if isinstance(dataset.source, TensorSource) else workers
        self.sampler = (
            DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
            if train
            else None
        )

    def __len__(self) -> int:
        if self.train:
            per_pass = len(self.sampler) // self.batch_size
            return per_pass if self.steps is None or per_pass == 0 else self.steps
        return -(-len(range(self.rank, len(self.dataset), self.world)) // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        if self.train:
            batches = self._training_batches(epoch)
        else:
            order = list(range(self.rank, len(self.dataset), self.world))
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches = batches[start:]
        if not batches:
            return iter(())
        loader = DataLoader(  # its own generator: creating it must not draw from the global RNG
            self.dataset,
            batch_sampler=batches,
            collate_fn=_as_is,
            num_workers=self.workers,
            generator=torch.Generator().manual_seed(epoch),
        )
        return iter(loader)

    def _training_batches(self, epoch: int) -> list[list[int]]:
        if self.steps is None:
            self.sampler.set_epoch(epoch)
            return list(BatchSampler(self.sampler, self.batch_size, drop_last=True))
        batches: list[list[int]] = []
        for cycle in range(self.steps):  # a pass yields at least one batch, so `steps` passes always suffice
            if len(batches) >= self.steps or len(self.sampler) < self.batch_size:
                break
            self.sampler.set_epoch(epoch * PASSES_PER_EPOCH + cycle)
            batches += BatchSampler(self.sampler, self.batch_size, drop_last=True)
        return batches[: self.steps]
