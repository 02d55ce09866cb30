"""Runs a short DNAS search on digits with the tiny test space, alone or under torchrun, once per mode named
(one launch for several), and saves every rank's θ and the path it sampled at each step as
OUT_DIR/rank<N>_<mode>.pt (so a test can check that all ranks agree).

    torchrun --nproc_per_node 2 tests/ddp_search_worker.py SPACE.yaml gumbel,gumbel_hard OUT_DIR
"""

import sys
from pathlib import Path

import torch

from hwnas.cost.build import build_table
from hwnas.cost.cost_model import UNITS, CostModel
from hwnas.cost.hardware_loss import HardwareLoss
from hwnas.cost.interleaved import QUICK_ROUNDS
from hwnas.data import Preprocess, open_dataset, search_split, train_val
from hwnas.engine.distributed import init_distributed, shutdown
from hwnas.spaces import load_space
from hwnas.strategies.config import DnasConfig
from hwnas.strategies.dnas import DNASTrainer
from hwnas.supernet import Supernet


def main(space_path: str, modes: str, out: str) -> None:
    ctx, device = init_distributed("cpu")
    space = load_space(space_path)
    table = build_table(space, policy=QUICK_ROUNDS, progress=False)
    for mode in modes.split(","):
        search_one(space, space_path, mode, {m: CostModel.from_table(table, space, m) for m in UNITS}, out, ctx, device)
    shutdown(ctx)


def search_one(space, space_path: str, mode: str, costs: dict, out: str, ctx, device) -> None:
    torch.manual_seed(0)
    pools = open_dataset("digits", space.input_size)
    train, val = train_val(pools.train, None, 0.1, 0)
    weights, theta = search_split(train, 0.5, 0)
    cfg = DnasConfig(
        space=space_path,
        epochs=2,
        weight_warmup_epochs=1,
        batch_size=64,
        mode=mode,
        hw_loss="add",
        hc_weight=0.1,
        arch_lr=0.1,
        progress=False,
        checkpoint_every=0,
    )
    pre = Preprocess(space.input_size, pools.mean, pools.std, crop_padding=1, flip=True)
    trainer = DNASTrainer(
        Supernet(space),
        cfg,
        weight_set=weights,
        theta_set=theta,
        val_set=val,
        preprocess=pre,
        device=device,
        costs=costs,
        hardware_loss=HardwareLoss("add", weight=0.1),
        ctx=ctx,
    )
    paths = []
    original = trainer.path

    def recording(grad: bool):
        choices = original(grad)
        paths.append([c[0] if isinstance(c, tuple) else c.detach().tolist() for c in choices])
        return choices

    trainer.path = recording
    trainer.fit()
    torch.save(
        {"theta": [t.detach() for t in trainer.theta.logits], "argmax": trainer.theta.argmax(), "paths": paths},
        Path(out) / f"rank{ctx.rank}_{mode}.pt",
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
