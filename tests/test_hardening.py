"""Hardening, second round: files outside a run are never written or read through a link, bundles are checked model
by model, limits hold before the work, costs and times are checked where they are read, and messages say what is
on disk. Each case failed on the main of 2026-12-05."""

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.cost import run_bundle
from hwnas.cost.bundle import import_results, write_bundle
from hwnas.cost.table import FORMAT as TABLE_FORMAT
from hwnas.cost.table import CostTable
from hwnas.data.sources import _unpickle
from hwnas.errors import HwnasError
from hwnas.model import build_model, save_weights
from hwnas.readers import load_json_text, load_yaml_text
from hwnas.spaces import load_space
from tests.helpers import TINY_SPACE, tiny_arch
from tests.test_hostile_files import _flip_tensor_bytes

TRAIN = ["--data", "digits", "--input", "1x8x8", "--epochs", "1", "--batch-size", "256", "--no-progress", "--no-flip"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def trained(tmp_path) -> Path:
    """A finished one-epoch `hwnas train` run of the tiny architecture (a checkpoint and model.pt)."""
    run = tmp_path / "run"
    assert main(["train", tiny_arch(tmp_path), *TRAIN, "--run-dir", str(run)]) == 0
    return run


@pytest.mark.parametrize(("name", "says"), [(".lock", "is a symbolic link"), ("metrics.jsonl", "metrics file")])
def test_a_run_file_that_is_a_link_is_refused_and_its_target_untouched(trained, tmp_path, capsys, name, says):
    outside = tmp_path / "outside.txt"
    outside.write_text("not hwnas's\n")
    (trained / name).unlink()
    (trained / name).symlink_to(outside)
    assert main(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"]) == 2
    assert says in one_line(capsys) and outside.read_text() == "not hwnas's\n"


def test_a_named_checkpoint_that_is_damaged_is_refused_not_swapped(trained, capsys):
    assert main(["train", "--resume", str(trained), "--epochs", "2", "--no-progress"]) == 0
    checkpoints = sorted((trained / "checkpoints").glob("epoch_*.pt"))
    assert len(checkpoints) == 2
    data = bytearray(checkpoints[-1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoints[-1].write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["train", "--resume", str(checkpoints[-1]), "--no-progress"]) == 2
    assert f"checkpoint {checkpoints[-1]}: corrupted" in one_line(capsys)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The tiny space's bundle with results as the runner writes them (times made up: no ONNX Runtime needed)."""
    root = tmp_path_factory.mktemp("bundle")
    (root / "tiny.yaml").write_text(TINY_SPACE)
    manifest = write_bundle(load_space(str(root / "tiny.yaml")), root / "b")
    latency = {"median": 0.1, "mean": 0.1, "std": 0.01, "count": 3}
    results = {
        "format": run_bundle.RESULTS_FORMAT,
        "fingerprint": manifest["fingerprint"],
        "device": {"processor": "\x1b[2Jcpu\nname" + "x" * 100_000, "providers": ["CPUExecutionProvider"]},
        "entries": {e["key"]: {"file": e["file"], "latency_ms": latency} for e in manifest["entries"]},
    }
    (root / "b" / "results.json").write_text(json.dumps(results))
    return root / "b"


def copied(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "b"))


def test_device_fields_are_one_short_printable_line(bundle, tmp_path):
    name = import_results(copied(bundle, tmp_path) / "results.json").meta["device_name"]
    assert "\x1b" not in name and "\n" not in name and len(name) <= 300


def test_a_swapped_model_is_refused_by_import_and_by_the_runner(bundle, tmp_path):
    folder = copied(bundle, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    first, second = manifest["entries"][0]["file"], manifest["entries"][1]["file"]
    shutil.copy(folder / second, folder / first)  # another model of the bundle, timed as the first
    with pytest.raises(HwnasError, match="sha256 differs from the manifest's"):
        import_results(folder / "results.json")
    with pytest.raises(SystemExit, match="sha256 differs from the manifest's"):
        run_bundle.model_bytes(str(folder), manifest["entries"][0])


@pytest.mark.parametrize("name", ["../../x.onnx", "/etc/passwd", "models/../../x.onnx"])
def test_a_manifest_entry_outside_the_bundle_is_refused(bundle, tmp_path, name):
    folder = copied(bundle, tmp_path)
    with pytest.raises(SystemExit, match=r"expected models/NAME\.onnx inside the bundle"):
        run_bundle.model_bytes(str(folder), {"key": "k", "file": name, "sha256": "0" * 64})
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["entries"][0]["file"] = name
    from hwnas.cost.bundle import manifest_fingerprint

    manifest["fingerprint"] = manifest_fingerprint(manifest)  # an attacker recomputes it
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(HwnasError, match="not as `hwnas latency bundle` wrote it"):
        import_results(folder / "results.json")


def test_import_never_writes_over_its_inputs(bundle, tmp_path, capsys):
    folder = copied(bundle, tmp_path)
    before = (folder / "results.json").read_bytes()
    results = str(folder / "results.json")
    assert main(["latency", "import", results, "-o", results]) == 2
    assert "is an input of the import" in one_line(capsys) and (folder / "results.json").read_bytes() == before


@pytest.mark.parametrize(
    ("time_ms", "says"),
    [(10**400, "characters)"), (0, "expected a finite time > 0 ms"), (-1.0, "expected a finite time > 0 ms")],
)
def test_times_that_are_not_times_are_refused(bundle, tmp_path, time_ms, says):
    folder = copied(bundle, tmp_path)
    results = json.loads((folder / "results.json").read_text())
    for entry in results["entries"].values():
        entry["latency_ms"]["median"] = time_ms
    (folder / "results.json").write_text(json.dumps(results))
    with pytest.raises(HwnasError, match=r"latency_ms\.median is") as err:
        import_results(folder / "results.json")
    assert says in str(err.value) and len(str(err.value)) < 400


def test_repeated_json_keys_are_refused_as_in_yaml():
    with pytest.raises(HwnasError, match="duplicate key 'choices'"):
        load_json_text('{"choices": ["a"], "choices": ["b"]}', "architecture file a.json")


def cost_table(tmp_path: Path, latency: float) -> Path:
    entries = {"k": {"latency_ms": {"median": latency}, "macs": 1, "params": 1}}
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"format": TABLE_FORMAT, "meta": {}, "entries": entries}))  # NaN as json writes it
    return path


