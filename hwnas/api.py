"""The Python entry points: `search`, `train_supernet`, `train`, `evaluate`, with options as keywords.

Each takes the options of its command by their YAML names (`epochs=4`, `strategy="evolution"`,
`max_latency=2.0`, ...; `hwnas search --help` lists them), returns an `Outcome` (or figures), and
raises `HwnasError` with the same one-line message the command line prints. `data` is a `--data`
spec, `DataPools`, or any `torch.utils.data.Dataset`/`DataLoader` of (image, label) items
(`val_data`: its validation counterpart). `latency_model` prices layers by a function of yours
instead of measuring a table (see `hwnas.cost.models`). The options are also accepted as one typed object
(`config=hwnas.TrainConfig(epochs=3)`), and `help()`/`inspect.signature` list them all (`hwnas.signature`).
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

from .arch import Architecture
from .data import DataPools, pools_from_datasets
from .engine.config import TrainConfig, check_config
from .errors import HwnasError
from .pipeline import Outcome
from .signature import passed, with_options
from .spaces import load_space
from .standalone import evaluate as run_evaluate
from .standalone import train as run_train
from .strategies.config import SearchOptions, SupernetConfig
from .strategies.registry import refuse_foreign, registered
from .strategies.run import chosen_strategy, search_defaults
from .strategies.run import search as run_search
from .strategies.run import train_supernet as run_train_supernet


def make_config(cls: type, options: dict[str, Any], where: str) -> Any:
    """`cls(**options)`, every value checked; an unknown name is one line listing the known ones."""
    known = [f.name for f in fields(cls)]
    for name in options:
        if name not in known:
            raise HwnasError(f"{where}: unknown option {name!r}; expected one of {', '.join(known)}")
    return check_config(cls(**options), where)


def config_options(config: Any, cls: type, where: str) -> dict[str, Any]:
    """The options a typed options object sets: its fields that differ from `cls`'s defaults (None: none)."""
    if config is None:
        return {}
    if type(config) is not cls:
        raise HwnasError(f"{where}: config: got {type(config).__name__}, expected a {cls.__name__} (or keywords)")
    return {f.name: getattr(config, f.name) for f in fields(cls) if getattr(config, f.name) != f.default}


def data_options(data: Any, val_data: Any, options: dict[str, Any]) -> tuple[dict[str, Any], DataPools | None]:
    """A `--data` spec goes into the options; anything else becomes the run's `DataPools`; None leaves the
    options' `data` (by default digits)."""
    if data is None or isinstance(data, str):
        if val_data is not None:
            raise HwnasError("val_data goes with a Dataset or DataLoader as data; a --data spec brings its own split")
        return {**options, **({} if data is None else {"data": data})}, None
    if isinstance(data, DataPools) and val_data is not None:
        raise HwnasError("val_data goes with a Dataset or DataLoader as data; DataPools hold their own test pool")
    pools = data if isinstance(data, DataPools) else pools_from_datasets(data, val_data)
    return {**options, "data": f"python:{type(data).__name__}"}, pools


