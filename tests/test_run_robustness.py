"""Broken runs ship nothing broken: diverged runs, two writers, a lost index, a full disk."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.engine.checkpoint import CheckpointStore
from hwnas.engine.config import TrainConfig
from hwnas.engine.trainer import Trainer
from hwnas.model import build_model
from hwnas.standalone import prepare
from tests.helpers import tiny_arch

FAST = ["--input", "1x8x8", "--no-flip", "--crop-padding", "0", "--no-progress", "--batch-size", "64"]


def strict_json(text: str):
    """json.loads that refuses NaN and infinity, as RFC 8259 does."""

    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def finite(value) -> bool:
    """Whether every floating-point tensor in `value` (nested dicts and lists) is finite."""
    if torch.is_tensor(value):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    return all(finite(v) for v in value) if isinstance(value, list | tuple) else True


def assert_every_file_sound(run: Path) -> int:
    """Every .pt under `run` holds only finite tensors, every .json / .jsonl line is strict JSON; the .pt count."""
    weights = sorted(run.rglob("*.pt"))
    for path in weights:
        assert finite(torch.load(path, weights_only=True)), path
    for path in [*run.rglob("*.json"), *run.rglob("*.jsonl")]:
        for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
            strict_json(line)
    return len(weights)


def hwnas(*args: str) -> list[str]:
    return [sys.executable, "-m", "hwnas", "train", *args]


def env(tmp_path: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HWNAS_CACHE_DIR": str(tmp_path / "cache")}


def test_a_diverged_run_writes_no_broken_file_and_exits_2(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--epochs", "2", "--lr", "1e30", "--max-bad-steps", "100000", "--checkpoint-every", "2"]
    assert main(["train", tiny_arch(tmp_path), *FAST, *args, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("hwnas train: error: the run diverged") and "Traceback" not in err
    assert "last good checkpoint" in last
    assert not (run / "model.pt").exists()
    assert assert_every_file_sound(run) >= 1  # the checkpoints written before it diverged, all finite


def test_a_skipped_step_leaves_batchnorm_statistics_untouched(tmp_path):
    arch = Architecture.load(tiny_arch(tmp_path))
    cfg = TrainConfig(input="1x8x8", epochs=1, flip=False, crop_padding=0, progress=False)
    data = prepare(arch, cfg)
    trainer = Trainer(
        build_model(data.arch),
        cfg,
        train_set=data.train,
        val_set=data.val,
        preprocess=data.preprocess,
        device=torch.device("cpu"),
    )
    trainer.model.train()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    images = torch.full((8, 1, 8, 8), float("inf"))
    result = trainer.train_step(images, torch.zeros(8, dtype=torch.long))
    assert result.skipped
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a skipped step changed the model's state"


def wait_for_checkpoint(run: Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((run / "checkpoints" / "index.json").read_text())["checkpoints"]:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the first writer wrote no checkpoint")


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_killed_writers_lock_is_gone(tmp_path, capsys):
    arch = tiny_arch(tmp_path)
    run = tmp_path / "run"
    first = subprocess.Popen(
        hwnas(arch, *FAST, "--epochs", "500", "--checkpoint-every", "5", "--run-dir", str(run)),
        env=env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_checkpoint(run, first)
        assert main(["train", arch, *FAST, "--epochs", "1", "--run-dir", str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"in use by another hwnas process (PID {first.pid})" in err
        assert main(["train", "--resume", str(run), "--no-progress"]) == 2
        assert f"PID {first.pid}" in capsys.readouterr().err
    finally:
        first.send_signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL, "the first writer finished before it could be killed"
    assert main(["train", "--resume", str(run), "--no-progress", "--epochs", "1"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert (run / "model.pt").is_file()


@pytest.mark.slow
def test_a_lost_index_is_rebuilt_from_the_checkpoints_that_load(tmp_path, capsys, caplog):
    run = tmp_path / "run"
    arch = tiny_arch(tmp_path)
    assert main(["train", arch, *FAST, "--epochs", "2", "--checkpoint-every", "0", "--run-dir", str(run)]) == 0
    (run / "checkpoints" / "index.json").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress", "--epochs", "3"]) == 0
    assert "rebuilt it from the 2 of 2 checkpoint file(s)" in caplog.text
    assert "from epoch_002.pt" in capsys.readouterr().err
    entries = CheckpointStore(run / "checkpoints").entries()
    assert [e["file"] for e in entries] == ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt"]


def test_rebuilding_the_index_leaves_out_damaged_files(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    for step in (10, 20, 30):
        store.save(
            {"model": {"w": torch.full((3,), float(step))}, "epoch": step // 10, "step": step},
            f"epoch_00{step // 10}.pt",
            best=step == 20,
        )
    (tmp_path / "epoch_003.pt").write_bytes(b"PK\x03\x04truncated")
    (tmp_path / "index.json").unlink()
    path, state = store.load_latest()
    assert path.name == "epoch_002.pt" and state["step"] == 20
    assert "rebuilt it from the 2 of 3" in caplog.text
    index = strict_json((tmp_path / "index.json").read_text())
    assert [e["file"] for e in index["checkpoints"]] == ["epoch_001.pt", "epoch_002.pt"] and index["best"]["step"] == 20


def limit_file_size(size: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


@pytest.mark.slow
def test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", tiny_arch(tmp_path), *FAST, "--epochs", "1", "--run-dir", str(run)]) == 0
    size = (run / "checkpoints" / "epoch_001.pt").stat().st_size
    full = subprocess.run(
        hwnas("--resume", str(run), "--no-progress", "--epochs", "2"),
        env=env(tmp_path),
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size(size // 2),
    )
    assert full.returncode == 2, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert "the disk is full or a file-size limit was hit" in last and "epoch_001.pt, is kept" in last
    assert "Traceback" not in full.stderr
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    path, state = CheckpointStore(run / "checkpoints").load_latest()
    assert path.name == "epoch_001.pt" and state["epoch"] == 1
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress", "--epochs", "2"]) == 0
    assert assert_every_file_sound(run) >= 2
    assert strict_json((run / "result.json").read_text())["final"]["epoch"] == 2


LOCK_FREE = "import fcntl, sys; fcntl.flock(open(sys.argv[1], 'a+'), fcntl.LOCK_EX | fcntl.LOCK_NB)"


def test_a_failed_run_releases_its_lock(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--epochs", "1", "--lr", "1e30", "--max-bad-steps", "100000", "--run-dir", str(run)]
    assert main(["train", tiny_arch(tmp_path), *FAST, *args]) == 2
    assert (run / ".lock").is_file()
    subprocess.run([sys.executable, "-c", LOCK_FREE, str(run / ".lock")], check=True)
