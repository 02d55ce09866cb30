"""Profile an architecture: its units (stem, searchable layers, head), params, MACs, latency."""

from __future__ import annotations

import os

from torch import nn

from ..arch import Architecture, resolve_arch
from ..model import build_model
from ..nets import CellNet
from .counting import ModelProfile, count


def network_units(model: nn.Module, arch: Architecture) -> list[tuple[str, str, nn.Module]]:
    spec = arch.spec
    if isinstance(model, CellNet):
        pairs = zip(spec.cells, model.cells, strict=True)
        cells = [(f"cells.{i}", shape.kind, m) for i, (shape, m) in enumerate(pairs)]
        return [("stem", spec.stem.kind, model.stem), *cells, ("head", "pool+fc", model.classifier)]
    units = [(f"stem.{i}", s.op, m) for i, (s, m) in enumerate(zip(spec.stem, model.stem, strict=True))]
    units += [(f"layers.{i}", op, m) for i, (op, m) in enumerate(zip(arch.choices, model.layers, strict=True))]
    head = f"{spec.head.op}+pool+fc" if spec.head.channels else "pool+fc"
    return [*units, ("head", head, model.head)]


def profile_arch(arch: Architecture | str | os.PathLike[str], model: nn.Module | None = None) -> ModelProfile:
    """Per-unit params and MACs of `arch` (an architecture, its file or a zoo name) at its space's input size
    (batch 1)."""
    arch = resolve_arch(arch)
    model = model if model is not None else build_model(arch)
    return count(model, arch.spec.input_size, network_units(model, arch))
