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
from typing import Any, ClassVar

from ..choices import HEADS
from ..errors import HwnasError
from ..limits import MAX_CHANNELS, MAX_INPUT_CHANNELS, MAX_INPUT_SIDE, input_size_problem
from ..readers import load_yaml

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("cosine", "step", "exponential", "constant")
AMP_MODES = ("off", "bf16", "fp16")
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_THREADS = 1024


@dataclass(frozen=True)
class OptionGroup:
    """Options shown together under one title in --help (each config class lists its groups in help order)."""

    title: str

    def option(self, help: str, default: Any, **kw: Any) -> Any:
        """A dataclass field of a config: its help, default, and optional `check`, `expected`, `choices`,
        `aliases`. A help that says `default: ...` in its own words is shown as it is; others get the value."""
        return field(default=default, metadata={"help": help, "group": self.title, **kw})


NETWORK = OptionGroup("network")
TRAINING = OptionGroup("training")
DATA = OptionGroup("data")
RUN = OptionGroup("run")


def input_size_of(text: str) -> list[int] | None:
    """`CxHxW` as three positive integers, or None when `text` is not written so (bounds are not checked)."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and len(p) < 10 and int(p) > 0 for p in parts):
        return None
    return [int(p) for p in parts]


def input_text_ok(text: str) -> bool:
    """Whether `text` is CxHxW with positive integers within the input bounds of `spaces.limits`."""
    size = input_size_of(text)
    return size is not None and input_size_problem(size) is None


def redeclared(cls: type, name: str, default: Any, help: str | None = None, group: OptionGroup | None = None) -> Any:
    """The option `name` of `cls` with another default (and help, group): its checks stay the same."""
    metadata = dict(keys(cls)[name].metadata)
    if help is not None:
        metadata["help"] = help
    if group is not None:
        metadata["group"] = group.title
    return field(default=default, metadata=metadata)


def integer_in(low: int, high: int, why: str = "") -> dict[str, Any]:
    """An option's `check` and `expected` for an integer in low..high (both included); `why` explains the range."""
    expected = f"an integer in {low}..{high}" + (f" ({why})" if why else "")
    return {"check": lambda v: low <= v <= high, "expected": expected}


def at_least(low: int) -> dict[str, Any]:
    """An option's `check` and `expected` for an integer >= low."""
    return {"check": lambda v: v >= low, "expected": f"an integer >= {low}"}


def positive() -> dict[str, Any]:
    """An option's `check` and `expected` for a number > 0."""
    return {"check": lambda v: v > 0, "expected": "a number > 0"}


def non_negative() -> dict[str, Any]:
    """An option's `check` and `expected` for a number >= 0."""
    return {"check": lambda v: v >= 0, "expected": "a number >= 0"}


