"""Single-path one-shot supernet training: uniform paths (SPOS), strictly fair ones (FairNAS) or the sandwich
rule with in-place distillation (BigNAS, OFA); writes supernet.pt for random, evolutionary, Pareto or
differentiable search."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import HwnasError
from ..pipeline import Outcome, Run
from ..spaces import load_layerwise_space
from ..supernet import Supernet
from .config import SupernetConfig
from .constraints import FLAGS, constraints_for, limits_of
from .oneshot import OneShotTrainer, default_epochs
from .registry import register_strategy


def train_one_shot(run: Run) -> Outcome:
    """Train a one-shot supernet of `cfg.space` with `cfg.sampling`; write supernet.pt and result.json."""
    cfg: SupernetConfig = run.cfg
    space = load_layerwise_space(cfg.space, "supernet train")
    if cfg.sampling != "uniform" and any(getattr(cfg, f"max_{m}") is not None for m in FLAGS):
        reason = "uses every candidate once per step" if cfg.sampling == "fair" else "trains the largest path"
        raise HwnasError(
            f"--sampling {cfg.sampling} {reason} and cannot honour a budget; "
            "use --sampling uniform with --max-macs/--max-params/--max-latency"
        )
    data = run.open_data(space.input_size, choosing=True)
    if cfg.epochs is None:
        cfg = run.cfg = cfg.replace(epochs=default_epochs(len(data.train), cfg.batch_size))
        run.tell(f"supernet training: {cfg.epochs} epochs ({len(data.train):,} images, batch {cfg.batch_size})")
    space = run.fit(space, data)
    table = run.cost_table(space, "latency" in limits_of(cfg), per_layer=False)
    constraints = constraints_for(space, cfg, table, run.user_latency_model())
    directory = run.open_dir(space.name)
    torch.manual_seed(cfg.seed)
    trainer = OneShotTrainer(
        Supernet(space),
        cfg,
        train_set=data.train,
        constraints=constraints,
        **run.trainer_options(data, {"config": cfg.to_dict(), "space_fingerprint": space.fingerprint()}),
    )
    run.start(trainer)
    trainer.fit()

    def summarize() -> dict[str, Any]:
        trainer.save_supernet(
            directory.path / "supernet.pt", {"space_fingerprint": space.fingerprint(), "config": cfg.to_dict()}
        )
        run.tell(
            f"supernet weights in {directory.path / 'supernet.pt'}; search it with:\n  hwnas search {cfg.space} "
            f"--strategy evolution --supernet {directory.path}"
        )
        return {"best": trainer.best, "trained_per_candidate": trainer.trained}

    return run.finish(summarize, arch_file=None)


for name, rule in (
    ("uniform", "one uniform random path a step (SPOS)"),
    ("fair", "paths that use every candidate once a step (FairNAS)"),
    ("sandwich", "the largest, the smallest and random paths, distilled in place (BigNAS, OFA)"),
):
    register_strategy(name, options=SupernetConfig, kind="supernet", trains=rule, picks="nothing (supernet.pt)")(
        train_one_shot
    )
