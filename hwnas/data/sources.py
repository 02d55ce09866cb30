"""Datasets by name: digits, fonts, cifar10/100 (python pickles), image folders, tiny-imagenet, synthetic.

`open_dataset("cifar10:/data/cifar")` returns the training pool, the test pool (None when
the layout has none), the class names and the normalisation statistics.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import HwnasError
from . import fonts
from .imageset import FileSource, ImageSet, TensorSource, unreadable_images

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".gif", ".tif", ".tiff"}
FORMATS = "digits, fonts, synthetic, cifar10:DIR, cifar100:DIR, folder:DIR, tiny-imagenet:DIR"


@dataclass(frozen=True)
class DataPools:
    """A run's data, from `open_dataset` (a `--data` spec) or `pools_from_datasets` (torch datasets).

    `classes_from_labels`: the classes were only inferred from the labels seen (0..the largest), not named
    by the caller or the dataset, so they may not define the network's classifier (see `pipeline.fit_classes`).
    `mirror_safe`: a mirrored image is of the same class (photos), so random flips are on by default; not for
    digits and characters, whose mirror images are other classes (b and d) or none."""

    train: ImageSet
    test: ImageSet | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes_from_labels: bool = False
    mirror_safe: bool = True


DIGITS_TEST_IMAGES = 360


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (pixels 0..16) and their labels, read from the file `load_digits` reads,
    without importing scikit-learn (a second a process); through `load_digits` where that file is not found."""
    spec = importlib.util.find_spec("sklearn")
    locations = spec.submodule_search_locations if spec is not None else None
    path = Path(locations[0]) / "datasets" / "data" / "digits.csv.gz" if locations else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _digits() -> DataPools:
    """scikit-learn's 1,797 digits: a fixed test pool of 360 images (the same for every run and seed, so
    a figure on it is held out from everything a run chose), the other 1,437 to train on."""
    pixels, labels = digits_arrays()
    images = torch.from_numpy(pixels).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    mean, std = exact_stats(images)
    pool = ImageSet(TensorSource(images), torch.from_numpy(labels).long())
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
    train, test = pool.subset(order[DIGITS_TEST_IMAGES:]), pool.subset(order[:DIGITS_TEST_IMAGES])
    return DataPools(train, test, [str(i) for i in range(10)], (mean,), (std,), mirror_safe=False)


@functools.cache
def _fonts() -> DataPools:
    """The 62 characters of matplotlib's typefaces in EMNIST Balanced's 47 classes (see `fonts`): 12,648
    training images from 17 faces, a fixed test pool of 6,200 from 5 held-out faces."""
    train_images, train_labels = fonts.render(fonts.TRAIN_FACES, fonts.TRAIN_VARIANTS, fonts.TRAIN_SEED)
    test_images, test_labels = fonts.render(fonts.TEST_FACES, fonts.TEST_VARIANTS, fonts.TEST_SEED)
    mean, std = exact_stats(train_images)
    train = ImageSet(TensorSource(train_images), train_labels)
    test = ImageSet(TensorSource(test_images), test_labels)
    return DataPools(train, test, list(fonts.CLASSES), (mean,), (std,), mirror_safe=False)


def exact_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and (unbiased) standard deviation of uint8 images in [0, 1] units, from exact integer sums: the same
    figures whatever torch's thread count (a float32 mean differs in its last digits between 1 and 2 threads)."""
    pixels = images.long().flatten()
    n, total, squares = pixels.numel(), int(pixels.sum()), int((pixels * pixels).sum())
    variance = (squares - total * total / n) / (n - 1)
    return total / n / 255, variance**0.5 / 255


def _synthetic(shape: tuple[int, int, int], num_classes: int, seed: int) -> DataPools:
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> ImageSet:
        images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        return ImageSet(TensorSource(images), torch.randint(0, num_classes, (n,), generator=g))

    return DataPools(make(1024), make(256), [str(i) for i in range(num_classes)], (0.5,) * shape[0], (0.29,) * shape[0])


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"codec {encoding!r} is not latin-1")
    return text.encode("latin1")


