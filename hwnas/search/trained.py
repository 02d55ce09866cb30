"""The weights of a trained one-shot supernet (`--supernet RUN_DIR`), checked against the space searched."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import HwnasError
from ..spaces import SpaceSpec


def read_supernet(run_dir: str) -> dict:
    """The checkpoint a finished `hwnas supernet train` run wrote (supernet.pt), read as data only."""
    weights = Path(run_dir) / "supernet.pt"
    if not weights.is_file():
        raise HwnasError(f"--supernet {run_dir}: no supernet.pt (a finished `hwnas supernet train` run)")
    return torch.load(weights, map_location="cpu", weights_only=True)


def check_supernet(state: dict, space: SpaceSpec, run_dir: str, space_name: str, data: str) -> None:
    """Refuse a supernet trained on another space, input size or number of classes than `space`."""
    if state.get("space_fingerprint") != space.fingerprint():
        raise HwnasError(
            f"--supernet {run_dir}: it was trained on another space, input size or number of "
            f"classes than {space_name} with --data {data}"
        )
