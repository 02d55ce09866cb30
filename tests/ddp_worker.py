"""Trains a small BatchNorm-free net on digits with the Trainer, alone or under torchrun; saves the result.

python tests/ddp_worker.py OUT.pt            # one process, global batch 64
torchrun --nproc_per_node 2 tests/ddp_worker.py OUT.pt   # two processes, 32 each
"""

import sys

import torch
from torch import nn

from hwnas.data import Preprocess, open_dataset, train_val
from hwnas.engine.config import TrainConfig
from hwnas.engine.distributed import init_distributed, shutdown
from hwnas.engine.trainer import Trainer


def main(out: str) -> None:
    ctx, device = init_distributed("cpu")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10)
    )
    pools = open_dataset("digits", (1, 8, 8))
    train, val = train_val(pools.train, None, 0.1, seed=0)
    cfg = TrainConfig(
        epochs=2,
        batch_size=64,
        lr=0.1,
        progress=False,
        checkpoint_every=0,
        cutout=True,
        cutout_length=3,
        crop_padding=2,
    )
    preprocess = Preprocess((1, 8, 8), pools.mean, pools.std, cfg.crop_padding, cfg.flip, cfg.cutout_length)
    trainer = Trainer(model, cfg, train_set=train, val_set=val, preprocess=preprocess, device=device, ctx=ctx)
    trainer.fit()
    if ctx.main:
        torch.save({"model": model.state_dict(), "history": trainer.history, "world": ctx.world}, out)
    shutdown(ctx)


if __name__ == "__main__":
    main(sys.argv[1])