def _numpy_global(module: str, name: str) -> object:
    """An admitted numpy global, from `numpy._core` (numpy 2) or `numpy.core` (numpy 1) whichever pickled it."""
    import numpy as np

    if module == "numpy":
        return getattr(np, name)
    submodule = module.rsplit(".", 1)[1]
    try:
        core = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        core = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(core, name)


NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}
BUILTIN_GLOBALS = {"set", "frozenset", "complex"}
MAX_BATCH_FILE = 512 << 20  # CIFAR-100's training batch is 150 MB


def _bytearray(source: object = b"", *rest: object) -> bytearray:
    """`bytearray` as pickles rebuild one (from bytes or a latin-1 string), never from a size to allocate."""
    if not isinstance(source, bytes | str):
        raise pickle.UnpicklingError(f"bytearray({type(source).__name__}) refused: expected bytes or a string")
    return bytearray(source, *rest) if isinstance(source, str) else bytearray(source)


class CifarUnpickler(pickle.Unpickler):
    """Rebuilds only what the published CIFAR python format holds: dicts, lists, str, bytes, numbers and
    numpy arrays. Any other global (a class, a function such as `os.system`) is refused, so a hostile
    batch file runs no code."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in NUMPY_GLOBALS:
            return _numpy_global(module, name)
        if module in ("builtins", "__builtin__") and name in BUILTIN_GLOBALS:
            return getattr(builtins, name)
        if module in ("builtins", "__builtin__") and name == "bytearray":
            return _bytearray
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"refused global {module}.{name}: CIFAR batches hold only data and numpy arrays")


def _unpickle(path: Path) -> dict:
    """A CIFAR batch, read with `CifarUnpickler` (never plain `pickle.load`): a dict or a one-line HwnasError."""
    try:
        size = path.stat().st_size
        if size > MAX_BATCH_FILE:
            raise HwnasError(f"{path}: {size:,} bytes, expected a CIFAR batch of at most {MAX_BATCH_FILE:,}")
        # from memory: a length the pickle declares beyond its own bytes cannot make the reader allocate it
        data = CifarUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except HwnasError:
        raise
    except OSError as exc:
        raise HwnasError(f"{path}: cannot read ({exc.strerror or _first_line(exc)})") from None
    except Exception as exc:  # a refused global, or any malformed pickle: IndexError, KeyError, struct.error, ...
        raise HwnasError(f"{path}: not a CIFAR python-pickle batch ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise HwnasError(f"{path}: not a CIFAR python-pickle batch (holds a {type(data).__name__}, expected a dict)")
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _class_names(path: Path, key: bytes) -> list[str]:
    """The class names a CIFAR meta file lists under `key` (bytes or str each)."""
    names = _unpickle(path).get(key)
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise HwnasError(f"{path}: expected {key.decode()!r}, a list of class names, in the CIFAR meta file")
    try:
        return [n.decode() if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError:
        raise HwnasError(f"{path}: class names in {key.decode()!r} are not UTF-8 text") from None


def _cifar(root: Path, hundred: bool) -> DataPools:
    sub = "cifar-100-python" if hundred else "cifar-10-batches-py"
    train_names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    meta_name = "meta" if hundred else "batches.meta"
    if (root / sub).is_dir():
        root = root / sub
    expected = ", ".join([*train_names, "test" if hundred else "test_batch", meta_name])
    missing = [n for n in [*train_names, meta_name] if not (root / n).is_file()]
    if missing:
        raise HwnasError(
            f"{root}: not a CIFAR-{100 if hundred else 10} python directory; expected files {expected} "
            f"(missing {missing[0]})"
        )
    label_key = b"fine_labels" if hundred else b"labels"

    def load(names: list[str]) -> ImageSet:
        batches = [_unpickle(root / n) for n in names]
        try:
            data = torch.cat([torch.as_tensor(b[b"data"]).reshape(-1, 3, 32, 32) for b in batches])
            labels = torch.cat([torch.as_tensor(b[label_key]) for b in batches]).long()
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise HwnasError(
                f"{root}: batch files lack {label_key.decode()!r}/'data' of shape N x 3072 ({_first_line(exc)})"
            ) from None
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(classes):
            raise HwnasError(f"{root}: batch labels outside 0..{len(classes) - 1}, the classes {meta_name} names")
        return ImageSet(TensorSource(data.to(torch.uint8)), labels)

    classes = _class_names(root / meta_name, b"fine_label_names" if hundred else b"label_names")
    test_name = "test" if hundred else "test_batch"
    test = load([test_name]) if (root / test_name).is_file() else None
    stats = (
        ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
        if hundred
        else ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    )
    return DataPools(load(train_names), test, classes, *stats)


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _file_set(paths: list[Path], labels: list[int], size: tuple[int, int], channels: int) -> ImageSet:
    return ImageSet(FileSource(paths, size, channels), torch.tensor(labels, dtype=torch.long))


def _tree(root: Path, classes: list[str], size: tuple[int, int], channels: int) -> ImageSet:
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = _images_in(root / name) if (root / name).is_dir() else []
        paths += found
        labels += [label] * len(found)
    return _file_set(paths, labels, size, channels)


def _folder(root: Path, size: tuple[int, int], channels: int) -> DataPools:
    layout = "one sub-folder of images per class, or train/ and val/ (or test/) holding such sub-folders"
    train_root = root / "train" if (root / "train").is_dir() else root
    test_root = next((root / n for n in ("val", "test") if (root / n).is_dir() and train_root != root), None)
    classes = [p.name for p in _class_folders(train_root)]
    if not classes:
        raise HwnasError(f"{root}: no class folders found; expected {layout}")
    train = _tree(train_root, classes, size, channels)
    if len(train) == 0:
        raise HwnasError(
            f"{train_root}: class folders hold no images ({', '.join(sorted(IMAGE_SUFFIXES))}); expected {layout}"
        )
    unknown = sorted({p.name for p in _class_folders(test_root)} - set(classes)) if test_root else []
    if unknown:
        raise HwnasError(
            f"{test_root}: class folder(s) {', '.join(unknown[:5])} are not among the training classes of "
            f"{train_root}; expected the validation classes to be training classes"
        )
    test = _tree(test_root, classes, size, channels) if test_root else None
    return DataPools(train, test, classes, *IMAGENET_STATS)


def _tiny_imagenet(root: Path, size: tuple[int, int], channels: int) -> DataPools:
    layout = "train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt"
    if (root / "tiny-imagenet-200").is_dir():
        root = root / "tiny-imagenet-200"
    annotations = root / "val" / "val_annotations.txt"
    if not (root / "train").is_dir() or not annotations.is_file():
        raise HwnasError(f"{root}: not a tiny-imagenet-200 directory; expected {layout}")
    classes = [p.name for p in _class_folders(root / "train")]
    index = {name: i for i, name in enumerate(classes)}
    train = _tree(root / "train", classes, size, channels)
    paths, labels = [], []
    for n, line in enumerate(annotations.read_text().splitlines(), 1):
        cols = line.split("\t")
        if not line.strip():
            continue
        if len(cols) < 2 or cols[1] not in index:
            raise HwnasError(f"{annotations}:{n}: expected 'FILE<TAB>WNID...' with a WNID of train/, got {line!r}")
        paths.append(root / "val" / "images" / cols[0])
        labels.append(index[cols[1]])
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise HwnasError(f"{missing[0]}: listed in {annotations} but missing")
    return DataPools(train, _file_set(paths, labels, size, channels), classes, *IMAGENET_STATS)


def _select_classes(pools: DataPools, classes: str | None) -> DataPools:
    """Keep a class subset (the first N, or the names listed in a file) and renumber labels 0..k-1."""
    if classes is None:
        return pools
    if classes.isdigit():
        n = int(classes)
        if not 1 <= n <= len(pools.classes):
            raise HwnasError(f"--classes {classes}: expected a number in 1..{len(pools.classes)} or a file of names")
        keep = pools.classes[:n]  # folder trees list classes sorted by name; CIFAR and digits by label
    else:
        path = Path(classes)
        if not path.is_file():
            raise HwnasError(f"--classes {classes}: neither a number nor a file listing class names")
        keep = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        unknown = [c for c in keep if c not in pools.classes]
        if unknown:
            raise HwnasError(f"--classes {classes}: class {unknown[0]!r} is not in the dataset")
    old = torch.tensor([pools.classes.index(c) for c in keep])
    remap = torch.full((len(pools.classes),), -1, dtype=torch.long)
    remap[old] = torch.arange(len(keep))

    def narrow(pool: ImageSet | None) -> ImageSet | None:
        if pool is None:
            return None
        new_labels = remap[pool.labels]
        kept = torch.nonzero(new_labels[pool.index] >= 0).flatten()
        return ImageSet(pool.source, new_labels, pool.index[kept])

    return DataPools(
        narrow(pools.train), narrow(pools.test), keep, pools.mean, pools.std, mirror_safe=pools.mirror_safe
    )


def open_dataset(spec: str, image_shape: tuple[int, int, int], classes: str | None = None, seed: int = 0) -> DataPools:
    """Open a dataset by spec; file-backed images are decoded at `image_shape`'s size.

    Every image of a file-backed set (folder:, tiny-imagenet:) is checked when it is opened (see
    `imageset._check_image`): one that is empty, truncated or not an image refuses the whole set with
    one HwnasError line naming the first bad file and the count, before a run writes anything. Nothing
    is skipped silently. A file that still fails to decode later stops the run with one line naming it."""
    name, _, path = spec.partition(":")
    channels, h, w = image_shape
    if name == "digits" and not path:
        pools = _digits()
    elif name == "fonts" and not path:
        pools = _fonts()
    elif name == "synthetic" and not path:
        num = int(classes) if classes and classes.isdigit() else 10
        return _synthetic(image_shape, num, seed)
    elif name in ("cifar10", "cifar100", "folder", "tiny-imagenet") and path:
        root = Path(path)
        if not root.is_dir():
            raise HwnasError(f"--data {spec}: {root} is not a directory")
        if name == "folder":
            pools = _folder(root, (h, w), channels)
        elif name == "tiny-imagenet":
            pools = _tiny_imagenet(root, (h, w), channels)
        else:
            pools = _cifar(root, hundred=name == "cifar100")
    else:
        raise HwnasError(f"--data {spec!r}: unknown dataset; expected one of {FORMATS}")
    pools = _select_classes(pools, classes)
    _refuse_channel_mismatch(pools, spec, channels)
    _refuse_unreadable(pools, spec)
    return pools


def _refuse_channel_mismatch(pools: DataPools, spec: str, channels: int) -> None:
    """Refuse decoded images whose channels the network cannot take (1-channel images are repeated)."""
    source = pools.train.source
    if isinstance(source, TensorSource) and source.images.shape[1] not in (1, channels):
        have = source.images.shape[1]
        raise HwnasError(
            f"--data {spec}: its images have {have} channels, the network expects {channels}; "
            f"use --input {have}x{'x'.join(map(str, source.images.shape[2:]))} (or an architecture with "
            f"{have} input channels)"
        )


def _refuse_unreadable(pools: DataPools, spec: str) -> None:
    """Refuse (before any run writes a file) a file-backed dataset holding images that do not decode."""
    paths = [
        pool.source.paths[int(i)]
        for pool in (pools.train, pools.test)
        if pool is not None and isinstance(pool.source, FileSource)
        for i in pool.index
    ]
    bad = unreadable_images(paths)
    if bad:
        first, reason = bad[0]
        raise HwnasError(
            f"--data {spec}: {len(bad)} of {len(paths)} images cannot be read, first {first} ({reason}); "
            "remove or replace them"
        )
