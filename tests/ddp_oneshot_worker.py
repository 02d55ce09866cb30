"""Trains a one-shot supernet of the tiny test space on digits, alone or under torchrun, once per sampling
named (one launch for several), and saves the paths each rank trained and its final weights as
OUT_DIR/rank<N>_<sampling>.pt.

    torchrun --nproc_per_node 2 tests/ddp_oneshot_worker.py SPACE.yaml uniform,fair OUT_DIR
"""

import sys
from pathlib import Path

import torch

from hwnas.data import Preprocess, open_dataset, train_val
from hwnas.engine.distributed import init_distributed, shutdown
from hwnas.spaces import load_space
from hwnas.strategies.config import SupernetConfig
from hwnas.strategies.oneshot import OneShotTrainer
from hwnas.supernet import Supernet


def main(space_path: str, samplings: str, out: str) -> None:
    ctx, device = init_distributed("cpu")
    for sampling in samplings.split(","):
        train_one(space_path, sampling, out, ctx, device)
    shutdown(ctx)


def train_one(space_path: str, sampling: str, out: str, ctx, device) -> None:
    torch.manual_seed(0)
    space = load_space(space_path)
    pools = open_dataset("digits", space.input_size)
    train, val = train_val(pools.train, None, 0.1, 0)
    cfg = SupernetConfig(
        space=space_path, sampling=sampling, epochs=1, batch_size=64, progress=False, checkpoint_every=0
    )
    pre = Preprocess(space.input_size, pools.mean, pools.std, crop_padding=1, flip=True)
    trainer = OneShotTrainer(Supernet(space), cfg, train_set=train, val_set=val, preprocess=pre, device=device, ctx=ctx)
    seen = []
    original = trainer.paths

    def recording():
        paths = original()
        seen.append(paths)
        return paths

    trainer.paths = recording
    trainer.fit()
    torch.save(
        {"paths": seen, "model": trainer.model.state_dict(), "trained": trainer.trained},
        Path(out) / f"rank{ctx.rank}_{sampling}.pt",
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
