"""timm's backbone conventions shared by the networks: `feature_info` and the intermediate feature maps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import HwnasError


def stage_ends(steps: Iterable[tuple[str, int, int]], reduction: int = 1) -> list[dict[str, Any]]:
    """timm's `feature_info` of a chain of modules given as (dotted name, output channels, stride):
    for each reduction the chain reaches, the last module working at it."""
    info: list[dict[str, Any]] = []
    for name, channels, stride in steps:
        reduction *= stride
        entry = {"num_chs": channels, "reduction": reduction, "module": name}
        if info and info[-1]["reduction"] == reduction:
            info[-1] = entry
        else:
            info.append(entry)
    return info


def feature_indices(indices: int | Sequence[int] | None, count: int) -> list[int]:
    """The `feature_info` positions `indices` selects: all (None), the last n (an int), or these (negatives count
    from the end), as timm's `forward_intermediates` reads them."""
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise HwnasError(f"indices: got {indices}, expected the number of last stages, 1 to {count}")
        return list(range(count - indices, count))
    picked = []
    for i in indices:
        if not -count <= i < count:
            raise HwnasError(f"indices: got {i}, expected a feature_info position from {-count} to {count - 1}")
        picked.append(i % count)
    return picked


def stage_outputs(
    model: nn.Module, x: torch.Tensor, indices: int | Sequence[int] | None, intermediates_only: bool
) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
    """Run `model.forward_features(x)` and catch the outputs of the `feature_info` modules `indices` selects."""
    names = [model.feature_info[i]["module"] for i in feature_indices(indices, len(model.feature_info))]
    caught: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(lambda _m, _i, out, name=name: caught.__setitem__(name, out))
        for name in dict.fromkeys(names)
    ]
    try:
        final = model.forward_features(x)
    finally:
        for hook in hooks:
            hook.remove()
    maps = [caught[name] for name in names]
    return maps if intermediates_only else (final, maps)


class Backbone:
    """timm's feature-extraction entry, shared by the networks that define `feature_info` and
    `forward_features`."""

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | Sequence[int] | None = None, intermediates_only: bool = False
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """(`forward_features(x)`, the maps of the `feature_info` entries `indices` picks: all, the last n, or
        those positions), or the maps alone with `intermediates_only`, as timm's `forward_intermediates`."""
        return stage_outputs(self, x, indices, intermediates_only)  # type: ignore[arg-type]
