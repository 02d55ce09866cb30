"""`EpochLoader`: batches of an ImageSet in a seeded order, sharded over DDP ranks, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from .imageset import Batch, ImageSet, TensorSource


def _as_is(batch: Batch) -> Batch:
    return batch


class EpochLoader:
    """Training order: `DistributedSampler` (shuffled by seed and epoch, each rank its share, last partial
    global batch dropped). Evaluation order: rank r reads samples r, r + world, ... in order, none twice.
    `epoch(e, start=k)` skips the first k batches without reading them (resume inside an epoch).
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
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.train = train
        self.rank, self.world = rank, world
        self.workers = 0 if isinstance(dataset.source, TensorSource) else workers
        self.sampler = (
            DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
            if train
            else None
        )

    def __len__(self) -> int:
        if self.train:
            return len(self.sampler) // self.batch_size
        return -(-len(range(self.rank, len(self.dataset), self.world)) // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        if self.train:
            self.sampler.set_epoch(epoch)
            batches = list(BatchSampler(self.sampler, self.batch_size, drop_last=True))
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
