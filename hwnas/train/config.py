"""`TrainConfig`: every option of a training run, once, as a flag and as a YAML key.

Precedence: defaults < `--config FILE.yaml` < flags given on the command line. The fully
resolved config is written to the run directory as `config.yaml`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..choices import HEADS
from ..errors import HwnasError
from ..spaces.limits import MAX_CHANNELS, MAX_INPUT_CHANNELS, MAX_INPUT_SIDE, input_size_problem
from ..spaces.readers import load_yaml

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("cosine", "step", "exponential", "constant")
AMP_MODES = ("off", "bf16", "fp16")
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536


def input_text_ok(text: str) -> bool:
    """Whether `text` is CxHxW with positive integers within the input bounds of `spaces.limits`."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and len(p) < 10 and int(p) > 0 for p in parts):
        return False
    return input_size_problem([int(p) for p in parts]) is None


def option(help: str, **kw: Any) -> Any:
    """A dataclass field of a config: its help, default, and optional `check`, `expected`, `choices`, `aliases`."""
    default = kw.pop("default")
    return field(default=default, metadata={"help": help, **kw})


def integer_in(low: int, high: int) -> dict[str, Any]:
    """An option's `check` and `expected` for an integer in low..high (both included)."""
    return {"check": lambda v: low <= v <= high, "expected": f"an integer in {low}..{high}"}


