"""The weights of a trained one-shot supernet (`--supernet RUN_DIR`), checked against the space searched."""

from __future__ import annotations

from pathlib import Path

from ..errors import HwnasError
from ..model import read_weights_file
from ..spaces import SpaceSpec


def read_supernet(run_dir: str) -> dict:
    """The checkpoint a finished `hwnas supernet train` run wrote (supernet.pt), read as data only."""
    weights = Path(run_dir) / "supernet.pt"
    if not weights.is_file():
        raise HwnasError(f"--supernet {run_dir}: no supernet.pt (a finished `hwnas supernet train` run)")
    state = read_weights_file(weights)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise HwnasError(f"--supernet {run_dir}: supernet.pt holds no supernet weights (written by another program?)")
    return state


def check_supernet(state: dict, space: SpaceSpec, run_dir: str, space_name: str, data: str) -> None:
    """Refuse a supernet trained on another space, input size or number of classes than `space`."""
    if state.get("space_fingerprint") != space.fingerprint():
        raise HwnasError(
            f"--supernet {run_dir}: it was trained on another space, input size or number of "
            f"classes than {space_name} with --data {data}"
        )
