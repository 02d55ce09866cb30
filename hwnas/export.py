"""Export a built architecture (ONNX, a `torch.export` program, or legacy TorchScript) and check the file against
PyTorch.

An architecture that records its `pretrained_cfg` (written by `hwnas train` / `search`) exports it with the
graph: as ONNX `metadata_props`, as the `.pt2` archive's (or TorchScript file's) extra files, under the keys
`pretrained_cfg` (its JSON) and `input_format` (what the graph's input is). With `preprocess`, the graph
itself normalises: it takes images scaled to [0, 1] (`float`) or 0..255 (`uint8`) at the network's input size.
"""

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

from .arch import Architecture, resolve_arch
from .errors import HwnasError
from .io import json_text
from .model import build_model, load_weights
from .pretrained_cfg import PretrainedCfg

INPUT_FORMATS = {
    None: "normalized",  # float32 (image in [0, 1] - mean) / std, the mean and std of pretrained_cfg
    "float": "float_0_1",  # float32 images scaled to [0, 1]; the graph normalises
    "uint8": "uint8_0_255",  # uint8 images 0..255; the graph scales and normalises
}
PREPROCESS = ("float", "uint8")


class Normalizing(nn.Module):
    """Images in, logits out: `(x - mean) / std` (uint8 images divided by 255 first, as training does), then the
    network. The resizing to the input size stays outside the graph."""

    def __init__(self, model: nn.Module, cfg: PretrainedCfg, uint8: bool) -> None:
        super().__init__()
        self.model = model
        self.uint8 = uint8
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uint8:
            x = x.float() / 255
        return self.model((x - self.mean) / self.std)


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


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
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

    if metadata:
        graph = onnx.load(str(path))
        onnx.helper.set_model_props(graph, metadata)
        onnx.save(graph, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def _export_program(model: nn.Module, x: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    """`torch.export.export` with a dynamic batch dimension, saved with `torch.export.save` (a .pt2 archive;
    `metadata` as its extra files)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()  # through a buffer: torch.export.save warns about any file name not ending in .pt2
    torch.export.save(program, buffer, extra_files=metadata)
    path.write_bytes(buffer.getvalue())


def _run_program(path: Path, x: torch.Tensor) -> torch.Tensor:
    return torch.export.load(io.BytesIO(path.read_bytes())).module()(x)


def _export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    """Script the model; a model whose Python control flow TorchScript cannot compile (cell networks, which
    index op lists by node) is traced instead, which is exact in eval mode where the flow is fixed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compiled = torch.jit.script(model)
        except (RuntimeError, torch.jit.frontend.NotSupportedError):
            compiled = torch.jit.trace(model, (x,))
        compiled.save(str(path), _extra_files=metadata)


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


def check_output_path(output: Path) -> None:
    """Refuse, before any work, an output that is a folder or lies under a file (where no folder can be made)."""
    if output.is_dir():
        raise HwnasError(f"-o {output}: is a folder; expected a file path to write")
    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise HwnasError(f"-o {output}: {parent} is a file, so no folder can be made there; expected a path")
            return


def export(
    arch: Architecture | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    fmt: str = "onnx",
    weights: str | os.PathLike[str] | None = None,
    verify: bool = True,
    atol: float = 1e-4,
    preprocess: str | None = None,
) -> dict[str, Any]:
    """Write `arch` (an `Architecture`, a zoo name or an architecture file; with `weights`, else its initial
    weights) to `output`; only a checked file lands.

    `fmt`: onnx, export (a `torch.export` program, loaded back with `torch.export.load`) or torchscript
    (legacy). With `verify`, the exported file is run (ONNX Runtime, `torch.export.load` or `torch.jit.load`)
    on a batch of 2 random inputs and must match PyTorch within `atol`, or nothing is written.
    `preprocess` ("float" or "uint8"): the graph normalises by the architecture's `pretrained_cfg` and takes
    images in [0, 1] (float) or 0..255 (uint8); None: it takes normalised tensors, as the network does.
    """
    given = [weights, None if isinstance(arch, Architecture) else arch]
    arch = resolve_arch(arch)
    if fmt not in EXPORTERS:
        raise HwnasError(f"export format {fmt!r} is not supported; expected onnx, export or torchscript (legacy)")
    if preprocess is not None and preprocess not in PREPROCESS:
        raise HwnasError(f"export preprocess {preprocess!r}: expected float or uint8 (or none)")
    cfg = arch.pretrained_cfg
    if preprocess is not None and cfg is None:
        raise HwnasError(
            f"export --preprocess: the architecture (space {arch.spec.name}) records no pretrained_cfg (mean, std); "
            "expected one written by hwnas train or search (RUN_DIR/arch.json), or add a pretrained_cfg to the file"
        )
    output = Path(output)
    check_output_path(output)
    if any(g is not None and Path(g).is_file() and output.resolve() == Path(g).resolve() for g in given):
        raise HwnasError(
            f"-o {output}: is an input of the export (the weights or architecture file); expected a new file"
        )
    model = build_model(arch).eval()
    if weights is not None:
        load_weights(model, weights)
    if preprocess is not None:
        model = Normalizing(model, cfg, uint8=preprocess == "uint8").eval()
    x = example_input(arch.spec.input_size, preprocess)
    metadata = (
        {} if cfg is None else {"pretrained_cfg": json_text(cfg.to_dict()), "input_format": INPUT_FORMATS[preprocess]}
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    write, run = EXPORTERS[fmt]
    try:
        write(model, x if fmt == "export" else x[:1], tmp, metadata)  # torch.export would fix an example batch of 1
        report: dict[str, Any] = {
            "output": str(output),
            "format": fmt,
            "bytes": tmp.stat().st_size,
            "input_format": INPUT_FORMATS[preprocess],
            "pretrained_cfg": None if cfg is None else cfg.to_dict(),
        }
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
    report["summary"] = f"wrote {output} ({note}, {report['bytes'] / 1e6:.1f} MB{checked}){_takes(cfg, preprocess)}"
    return report


def example_input(input_size: tuple[int, ...], preprocess: str | None) -> torch.Tensor:
    """A seeded batch of 2 inputs of the graph's kind: normalised-like values, [0, 1) images or uint8 images."""
    generator = torch.Generator().manual_seed(0)
    if preprocess == "uint8":
        return torch.randint(0, 256, (2, *input_size), generator=generator, dtype=torch.uint8)
    if preprocess == "float":
        return torch.rand(2, *input_size, generator=generator)
    return torch.randn(2, *input_size, generator=generator)


def _takes(cfg: PretrainedCfg | None, preprocess: str | None) -> str:
    """What the written graph takes, for the summary line."""
    size = "x".join(map(str, cfg.input_size)) if cfg is not None else ""
    if preprocess == "uint8":
        return f"; it takes uint8 images 0..255 of {size} and normalises them itself"
    if preprocess == "float":
        return f"; it takes float images in [0, 1] of {size} and normalises them itself"
    if cfg is None:
        return ""
    return f"; it takes (image in [0, 1] - mean) / std of {size}, mean and std in its metadata (pretrained_cfg)"
