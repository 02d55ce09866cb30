"""Evaluating what a search found: a supernet path as a network of its own with BatchNorm recalibrated, and the
found network's latency on the search's latency device."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from ..cost.latency import Latency, measure_latency
from ..data import EpochLoader, Preprocess
from ..supernet import Supernet, extract_model


def path_network(
    supernet: Supernet,
    path: list[int] | list[str],
    loader: EpochLoader,
    preprocess: Preprocess,
    device: torch.device,
    batches: int,
) -> nn.Module:
    """`path` as a network of its own with the supernet's weights, its BatchNorm statistics re-estimated on
    `batches` training batches (the supernet's running statistics mix every path). Building it draws no number
    from torch's global generator, so scoring a path leaves a training run's random stream as it was."""
    with torch.random.fork_rng(devices=[]):
        model = extract_model(supernet, path).to(device)
    recalibrate_bn(model, loader, preprocess, device, batches)
    return model


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


def latency_on_target(model: nn.Module, input_size: tuple[int, ...], cfg: Any) -> Latency:
    """The found network timed where the search prices latency (`--latency-device/-threads/-batch`)."""
    return measure_latency(
        model,
        input_size,
        device=cfg.latency_device,
        batch=cfg.latency_batch,
        threads=cfg.latency_threads,
        min_run_time=0.5,
    )
