"""timm's backbone conventions shared by the networks: `feature_info` and the intermediate feature maps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

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


GLOBAL_POOLS = ("avg", "")
OUTPUT_FORMATS = ("NCHW", "NHWC")


def pool_features(x: torch.Tensor, pool: str) -> torch.Tensor:
    """timm's global pooling by name: "avg" averages each map, "" leaves it as it is."""
    return x.mean((2, 3)) if pool == "avg" else x


def chosen_pool(global_pool: str | None, current: str, num_classes: int) -> str:
    """The pooling `reset_classifier(num_classes, global_pool)` leaves: `global_pool`, or `current` for None.

    "" (no pooling, as timm) leaves a feature map, which only the absent classifier (`num_classes` 0) passes on."""
    if global_pool is not None and global_pool not in GLOBAL_POOLS:
        raise HwnasError(
            f"global_pool: got {global_pool!r}, expected 'avg', '' (no pooling, with num_classes=0) "
            "or None (keep the current pooling)"
        )
    pool = current if global_pool is None else global_pool
    if pool == "" and num_classes:
        raise HwnasError(
            f"global_pool '': got num_classes={num_classes}, expected 0 (a classifier reads pooled features; "
            "without pooling forward returns the feature map)"
        )
    return pool


class Backbone:
    """timm's feature-extraction entries, shared by the networks that define `feature_info` (whose last entry
    is their last step), `steps(x)` (each step before the head, by module name, with its output) and
    `after_steps(x)` (what `forward_features` does after the last step), and can `drop_after(name, channels)`
    (keep the steps up to `name`, whose output has `channels`, and drop the rest and the head)."""

    def steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        raise NotImplementedError

    def after_steps(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def drop_after(self, name: str, channels: int) -> None:
        raise NotImplementedError

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """As timm's: (`forward_features(x)`, the maps of the `feature_info` entries `indices` picks: all, the last
        n, or those positions), or the maps alone with `intermediates_only`. `stop_early`: run no further than the
        last picked map (the first result is then that map, unless it is the last step). `output_fmt`: the maps'
        layout, "NCHW" or "NHWC". `norm` is accepted for timm's signature and changes nothing: these networks have
        no norm layer after their last stage (the head's conv is part of `forward_features`)."""
        if output_fmt not in OUTPUT_FORMATS:
            raise HwnasError(f"output_fmt: got {output_fmt!r}, expected one of {', '.join(OUTPUT_FORMATS)}")
        info = self.feature_info  # type: ignore[attr-defined]
        names = [info[i]["module"] for i in feature_indices(indices, len(info))]
        caught: dict[str, torch.Tensor] = {}
        for name, out in self.steps(x):
            if name in names:
                caught[name] = out
            if stop_early and len(caught) == len(set(names)):
                break
        maps = [caught[name] if output_fmt == "NCHW" else caught[name].permute(0, 2, 3, 1) for name in names]
        if intermediates_only:
            return maps
        return (self.after_steps(out) if name == info[-1]["module"] else out), maps

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """As timm's: drop every step after the last `feature_info` entry `indices` picks, and with `prune_head`
        the head too (`forward` then returns that entry's pooled map); returns the picked positions. `prune_norm`
        is accepted for timm's signature (there is no final norm to drop)."""
        info = self.feature_info  # type: ignore[attr-defined]
        picked = feature_indices(indices, len(info))
        last = max(picked)
        if not prune_head and last < len(info) - 1:
            raise HwnasError(
                f"prune_head=False: the head reads the last stage's output, which indices={indices!r} prunes; "
                "expected prune_head=True, or indices that keep the last stage"
            )
        if prune_head:
            self.drop_after(info[last]["module"], info[last]["num_chs"])
            self.feature_info = info[: last + 1]
        return picked
