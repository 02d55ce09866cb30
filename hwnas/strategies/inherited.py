"""A pick of a trained one-shot supernet shipped as a network (OFA's promise: one supernet, many targets, no
retraining): its weights taken out of the supernet, BatchNorm re-estimated on the training split, measured on
the data's held-out test pool, and written as the run's `model.pt`, which `eval`, `export` and `predict` take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data import EpochLoader
from ..engine.trainer import evaluate_model
from ..model import save_weights
from ..pipeline import RunData
from ..supernet import Supernet
from .config import SupernetSearchOptions
from .evaluate import path_network

RECALIBRATION_BATCHES = 200  # at most: the BatchNorm statistics of the whole training split, on small data


def ship_inherited(
    supernet: Supernet,
    choices: list[str],
    data: RunData,
    cfg: SupernetSearchOptions,
    device: torch.device,
    run_dir: Path,
) -> dict[str, Any]:
    """Write `run_dir/model.pt`, the path `choices` with the supernet's weights; return what result.json says of
    it: the file, the batches BatchNorm was re-estimated on, and top-1/top-5 on the held-out test pool (no
    choice of the search saw it; absent when the dataset has no test pool)."""
    loader = EpochLoader(data.train, cfg.batch_size, train=True, seed=cfg.seed + 3)
    batches = min(len(loader), RECALIBRATION_BATCHES)
    model = path_network(supernet, choices, loader, data.preprocess, device, batches)
    shipped: dict[str, Any] = {"weights": "model.pt", "inherited": True, "recalibration_batches": batches}
    if data.held_out is not None:
        test = evaluate_model(model, EpochLoader(data.held_out, cfg.batch_size, train=False), data.preprocess, device)
        shipped.update(test_top1=test["val_top1"], test_top5=test["val_top5"], test_images=len(data.held_out))
    save_weights(model.state_dict(), run_dir / "model.pt")
    return shipped
