"""A pick of a trained one-shot supernet shipped as a network (OFA's promise: one supernet, many targets): its
weights taken out of the supernet, BatchNorm re-estimated on the training split, fine-tuned briefly from there
(`--finetune-epochs`), measured on the data's held-out test pool, and written as `model.pt` (one per limit),
which `eval`, `export` and `predict` take. Each shipped entry says what its weights are, their measured accuracy,
and gives the command that trains the network stand-alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import EpochLoader
from ..engine.trainer import Trainer, evaluate_model
from ..model import save_weights
from ..pipeline import RunData
from ..supernet import Supernet
from .config import FINETUNE_EPOCHS, FINETUNE_MIN_STEPS, SupernetSearchOptions
from .evaluate import path_network

RECALIBRATION_BATCHES = 200  # at most: the BatchNorm statistics of the whole training split, on small data


@dataclass
class Shippable:
    """A path made into a network to ship: its weights out of the supernet, BatchNorm re-estimated, fine-tuned."""

    choices: list[str]
    model: nn.Module
    recalibration_batches: int
    finetune_epochs: int
    val_top1: float | None  # after fine-tuning, on the validation split (None: not fine-tuned)


def make_shippable(
    supernet: Supernet, choices: list[str], data: RunData, cfg: SupernetSearchOptions, device: torch.device
) -> Shippable:
    """The path `choices` with the supernet's weights, BatchNorm re-estimated on the training split, then
    fine-tuned `finetune_epochs(cfg, ...)` epochs on it (validated on the validation split, never the test pool)."""
    loader = EpochLoader(data.train, cfg.batch_size, train=True, seed=cfg.seed + 3)
    batches = min(len(loader), RECALIBRATION_BATCHES)
    model = path_network(supernet, choices, loader, data.preprocess, device, batches)
    epochs = finetune_epochs(cfg, len(data.train))
    val_top1 = None
    if epochs:
        with torch.random.fork_rng(devices=[]):  # the same weights whatever ran before (a resumed search too)
            torch.manual_seed(cfg.seed)
            trainer = Trainer(
                model, cfg.replace(epochs=epochs), train_set=data.train, val_set=data.val, preprocess=data.preprocess,
                device=device,
            )  # fmt: skip
            trainer.fit()
        val_top1 = trainer.history[-1]["val_top1"]  # its last epoch's validation: the weights shipped
        model.eval()
    return Shippable(list(choices), model, batches, epochs, val_top1)


def ship(
    network: Shippable,
    data: RunData,
    cfg: SupernetSearchOptions,
    device: torch.device,
    run_dir: Path,
    to: Sequence[str] = ("model.pt",),
) -> dict[str, Any]:
    """Write the network's weights to each file of `to` (relative to `run_dir`); return what result.json says of
    them: the first file, how they were made, and top-1/top-5 on the held-out test pool (no choice of the search
    saw it; None when the dataset has no test pool)."""
    shipped: dict[str, Any] = {
        "weights": to[0],
        "inherited": True,
        "recalibration_batches": network.recalibration_batches,
        "finetune_epochs": network.finetune_epochs,
    }
    shipped.update(test_top1=None, test_top5=None, test_images=None)
    if data.held_out is not None:
        loader = EpochLoader(data.held_out, cfg.batch_size, train=False)
        test = evaluate_model(network.model, loader, data.preprocess, device)
        shipped.update(test_top1=test["val_top1"], test_top5=test["val_top5"], test_images=len(data.held_out))
    for name in to:
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        save_weights(network.model.state_dict(), run_dir / name)
    return shipped


def finetune_epochs(cfg: SupernetSearchOptions, images: int) -> int:
    """`--finetune-epochs`, or when unset FINETUNE_EPOCHS, or as many as make FINETUNE_MIN_STEPS steps on small data
    (on fonts16, 2 epochs took the shipped weights from 25-27 points below stand-alone training to about it:
    bench/shipped_gap.py)."""
    if cfg.finetune_epochs is not None:
        return cfg.finetune_epochs
    return max(FINETUNE_EPOCHS, -(-FINETUNE_MIN_STEPS // max(1, images // cfg.batch_size)))


def inherited_note(shipped: dict[str, Any], retrain: str) -> str:
    """What the shipped weights are, their measured held-out top-1, and the command that retrains the network."""
    measured = (
        f"test top-1 {shipped['test_top1']:.2f}% on {shipped['test_images']} held-out images"
        if shipped["test_top1"] is not None
        else "not measured: the data has no held-out test pool"
    )
    tuned = shipped["finetune_epochs"]
    made = f", then fine-tuned {tuned} epoch{'s' if tuned > 1 else ''}" if tuned else ""
    return (
        f"inherited supernet weights, BatchNorm re-estimated on {shipped['recalibration_batches']} training "
        f"batches{made}; {measured}. They may stay below this network trained stand-alone; that training is: "
        f"{retrain}"
    )
