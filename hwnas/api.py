"""The Python entry points: `search`, `train_supernet`, `train`, `evaluate`, with options as keywords.

Each takes the options of its command by their YAML names (`epochs=4`, `strategy="evolution"`,
`max_latency=2.0`, ...; `hwnas search --help` lists them), returns an `Outcome` (or figures), and
raises `HwnasError` with the same one-line message the command line prints. `data` is a `--data`
spec, `DataPools`, or any `torch.utils.data.Dataset`/`DataLoader` of (image, label) items
(`val_data`: its validation counterpart). `latency_model` prices layers by a function of yours
instead of measuring a table (see `hwnas.cost.models`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .arch import Architecture
from .data import DataPools, pools_from_datasets
from .engine.config import TrainConfig, check_config
from .errors import HwnasError
from .pipeline import Outcome
from .spaces import load_space
from .strategies.config import SupernetConfig, space_search_defaults
from .strategies.run import config_class
from .strategies.run import search as run_search
from .strategies.run import train_supernet as run_train_supernet
from .training import evaluate as run_evaluate
from .training import train as run_train


def make_config(cls: type, options: dict[str, Any], where: str) -> Any:
    """`cls(**options)`, every value checked; an unknown name is one line listing the known ones."""
    known = [f.name for f in fields(cls)]
    for name in options:
        if name not in known:
            raise HwnasError(f"{where}: unknown option {name!r}; expected one of {', '.join(known)}")
    return check_config(cls(**options), where)


def data_options(data: Any, val_data: Any, options: dict[str, Any]) -> tuple[dict[str, Any], DataPools | None]:
    """A `--data` spec goes into the options; anything else becomes the run's `DataPools`."""
    if isinstance(data, str):
        if val_data is not None:
            raise HwnasError("val_data goes with a Dataset or DataLoader as data; a --data spec brings its own split")
        return {**options, "data": data}, None
    pools = data if isinstance(data, DataPools) else pools_from_datasets(data, val_data)
    return {**options, "data": f"python:{type(data).__name__}"}, pools


def search(
    space: str | None = None,
    *,
    data: Any = "digits",
    val_data: Any = None,
    resume: str | None = None,
    latency_model: Any = None,
    **options: Any,
) -> Outcome:
    """Search `space` (a built-in name or YAML path): DNAS, or random/evolution/pareto over a trained
    supernet (`strategy=..., supernet=RUN_DIR`) on layer-wise spaces; DARTS on cell spaces. Returns the
    run's `Outcome` (`arch_path`: the architecture file). `resume`: continue that run directory."""
    if space is None and resume is None:
        raise HwnasError("search: give a space (built-in name or YAML path), or resume=RUN_DIR")
    cls = config_class(space=space, resume=resume)
    defaults = {} if resume is not None or space is None else space_search_defaults(load_space(space), cls)
    given, pools = data_options(data, val_data, {**options, **({"space": space} if space else {})})
    cfg = make_config(cls, {**defaults, **given}, "search")
    return run_search(cfg, resume=resume, explicit=set(given), pools=pools, latency_model=latency_model)


def train_supernet(
    space: str | None = None, sampling: str | None = None, *, data: Any = "digits", resume: str | None = None, **kw: Any
) -> Outcome:
    """Train a single-path one-shot supernet of `space` with `sampling` "uniform" (SPOS, the default) or "fair"
    (FairNAS); its run directory (`Outcome.run_dir`) is what `search(..., supernet=...)` takes. Keywords as
    for `search` (`val_data`, `latency_model`, options)."""
    if space is None and resume is None:
        raise HwnasError("train_supernet: give a space (built-in name or YAML path), or resume=RUN_DIR")
    latency_model, val_data = kw.pop("latency_model", None), kw.pop("val_data", None)
    named = {"space": space, "sampling": sampling}
    given, pools = data_options(data, val_data, {**kw, **{k: v for k, v in named.items() if v is not None}})
    cfg = make_config(SupernetConfig, given, "train_supernet")
    return run_train_supernet(cfg, resume=resume, explicit=set(given), pools=pools, latency_model=latency_model)


def train(
    arch: Architecture | str | None = None,
    *,
    data: Any = "digits",
    val_data: Any = None,
    resume: str | None = None,
    **options: Any,
) -> Outcome:
    """Train `arch` (an `Architecture`, an architecture file or a zoo name) from scratch; `Outcome.final`
    holds the validation figures of the weights it ships (`run_dir/model.pt`)."""
    given, pools = data_options(data, val_data, options)
    cfg = make_config(TrainConfig, given, "train")
    return run_train(arch, cfg, resume=resume, explicit=set(given), pools=pools)


def evaluate(
    arch: Architecture | str, weights: str, *, data: Any = "digits", val_data: Any = None, **options: Any
) -> dict[str, float]:
    """Top-1/top-5 and loss of `weights` on the validation split the options select; writes nothing
    unless `run_dir=` is given."""
    given, pools = data_options(data, val_data, options)
    return run_evaluate(arch, weights, make_config(TrainConfig, given, "evaluate"), pools=pools)
