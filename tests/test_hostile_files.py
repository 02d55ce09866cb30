"""Hostile and broken files run no code and get one clear line: CIFAR pickles, image trees, weights files."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.data import EpochLoader, open_dataset
from hwnas.data.imageset import FileSource, ImageSet, UnreadableImage, unreadable_images
from hwnas.errors import HwnasError
from hwnas.model import build_model, load_weights, save_weights
from tests.fake_data import write_cifar, write_folder
from tests.helpers import tiny_arch

FAST = ["--no-flip", "--crop-padding", "0", "--no-progress", "--epochs", "1", "--batch-size", "4"]


class _Call:
    """Pickles as a call of `func(*args)`: what a hostile pickle does to run code while it loads."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def train(tmp_path: Path, data: str, run_dir: Path) -> int:
    return main(["train", tiny_arch(tmp_path), *FAST, "--input", "3x8x8", "--data", data, "--run-dir", str(run_dir)])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("how", ["os.system", "open"])
def test_hostile_cifar_meta_runs_no_code(tmp_path, capsys, how):
    root = write_cifar(tmp_path / "cifar", per_batch=2)
    marker = tmp_path / "marker"
    payload = _Call(os.system, f"touch {marker}") if how == "os.system" else _Call(open, str(marker), "w")
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": payload}, f)
    run_dir = tmp_path / "run"
    assert train(tmp_path, f"cifar10:{root}", run_dir) == 2
    line = one_error_line(capsys)
    assert "batches.meta" in line and "refused global" in line
    assert ("posix.system" in line or "os.system" in line) if how == "os.system" else "io.open" in line
    assert not marker.exists() and not run_dir.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_legitimate_cifar_tree_still_loads(tmp_path, protocol):
    root = write_cifar(tmp_path / "cifar", per_batch=3)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [2, 0, 1], b"data": data, b"n": np.int64(3)}
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump(batch, f, protocol=protocol)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, f, protocol=protocol)
    pools = open_dataset(f"cifar10:{root}", (3, 32, 32))
    assert pools.classes[:2] == ["class0", "class1"] and len(pools.train) == 15 and len(pools.test) == 3
    assert torch.equal(pools.train.source.images[:3], torch.from_numpy(data).reshape(3, 3, 32, 32))
    assert pools.train.labels[:3].tolist() == [2, 0, 1]


