"""Copy a path's weights out of a supernet into the standalone model (for fine-tuning)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..arch import Architecture
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


def extract_model(supernet: Supernet, choices: Sequence[int | str]) -> nn.Module:
    """A standalone model of the path `choices`, carrying the supernet's weights for it."""
    indices = supernet.path_indices(choices)
    arch = Architecture.from_space(
        supernet.space, [layer.ops[i] for layer, i in zip(supernet.layers, indices, strict=True)]
    )
    model = build_model(arch)
    model.load_state_dict(path_state_dict(supernet, indices))
    return model
