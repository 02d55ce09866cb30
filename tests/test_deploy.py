"""A trained network carries its preprocessing: the run records it (timm's pretrained_cfg), the exports hold it
(metadata, or baked into the graph) and `hwnas predict` classifies image files with it, all scoring what
`hwnas eval` scores."""

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

import hwnas
from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.data import Batch, Preprocess, open_dataset
from hwnas.errors import ArchError
from tests.fake_data import write_cifar
from tests.helpers import built_once, tiny_arch

TRAIN = ["--input", "1x8x8", "--no-flip", "--crop-padding", "0", "--no-progress", "--checkpoint-every", "0"]


def cli(*args: str) -> tuple[int, str, str]:
    """`hwnas ARGS` in this process: exit code, stdout, stderr (torch's thread count, which --threads sets, is put
    back)."""
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny network trained 3 epochs on the digits at their native 1x8x8 (about 95% top-1; on 1 thread, 1 s an
    epoch), trained once per test run for every worker: read it, never write into it."""

    def build(root: Path) -> None:
        options = [*TRAIN, "--epochs", 3, "--lr", 0.1, "--batch-size", 32, "--threads", 1]
        code, _, err = cli("train", tiny_arch(root), *options, "--run-dir", root / "run")
        assert code == 0, err

    return built_once(tmp_path_factory, "deploy_run", build) / "run"


@pytest.fixture(scope="module")
def eval_top1(run) -> float:
    """The top-1 `hwnas eval` prints for the run's weights (on the 360 held-out test digits)."""
    code, out, err = cli("eval", run / "arch.json", "--weights", run / "model.pt")
    assert code == 0, err
    return json.loads(out)["val_top1"]


@pytest.fixture(scope="module")
def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 360 held-out test digits as raw uint8 images [N, 1, 8, 8] (0..255) and their labels."""
    pool = open_dataset("digits", (1, 8, 8)).test
    return pool.source.read(pool.index).numpy(), pool.targets().numpy()


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 in percent, computed as `hwnas eval` computes it."""
    return 100 * float((logits.argmax(1) == labels).sum()) / len(labels)


@pytest.mark.slow
def test_a_run_records_how_its_inputs_were_made(run, eval_top1):
    digits = open_dataset("digits", (1, 8, 8))
    arch_cfg = json.loads((run / "arch.json").read_text())["pretrained_cfg"]
    assert arch_cfg == {
        "input_size": [1, 8, 8],
        "mean": [digits.mean[0]],
        "std": [digits.std[0]],
        "num_classes": 10,
        "label_names": [str(i) for i in range(10)],
        "crop_pct": 1.0,
        "crop_mode": "squash",  # digits are decoded images, resized whole on the device
        "interpolation": "bilinear",
    }
    assert json.loads((run / "result.json").read_text())["pretrained_cfg"] == arch_cfg
    assert hwnas.build_model(str(run / "arch.json")).pretrained_cfg == arch_cfg
    assert not hasattr(hwnas.build_model("fbnet_a"), "pretrained_cfg")  # nothing recorded, nothing guessed
    assert eval_top1 > 80  # enough for top-1 agreements below to mean something


