"""Optimizers and per-step learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, exempt_bn_and_bias: bool) -> list[dict]:
    """One group, or two when BatchNorm parameters and biases are exempt from weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not exempt_bn_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    exempt = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) for p in m.parameters()}
    exempt |= {id(p) for name, p in model.named_parameters() if name.endswith(".bias")}
    return [
        {"params": [p for p in params if id(p) not in exempt], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in exempt], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay_bn_bias)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, eps=1e-3)


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of `cfg.lr` at optimizer step `step` (0-based): warm-up, then the schedule.

    Warm-up rises linearly to 1 over `warmup_epochs` ("gradient rising"); cosine then decays
    to `lr_min` at the last step; step and exponential decay by `gamma` per `step_epochs`
    or per epoch, counted from the end of warm-up.
    """
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    t = step - warmup
    epoch = t / steps_per_epoch
    if cfg.schedule == "cosine":
        span = max(1, total - warmup)
        floor = cfg.lr_min / cfg.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, span) / span))
    if cfg.schedule == "step":
        return cfg.gamma ** math.floor(epoch / cfg.step_epochs)
    if cfg.schedule == "exponential":
        return cfg.gamma ** math.floor(epoch)
    return 1.0


def build_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch))
