"""Evaluating a path of a trained supernet: BatchNorm recalibration, then validation accuracy."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ..data import EpochLoader, Preprocess


def recalibrate_bn(
    model: nn.Module, loader: EpochLoader, preprocess: Preprocess, device: torch.device, batches: int
) -> None:
    """Re-estimate BatchNorm running statistics as a plain average over `batches` training batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches == 0:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for batch in itertools.islice(loader.epoch(0), batches):
            model(preprocess(batch, device, None))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()
