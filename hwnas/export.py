"""Export a built architecture (ONNX, a `torch.export` program, or legacy TorchScript) and check the file against
PyTorch."""

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


def _export_program(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    """`torch.export.export` with a dynamic batch dimension, saved with `torch.export.save` (a .pt2 archive)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()  # through a buffer: torch.export.save warns about any file name not ending in .pt2
    torch.export.save(program, buffer)
    path.write_bytes(buffer.getvalue())


def _run_program(path: Path, x: torch.Tensor) -> torch.Tensor:
    return torch.export.load(io.BytesIO(path.read_bytes())).module()(x)


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


EXPORTERS = {
    "onnx": (_export_onnx, _run_onnx),
    "export": (_export_program, _run_program),
    "torchscript": (_export_torchscript, _run_torchscript),
}
FORMAT_NOTES = {"export": "torch.export program", "torchscript": "torchscript, legacy; prefer --format export"}


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

    `fmt`: onnx, export (a `torch.export` program, loaded back with `torch.export.load`) or torchscript
    (legacy). With `verify`, the exported file is run (ONNX Runtime, `torch.export.load` or `torch.jit.load`)
    on a batch of 2 random inputs and must match PyTorch within `atol`, or nothing is written.
    """
    if fmt not in EXPORTERS:
        raise HwnasError(f"export format {fmt!r} is not supported; expected onnx, export or torchscript (legacy)")
    output = Path(output)
    model = build_model(arch).eval()
    if weights is not None:
        load_weights(model, weights)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *arch.spec.input_size, generator=generator)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    write, run = EXPORTERS[fmt]
    try:
        write(model, x if fmt == "export" else x[:1], tmp)  # torch.export would fix an example batch of 1
        report: dict[str, Any] = {"output": str(output), "format": fmt, "bytes": tmp.stat().st_size}
        if verify:
            with torch.inference_mode():
                expected = model(x)
                got = run(tmp, x)
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
    note = FORMAT_NOTES.get(fmt, fmt)
    report["summary"] = f"wrote {output} ({note}, {report['bytes'] / 1e6:.1f} MB{checked})"
    return report
