"""DistributedDataParallel under torchrun with gloo on the CPU: 2 processes equal 1 on the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny_arch

ROOT = Path(__file__).parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def env(tmp_path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HWNAS_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    worker = str(ROOT / "tests" / "ddp_worker.py")
    subprocess.run([sys.executable, worker, str(tmp_path / "one.pt")], env=env(tmp_path), check=True, cwd=ROOT)
    two_ranks = subprocess.run(
        [*TORCHRUN, worker, str(tmp_path / "two.pt")], env=env(tmp_path), cwd=ROOT, capture_output=True, text=True
    )
    assert two_ranks.returncode == 0, two_ranks.stderr[-3000:]
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    assert (one["world"], two["world"]) == (1, 2)
    for key, value in one["model"].items():
        assert torch.allclose(value, two["model"][key], atol=1e-5), key
    for a, b in zip(one["history"], two["history"], strict=True):
        assert a["val_top1"] == pytest.approx(b["val_top1"]) and a["train_loss"] == pytest.approx(b["train_loss"], 1e-4)


@pytest.mark.slow
def test_hwnas_train_under_torchrun(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [
            *TORCHRUN,
            "-m",
            "hwnas",
            "train",
            tiny_arch(tmp_path),
            "--input",
            "1x8x8",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--no-progress",
            "--run-dir",
            str(run),
        ],
        env=env(tmp_path),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]  # one writer
    assert json.loads(result.stdout)["run_dir"] == str(run)  # rank 0 alone reports
    assert (run / "model.pt").is_file() and (run / "checkpoints" / "epoch_002.pt").is_file()
