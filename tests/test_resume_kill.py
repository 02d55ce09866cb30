"""A run killed with SIGKILL at any moment and resumed ends with the weights of an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import run_here, tiny_arch

ARGS = [
    "--classes",
    "3",
    "--input",
    "1x8x8",
    "--epochs",
    "8",
    "--checkpoint-every",
    "4",
    "--no-progress",
    "--batch-size",
    "32",
    "--ema",
    "0.5",
    "--cutout",
    "--cutout-length",
    "3",
    "--threads",
    "1",
]


def hwnas(*args: str, env: dict) -> list[str]:
    return [sys.executable, "-m", "hwnas", "train", *args]


def kill_after_a_checkpoint(cmd: list[str], run, env: dict, rng: random.Random) -> None:
    index = run / "checkpoints" / "index.json"

    def newest() -> str | None:
        try:
            return json.loads(index.read_text())["checkpoints"][-1]["file"]
        except (OSError, ValueError, KeyError, IndexError):
            return None

    seen = newest()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if newest() != seen or proc.poll() is not None:
            break
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"


@pytest.mark.slow
def test_sigkill_and_resume_match_an_uninterrupted_run(tmp_path, monkeypatch):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HWNAS_CACHE_DIR": str(tmp_path / "cache")}
    arch = tiny_arch(tmp_path)
    run_here(["train", arch, *ARGS, "--run-dir", str(tmp_path / "ref")], tmp_path / "cache", monkeypatch)

    run = tmp_path / "run"
    rng = random.Random(0)
    kill_after_a_checkpoint(hwnas(arch, *ARGS, "--run-dir", str(run), env=env), run, env, rng)
    kill_after_a_checkpoint(hwnas("--resume", str(run), env=env), run, env, rng)
    done = subprocess.run(hwnas("--resume", str(run), env=env), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr

    ref = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    got = torch.load(run / "model.pt", weights_only=True)
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in last if r["kind"] == "epoch"] == list(range(1, 9))
