"""Profile an architecture: its units (stem, searchable layers, head), params, MACs, latency."""

from __future__ import annotations

from torch import nn

from ..arch import Architecture
from ..model import LayerwiseNet, build_model
from .counting import ModelProfile, count


def network_units(model: LayerwiseNet, arch: Architecture) -> list[tuple[str, str, nn.Module]]:
    spec = arch.spec
    units = [(f"stem.{i}", s.op, m) for i, (s, m) in enumerate(zip(spec.stem, model.stem, strict=True))]
    units += [(f"layers.{i}", op, m) for i, (op, m) in enumerate(zip(arch.choices, model.layers, strict=True))]
    head = f"{spec.head.op}+pool+fc" if spec.head.channels else "pool+fc"
    return [*units, ("head", head, model.head)]


def profile_arch(arch: Architecture, model: nn.Module | None = None) -> ModelProfile:
    """Per-unit params and MACs of `arch` at its space's input size (batch 1)."""
    model = model if model is not None else build_model(arch)
    return count(model, arch.spec.input_size, network_units(model, arch))
