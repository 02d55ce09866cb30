"""Runs a short DARTS search (second order, partial channels) on digits with a tiny cell space, alone or under
torchrun, and saves every rank's α and derived genotype (so a test can check that all ranks agree).

    torchrun --nproc_per_node 2 tests/ddp_darts_worker.py OUT_DIR
"""

import sys
from pathlib import Path

import torch

from hwnas.data import Preprocess, open_dataset, search_split, train_val
from hwnas.engine.distributed import init_distributed, shutdown
from hwnas.spaces import load_space
from hwnas.strategies.config import DartsConfig
from hwnas.strategies.darts import DartsTrainer
from hwnas.supernet.cell_supernet import CellSupernet

TINY = {"input_size": [1, 8, 8], "init_channels": 4, "layers": 3, "nodes": 2}


def main(out: str) -> None:
    ctx, device = init_distributed("cpu")
    torch.manual_seed(0)
    space = load_space("darts", **TINY)
    pools = open_dataset("digits", space.input_size)
    train, val = train_val(pools.train, None, 0.1, 0)
    weights, arch = (half.subset(torch.arange(192)) for half in search_split(train, 0.5, 0))  # 3 steps of each
    cfg = DartsConfig(
        epochs=1,
        batch_size=64,
        sec_approx=True,
        partial_channels=2,
        arch_lr=0.01,
        progress=False,
        checkpoint_every=0,
    )
    pre = Preprocess(space.input_size, pools.mean, pools.std, crop_padding=1, flip=True)
    trainer = DartsTrainer(
        CellSupernet(space, partial=2),
        cfg,
        weight_set=weights,
        arch_set=arch,
        val_set=val,
        preprocess=pre,
        device=device,
        ctx=ctx,
    )
    trainer.fit()
    torch.save(
        {
            "alpha": {k: v.detach() for k, v in trainer.arch.state_dict().items()},
            "genotype": trainer.genotype().to_dict(),
        },
        Path(out) / f"rank{ctx.rank}.pt",
    )
    shutdown(ctx)


if __name__ == "__main__":
    main(sys.argv[1])