@pytest.mark.slow
def test_onnx_with_metadata_and_with_baked_normalisation_score_as_eval(run, eval_top1, held_out_digits, tmp_path):
    images, labels = held_out_digits
    for extra, name in (([], "plain.onnx"), (["--preprocess"], "images.onnx")):
        code, _, err = cli(
            "export",
            run / "arch.json",
            "--weights",
            run / "model.pt",
            "--format",
            "onnx",
            "-o",
            tmp_path / name,
            *extra,
        )
        assert code == 0, err
    plain = onnxruntime.InferenceSession(str(tmp_path / "plain.onnx"), providers=["CPUExecutionProvider"])
    meta = plain.get_modelmeta().custom_metadata_map
    assert meta["input_format"] == "normalized"
    cfg = json.loads(meta["pretrained_cfg"])
    assert cfg["input_size"] == [1, 8, 8] and cfg["label_names"] == [str(i) for i in range(10)]
    mean = np.array(cfg["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.array(cfg["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    scaled = images.astype(np.float32) / 255
    assert top1(plain.run(None, {"input": (scaled - mean) / std})[0], labels) == eval_top1

    baked = onnxruntime.InferenceSession(str(tmp_path / "images.onnx"), providers=["CPUExecutionProvider"])
    assert baked.get_modelmeta().custom_metadata_map["input_format"] == "float_0_1"
    assert top1(baked.run(None, {"input": scaled})[0], labels) == eval_top1


def test_pt2_takes_uint8_images_and_scores_as_eval(run, eval_top1, held_out_digits, tmp_path):
    images, labels = held_out_digits
    weights = ["--weights", run / "model.pt"]
    code, out, err = cli(
        "export", run / "arch.json", *weights, "--format", "export", "-o", tmp_path / "m.pt2", "--preprocess", "uint8"
    )
    assert code == 0, err
    assert "takes uint8 images 0..255 of 1x8x8" in out
    extra = {"pretrained_cfg": "", "input_format": ""}
    program = torch.export.load(tmp_path / "m.pt2", extra_files=extra)
    assert extra["input_format"] == "uint8_0_255"
    assert json.loads(extra["pretrained_cfg"]) == json.loads((run / "arch.json").read_text())["pretrained_cfg"]
    with torch.no_grad():
        logits = program.module()(torch.from_numpy(images)).numpy()
    assert top1(logits, labels) == eval_top1


def test_predict_prints_the_labels_the_model_gives(run, held_out_digits, tmp_path):
    images, _ = held_out_digits
    files = []
    for i in range(6):
        files.append(tmp_path / f"digit{i}.png")
        Image.fromarray(images[i, 0]).save(files[-1])
    arch = hwnas.Architecture.load(run / "arch.json")
    model = hwnas.build_model(arch).eval()
    hwnas.load_weights(model, run / "model.pt")
    cfg = arch.pretrained_cfg
    batch = Batch(torch.from_numpy(images[:6]), torch.zeros(6, dtype=torch.long), torch.arange(6))
    with torch.no_grad():
        expected = model(Preprocess(cfg.input_size, cfg.mean, cfg.std)(batch, torch.device("cpu"))).argmax(1).tolist()

    code, out, err = cli("predict", run / "arch.json", "--weights", run / "model.pt", *files, "--top-k", 2)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(f) for f in files]
    assert [line.split(": ")[1].split()[0] for line in lines] == [str(e) for e in expected]

    code, out, err = cli("predict", run / "arch.json", "--weights", run / "model.pt", *files, "--json")
    predictions = json.loads(out)["predictions"]
    assert [p["top"][0]["index"] for p in predictions] == expected and len(predictions[0]["top"]) == 5
    python = hwnas.predict(run / "arch.json", run / "model.pt", files, top_k=3)
    assert [p["top"][0]["label"] for p in python] == [str(e) for e in expected]
    ranked = [[t["probability"] for t in p["top"]] for p in python]
    assert all(probs == sorted(probs, reverse=True) and len(probs) == 3 for probs in ranked)


def test_predict_resizes_a_larger_image_as_training_does(run, held_out_digits, tmp_path):
    """A 16x16 image reaches the 8x8 network resized whole, as `Preprocess` resized the digits in training."""
    images, _ = held_out_digits
    big = Image.fromarray(images[7, 0]).resize((16, 16), Image.Resampling.NEAREST)
    big.save(tmp_path / "big.png")
    arch = hwnas.Architecture.load(run / "arch.json")
    model = hwnas.build_model(arch).eval()
    hwnas.load_weights(model, run / "model.pt")
    cfg = arch.pretrained_cfg
    pixels = torch.from_numpy(np.array(big)).reshape(1, 1, 16, 16)
    batch = Batch(pixels, torch.zeros(1, dtype=torch.long), torch.arange(1))
    with torch.no_grad():
        probs = model(Preprocess(cfg.input_size, cfg.mean, cfg.std)(batch, torch.device("cpu"))).softmax(1)[0]
    top = hwnas.predict(arch, run / "model.pt", tmp_path / "big.png", top_k=10)[0]["top"]
    assert [t["probability"] for t in top] == pytest.approx(probs[[t["index"] for t in top]].tolist(), abs=1e-6)


def test_predict_and_export_refuse_in_one_line(run, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (8, 8)).save(tmp_path / "ok.png")
    untrained = tiny_arch(tmp_path)  # no pretrained_cfg
    weights = ["--weights", run / "model.pt"]
    cases = [
        (["predict", untrained, *weights, tmp_path / "ok.png"], "records no pretrained_cfg"),
        (["predict", run / "arch.json", *weights, tmp_path / "missing.png"], "missing.png: no such file"),
        (["predict", run / "arch.json", *weights, tmp_path / "notes.png"], "notes.png: unreadable image"),
        (["export", untrained, "--format", "onnx", "-o", tmp_path / "m.onnx", "--preprocess"], "no pretrained_cfg"),
    ]
    for args, message in cases:
        code, out, err = cli(*args)
        assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mean": [0.3, 0.3, 0.3]}, "pretrained_cfg.mean: got [0.3, 0.3, 0.3], expected 1 number(s) in [0, 1]"),
        ({"std": [58.4]}, "pretrained_cfg.std: got [58.4], expected 1 number(s) in (0, 1]"),
        ({"std": [0]}, "pretrained_cfg.std: got [0]"),
        ({"mean": "0.3"}, "pretrained_cfg.mean: got '0.3'"),
        ({"label_names": ["a", "b"]}, "pretrained_cfg.label_names: got ['a', 'b'], expected 10 strings"),
        ({"input_size": [1, 16, 16]}, "expected the network's input size [1, 8, 8]"),
        ({"num_classes": 5, "label_names": list("abcde")}, "num_classes: got 5, expected the network's 10 classes"),
        ({"crop_mode": "border"}, "pretrained_cfg.crop_mode: got 'border', expected one of center, squash"),
        ({"crop_pct": 1.5}, "pretrained_cfg.crop_pct: got 1.5, expected a number in (0, 1]"),
        ({"colour": "rgb"}, "pretrained_cfg: unknown field 'colour'"),
        ({"input_size": None}, "pretrained_cfg.input_size: got None, expected [C, H, W]"),
    ],
)
def test_a_malformed_pretrained_cfg_is_refused_in_one_line(run, tmp_path, change, message):
    shutil.copy(run.parent / "tiny.yaml", tmp_path / "tiny.yaml")
    data = json.loads((run / "arch.json").read_text())
    data["space"] = "tiny.yaml"
    data["pretrained_cfg"] = {**data["pretrained_cfg"], **change}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchError, match="^" + re.escape(f"{path}: pretrained_cfg")):
        Architecture.load(path)
    code, _, err = cli("show", path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_an_architecture_keeps_its_cfg_at_another_input_size_only(run):
    arch = Architecture.load(run / "arch.json")
    assert arch.with_space_args(input_size=[1, 16, 16]).pretrained_cfg.input_size == (1, 16, 16)
    assert arch.with_space_args(input_size=[1, 16, 16]).pretrained_cfg.mean == arch.pretrained_cfg.mean
    assert arch.with_space_args(num_classes=5).pretrained_cfg is None  # its labels no longer describe the network
    assert arch.with_space_args(input_size=[3, 8, 8]).pretrained_cfg is None
    bare = arch.with_pretrained_cfg(None)
    assert bare.pretrained_cfg is None and "pretrained_cfg" not in bare.to_dict()
    assert Architecture.load(run.parent / "tiny_arch.json").pretrained_cfg is None  # older files load as before


def test_a_run_on_image_files_records_their_crop_and_predict_decodes_them_alike(tmp_path):
    """Image files train resized on the short side and centre-cropped (`crop_mode` center); `predict` decodes a
    non-square file exactly as the `folder:` dataset did."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(
                tmp_path / "images" / name / f"{i}.png"
            )
    threads = torch.get_num_threads()  # threads=1 sets torch's thread count: put back below
    outcome = hwnas.train(
        tiny_arch(tmp_path), data=f"folder:{tmp_path / 'images'}", input="3x8x8", epochs=1, batch_size=8, threads=1,
        progress=False, run_dir=str(tmp_path / "run"),
    )  # fmt: skip
    torch.set_num_threads(threads)
    cfg = json.loads(outcome.arch_path.read_text())["pretrained_cfg"]
    assert (cfg["crop_mode"], cfg["label_names"], cfg["input_size"]) == ("center", ["cat", "dog"], [3, 8, 8])
    assert cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"] == [0.229, 0.224, 0.225]  # the folder: statistics

    pool = open_dataset(f"folder:{tmp_path / 'images'}", (3, 8, 8)).train
    decoded = pool.source.read(torch.tensor([5]))  # uint8 [1, 3, 8, 8]: the 20x12 file, resized and cropped
    arch = hwnas.Architecture.load(outcome.arch_path)
    model = hwnas.build_model(arch).eval()
    hwnas.load_weights(model, outcome.run_dir / "model.pt")
    batch = Batch(decoded, torch.zeros(1, dtype=torch.long), torch.arange(1))
    with torch.no_grad():
        probs = model(Preprocess((3, 8, 8), tuple(cfg["mean"]), tuple(cfg["std"]))(batch, torch.device("cpu")))
    top = hwnas.predict(arch, outcome.run_dir / "model.pt", pool.source.paths[5], top_k=2)[0]["top"]
    assert [t["probability"] for t in top] == probs.softmax(1)[0, [t["index"] for t in top]].tolist()


@pytest.mark.slow
def test_searches_record_the_data_cfg_in_every_architecture_file(tmp_path, space_file, tiny_supernet):
    common = ["--no-progress", "--no-flip", "--crop-padding", 0, "--threads", 1]
    dnas = ["search", space_file, "--input", "1x8x8", "--epochs", 1, "--weight-warmup-epochs", 0, "--cost", "macs"]
    dnas += common
    assert cli(*dnas, "--run-dir", tmp_path / "dnas")[0] == 0
    cifar = write_cifar(tmp_path / "cifar", per_batch=16)
    darts = ["search", "darts", "--data", f"cifar10:{cifar}", "--input", "3x8x8", "--epochs", 1, *common]
    cells = ["--init-channels", 4, "--layers", 3, "--num-meta-node", 2, "--eval-init-channels", 4, "--eval-layers", 3]
    assert cli(*darts, *cells, "--batch-size", 16, "--workers", 0, "--run-dir", tmp_path / "darts")[0] == 0
    pareto = ["search", space_file, "--strategy", "pareto", "--pareto-cost", "macs", "--supernet", tiny_supernet]
    evolution = ["--generation-num", 1, "--population", 4, "--parent-num", 2, "--mutation-num", 1, "--crossover-num", 1]
    assert cli(*pareto, *evolution, "--eval-images", 90, *common, "--run-dir", tmp_path / "pareto")[0] == 0

    digits = open_dataset("digits", (1, 8, 8))
    for run in ("dnas", "pareto"):
        files = [tmp_path / run / "arch.json", *(tmp_path / run).glob("front_*.json"), tmp_path / run / "result.json"]
        for path in files:
            cfg = json.loads(path.read_text())["pretrained_cfg"]
            assert (cfg["mean"], cfg["std"], cfg["input_size"]) == ([digits.mean[0]], [digits.std[0]], [1, 8, 8])
    assert json.loads((tiny_supernet / "result.json").read_text())["pretrained_cfg"]["num_classes"] == 10
    cifar_names = open_dataset(f"cifar10:{cifar}", (3, 8, 8)).classes
    for path in (tmp_path / "darts" / "arch.json", tmp_path / "darts" / "genotypes" / "epoch_001.json"):
        cfg = Architecture.load(path).pretrained_cfg
        assert cfg.mean == (0.4914, 0.4822, 0.4465) and list(cfg.label_names) == cifar_names
        assert cfg.input_size == (3, 8, 8) and cfg.crop_mode == "squash"
