"""Trainable parameters and MACs (conv + linear, batch 1), counted per unit of a network."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UnitProfile:
    """One unit of a network: a stem layer, a searchable layer, or the head."""

    name: str
    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelProfile:
    units: tuple[UnitProfile, ...]
    params: int
    macs: int

    def to_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "layers": [asdict(u) for u in self.units]}


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one conv or linear call, per sample."""
    per_sample = output[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def trainable_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count(model: nn.Module, input_shape: tuple[int, ...], units: list[tuple[str, str, nn.Module]]) -> ModelProfile:
    """Run one image through `model` in eval mode and attribute conv/linear MACs and params to `units`.

    `units` lists (name, op, module) for the parts to report; they cover the deployed classifier
    (training-only parts such as an auxiliary head are left out of the units and of the total).
    """
    unit_of: dict[nn.Module, int] = {}
    for i, (_, _, unit) in enumerate(units):
        for sub in unit.modules():
            unit_of.setdefault(sub, i)
    macs = [0] * len(units)
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = [((), ())] * len(units)

    def on_leaf(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        macs[unit_of[module]] += layer_macs(module, output)

    def on_unit(i: int):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            last = output[-1] if isinstance(output, tuple) else output  # a stem may return two states
            shapes[i] = (tuple(args[-1].shape[1:]), tuple(last.shape[1:]))

        return hook

    handles = [m.register_forward_hook(on_leaf) for m in unit_of if isinstance(m, nn.Conv2d | nn.Linear)]
    handles += [unit.register_forward_hook(on_unit(i)) for i, (_, _, unit) in enumerate(units)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    rows = tuple(
        UnitProfile(name, op, *shapes[i], trainable_params(unit), macs[i]) for i, (name, op, unit) in enumerate(units)
    )
    deployed = {id(p): p for _, _, unit in units for p in unit.parameters() if p.requires_grad}
    return ModelProfile(rows, sum(p.numel() for p in deployed.values()), sum(macs))
