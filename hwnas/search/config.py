"""Options of one-shot supernet training (`SupernetConfig`), of layer-wise search (`SearchConfig`) and of
cell search (`DartsConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..choices import COST_METRICS, HW_LOSS_FORMS, MIXING_MODES, SAMPLINGS, STRATEGIES, TARGET_MODES
from ..errors import HwnasError, SpaceError
from ..spaces.limits import MAX_CHANNELS
from ..train.config import MAX_BATCH, MAX_EPOCHS, TrainConfig, check_config, integer_in, keys, option


def _limit(what: str) -> object:
    return option(
        f"hard limit on {what} (none: no limit)", default=None, check=lambda v: v > 0, expected="a number > 0"
    )


@dataclass
class LatencyOptions:
    """Where and how latency tables are measured (or which table file to use instead)."""

    latency_device: str = option("where the latency table is measured: cpu, cuda, cuda:N, onnxruntime", default="cpu")
    latency_threads: int = option(
        "threads pinned while measuring latency",
        default=1,
        **integer_in(1, 1024),
    )
    latency_batch: int = option(
        "batch size of the latency measurements",
        default=1,
        **integer_in(1, MAX_BATCH),
    )
    latency_table: str | None = option(
        "use this cost table file instead of measuring (it must cover the space)", default=None
    )


@dataclass
class SupernetConfig(TrainConfig, LatencyOptions):
    """Options of `hwnas supernet train` (single-path one-shot) and the base of `hwnas search`."""

    space: str = option("search space: a built-in name or a space YAML path", default="fbnet")
    sampling: str = option(
        "supernet paths per step: uniform (SPOS, one random path) or fair (FairNAS: m paths that "
        "use every candidate once, one update)",
        default="uniform",
        choices=SAMPLINGS,
    )
    max_macs: float | None = _limit("MACs (millions), for sampled paths and searched architectures")
    max_params: float | None = _limit("parameters (millions), for sampled paths and searched architectures")
    max_latency: float | None = _limit(
        "latency (ms, from the cost table), for sampled paths and searched architectures"
    )


@dataclass
class SearchConfig(SupernetConfig):
    """Options of `hwnas search`: DNAS (w and θ trained in turns), or random, evolutionary or Pareto
    search over a trained one-shot supernet (`--supernet RUN_DIR`)."""

    strategy: str = option(
        "dnas (differentiable, FBNet; with --mode softmax the one-shot tools' differentiable search), "
        "random, evolution or pareto (these three need --supernet)",
        default="dnas",
        choices=STRATEGIES,
    )
    supernet: str | None = option(
        "run directory of `hwnas supernet train`: the supernet random, evolution and pareto search; "
        "dnas starts from its weights (differentiable search on a trained SPOS/FairNAS supernet)",
        default=None,
    )
    random_iteration: int = option(
        "random: architectures to evaluate",
        default=1000,
        **integer_in(1, 10_000_000),
    )
    generation_num: int = option(
        "evolution/pareto: generations",
        default=20,
        **integer_in(1, 100_000),
    )
    population: int = option(
        "evolution/pareto: population size",
        default=60,
        **integer_in(2, 100_000),
    )
    parent_num: int = option(
        "evolution/pareto: parents kept each generation (SPOS's select_num)",
        default=10,
        check=lambda v: v >= 1,
        expected="an integer >= 1",
    )
    mutation_num: int = option(
        "evolution/pareto: children made by mutation each generation",
        default=25,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    crossover_num: int = option(
        "evolution/pareto: children made by crossover each generation",
        default=25,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    mutation_prob: float = option(
        "evolution/pareto: chance that a layer mutates",
        default=0.1,
        check=lambda v: 0 <= v <= 1,
        expected="a number in [0, 1]",
    )
    pareto_cost: str = option("pareto: the cost traded against accuracy", default="latency", choices=COST_METRICS)
    eval_images: int = option(
        "evaluate candidates on the first this many validation images (0: all)",
        default=0,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    require_healthy: bool = option(
        "random/evolution/pareto: stop with an error, instead of a warning, when random paths of the supernet "
        "score close to chance (the supernet health check)",
        default=False,
    )

    mode: str = option(
        "how θ mixes the candidates: gumbel (soft, FBNet), gumbel_hard (straight-through, one path runs), softmax",
        default="gumbel",
        choices=MIXING_MODES,
    )
    temperature: float = option(
        "initial Gumbel-softmax temperature", default=5.0, check=lambda v: v > 0, expected="a number > 0"
    )
    temperature_decay: float | None = option(
        "temperature multiplier per epoch (default: FBNet's 0.956 over its 90 epochs, compressed to this run's "
        "--epochs, so τ always ends at --temperature · 0.956^90)",
        default=None,
        check=lambda v: 0 < v <= 1,
        expected="a number in (0, 1]",
    )
    weight_warmup_epochs: int = option(
        "epochs that train only the weights before θ starts",
        default=2,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    train_portion: float = option(
        "share of the training images for the weights; the rest trains θ",
        default=0.8,
        check=lambda v: 0 < v < 1,
        expected="a number in (0, 1)",
    )
    a_optimizer: str = option("optimizer of θ", default="adam", choices=("adam", "sgd"))
    a_lr: float = option("learning rate of θ", default=0.01, check=lambda v: v > 0, expected="a number > 0")
    a_momentum: float = option(
        "momentum of θ (sgd), beta1 (adam)", default=0.9, check=lambda v: 0 <= v < 1, expected="a number in [0, 1)"
    )
    a_weight_decay: float = option("weight decay of θ", default=5e-4, check=lambda v: v >= 0, expected="a number >= 0")
    cost: str = option(
        "what the hardware loss prices: latency (ms), macs or params (millions)",
        default="latency",
        choices=COST_METRICS,
    )
    hw_loss: str = option(
        "mul: CE·α·log(e·cost/reference)^β (FBNet; reference: the cheapest architecture, or --target); "
        "add: CE + λ·penalty",
        default="mul",
        choices=HW_LOSS_FORMS,
    )
    alpha: float = option("α of the mul loss", default=0.2, check=lambda v: v > 0, expected="a number > 0")
    beta: float = option("β of the mul loss", default=0.6, check=lambda v: v >= 0, expected="a number >= 0")
    hc_weight: float = option("λ of the add loss", default=0.005, check=lambda v: v >= 0, expected="a number >= 0")
    target: float | None = option(
        "target cost, in the cost's unit (ms, millions); the architecture comes out within it "
        "(none: penalise all cost, take the argmax of θ)",
        default=None,
        check=lambda v: v > 0,
        expected="a number > 0",
    )
    target_mode: str = option(
        "abs: aim at the target, |cost - target| (a target is a budget to use); above: penalise only cost above it",
        default="abs",
        choices=TARGET_MODES,
    )
    sample: int = option(
        "draw this many architectures from θ and keep the best on validation (0: argmax of θ)",
        default=0,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    recalibrate_batches: int = option(
        "training batches that re-estimate BatchNorm statistics of each sampled network before it is evaluated",
        default=10,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )


@dataclass
class DartsConfig(TrainConfig, LatencyOptions):
    """Options of `hwnas search` on a cell space: DARTS (first or second order), CNAS's sparse genotypes,
    PC-DARTS's partial channels, P-DARTS's skip limit, and a hardware cost on α. Defaults are DARTS's;
    a space's `search_defaults` (e.g. CNAS's lr_min 0.003) sit between these and --config."""

    space: str = option("cell space: darts, cnas, or a space YAML path with kind: cell", default="darts")
    epochs: int = option(
        "number of epochs", default=50, check=lambda v: 1 <= v <= MAX_EPOCHS, expected=f"an integer in 1..{MAX_EPOCHS}"
    )
    lr: float = option(
        "learning rate of the weights (SGD)",
        default=0.025,
        check=lambda v: v > 0,
        expected="a number > 0",
        aliases=("--learning-rate",),
    )
    lr_min: float = option(
        "final learning rate of the cosine schedule (DARTS 0.001, CNAS 0.003)",
        default=0.001,
        check=lambda v: v >= 0,
        expected="a number >= 0",
        aliases=("--learning-rate-min",),
    )
    weight_decay: float = option("weight decay", default=3e-4, check=lambda v: v >= 0, expected="a number >= 0")
    grad_clip: float = option(
        "clip the weights' gradient norm to this (0: off)",
        default=5.0,
        check=lambda v: v >= 0,
        expected="a number >= 0",
    )
    init_channels: int = option(
        "initial channels of the search network",
        default=16,
        check=lambda v: 2 <= v <= MAX_CHANNELS // 4,
        expected=f"an integer in 2..{MAX_CHANNELS // 4}",
    )
    layers: int = option(
        "cells of the search network",
        default=8,
        check=lambda v: 3 <= v <= 1000,
        expected="an integer in 3..1000 (reduction cells sit at 1/3 and 2/3 of the depth)",
    )
    num_meta_node: int = option(
        "intermediate nodes per cell", default=4, check=lambda v: 1 <= v <= 32, expected="an integer in 1..32"
    )
    ops: str | None = option(
        "candidate ops: darts, cnas, or a comma-separated list of op names (default: the space's)", default=None
    )
    train_portion: float = option(
        "share of the training images for the weights; the rest trains α",
        default=0.5,
        check=lambda v: 0 < v < 1,
        expected="a number in (0, 1)",
    )
    arch_learning_rate: float = option(
        "learning rate of α (Adam)", default=3e-4, check=lambda v: v > 0, expected="a number > 0"
    )
    arch_weight_decay: float = option(
        "weight decay of α", default=1e-3, check=lambda v: v >= 0, expected="a number >= 0"
    )
    arch_beta1: float = option(
        "Adam's beta1 for α (beta2 is 0.999)", default=0.5, check=lambda v: 0 <= v < 1, expected="a number in [0, 1)"
    )
    sec_approx: bool = option(
        "second-order α gradient: one unrolled weight step, Hessian-vector product by finite differences",
        default=False,
    )
    use_sparse: bool = option("derive the sparse genotype (CNAS): none competes like any other op", default=False)
    max_skip: int | None = option(
        "derive at most this many skip_connect in the normal cell (P-DARTS; none: no limit)",
        default=None,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    partial_channels: int = option(
        "run each edge's ops on 1/K of the channels, with edge normalisation (PC-DARTS K=4; 1: off)",
        default=1,
        check=lambda v: v >= 1,
        expected="an integer >= 1",
    )
    weight_warmup_epochs: int = option(
        "epochs that train only the weights before α starts (PC-DARTS 15)",
        default=0,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    eval_init_channels: int = option(
        "initial channels of the evaluation network written to arch.json and priced by the cost table "
        "(DARTS 36; the cnas space's default is 48, as its shuffle_conv_3x3 needs channels divisible by 16)",
        default=36,
        check=lambda v: 2 <= v <= MAX_CHANNELS // 4,
        expected=f"an integer in 2..{MAX_CHANNELS // 4}",
    )
    eval_layers: int = option(
        "cells of the evaluation network written to arch.json and priced by the cost table",
        default=20,
        **integer_in(3, 1000),
    )
    cost: str | None = option(
        "add the evaluation network's expected cost to α's loss: latency (ms), macs or params (millions); "
        "none: plain DARTS",
        default=None,
        choices=COST_METRICS,
    )
    hc_weight: float = option(
        "λ: weight of the cost in α's loss (CE + λ·penalty)",
        default=0.005,
        check=lambda v: v >= 0,
        expected="a number >= 0",
    )
    target: float | None = option(
        "target cost, in the cost's unit (none: penalise all cost)",
        default=None,
        check=lambda v: v > 0,
        expected="a number > 0",
    )
    target_mode: str = option(
        "above: penalise only cost above the target; abs: |cost - target|", default="above", choices=TARGET_MODES
    )


def space_search_defaults(space: Any, cls: type | None = None) -> dict[str, Any]:
    """A space's `search_defaults` (options of `hwnas search` its authors chose), checked as options of `cls`
    (by default the search config of the space's kind): known names, values in range."""
    cls = cls or (DartsConfig if space.kind == "cell" else SearchConfig)
    where = f"space {space.name}: search_defaults"
    declared = space.declaration.get("search_defaults") or {}
    if not isinstance(declared, dict):
        raise SpaceError(f"{where}: got {declared!r}, expected a mapping of search options to values")
    known = keys(cls)
    for key in declared:
        if key not in known:
            raise SpaceError(f"{where}: unknown option {key!r}; expected one of {', '.join(known)}")
    try:
        check_config(cls(**declared), where)
    except HwnasError as exc:
        raise SpaceError(str(exc)) from None
    return dict(declared)
