"""Latency of a module measured with `torch.utils.benchmark`: warm-up, pinned threads, median.

Devices: `cpu`, `cuda[:N]` (the benchmark Timer synchronises), and `onnxruntime` (the module
is exported to ONNX and timed in an ONNX Runtime CPU session with the same thread count).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils import benchmark

from ..errors import HwnasError
from ..export import quiet_onnx_export

DEVICES = "cpu, cuda, cuda:N, onnxruntime"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Latency:
    median_ms: float
    iqr_ms: float
    mean_ms: float
    std_ms: float
    runs: int
    batch: int
    threads: int
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def check_device(device: str) -> None:
    """Raise one HwnasError line if `device` cannot time anything here."""
    if device == "onnxruntime" or device == "cpu":
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HwnasError(f"latency device {device}: no CUDA GPU on this machine; expected one of {DEVICES}")
        return
    raise HwnasError(f"latency device {device!r}: expected one of {DEVICES}")


def device_name(device: str) -> str:
    """What the measurements were taken on, for table metadata and cache keys."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    if device == "onnxruntime":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider on {cpu}"
    return cpu


def _onnx_runner(model: nn.Module, x: torch.Tensor, threads: int) -> Callable[[], object]:
    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        with quiet_onnx_export():
            # the TorchScript-based exporter: ~100x faster per module than dynamo, which matters
            # when a table exports every candidate of every layer
            torch.onnx.export(model, (x,), path, dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str = "cpu",
    batch: int = 1,
    threads: int = 1,
    dtype: str = "float32",
    warmup: int = 5,
    min_run_time: float = 1.0,
) -> Latency:
    """Median forward time of `model` in eval mode on a `batch` of `input_shape` inputs."""
    check_device(device)
    if dtype not in DTYPES:
        raise HwnasError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    torch_device = "cpu" if device == "onnxruntime" else device
    model = model.to(torch_device, DTYPES[dtype]).eval()
    x = torch.randn(batch, *input_shape, device=torch_device, dtype=DTYPES[dtype])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            run = _onnx_runner(model, x, threads) if device == "onnxruntime" else (lambda: model(x))
            for _ in range(warmup):
                run()
            timer = benchmark.Timer(stmt="run()", globals={"run": run}, num_threads=threads)
            measured = timer.blocked_autorange(min_run_time=min_run_time)
    finally:
        torch.set_num_threads(previous)
    times = list(measured.times)
    std = statistics.stdev(times) if len(times) > 1 else 0.0
    runs = len(times) * measured.number_per_run
    return Latency(
        measured.median * 1e3, measured.iqr * 1e3, measured.mean * 1e3, std * 1e3, runs, batch, threads, device
    )
