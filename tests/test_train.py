import json
import logging

import pytest
import torch
import yaml

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.engine.checkpoint import CheckpointStore
from hwnas.engine.config import TrainConfig
from hwnas.errors import HwnasError
from hwnas.model import build_model
from hwnas.standalone import train
from tests.helpers import tiny_arch

FAST = ["--input", "1x8x8", "--no-flip", "--crop-padding", "0", "--no-progress", "--batch-size", "64"]
STEPS = 1437 // 64  # digits trains on 1,437 images (its other 360 are the test pool that validates)


def run_cli(*args: str) -> dict:
    assert main(["train", *args]) == 0


def test_train_learns_and_writes_its_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(
        tiny_arch(tmp_path), *FAST, "--epochs", "3", "--lr", "0.1", "--run-dir", str(run), "--checkpoint-every", "10"
    )
    result = json.loads(capsys.readouterr().out)
    assert result["run_dir"] == str(run) and result["best"]["val_top1"] > 60
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["epochs"] == 3 and config["optimizer"] == "sgd" and set(config) == set(TrainConfig().to_dict())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3] and {"val_top1", "val_top5", "train_loss", "lr"} <= set(epochs[0])
    assert any(r["kind"] == "train" for r in records)
    assert list((run / "tb").glob("events.out.tfevents.*"))
    model = build_model(Architecture.load(run / "arch.json"))
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    store = CheckpointStore(run / "checkpoints")
    assert [e["file"] for e in store.entries()][-1] == "epoch_003.pt" and (run / "checkpoints" / "best.pt").is_file()
    state = torch.load(run / "checkpoints" / "epoch_003.pt", weights_only=True)
    assert state["epoch"] == 3 and state["batch"] == 0 and state["step"] == 3 * STEPS
    written = json.loads((run / "result.json").read_text())
    assert written["final"]["epoch"] == 3 and written["final"]["val_top1"] == epochs[-1]["val_top1"]
    assert written["final"]["val_images"] == 360 and written["best"] == result["best"]


