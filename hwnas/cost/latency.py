"""Latency of a module measured with `torch.utils.benchmark`: warm-up, pinned threads, median."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils import benchmark


@dataclass(frozen=True)
class Latency:
    median_ms: float
    iqr_ms: float
    runs: int
    batch: int
    threads: int
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str = "cpu",
    batch: int = 1,
    threads: int = 1,
    warmup: int = 5,
    min_run_time: float = 1.0,
) -> Latency:
    """Median forward time of `model` in eval mode on a `batch` of `input_shape` inputs."""
    model = model.to(device).eval()
    x = torch.randn(batch, *input_shape, device=device)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads)
            measured = timer.blocked_autorange(min_run_time=min_run_time)
    finally:
        torch.set_num_threads(previous)
    runs = sum(1 for _ in measured.raw_times) * measured.number_per_run
    return Latency(measured.median * 1e3, measured.iqr * 1e3, runs, batch, threads, device)