def test_a_cifar_batch_that_is_not_a_pickle_is_one_line(tmp_path):
    root = write_cifar(tmp_path / "cifar", per_batch=2)
    (root / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(HwnasError, match="data_batch_3: not a CIFAR python-pickle batch"):
        open_dataset(f"cifar10:{root}", (3, 32, 32))


def _break_images(root: Path) -> tuple[Path, Path]:
    """Truncate one PNG of the tree to half its size and empty another; return both."""
    truncated, empty = root / "a" / "img1.png", root / "b" / "img0.png"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    empty.write_bytes(b"")
    return truncated, empty


def test_folder_tree_with_a_truncated_image_is_refused_before_any_file(tmp_path, capsys):
    root = write_folder(tmp_path / "imgs", ["a", "b"], per_class=3)
    truncated, _ = _break_images(root)
    run_dir = tmp_path / "run"
    assert train(tmp_path, f"folder:{root}", run_dir) == 2
    line = one_error_line(capsys)
    assert f"2 of 6 images cannot be read, first {truncated}" in line
    assert not run_dir.exists()


def test_a_class_subset_checks_only_its_own_images(tmp_path):
    root = write_folder(tmp_path / "imgs", ["a", "b", "c"], per_class=2)
    (root / "c" / "img0.png").write_bytes(b"not an image")
    assert len(open_dataset(f"folder:{root}", (3, 8, 8), classes="2").train) == 4
    with pytest.raises(HwnasError, match=r"1 of 6 images .*img0.png \(not an image format PIL can identify\)"):
        open_dataset(f"folder:{root}", (3, 8, 8))


def _jpeg(path: Path, trailer: bytes = b"") -> bytes:
    array = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(array).save(path, "JPEG")
    data = path.read_bytes() + trailer
    path.write_bytes(data)
    return data


def test_truncated_jpeg_passes_verify_but_is_caught(tmp_path):
    whole, cut, trailer = tmp_path / "whole.jpg", tmp_path / "cut.jpg", tmp_path / "trailer.jpg"
    cut.write_bytes(_jpeg(whole)[:-200])
    _jpeg(trailer, b"\0" * 4096)  # bytes after the end marker: PIL decodes it, so it must pass
    bad = unreadable_images([whole, cut, trailer])
    assert [p for p, _ in bad] == [cut] and "truncated" in bad[0][1]


def test_an_image_that_breaks_after_opening_is_one_line_from_a_worker(tmp_path):
    root = write_folder(tmp_path / "imgs", ["a"], per_class=2)
    paths = sorted((root / "a").glob("*.png"))
    dataset = ImageSet(FileSource(paths, (8, 8), 3), torch.zeros(2, dtype=torch.long))
    paths[1].write_bytes(b"")
    loader = EpochLoader(dataset, 2, train=False, workers=1)
    with pytest.raises(UnreadableImage) as caught:
        list(loader.epoch(0))
    assert str(caught.value) == f"{paths[1]}: unreadable image (not an image format PIL can identify)"


def _saved_weights(tmp_path: Path) -> tuple[str, Path]:
    arch = tiny_arch(tmp_path)
    weights = save_weights(build_model(Architecture.load(arch)).state_dict(), tmp_path / "w" / "model.pt")
    return arch, weights


def _flip_tensor_bytes(weights: Path) -> None:
    """Invert 64 bytes inside the largest tensor's data: torch.load still reads the file, values changed."""
    largest = max(torch.load(weights, weights_only=True).values(), key=torch.Tensor.numel)
    data = bytearray(weights.read_bytes())
    start = data.index(largest.numpy().tobytes()[:256])
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    weights.write_bytes(bytes(data))
    torch.load(weights, weights_only=True)


def _eval(arch: str, weights: Path, tmp_path: Path) -> int:
    return main(["eval", arch, "--weights", str(weights), "--input", "1x8x8", "--run-dir", str(tmp_path / "ev")])


def _export(arch: str, weights: Path, tmp_path: Path) -> int:
    out = tmp_path / "out.pt"
    return main(["export", arch, "--weights", str(weights), "--format", "torchscript", "-o", str(out)])


@pytest.mark.slow
def test_intact_weights_with_their_checksum_export(tmp_path, capsys):
    arch, weights = _saved_weights(tmp_path)
    assert Path(f"{weights}.sha256").read_text().endswith("  model.pt\n")
    assert _export(arch, weights, tmp_path) == 0 and (tmp_path / "out.pt").is_file()


@pytest.mark.parametrize("command", [_eval, _export])
def test_flipped_bytes_are_refused_when_a_checksum_exists(tmp_path, capsys, command):
    arch, weights = _saved_weights(tmp_path)
    _flip_tensor_bytes(weights)
    assert command(arch, weights, tmp_path) == 2
    line = one_error_line(capsys)
    assert str(weights) in line and "corrupt" in line and "sha256 differs" in line
    assert not (tmp_path / "ev").exists() and not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file (0 bytes)"),
        (b"weights: none\nthis is text\n", "not a PyTorch weights file"),
        (b"{}", "not a PyTorch weights file"),
    ],
)
@pytest.mark.parametrize("command", [_eval, _export])
def test_empty_and_text_weights_are_one_line(tmp_path, capsys, content, message, command):
    arch = tiny_arch(tmp_path)
    weights = tmp_path / "w.pt"
    weights.write_bytes(content)
    assert command(arch, weights, tmp_path) == 2
    line = one_error_line(capsys)
    assert str(weights) in line and message in line
    assert not (tmp_path / "ev").exists() and not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([1, 2, 3], "holds a list, not a state dict"),
        (torch.zeros(3), "holds a Tensor, not a state dict"),
        ({}, "holds an empty dict"),
        ({"stem.0.weight": [1.0]}, "entry 'stem.0.weight' is not a named tensor"),
        ({"model": {"x": torch.zeros(1)}, "step": 3}, "tensor names"),
        (
            {"model": {"nope": torch.zeros(1)}},
            "do not fit this architecture: "
            "tensor names 50 missing (first 'stem.0.0.weight'), 1 unexpected (first 'nope')",
        ),
    ],
)
def test_files_that_are_not_state_dicts_are_one_line(tmp_path, state, message):
    weights = tmp_path / "w.pt"
    torch.save(state, weights)
    model = build_model(Architecture.load(tiny_arch(tmp_path)))
    with pytest.raises(HwnasError) as caught:
        load_weights(model, weights)
    assert message in str(caught.value) and "\n" not in str(caught.value)