@pytest.mark.parametrize(
    ("latency", "says"),
    [(-5.0, "expected finite numbers >= 0"), (float("nan"), "expected finite numbers"), (0.0, "every latency is 0")],
)
def test_cost_tables_with_negative_nan_or_zero_times_are_refused(tmp_path, latency, says):
    with pytest.raises(HwnasError, match=says):
        CostTable.load(cost_table(tmp_path, latency))


def test_a_huge_yaml_is_refused_while_it_is_read(tmp_path):
    # a syntax error after 60,000 values: a reader that parsed everything before counting would report that instead
    text = "name: x\nknobs: {input_size: [" + ",".join(["1"] * 60_000) + ", ]]] not yaml\n"
    with pytest.raises(HwnasError, match="holds more than 50,000 values"):
        load_yaml_text(text, "space file s.yaml")


def test_a_pickled_bytearray_of_a_size_allocates_nothing(tmp_path):
    # bytearray(1_500_000_000) as a protocol-2 pickle: global, one int argument, reduce
    (tmp_path / "batches.meta").write_bytes(b"\x80\x02c__builtin__\nbytearray\nJ\x00\x2f\x68\x59\x85R.")
    with pytest.raises(HwnasError, match=r"bytearray\(int\) refused"):
        _unpickle(tmp_path / "batches.meta")
    (tmp_path / "ok").write_bytes(pickle.dumps({b"label_names": [b"cat"], b"raw": bytearray(b"ab")}, protocol=2))
    assert _unpickle(tmp_path / "ok")[b"raw"] == bytearray(b"ab")


def saved(tmp_path: Path) -> tuple[str, Path]:
    arch = tiny_arch(tmp_path)
    return arch, save_weights(build_model(Architecture.load(arch)).state_dict(), tmp_path / "w" / "model.pt")


def eval_weights(arch: str, weights: Path) -> int:
    return main(["eval", arch, "--weights", str(weights), "--input", "1x8x8", "--no-progress"])


