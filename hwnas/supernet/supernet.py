"""`Supernet`: a layer-wise space with every candidate of every layer, running one path at a time."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ArchError
from ..nets import ClassifierHead, build_stem, init_weights
from ..spaces import SpaceSpec
from .choice import Choice, ChoiceLayer


class Supernet(nn.Module):
    """Weight-sharing network over `space`; `supernet(x, choices)` runs the path `choices`.

    `choices` holds one entry per searchable layer: an op name or its index in that
    layer's candidate list, or a mixing choice of `ChoiceLayer` (index with a gradient-
    carrying scale, or a weight vector). Stem and head are the standalone model's own modules.

    Residual candidates start as the identity (their last BatchNorm scale is zero, as in OFA's
    supernets): paths drawn at random then agree at the start instead of each adding random
    features, which is what keeps a single-path supernet at chance on small data for hundreds of steps.
    """

    def __init__(self, space: SpaceSpec) -> None:
        super().__init__()
        self.space = space
        self.stem = build_stem(space)
        self.layers = nn.ModuleList(ChoiceLayer(layer, space.block_config) for layer in space.layers)
        self.head = ClassifierHead(space)
        init_weights(self)
        for module in self.layers.modules():
            if hasattr(module, "start_as_identity"):
                module.start_as_identity()

    def path_indices(self, choices: Sequence[int | str]) -> list[int]:
        """Candidate indices of a path given as op names or indices; reject anything else."""
        if len(choices) != len(self.layers):
            raise ArchError(f"path has {len(choices)} choices, expected {len(self.layers)} (one per searchable layer)")
        indices = []
        for i, (choice, layer) in enumerate(zip(choices, self.layers, strict=True)):
            if isinstance(choice, str):
                if choice not in layer.ops:
                    raise ArchError(
                        f"choices[{i}]: {choice!r} is not a candidate here; expected one of {', '.join(layer.ops)}"
                    )
                choice = layer.ops.index(choice)
            elif not 0 <= int(choice) < len(layer.ops):
                raise ArchError(f"choices[{i}]: index {choice} is out of range 0..{len(layer.ops) - 1}")
            indices.append(int(choice))
        return indices

    def forward(self, x: torch.Tensor, choices: Sequence[int | str | Choice]) -> torch.Tensor:
        if all(isinstance(c, int | str) for c in choices):
            choices = self.path_indices(choices)
        elif len(choices) != len(self.layers):
            raise ArchError(f"path has {len(choices)} choices, expected {len(self.layers)} (one per searchable layer)")
        x = self.stem(x)
        for layer, choice in zip(self.layers, choices, strict=True):
            x = layer(x, choice)
        return self.head(x)


class FixedPath(nn.Module):
    """A supernet that always runs the same choices (a path, or fixed mixing weights), so it can be
    evaluated like a plain model while sharing the supernet's weights."""

    def __init__(self, supernet: Supernet, choices: Sequence[int | str | Choice]) -> None:
        super().__init__()
        self.supernet = supernet
        self.choices = supernet.path_indices(choices) if all(isinstance(c, int | str) for c in choices) else choices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.choices)