def number_in(interval: str) -> dict[str, Any]:
    """An option's `check` and `expected` for a number in an interval written as in maths: "[0, 1)", "(0, 1]"."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    closed_low, closed_high = interval[0] == "[", interval[-1] == "]"

    def check(v: float) -> bool:
        return (low <= v if closed_low else low < v) and (v <= high if closed_high else v < high)

    return {"check": check, "expected": f"a number in {interval}"}


@dataclass
class TrainConfig:
    """Options of `hwnas train` (and the base of every search run's config)."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = (NETWORK, TRAINING, DATA, RUN)

    data: str = DATA.option(
        "dataset: digits, fonts, synthetic, cifar10:DIR, cifar100:DIR, folder:DIR, tiny-imagenet:DIR", "digits"
    )
    input: str | None = DATA.option(
        "image size CxHxW fed to the network (default: the architecture's)",
        None,
        check=input_text_ok,
        expected=f"CxHxW with positive integers, e.g. 3x32x32 (channels at most {MAX_INPUT_CHANNELS}, "
        f"sides at most {MAX_INPUT_SIDE})",
    )
    classes: str | None = DATA.option(
        "class subset: N (first N classes in sorted order) or a file listing class names (default: all classes)", None
    )
    val_split: float = DATA.option(
        "fraction of the training pool held out for validation when the dataset has no test pool",
        0.1,
        **number_in("(0, 1)"),
    )
    init_channels: int | None = NETWORK.option(
        "cell spaces: initial channels of the network (default: the architecture's; DARTS evaluates at 36)",
        None,
        **integer_in(2, MAX_CHANNELS // 4),
    )
    layers: int | None = NETWORK.option(
        "cell spaces: number of cells (default: the architecture's; DARTS evaluates with 20)",
        None,
        **integer_in(3, 1000, why="reduction cells sit at 1/3 and 2/3 of the depth"),
    )
    auxiliary: bool | None = NETWORK.option(
        "cell spaces: add (--auxiliary) or drop (--no-auxiliary) the auxiliary head on the second reduction cell "
        "(default: as the architecture file says)",
        None,
    )
    auxiliary_weight: float = NETWORK.option(
        "weight of the auxiliary head's loss (networks with one)", 0.4, **non_negative()
    )
    drop_path_prob: float = NETWORK.option(
        "drop-path probability of the last epoch, rising linearly from 0 (networks with drop-path; DARTS 0.2)",
        0.0,
        **number_in("[0, 1)"),
    )
    head: str = NETWORK.option(
        "classification head: softmax (linear classifier, cross-entropy), am_softmax or arcface (cosine "
        "classifier with a margin on the true class; the MXNet FBNet code's --model-type)",
        "softmax",
        choices=HEADS,
    )
    margin_scale: float | None = NETWORK.option(
        "s of the margin heads (default: 30 for am_softmax, 64 for arcface)", None, **positive()
    )
    margin: float | None = NETWORK.option(
        "m of the margin heads (default: 0.35 for am_softmax, 0.5 for arcface)", None, **number_in("[0, 1.5)")
    )
    feature_dim: int | None = NETWORK.option(
        "layer-wise spaces: width of the last conv, the embedding size of face models (default: the space's; "
        "the MXNet FBNet code's --feature-dim)",
        None,
        **integer_in(1, MAX_CHANNELS),
    )
    epochs: int = TRAINING.option("number of epochs", 10, **integer_in(1, MAX_EPOCHS))
    batch_size: int = TRAINING.option("global batch size (split over DDP ranks)", 64, **integer_in(1, MAX_BATCH))
    optimizer: str = TRAINING.option("optimizer", "sgd", choices=OPTIMIZERS)
    lr: float = TRAINING.option("peak learning rate", 0.05, aliases=("--learning-rate",), **positive())
    momentum: float = TRAINING.option("momentum (sgd, rmsprop); beta1 for adam", 0.9, **number_in("[0, 1)"))
    nesterov: bool = TRAINING.option("Nesterov momentum (sgd)", False)
    weight_decay: float = TRAINING.option("weight decay", 5e-4, **non_negative())
    no_decay_bn_bias: bool = TRAINING.option("exempt BatchNorm parameters and biases from weight decay", False)
    schedule: str = TRAINING.option("learning-rate schedule (per step)", "cosine", choices=SCHEDULES)
    lr_min: float = TRAINING.option(
        "final learning rate of the cosine schedule", 0.0, aliases=("--learning-rate-min",), **non_negative()
    )
    warmup_epochs: float = TRAINING.option("linear warm-up from 0 to --lr over this many epochs", 0.0, **non_negative())
    step_epochs: float = TRAINING.option(
        "step schedule: multiply by --gamma every this many epochs", 30.0, **positive()
    )
    gamma: float = TRAINING.option(
        "decay factor of the step (per --step-epochs) and exponential (per epoch) schedules",
        0.97,
        **number_in("(0, 1]"),
    )
    label_smoothing: float = TRAINING.option("label smoothing", 0.0, **number_in("[0, 1)"))
    grad_clip: float = TRAINING.option("clip the gradient norm to this (0: off)", 0.0, **non_negative())
    amp: str = TRAINING.option(
        "mixed precision: bf16 (CPU or CUDA), fp16 (CUDA, with loss scaling), off", "off", choices=AMP_MODES
    )
    channels_last: bool | None = TRAINING.option(
        "channels_last model and inputs (default: on the CPU in one process, where every step kind measured "
        "faster; off on CUDA and under torchrun, not measured there)",
        None,
    )
    ema: float = TRAINING.option(
        "keep an exponential moving average of the weights with this decay (0: off); validation then uses it",
        0.0,
        **number_in("[0, 1)"),
    )
    crop_padding: int = DATA.option(
        "random crop after zero-padding by this many pixels (0: off)", 4, **integer_in(0, MAX_INPUT_SIDE)
    )
    flip: bool | None = DATA.option(
        "random horizontal flip (default: on, but off for digits and fonts, whose mirror images are other classes)",
        None,
    )
    cutout: bool = DATA.option("cutout (a zeroed square per image)", False)
    cutout_length: int = DATA.option("side of the cutout square", 16, **integer_in(1, MAX_INPUT_SIDE))
    seed: int = TRAINING.option("seed of data order, augmentation and initialisation", 0, **integer_in(0, 2**32 - 1))
    device: str = RUN.option("auto (the GPU with the most free memory, else the CPU), cpu, cuda, cuda:N", "auto")
    threads: int | None = RUN.option(
        "CPU threads of PyTorch's operators (torch.set_num_threads; default: PyTorch's own choice); "
        "may change on --resume",
        None,
        **integer_in(1, MAX_THREADS),
    )
    workers: int = DATA.option("data-loading worker processes (image folders)", 2, **integer_in(0, 256))
    run_dir: str | None = RUN.option(
        "run directory (default: runs/<command>-<arch>-<time>)",
        None,
        check=lambda v: bool(v) and not (Path(v).exists() and not Path(v).is_dir()),
        expected="a directory path (not an existing file)",
    )
    checkpoint_every: int = RUN.option(
        "also checkpoint every this many steps inside an epoch (0: epoch ends only)", 200, **at_least(0)
    )
    keep_checkpoints: int = RUN.option(
        "keep the last this many checkpoints (best.pt is kept apart)", 3, **integer_in(1, 1000)
    )
    max_bad_steps: int = RUN.option(
        "stop after this many non-finite losses in a row (each such step is skipped)", 5, **at_least(1)
    )
    log_every: int = RUN.option("write a training record to metrics.jsonl every this many steps", 20, **at_least(1))
    progress: bool = RUN.option("progress bar (off by itself when output is not a terminal)", True)

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
    "Limits | None": float,  # one value, or several (sorted, distinct): one network per limit (strategies.config)
}


def takes_several(f: dataclasses.Field) -> bool:
    """Whether an option takes several values (`Limits | None`: a list of floats, or one)."""
    return type_name(f) == "Limits | None"


def type_name(f: dataclasses.Field) -> str:
    """An option's type as written (`int | None`), whether its class was annotated with strings or with types."""
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def keys(cls: type = TrainConfig) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(cls)}


