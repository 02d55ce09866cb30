"""Small shared helpers for the tests."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from hwnas.spaces import SpaceSpec


def random_choices(space: SpaceSpec, rng: random.Random) -> list[str]:
    return [rng.choice(layer.candidates) for layer in space.layers]


FAST = {"flip": False, "crop_padding": 0, "progress": False, "checkpoint_every": 0}  # no augmentation, no step saves

TINY_SPACE = """
name: tiny
knobs: {input_size: [1, 8, 8], num_classes: 10, dropout: 0.2}
stem: [{op: conv_k3, channels: 8, stride: 1}]
candidates: [ir_k3_e3, ir_k5_e3, skip]
stages:
  - {channels: 16, layers: 2, stride: 2}
  - {channels: 16, layers: 1, stride: 1}
head: {op: conv_k1, channels: 32}
"""


def tiny_arch(directory, choices=("ir_k3_e3", "skip", "ir_k5_e3")) -> str:
    """A three-layer architecture file (and its space) for fast training tests; returns its path."""
    (directory / "tiny.yaml").write_text(TINY_SPACE)
    path = directory / "tiny_arch.json"
    path.write_text(json.dumps({"format": "hwnas.arch/1", "space": "tiny.yaml", "choices": list(choices)}))
    return str(path)


def two_rank_results(worker: str, *args: str, out, suffix: str = "") -> list[dict]:
    """Run tests/<worker> under torchrun with 2 gloo processes; load each rank's rank<N><suffix>.pt from `out`."""
    root = Path(__file__).parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HWNAS_CACHE_DIR": str(Path(out) / "cache")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(root / "tests" / worker),
            *args,
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return rank_results(out, suffix)


def rank_results(out, suffix: str = "") -> list[dict]:
    """Each rank's rank<N><suffix>.pt in `out`, as a torchrun test worker saved it."""
    return [torch.load(Path(out) / f"rank{r}{suffix}.pt", weights_only=True) for r in range(2)]


def kill_after_checkpoint(command: list[str], run, marker: str, env: dict) -> None:
    """Start `command` (which writes into the run directory `run`), SIGKILL it shortly after a checkpoint whose
    file name holds `marker` is indexed, and check that it was killed rather than finished."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = run / "checkpoints" / "index.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if any(marker in e["file"] for e in json.loads(index.read_text())["checkpoints"]):
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"


def last_theta(run: Path) -> list[list[float]]:
    """θ (per layer, its logits) at the last epoch of a DNAS search run, from its metrics.jsonl."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"][-1]["theta"]


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory made by `build(directory)` once per test run and shared by every pytest-xdist worker (the
    first worker to ask builds it under a file lock; the others wait and read it). Read it, never write into it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's base folder, shared by the workers
    target = root / f"shared-{name}"
    with FileLock(str(root / f"shared-{name}.lock")):
        if not (target / ".built").is_file():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("HWNAS_CACHE_DIR", str(target / "cache"))
                torch.manual_seed(0)
                build(target)
            (target / ".built").touch()
    return target


def run_here(argv: list[str], cache: Path | None, monkeypatch) -> None:
    """`hwnas ARGV` in this process (no interpreter to start), with `cache` as HWNAS_CACHE_DIR; torch's thread count
    is restored after. Give ARGV, and the subprocesses its run is compared with, `--threads 1`."""
    from hwnas.cli import main

    if cache is not None:
        monkeypatch.setenv("HWNAS_CACHE_DIR", str(cache))
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
