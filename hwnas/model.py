"""`build_model(arch)`: the plain `nn.Module` of an architecture, with no NAS machinery in it."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from .arch import Architecture, resolve_arch
from .errors import HwnasError
from .io import atomic_write, atomic_write_text, read_plain_bytes, sha256_file
from .nets import CellNet, LayerwiseNet


def build_model(arch: Architecture | str | os.PathLike[str]) -> nn.Module:
    """Build the network an architecture file (or zoo name, or `Architecture`) describes.

    When the architecture records how its training inputs were made, the model carries it as timm does:
    `model.pretrained_cfg`, a dict (input_size, mean, std, num_classes, label_names, crop_pct, crop_mode,
    interpolation). Without a record the attribute is absent: hwnas does not guess normalisation statistics."""
    arch = resolve_arch(arch)
    model: nn.Module
    if arch.genotype is not None:
        model = CellNet(arch.spec, arch.genotype)
    else:
        model = LayerwiseNet(arch.spec, list(arch.choices))
    if arch.pretrained_cfg is not None:
        model.pretrained_cfg = arch.pretrained_cfg.to_dict()
    return model


def save_weights(state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a state dict atomically, with its sha256 beside it (`PATH.sha256`, as `sha256sum` writes it).

    Refuses a state holding NaN or infinity: a diverged run ships nothing rather than broken weights."""
    path = Path(path)
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise HwnasError(
            f"not writing {path}: {len(bad)} tensor(s) hold NaN or infinity (first: {bad[0]}); the run diverged"
        )
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write(path, lambda f: f.write(data))
    atomic_write_text(Path(f"{path}.sha256"), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    return path


def _check_sidecar(path: Path) -> bool:
    """Refuse `path` when a `PATH.sha256` beside it records another sha256 than its bytes have, names another
    file, or is not a plain sha256sum file; True when one vouched for its bytes, False when there is none."""
    sidecar = Path(f"{path}.sha256")
    if not sidecar.exists() and not sidecar.is_symlink():
        return False
    try:
        recorded = read_plain_bytes(sidecar, "checksum file").decode("ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise HwnasError(f"weights {path}: cannot read its checksum file {sidecar} ({exc})") from None
    except HwnasError as exc:
        raise HwnasError(f"weights {path}: {exc}") from None
    if not recorded or len(recorded[0]) != 64 or any(c not in "0123456789abcdef" for c in recorded[0].lower()):
        raise HwnasError(f"weights {path}: {sidecar} is not a sha256sum line ('HEX  NAME' with 64 hex digits)")
    if len(recorded) > 1 and recorded[1].lstrip("*") != path.name:
        raise HwnasError(f"weights {path}: {sidecar} records the sha256 of {recorded[1]!r}, expected {path.name!r}")
    if sha256_file(path) != recorded[0].lower():
        raise HwnasError(
            f"weights {path}: corrupt: its sha256 differs from the one recorded in {sidecar} when it was written"
        )
    return True


def _check_archive(path: Path) -> None:
    """Refuse a weights file in PyTorch's zip format whose members fail their CRC-32: bytes changed since it was
    written (which `torch.load` would read as other weights), with or without a checksum file beside it."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise HwnasError(f"weights {path}: not a readable PyTorch archive ({exc})") from None
    if bad is not None:
        raise HwnasError(f"weights {path}: corrupt: {bad} fails its CRC check (its bytes changed since it was saved)")


def read_weights_file(path: Path) -> object:
    """What a weights file holds, read as data only (`weights_only`); one HwnasError line when it cannot be."""
    if not path.is_file():
        raise HwnasError(f"weights {path}: no such file" if not path.exists() else f"weights {path}: not a file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise HwnasError(f"weights {path}: empty file (0 bytes); expected a state dict written by torch.save")
        if not _check_sidecar(path):  # a checked sha256 covers every byte; else the archive's own CRCs
            _check_archive(path)
        with warnings.catch_warnings():  # a refusal is our one line, not torch's warning before it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except HwnasError:
        raise
    except OSError as exc:
        raise HwnasError(f"weights {path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # torch.load's errors for foreign bytes are of many types
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise HwnasError(f"weights {path}: not a PyTorch weights file written by torch.save ({first})") from None


def _state_dict(state: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in what a weights file held: the dict itself, or a checkpoint's 'model' entry."""
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not state:
        what = "an empty dict" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise HwnasError(f"weights {path}: holds {what}, not a state dict of named tensors")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)), None)
    if bad is not None:
        raise HwnasError(f"weights {path}: entry {bad!r} is not a named tensor; expected a state dict")
    return state


def load_weights(model: nn.Module, weights: str | os.PathLike[str]) -> None:
    """Load a state dict, or a checkpoint holding one under 'model', strictly into `model`.

    When `WEIGHTS.sha256` exists (save_weights writes it) the file's bytes must match it; any file
    that is not such a state dict, or does not fit `model`, is refused with one HwnasError line."""
    path = Path(weights)
    state = _state_dict(read_weights_file(path), path)
    _check_keys(model, state, path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        raise HwnasError(f"weights {weights}: do not fit this architecture ({_mismatch(exc)})") from None


def _check_keys(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a state dict whose names are not the model's, saying how many differ and the first of each."""
    expected = model.state_dict().keys()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} missing (first {missing[0]!r})"] if missing else []
        parts += [f"{len(unexpected)} unexpected (first {unexpected[0]!r})"] if unexpected else []
        raise HwnasError(f"weights {path}: do not fit this architecture: tensor names {', '.join(parts)}")


def _mismatch(exc: BaseException) -> str:
    """The first informative line of a `load_state_dict` error, shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    line = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
    return line if len(line) <= 300 else f"{line[:297]}..."