@pytest.mark.parametrize("sidecar", ["directory", "other name", "link"])
def test_a_checksum_file_that_is_not_this_files_is_refused(tmp_path, capsys, sidecar):
    arch, weights = saved(tmp_path)
    side = Path(f"{weights}.sha256")
    digest = side.read_text().split()[0]
    side.unlink()
    if sidecar == "directory":
        side.mkdir()
    elif sidecar == "other name":
        side.write_text(f"{digest}  other.pt\n")
    else:
        (tmp_path / "elsewhere").write_text(f"{digest}  model.pt\n")
        side.symlink_to(tmp_path / "elsewhere")
    assert eval_weights(arch, weights) == 2
    assert str(weights) in one_line(capsys)


def test_flipped_bytes_without_a_checksum_file_are_refused(tmp_path, capsys):
    arch, weights = saved(tmp_path)
    Path(f"{weights}.sha256").unlink()
    _flip_tensor_bytes(weights)
    assert eval_weights(arch, weights) == 2
    assert "fails its CRC check" in one_line(capsys)


def test_eval_of_diverged_weights_prints_strict_json_and_says_so(tmp_path, capsys):
    arch = tiny_arch(tmp_path)
    state = build_model(Architecture.load(arch)).state_dict()
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    weights = tmp_path / "nan.pt"
    torch.save(state, weights)
    assert eval_weights(arch, weights) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["val_loss"] is None and "NaN" not in out and "validation loss is nan" in err


def test_a_write_that_fails_before_any_checkpoint_does_not_suggest_resume(tmp_path, monkeypatch, capsys):
    import hwnas.engine.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_write", full)
    run = tmp_path / "run"
    assert main(["train", tiny_arch(tmp_path), *TRAIN, "--run-dir", str(run)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no checkpoint was written yet" in line and "--resume" not in line


def test_an_input_smaller_than_a_stride_is_refused(tmp_path, capsys):
    arch = {"format": "hwnas.arch/1", "space": "fbnet_small", "choices": ["skip"] * 7}
    (tmp_path / "a.json").write_text(json.dumps({**arch, "space_args": {"input_size": [3, 1, 1]}}))
    assert main(["profile", str(tmp_path / "a.json")]) == 2
    assert "input 1x1 is smaller than the stride 2" in one_line(capsys)
    (tmp_path / "b.json").write_text(json.dumps(arch))
    assert main(["train", str(tmp_path / "b.json"), "--input", "1x1x1", "--run-dir", str(tmp_path / "r")]) == 2
    assert "input 1x1 is smaller than the stride 2" in one_line(capsys) and not (tmp_path / "r").exists()


def test_a_search_whose_warm_up_takes_every_epoch_is_refused_before_any_work(space_file, tmp_path, capsys):
    run = tmp_path / "s"
    argv = ["search", str(space_file), "--epochs", "1", "--weight-warmup-epochs", "5", "--run-dir", str(run)]
    assert main(argv) == 2
    assert "--weight-warmup-epochs 5 with --epochs 1" in one_line(capsys) and not run.exists()


def test_export_into_a_folder_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["export", "fbnet_a", "--format", "onnx", "-o", str(tmp_path / "afile" / "sub" / "x.onnx")]) == 2
    assert "is a file, so no folder can be made there" in one_line(capsys)


def test_validation_classes_that_are_not_training_classes_are_refused_before_the_run(tmp_path, capsys):
    from PIL import Image

    for split, classes in (("train", "ab"), ("val", "ac")):
        for name in classes:
            (tmp_path / "tree" / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "tree" / split / name / "0.png")
    run = tmp_path / "r"
    argv = ["train", "fbnet_a", "--data", f"folder:{tmp_path / 'tree'}", "--input", "3x32x32", "--run-dir", str(run)]
    assert main(argv) == 2
    assert "class folder(s) c are not among the training classes" in one_line(capsys) and not run.exists()


def test_export_never_writes_over_its_weights(tmp_path, capsys):
    arch, weights = saved(tmp_path)
    before = weights.read_bytes()
    assert main(["export", arch, "--weights", str(weights), "--format", "onnx", "-o", str(weights)]) == 2
    assert "is an input of the export" in one_line(capsys) and weights.read_bytes() == before