def _coerce_several(f: dataclasses.Field, value: Any, where: str) -> Any:
    """A list for an option that takes several values: each value coerced; one value alone, several sorted
    ascending; duplicates refused."""
    values = [_coerce(f, v, where) for v in value]
    if not values or None in values:
        raise HwnasError(f"{where}: {f.name}: got {value!r}, expected {_expected(f)} (one value or several)")
    values.sort()
    if len(set(values)) < len(values):
        raise HwnasError(f"{where}: {f.name}: got {value!r}, expected distinct values (one network per value)")
    return values[0] if len(values) == 1 else values


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    name = f.name
    if isinstance(value, list | tuple) and takes_several(f):
        return _coerce_several(f, value, where)
    kind = _TYPES[type_name(f)]
    if value is None and "None" in type_name(f):
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
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(type_name(f), "a string")


def check_config(cfg: Any, where: str = "config") -> Any:
    """Raise one HwnasError line for the first value that is out of range."""
    for name, f in keys(type(cfg)).items():
        value = _coerce(f, getattr(cfg, name), where)
        setattr(cfg, name, value)
        if value is None:
            continue
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise HwnasError(f"{where}: {name}: got {value!r}, expected {_expected(f)}")
        if "check" in f.metadata and not all(map(f.metadata["check"], value if isinstance(value, list) else [value])):
            raise HwnasError(f"{where}: {name}: got {value!r}, expected {_expected(f)}")
    together = getattr(cfg, "check_together", None)
    if callable(together):
        together(where)
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


def flag_help(f: dataclasses.Field) -> str:
    """An option's help with its default said once: in the help's own words when it has them, else appended."""
    text = f.metadata["help"]
    if "default: " not in text:
        shown = {True: "on", False: "off"}.get(f.default, f.default) if type_name(f) == "bool" else f.default
        text += f" (default: {shown})"
    return text.replace("%", "%%")  # argparse formats help texts with %


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), cls: type = TrainConfig) -> None:
    """One flag per config key, in argparse groups shown in `cls.HELP_GROUPS` order; flags not given stay absent
    from the parsed namespace."""
    parser.add_argument(
        "--config", metavar="FILE", help="YAML file of options (keys as the flags below, dashes or underscores)"
    )
    groups = {group.title: parser.add_argument_group(f"{group.title} options") for group in cls.HELP_GROUPS}
    for name, f in keys(cls).items():
        if name in skip:
            continue
        flags = ["--" + name.replace("_", "-"), *f.metadata.get("aliases", ())]
        kind = _TYPES[type_name(f)]
        common = {"dest": name, "default": argparse.SUPPRESS, "help": flag_help(f)}
        group = groups[f.metadata["group"]]
        if kind is bool:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        else:
            several = {"nargs": "+"} if takes_several(f) else {}
            group.add_argument(*flags, type=kind, metavar=name.upper(), **several, **common)


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