@dataclass
class TrainConfig:
    """Options of `hwnas train` (and the base of every search run's config)."""

    data: str = option(
        "dataset: digits, synthetic, cifar10:DIR, cifar100:DIR, folder:DIR, tiny-imagenet:DIR", default="digits"
    )
    input: str | None = option(
        "image size CxHxW fed to the network (default: the architecture's)",
        default=None,
        check=input_text_ok,
        expected=f"CxHxW with positive integers, e.g. 3x32x32 (channels at most {MAX_INPUT_CHANNELS}, "
        f"sides at most {MAX_INPUT_SIDE})",
    )
    classes: str | None = option(
        "class subset: N (first N classes in sorted order) or a file listing class names", default=None
    )
    val_split: float = option(
        "fraction of the training pool held out for validation when the dataset has no test pool",
        default=0.1,
        check=lambda v: 0 < v < 1,
        expected="a number in (0, 1)",
    )
    init_channels: int | None = option(
        "cell spaces: initial channels of the network (default: the architecture's; DARTS evaluates at 36)",
        default=None,
        check=lambda v: 2 <= v <= MAX_CHANNELS // 4,
        expected=f"an integer in 2..{MAX_CHANNELS // 4}",
    )
    layers: int | None = option(
        "cell spaces: number of cells (default: the architecture's; DARTS evaluates with 20)",
        default=None,
        check=lambda v: 3 <= v <= 1000,
        expected="an integer in 3..1000 (reduction cells sit at 1/3 and 2/3 of the depth)",
    )
    auxiliary: bool | None = option(
        "cell spaces: add (--auxiliary) or drop (--no-auxiliary) the auxiliary head on the second reduction cell "
        "(default: as the architecture file says)",
        default=None,
    )
    auxiliary_weight: float = option(
        "weight of the auxiliary head's loss (networks with one)",
        default=0.4,
        check=lambda v: v >= 0,
        expected="a number >= 0",
    )
    drop_path_prob: float = option(
        "drop-path probability of the last epoch, rising linearly from 0 (networks with drop-path; DARTS 0.2)",
        default=0.0,
        check=lambda v: 0 <= v < 1,
        expected="a number in [0, 1)",
    )
    head: str = option(
        "classification head: softmax (linear classifier, cross-entropy), am_softmax or arcface (cosine "
        "classifier with a margin on the true class; the MXNet FBNet code's --model-type)",
        default="softmax",
        choices=HEADS,
    )
    margin_scale: float | None = option(
        "s of the margin heads (default: 30 for am_softmax, 64 for arcface)",
        default=None,
        check=lambda v: v > 0,
        expected="a number > 0",
    )
    margin: float | None = option(
        "m of the margin heads (default: 0.35 for am_softmax, 0.5 for arcface)",
        default=None,
        check=lambda v: 0 <= v < 1.5,
        expected="a number in [0, 1.5)",
    )
    feature_dim: int | None = option(
        "layer-wise spaces: width of the last conv, the embedding size of face models (default: the space's; "
        "the MXNet FBNet code's --feature-dim)",
        default=None,
        **integer_in(1, MAX_CHANNELS),
    )
    epochs: int = option(
        "number of epochs", default=10, check=lambda v: 1 <= v <= MAX_EPOCHS, expected=f"an integer in 1..{MAX_EPOCHS}"
    )
    batch_size: int = option(
        "global batch size (split over DDP ranks)",
        default=64,
        **integer_in(1, MAX_BATCH),
    )
    optimizer: str = option("optimizer", default="sgd", choices=OPTIMIZERS)
    lr: float = option(
        "peak learning rate", default=0.05, check=lambda v: v > 0, expected="a number > 0", aliases=("--learning-rate",)
    )
    momentum: float = option(
        "momentum (sgd, rmsprop); beta1 for adam",
        default=0.9,
        check=lambda v: 0 <= v < 1,
        expected="a number in [0, 1)",
    )
    nesterov: bool = option("Nesterov momentum (sgd)", default=False)
    weight_decay: float = option("weight decay", default=5e-4, check=lambda v: v >= 0, expected="a number >= 0")
    no_decay_bn_bias: bool = option("exempt BatchNorm parameters and biases from weight decay", default=False)
    schedule: str = option("learning-rate schedule (per step)", default="cosine", choices=SCHEDULES)
    lr_min: float = option(
        "final learning rate of the cosine schedule",
        default=0.0,
        check=lambda v: v >= 0,
        expected="a number >= 0",
        aliases=("--learning-rate-min",),
    )
    warmup_epochs: float = option(
        "linear warm-up from 0 to --lr over this many epochs",
        default=0.0,
        check=lambda v: v >= 0,
        expected="a number >= 0",
    )
    step_epochs: float = option(
        "step schedule: multiply by --gamma every this many epochs",
        default=30.0,
        check=lambda v: v > 0,
        expected="a number > 0",
    )
    gamma: float = option(
        "decay factor of the step (per --step-epochs) and exponential (per epoch) schedules",
        default=0.97,
        check=lambda v: 0 < v <= 1,
        expected="a number in (0, 1]",
    )
    label_smoothing: float = option(
        "label smoothing", default=0.0, check=lambda v: 0 <= v < 1, expected="a number in [0, 1)"
    )
    grad_clip: float = option(
        "clip the gradient norm to this (0: off)", default=0.0, check=lambda v: v >= 0, expected="a number >= 0"
    )
    amp: str = option(
        "mixed precision: bf16 (CPU or CUDA), fp16 (CUDA, with loss scaling), off", default="off", choices=AMP_MODES
    )
    channels_last: bool = option("channels_last memory format for model and inputs", default=False)
    ema: float = option(
        "keep an exponential moving average of the weights with this decay (0: off); validation then uses it",
        default=0.0,
        check=lambda v: 0 <= v < 1,
        expected="a number in [0, 1)",
    )
    crop_padding: int = option(
        "random crop after zero-padding by this many pixels (0: off)",
        default=4,
        **integer_in(0, MAX_INPUT_SIDE),
    )
    flip: bool = option("random horizontal flip", default=True)
    cutout: bool = option("cutout (a zeroed square per image)", default=False)
    cutout_length: int = option(
        "side of the cutout square",
        default=16,
        **integer_in(1, MAX_INPUT_SIDE),
    )
    seed: int = option(
        "seed of data order, augmentation and initialisation",
        default=0,
        check=lambda v: 0 <= v < 2**32,
        expected="an integer in 0..4294967295",
    )
    device: str = option("auto (the GPU with the most free memory, else the CPU), cpu, cuda, cuda:N", default="auto")
    workers: int = option(
        "data-loading worker processes (image folders)",
        default=2,
        **integer_in(0, 256),
    )
    run_dir: str | None = option(
        "run directory (default: runs/<command>-<arch>-<time>)",
        default=None,
        check=lambda v: bool(v) and not (Path(v).exists() and not Path(v).is_dir()),
        expected="a directory path (not an existing file)",
    )
    checkpoint_every: int = option(
        "also checkpoint every this many steps inside an epoch (0: epoch ends only)",
        default=200,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    keep_checkpoints: int = option(
        "keep the last this many checkpoints (best.pt is kept apart)",
        default=3,
        **integer_in(1, 1000),
    )
    max_bad_steps: int = option(
        "stop after this many non-finite losses in a row (each such step is skipped)",
        default=5,
        check=lambda v: v >= 1,
        expected="an integer >= 1",
    )
    log_every: int = option(
        "write a training record to metrics.jsonl every this many steps",
        default=20,
        check=lambda v: v >= 1,
        expected="an integer >= 1",
    )
    progress: bool = option("progress bar (off by itself when output is not a terminal)", default=True)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return check_config(dataclasses.replace(self, **changes))


_TYPES = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "str | None": str,
    "bool | None": bool,
    "float | None": float,
    "int | None": int,
}