@with_options({s.name: s.options for s in registered("search")}, "hwnas search")
def search(
    space: str | None = None,
    strategy: str | None = None,
    *,
    data: Any = None,
    val_data: Any = None,
    resume: str | None = None,
    latency_model: Any = None,
    config: SearchOptions | None = None,
    **options: Any,
) -> Outcome:
    """Search `space` (a built-in name or YAML path) with a registered strategy (`strategy=`): DNAS (the default),
    or random/evolution/pareto over a trained supernet (`supernet=RUN_DIR`; one limit may take a list,
    `max_macs=[A, B, C]`, to ship one network per value) on layer-wise spaces; DARTS on cell spaces. Returns the
    run's `Outcome` (`arch_path`: the architecture file). `resume`: continue that run
    directory. `config`: the options as the strategy's options object (e.g. `EvolutionConfig`): the fields that
    differ from the class's defaults count as given, keywords win over them, and without `space` its `space` is
    searched. An option of another strategy is refused, naming the strategies that take it."""
    if space is None and resume is None and config is not None:
        space = config.space
    if space is None and resume is None:
        raise HwnasError("search: give a space (built-in name or YAML path), or resume=RUN_DIR")
    chosen = chosen_strategy("search", space, resume, strategy or getattr(config, "strategy", None))
    cls = chosen.options
    options = {**config_options(config, cls, f"search {space or resume}"), **passed(options)}
    if strategy is not None:
        options["strategy"] = strategy
    refuse_foreign(chosen, options, flags=False)
    defaults = {} if resume is not None or space is None else search_defaults(load_space(space), chosen)
    given, pools = data_options(data, val_data, {**options, **({"space": space} if space else {})})
    cfg = make_config(cls, {**defaults, **given}, "search")
    return run_search(cfg, resume=resume, explicit=set(given), pools=pools, latency_model=latency_model)


@with_options({"supernet": SupernetConfig}, "hwnas supernet train")
def train_supernet(
    space: str | None = None,
    sampling: str | None = None,
    *,
    data: Any = None,
    val_data: Any = None,
    resume: str | None = None,
    latency_model: Any = None,
    config: SupernetConfig | None = None,
    **options: Any,
) -> Outcome:
    """Train a single-path one-shot supernet of `space` with `sampling` "uniform" (SPOS, the default) or "fair"
    (FairNAS); its run directory (`Outcome.run_dir`) is what `search(..., supernet=...)` takes. Keywords as
    for `search` (`config`: a `SupernetConfig`)."""
    if space is None and resume is None and config is not None:
        space = config.space
    if space is None and resume is None:
        raise HwnasError("train_supernet: give a space (built-in name or YAML path), or resume=RUN_DIR")
    named = {"space": space, "sampling": sampling}
    options = {**config_options(config, SupernetConfig, "train_supernet"), **options}
    given, pools = data_options(data, val_data, {**options, **{k: v for k, v in named.items() if v is not None}})
    cfg = make_config(SupernetConfig, given, "train_supernet")
    return run_train_supernet(cfg, resume=resume, explicit=set(given), pools=pools, latency_model=latency_model)


@with_options({"train": TrainConfig}, "hwnas train")
def train(
    arch: Architecture | str | os.PathLike[str] | None = None,
    *,
    data: Any = None,
    val_data: Any = None,
    resume: str | None = None,
    config: TrainConfig | None = None,
    **options: Any,
) -> Outcome:
    """Train `arch` (an `Architecture`, an architecture file or a zoo name) from scratch; `Outcome.final`
    holds the validation figures of the weights it ships (`run_dir/model.pt`, loaded by `Outcome.model()`).
    `config`: the options as a `TrainConfig`, whose fields that differ from its defaults count as given
    (keywords win over them)."""
    options = {**config_options(config, TrainConfig, "train"), **options}
    given, pools = data_options(data, val_data, options)
    cfg = make_config(TrainConfig, given, "train")
    return run_train(arch, cfg, resume=resume, explicit=set(given), pools=pools)


@with_options({"evaluate": TrainConfig}, "hwnas eval")
def evaluate(
    arch: Architecture | str | os.PathLike[str],
    weights: str | os.PathLike[str],
    *,
    data: Any = None,
    val_data: Any = None,
    config: TrainConfig | None = None,
    **options: Any,
) -> dict[str, float]:
    """Top-1/top-5 and loss of `weights` on the validation split the options select; writes nothing
    unless `run_dir=` is given. `config`: the options as a `TrainConfig`, as for `train`."""
    options = {**config_options(config, TrainConfig, "evaluate"), **options}
    given, pools = data_options(data, val_data, options)
    return run_evaluate(arch, weights, make_config(TrainConfig, given, "evaluate"), pools=pools)
