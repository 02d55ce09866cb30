"""Latency of a module measured with `torch.utils.benchmark`: warm-up, pinned threads, median and fastest block.

Devices: `cpu`, `cuda[:N]` (the benchmark Timer synchronises), and `onnxruntime` (the module
is exported to ONNX and timed in an ONNX Runtime CPU session with the same thread count).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import platform
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils import benchmark

from ..arch import Architecture, resolve_arch
from ..errors import HwnasError
from ..export import quiet_onnx_export
from ..model import build_model

logger = logging.getLogger(__name__)

DEVICES = "cpu, cuda, cuda:N, onnxruntime"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Latency:
    median_ms: float
    min_ms: float  # the fastest timed block: the estimate cost tables price with
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


def onnx_runner(model: nn.Module, x: torch.Tensor, threads: int) -> Callable[[], object]:
    """A call of `model` on `x` in an ONNX Runtime CPU session of `threads` intra-op threads."""
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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt(3) parameters
KEPT_BYTES = 32 * 1024 * 1024  # glibc's largest mmap threshold on 64-bit systems


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse (buffers up to 32 MiB) instead of returning it to the OS.

    By default glibc maps each large buffer afresh and unmaps it when freed, so a layer's time on CPU includes
    page faults whose number depends on what ran before it: a 16x112x112 FBNet layer of expansion 6 measured
    11.7 ms alone, 21.1 ms after the stem, and 5.4-7.3 ms with memory kept, so sums of entries could not
    predict whole networks. jemalloc and tcmalloc keep memory this way, and PyTorch's CPU performance guide
    recommends them for serving. Set once for the process; False where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        kept = libc.mallopt(M_MMAP_THRESHOLD, KEPT_BYTES) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    if kept:
        logger.debug("hwnas: glibc malloc keeps freed memory while this process times networks")
    return kept


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise HwnasError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")


def module_runner(
    model: nn.Module, input_shape: tuple[int, ...], *, device: str, batch: int, threads: int, dtype: str
) -> Callable[[], object]:
    """A call of `model` in eval mode on a fixed batch of `input_shape` inputs on `device` (run it under
    `torch.inference_mode` and `pinned_threads` unless the device is onnxruntime)."""
    keep_freed_memory()
    torch_device = "cpu" if device == "onnxruntime" else device
    model = model.to(torch_device, DTYPES[dtype]).eval()
    x = torch.randn(batch, *input_shape, device=torch_device, dtype=DTYPES[dtype])
    if device == "onnxruntime":
        with torch.inference_mode():
            return onnx_runner(model, x, threads)
    return lambda: model(x)


def device_sync(device: str) -> Callable[[], None]:
    """What waits for `device` to finish its queued work (nothing on a CPU)."""
    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(torch.device(device))
    return lambda: None


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to `threads` inside, restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_latency(
    model: nn.Module | Architecture | str | os.PathLike[str],
    input_shape: tuple[int, ...] | None = None,
    *,
    device: str = "cpu",
    batch: int = 1,
    threads: int = 1,
    dtype: str = "float32",
    warmup: int = 5,
    min_run_time: float = 1.0,
) -> Latency:
    """Forward time of `model` in eval mode on a `batch` of `input_shape` inputs: median and fastest of
    `torch.utils.benchmark` blocks after `warmup` calls. `model`: an `nn.Module`, or an architecture (an
    `Architecture`, a zoo name or an architecture file) built with its initial weights, whose input size
    `input_shape` defaults to."""
    if not isinstance(model, nn.Module):
        arch = resolve_arch(model)
        model, input_shape = build_model(arch), input_shape or arch.spec.input_size
    if input_shape is None:
        raise HwnasError("measure_latency: give input_shape (C, H, W) with an nn.Module, e.g. (3, 224, 224)")
    check_device(device)
    check_dtype(dtype)
    run = module_runner(model, input_shape, device=device, batch=batch, threads=threads, dtype=dtype)
    with pinned_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            run()
        timer = benchmark.Timer(stmt="run()", globals={"run": run}, num_threads=threads)
        measured = timer.blocked_autorange(min_run_time=min_run_time)
    times = list(measured.times)
    std = statistics.stdev(times) if len(times) > 1 else 0.0
    runs = len(times) * measured.number_per_run
    return Latency(
        measured.median * 1e3,
        min(times) * 1e3,
        measured.iqr * 1e3,
        measured.mean * 1e3,
        std * 1e3,
        runs,
        batch,
        threads,
        device,
    )
