"""hwnas: hardware-aware neural architecture search for PyTorch.

Declare a search space once (YAML), train a weight-sharing supernet over it (FBNet's DNAS, DARTS, SPOS,
FairNAS), pick architectures under a hardware budget, and get back a plain PyTorch model to retrain,
profile and export. Everything below is importable as `hwnas.<name>`; docs/design.md describes the
pieces. Names are imported on first use, so `import hwnas` (and `hwnas --help`) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here

EXPORTS = {
    # errors: every refusal is one line naming what is wrong and what was expected
    "HwnasError": "hwnas.errors",
    # warnings: outcomes to act on (also logged); warnings.simplefilter("error", HwnasWarning) makes them errors
    "HwnasWarning": "hwnas.errors",
    # runs, with the command line's options as keywords
    "search": "hwnas.api",
    "train_supernet": "hwnas.api",
    "train": "hwnas.api",
    "evaluate": "hwnas.api",
    "Outcome": "hwnas.pipeline",
    # spaces and architecture files
    "load_space": "hwnas.spaces",
    "builtin_spaces": "hwnas.spaces",
    "SpaceSpec": "hwnas.spaces",
    "CellSpaceSpec": "hwnas.spaces",
    "Genotype": "hwnas.spaces",
    "Architecture": "hwnas.arch",
    "resolve_arch": "hwnas.arch",
    # networks and weights
    "build_model": "hwnas.model",
    "save_weights": "hwnas.model",
    "load_weights": "hwnas.model",
    "export_model": "hwnas.export",
    "predict": "hwnas.inference",
    # supernets
    "Supernet": "hwnas.supernet",
    "CellSupernet": "hwnas.supernet",
    "extract_model": "hwnas.supernet",
    # your own ops
    "register_op": "hwnas.blocks",
    "register_family": "hwnas.blocks",
    "OpFamily": "hwnas.blocks",
    "BlockConfig": "hwnas.blocks",
    "same_shape": "hwnas.blocks",
    # costs: counting, latency, tables, your own latency model
    "profile_arch": "hwnas.cost",
    "measure_latency": "hwnas.cost",
    "CostTable": "hwnas.cost.table",
    "build_table": "hwnas.cost.build",
    "load_or_build": "hwnas.cost.build",
    "LatencyQuery": "hwnas.cost.models",
    "ArchitectureLatencyModel": "hwnas.cost.models",
    "table_from_model": "hwnas.cost.models",
    # your own data
    "DataPools": "hwnas.data",
    "pools_from_datasets": "hwnas.data",
    # options as objects
    "TrainConfig": "hwnas.engine.config",
    "SupernetConfig": "hwnas.strategies.config",
    "SearchOptions": "hwnas.strategies.config",
    "DnasConfig": "hwnas.strategies.config",
    "RandomSearchConfig": "hwnas.strategies.config",
    "EvolutionConfig": "hwnas.strategies.config",
    "ParetoConfig": "hwnas.strategies.config",
    "DartsConfig": "hwnas.strategies.config",
    # your own strategy
    "register_strategy": "hwnas.strategies.registry",
    "Run": "hwnas.pipeline",
    "OptionGroup": "hwnas.engine.config",
}
ALIASES = {"export_model": "export"}  # `hwnas.export` is the module; its function is exported under this name

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(EXPORTS[name]), ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