def test_eval_reports_the_accuracy_of_the_weights(tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(tiny_arch(tmp_path), *FAST, "--epochs", "1", "--run-dir", str(run))
    trained = json.loads(capsys.readouterr().out)
    assert (
        main(["eval", tiny_arch(tmp_path), "--weights", str(run / "model.pt"), "--run-dir", str(tmp_path / "ev")]) == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["val_top1"] == pytest.approx(trained["best"]["val_top1"])
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["images"] == 360  # digits' test pool


@pytest.mark.parametrize("extra", [[], ["--ema", "0.9"]], ids=["plain", "ema"])
def test_the_reported_accuracy_is_that_of_the_shipped_weights(tmp_path, capsys, extra):
    run = tmp_path / "run"
    run_cli(tiny_arch(tmp_path), *FAST, "--epochs", "2", "--lr", "0.1", *extra, "--run-dir", str(run))
    out = capsys.readouterr()
    final = json.loads((run / "result.json").read_text())["final"]
    assert final["epoch"] == 2 and final["weights"] == "model.pt"
    assert f"val top-1 {final['val_top1']:.2f}% of the final weights (epoch 2, 360 validation images)" in out.err
    weights = str(run / "model.pt")
    assert main(["eval", tiny_arch(tmp_path), "--weights", weights, "--run-dir", str(tmp_path / "e")]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["val_top1"] == final["val_top1"] and evaluated["val_top5"] == final["val_top5"]
    assert evaluated["val_loss"] == pytest.approx(final["val_loss"], rel=1e-5)


def test_config_file_and_flags(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 1\nlr: 0.01\nbatch-size: 32\noptimizer: adam\n")
    run_cli(tiny_arch(tmp_path), *FAST, "--config", str(config), "--lr", "0.02", "--run-dir", str(tmp_path / "r"))
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert (saved["epochs"], saved["lr"], saved["batch_size"], saved["optimizer"]) == (1, 0.02, 64, "adam")


@pytest.mark.slow
def test_bf16_channels_last_ema_and_clipping(tmp_path, capsys):
    run_cli(
        tiny_arch(tmp_path),
        *FAST,
        "--epochs",
        "1",
        "--amp",
        "bf16",
        "--channels-last",
        "--ema",
        "0.9",
        "--grad-clip",
        "1",
        "--optimizer",
        "rmsprop",
        "--lr",
        "0.01",
        "--label-smoothing",
        "0.1",
        "--no-decay-bn-bias",
        "--cutout",
        "--cutout-length",
        "2",
        "--run-dir",
        str(tmp_path / "r"),
    )
    best = json.loads(capsys.readouterr().out)["best"]
    assert 0 <= best["val_top1"] <= 100 and best["val_loss"] == best["val_loss"]
    state = torch.load(tmp_path / "r" / "checkpoints" / "epoch_001.pt", weights_only=True)
    assert state["ema"]["n_averaged"] == STEPS


def untimed(path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in records]


@pytest.mark.slow
def test_resume_from_an_epoch_reproduces_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        tiny_arch(tmp_path),
        *FAST,
        "--epochs",
        "3",
        "--run-dir",
        str(run),
        "--keep-checkpoints",
        "10",
        "--checkpoint-every",
        "7",
    ]
    run_cli(*args)
    first = torch.load(run / "model.pt", weights_only=True)
    metrics = untimed(run / "metrics.jsonl")
    final = json.loads((run / "result.json").read_text())["final"]
    run_cli("--resume", str(run / "checkpoints" / "epoch_001_step_0000036.pt"), "--no-progress")
    again = torch.load(run / "model.pt", weights_only=True)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert untimed(run / "metrics.jsonl") == metrics  # replayed records replace the dropped ones exactly
    assert json.loads((run / "result.json").read_text())["final"] == final
    run_cli("--resume", str(run), "--no-progress")  # already finished: the final weights are measured again
    assert json.loads((run / "result.json").read_text())["final"]["val_top1"] == final["val_top1"]


def test_corrupted_latest_checkpoint_falls_back(tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(tiny_arch(tmp_path), *FAST, "--epochs", "2", "--run-dir", str(run), "--checkpoint-every", "0")
    latest = run / "checkpoints" / "epoch_002.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    store = CheckpointStore(run / "checkpoints")
    with pytest.raises(HwnasError, match="corrupted"):
        store.load(latest)
    path, _ = store.load_latest()
    assert path.name == "epoch_001.pt" and "corrupted" in capsys.readouterr().err
    (run / "checkpoints" / "epoch_001.pt").write_bytes(b"PK\x03\x04truncated")
    assert store.load_latest() is None


def test_truncated_checkpoint_is_reported(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save({"model": {"w": torch.ones(3)}, "epoch": 1}, "epoch_001.pt")
    path = tmp_path / "epoch_001.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(HwnasError, match=r"epoch_001.pt: (corrupted|unreadable)"):
        store.load(path)


def test_keep_last_n(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for e in range(1, 5):
        store.save({"epoch": e}, f"epoch_{e:03d}.pt", best=e == 2)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["best.pt", "epoch_003.pt", "epoch_004.pt"]
    assert store.load(tmp_path / "best.pt")["epoch"] == 2


class NaNAfter(torch.nn.Module):
    """Wraps a model; its output is NaN on the calls listed in `bad` (training calls only)."""

    def __init__(self, model, bad):
        super().__init__()
        self.model, self.bad, self.calls = model, set(bad), 0

    def forward(self, x):
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.calls in self.bad:
                return out * float("nan")
        return out


def test_nan_guard_skips_then_stops_without_corrupting_checkpoints(tmp_path, caplog):
    from hwnas.engine.rundir import RunDir
    from hwnas.engine.trainer import Trainer, TrainingError
    from hwnas.standalone import prepare

    arch = Architecture.load(tiny_arch(tmp_path))
    cfg = TrainConfig(
        input="1x8x8", epochs=3, flip=False, crop_padding=0, progress=False, max_bad_steps=3, checkpoint_every=0
    )
    data = prepare(arch, cfg)
    model = NaNAfter(build_model(data.arch), bad={3, 30, 31, 32})
    run = RunDir(tmp_path / "run")
    trainer = Trainer(
        model,
        cfg,
        train_set=data.train,
        val_set=data.val,
        preprocess=data.preprocess,
        device=torch.device("cpu"),
        run=run,
    )
    with caplog.at_level(logging.WARNING, logger="hwnas"), pytest.raises(TrainingError, match="3 steps in a row"):
        trainer.fit()
    assert "step 3; update skipped (1 in a row)" in caplog.text and "(3 in a row)" in caplog.text
    _, state = run.checkpoints.load_latest()
    assert state["epoch"] == 1 and all(
        torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
    )


def test_bad_options_are_one_line(tmp_path):
    arch = tiny_arch(tmp_path)
    cases = [
        (["--optimizer", "adamw"], "optimizer: got 'adamw', expected one of sgd, adam, rmsprop"),
        (["--schedule", "poly"], "schedule: got 'poly', expected one of cosine"),
        (["--data", "mnist"], "unknown dataset"),
        (["--data", f"cifar10:{tmp_path}/none"], "is not a directory"),
        (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a CUDA device"),
        (["--input", "8x8"], "input: got '8x8', expected CxHxW"),
    ]
    for extra, message in cases:
        with pytest.raises(HwnasError, match=message):
            from hwnas.cli import build_parser

            args = build_parser().parse_args(["train", arch, *FAST, *extra, "--run-dir", str(tmp_path / "x")])
            args.func(args)
    assert not (tmp_path / "x").exists()


def test_unknown_config_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("learning_rate: 0.1\n")
    with pytest.raises(HwnasError, match="unknown key 'learning_rate'; expected one of data"):
        from hwnas.cli import build_parser

        args = build_parser().parse_args(["train", tiny_arch(tmp_path), "--config", str(config)])
        args.func(args)


def test_resume_refuses_a_different_run(tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(tiny_arch(tmp_path), *FAST, "--epochs", "1", "--run-dir", str(run))
    before = (run / "model.pt").read_bytes()
    other = tiny_arch(tmp_path / "..", choices=("skip", "skip", "skip"))
    with pytest.raises(HwnasError, match="trains a different architecture"):
        train(other, TrainConfig(), resume=str(run))
    with pytest.raises(HwnasError, match=r"lr was 0\.05 in that run, got 0\.3"):
        train(None, TrainConfig(lr=0.3), resume=str(run), explicit={"lr"})
    with pytest.raises(HwnasError, match="already holds a run; continue it with --resume"):
        train(tiny_arch(tmp_path), TrainConfig(input="1x8x8", run_dir=str(run)))
    with pytest.raises(HwnasError, match="expected a run directory or RUN_DIR/checkpoints"):
        train(None, TrainConfig(), resume=str(tmp_path / "nothing"))
    assert (run / "model.pt").read_bytes() == before


def test_device_choice():
    from hwnas.engine.distributed import pick_device

    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")
        with pytest.raises(HwnasError, match="CUDA is not available"):
            pick_device("cuda:1")
    with pytest.raises(HwnasError, match="expected auto, cpu, cuda or cuda:N"):
        pick_device("tpu9")