def keys(cls: type = TrainConfig) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(cls)}


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    name = f.name
    kind = _TYPES[str(f.type)]
    if value is None and "None" in str(f.type):
        return None
    ok = (
        isinstance(value, bool)
        if kind is bool
        else isinstance(value, int | float) and not isinstance(value, bool)
        if kind is float
        else isinstance(value, int) and not isinstance(value, bool)
        if kind is int
        else isinstance(value, str | int) and not isinstance(value, bool)
    )
    if not ok:
        raise HwnasError(f"{where}: {name}: got {value!r}, expected {_expected(f)}")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise HwnasError(f"{where}: {name}: got {value!r}, expected a finite number")
    return str(value) if kind is str else value


def _expected(f: dataclasses.Field) -> str:
    if "expected" in f.metadata:
        return f.metadata["expected"]
    if "choices" in f.metadata:
        return f"one of {', '.join(f.metadata['choices'])}"
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(str(f.type), "a string")


def check_config(cfg: Any, where: str = "config") -> Any:
    """Raise one HwnasError line for the first value that is out of range."""
    for name, f in keys(type(cfg)).items():
        value = _coerce(f, getattr(cfg, name), where)
        setattr(cfg, name, value)
        if value is None:
            continue
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise HwnasError(f"{where}: {name}: got {value!r}, expected {_expected(f)}")
        if "check" in f.metadata and not f.metadata["check"](value):
            raise HwnasError(f"{where}: {name}: got {value!r}, expected {_expected(f)}")
    return cfg


def read_yaml_config(path: str | os.PathLike[str], cls: type = TrainConfig) -> dict[str, Any]:
    """Read a config file's keys (dashes or underscores), rejecting keys that do not exist."""
    data = load_yaml(path, "config")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HwnasError(f"config {path}: expected a mapping of option names to values")
    out = {}
    known = keys(cls)
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise HwnasError(f"config {path}: unknown key {key!r}; expected one of {', '.join(known)}")
        out[name] = _coerce(known[name], value, f"config {path}")
    return out


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), cls: type = TrainConfig) -> None:
    """One flag per config key; flags not given stay absent from the parsed namespace."""
    parser.add_argument("--config", help="YAML file of options (keys as below, dashes or underscores)")
    group = parser.add_argument_group("options (also YAML keys)")
    for name, f in keys(cls).items():
        if name in skip:
            continue
        flags = ["--" + name.replace("_", "-"), *f.metadata.get("aliases", ())]
        kind = _TYPES[str(f.type)]
        common = {"dest": name, "default": argparse.SUPPRESS, "help": f"{f.metadata['help']} (default: {f.default})"}
        if kind is bool:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        else:
            group.add_argument(*flags, type=kind, metavar=name.upper(), **common)


def explicit_keys(args: argparse.Namespace, cls: type = TrainConfig) -> set[str]:
    """The options the user set, by flag or in --config."""
    given = {k for k in vars(args) if k in keys(cls)}
    if getattr(args, "config", None):
        given |= set(read_yaml_config(args.config, cls))
    return given


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None, cls: type = TrainConfig) -> Any:
    """Defaults, then `base` (e.g. a resumed run's config), then --config, then the flags given."""
    known = keys(cls)
    values: dict[str, Any] = {k: v for k, v in (base or {}).items() if k in known}
    if getattr(args, "config", None):
        values.update(read_yaml_config(args.config, cls))
    values.update({k: v for k, v in vars(args).items() if k in known})
    return check_config(cls(**values), "options")
