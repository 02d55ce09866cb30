"""Export a built architecture to ONNX or TorchScript and check the file against PyTorch."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .arch import Architecture
from .errors import HwnasError
from .model import build_model, load_weights


@contextlib.contextmanager
def quiet_onnx_export():
    """Silence torch.onnx's progress prints, warnings and registration log lines."""
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        onnx_log.setLevel(level)


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with quiet_onnx_export():
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=True,
            external_data=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def _export_torchscript(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    """Script the model; a model whose Python control flow TorchScript cannot compile (cell networks, which
    index op lists by node) is traced instead, which is exact in eval mode where the flow is fixed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compiled = torch.jit.script(model)
        except (RuntimeError, torch.jit.frontend.NotSupportedError):
            compiled = torch.jit.trace(model, (x,))
        compiled.save(str(path))


def _run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path)).eval()(x)


def export(
    arch: Architecture,
    output: str | os.PathLike[str],
    *,
    fmt: str = "onnx",
    weights: str | os.PathLike[str] | None = None,
    verify: bool = True,
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Write `arch` (with `weights`, else its initial weights) to `output`; only a checked file lands.

    With `verify`, the exported file is run (ONNX Runtime or `torch.jit.load`) on a batch
    of 2 random inputs and must match PyTorch within `atol`, or nothing is written.
    """
    if fmt not in ("onnx", "torchscript"):
        raise HwnasError(f"export format {fmt!r} is not supported; expected onnx or torchscript")
    output = Path(output)
    model = build_model(arch).eval()
    if weights is not None:
        load_weights(model, weights)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *arch.spec.input_size, generator=generator)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        if fmt == "onnx":
            _export_onnx(model, x[:1], tmp)
        else:
            _export_torchscript(model, x[:1], tmp)
        report: dict[str, Any] = {"output": str(output), "format": fmt, "bytes": tmp.stat().st_size}
        if verify:
            with torch.inference_mode():
                expected = model(x)
                got = _run_onnx(tmp, x) if fmt == "onnx" else _run_torchscript(tmp, x)
            diff = float((expected - got).abs().max())
            report["max_abs_diff"] = diff
            if not diff <= atol:
                raise HwnasError(
                    f"export {output}: outputs differ from PyTorch by {diff:.3g}, expected at most {atol:g}"
                )
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    checked = f", max |diff| vs PyTorch {report['max_abs_diff']:.2e}" if verify else ""
    report["summary"] = f"wrote {output} ({fmt}, {report['bytes'] / 1e6:.1f} MB{checked})"
    return report
