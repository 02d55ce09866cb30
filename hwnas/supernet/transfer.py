"""Copy a path's weights out of a supernet into the standalone model (for fine-tuning)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from ..arch import Architecture, resolve_arch
from ..errors import ArchError
from ..model import build_model
from .supernet import Supernet


def path_state_dict(supernet: Supernet, choices: Sequence[int | str]) -> dict[str, torch.Tensor]:
    """The supernet's weights for one path, keyed as in `build_model`'s state dict."""
    indices = supernet.path_indices(choices)
    state: dict[str, torch.Tensor] = {}
    for key, value in supernet.state_dict().items():
        if key.startswith("layers."):
            _, layer, _, candidate, rest = key.split(".", 4)
            if int(candidate) != indices[int(layer)]:
                continue
            key = f"layers.{layer}.{rest}"
        state[key] = value.clone()
    return state


def extract_model(
    supernet: Supernet, choices: Sequence[int | str] | Architecture | str | os.PathLike[str]
) -> nn.Module:
    """A standalone model of the path `choices` (op names or candidate indices, one per layer; or an
    architecture of the supernet's space: an `Architecture`, a zoo name or a file), carrying the supernet's
    weights for it."""
    if isinstance(choices, Architecture | str | os.PathLike):
        choices = architecture_path(supernet, resolve_arch(choices))
    indices = supernet.path_indices(choices)
    arch = Architecture.from_space(
        supernet.space, [layer.ops[i] for layer, i in zip(supernet.layers, indices, strict=True)]
    )
    model = build_model(arch)
    model.load_state_dict(path_state_dict(supernet, indices))
    return model


def architecture_path(supernet: Supernet, arch: Architecture) -> list[str]:
    """The choices of `arch`, refused unless it is a path of the supernet (the same space, knobs included)."""
    space = supernet.space
    if arch.genotype is None and arch.spec.fingerprint() == space.fingerprint():
        return list(arch.choices)
    theirs, ours = arch.spec.knobs, space.knobs
    differ = next((k for k in ours if theirs.get(k) != ours[k]), None) if arch.spec.name == space.name else None
    detail = f" (its {differ} is {theirs.get(differ)!r}, the supernet's {ours[differ]!r})" if differ else ""
    raise ArchError(
        f"architecture of space {arch.spec.name}{detail} is not a path of the supernet over space {space.name}; "
        "expected an architecture of the supernet's space at its knobs (input size, classes, widths)"
    )
