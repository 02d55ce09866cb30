"""Options of one-shot supernet training (`SupernetConfig`), of layer-wise search (`SearchConfig`) and of
cell search (`DartsConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import COST_METRICS, HW_LOSS_FORMS, MIXING_MODES, SAMPLINGS, STRATEGIES, TARGET_MODES
from ..errors import SpaceError
from ..train.config import TrainConfig, _opt, keys


def _limit(what: str) -> object:
    return _opt(f"hard limit on {what} (none: no limit)", default=None, check=lambda v: v > 0, expected="a number > 0")


@dataclass
class LatencyOptions:
    """Where and how latency tables are measured (or which table file to use instead)."""

    latency_device: str = _opt("where the latency table is measured: cpu, cuda, cuda:N, onnxruntime", default="cpu")
    latency_threads: int = _opt(
        "threads pinned while measuring latency", default=1, check=lambda v: v >= 1, expected="an integer >= 1"
    )
    latency_batch: int = _opt(
        "batch size of the latency measurements", default=1, check=lambda v: v >= 1, expected="an integer >= 1"
    )
    latency_table: str | None = _opt(
        "use this cost table file instead of measuring (it must cover the space)", default=None
    )


@dataclass
class SupernetConfig(TrainConfig, LatencyOptions):
    """Options of `hwnas supernet train` (single-path one-shot) and the base of `hwnas search`."""

    space: str = _opt("search space: a built-in name or a space YAML path", default="fbnet")
    sampling: str = _opt(
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

    strategy: str = _opt(
        "dnas (differentiable, FBNet; with --mode softmax the one-shot tools' differentiable search), "
        "random, evolution or pareto (these three need --supernet)",
        default="dnas",
        choices=STRATEGIES,
    )
    supernet: str | None = _opt(
        "run directory of `hwnas supernet train`: the supernet random, evolution and pareto search; "
        "dnas starts from its weights (differentiable search on a trained SPOS/FairNAS supernet)",
        default=None,
    )
    random_iteration: int = _opt(
        "random: architectures to evaluate", default=1000, check=lambda v: v >= 1, expected="an integer >= 1"
    )
    generation_num: int = _opt(
        "evolution/pareto: generations", default=20, check=lambda v: v >= 1, expected="an integer >= 1"
    )
    population: int = _opt(
        "evolution/pareto: population size", default=60, check=lambda v: v >= 2, expected="an integer >= 2"
    )
    parent_num: int = _opt(
        "evolution/pareto: parents kept each generation (SPOS's select_num)",
        default=10,
        check=lambda v: v >= 1,
        expected="an integer >= 1",
    )
    mutation_num: int = _opt(
        "evolution/pareto: children made by mutation each generation",
        default=25,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    crossover_num: int = _opt(
        "evolution/pareto: children made by crossover each generation",
        default=25,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    mutation_prob: float = _opt(
        "evolution/pareto: chance that a layer mutates",
        default=0.1,
        check=lambda v: 0 <= v <= 1,
        expected="a number in [0, 1]",
    )
    pareto_cost: str = _opt("pareto: the cost traded against accuracy", default="latency", choices=COST_METRICS)
    eval_images: int = _opt(
        "evaluate candidates on the first this many validation images (0: all)",
        default=0,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    require_healthy: bool = _opt(
        "random/evolution/pareto: stop with an error, instead of a warning, when random paths of the supernet "
        "score close to chance (the supernet health check)",
        default=False,
    )

    mode: str = _opt(
        "how θ mixes the candidates: gumbel (soft, FBNet), gumbel_hard (straight-through, one path runs), softmax",
        default="gumbel",
        choices=MIXING_MODES,
    )
    temperature: float = _opt(
        "initial Gumbel-softmax temperature", default=5.0, check=lambda v: v > 0, expected="a number > 0"
    )
    temperature_decay: float | None = _opt(
        "temperature multiplier per epoch (default: FBNet's 0.956 over its 90 epochs, compressed to this run's "
        "--epochs, so τ always ends at --temperature · 0.956^90)",
        default=None,
        check=lambda v: 0 < v <= 1,
        expected="a number in (0, 1]",
    )
    weight_warmup_epochs: int = _opt(
        "epochs that train only the weights before θ starts",
        default=2,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    train_portion: float = _opt(
        "share of the training images for the weights; the rest trains θ",
        default=0.8,
        check=lambda v: 0 < v < 1,
        expected="a number in (0, 1)",
    )
    a_optimizer: str = _opt("optimizer of θ", default="adam", choices=("adam", "sgd"))
    a_lr: float = _opt("learning rate of θ", default=0.01, check=lambda v: v > 0, expected="a number > 0")
    a_momentum: float = _opt(
        "momentum of θ (sgd), beta1 (adam)", default=0.9, check=lambda v: 0 <= v < 1, expected="a number in [0, 1)"
    )
    a_weight_decay: float = _opt("weight decay of θ", default=5e-4, check=lambda v: v >= 0, expected="a number >= 0")
    cost: str = _opt(
        "what the hardware loss prices: latency (ms), macs or params (millions)",
        default="latency",
        choices=COST_METRICS,
    )
    hw_loss: str = _opt(
        "mul: CE·α·log(e·cost/reference)^β (FBNet; reference: the cheapest architecture, or --target); "
        "add: CE + λ·penalty",
        default="mul",
        choices=HW_LOSS_FORMS,
    )
    alpha: float = _opt("α of the mul loss", default=0.2)
    beta: float = _opt("β of the mul loss", default=0.6)
    hc_weight: float = _opt("λ of the add loss", default=0.005)
    target: float | None = _opt(
        "target cost, in the cost's unit (ms, millions); the architecture comes out within it "
        "(none: penalise all cost, take the argmax of θ)",
        default=None,
    )
    target_mode: str = _opt(
        "abs: aim at the target, |cost - target| (a target is a budget to use); above: penalise only cost above it",
        default="abs",
        choices=TARGET_MODES,
    )
    sample: int = _opt(
        "draw this many architectures from θ and keep the best on validation (0: argmax of θ)",
        default=0,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    recalibrate_batches: int = _opt(
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

    space: str = _opt("cell space: darts, cnas, or a space YAML path with kind: cell", default="darts")
    epochs: int = _opt("number of epochs", default=50, check=lambda v: v >= 1, expected="an integer >= 1")
    lr: float = _opt(
        "learning rate of the weights (SGD)",
        default=0.025,
        check=lambda v: v > 0,
        expected="a number > 0",
        aliases=("--learning-rate",),
    )
    lr_min: float = _opt(
        "final learning rate of the cosine schedule (DARTS 0.001, CNAS 0.003)",
        default=0.001,
        check=lambda v: v >= 0,
        expected="a number >= 0",
        aliases=("--learning-rate-min",),
    )
    weight_decay: float = _opt("weight decay", default=3e-4, check=lambda v: v >= 0, expected="a number >= 0")
    grad_clip: float = _opt(
        "clip the weights' gradient norm to this (0: off)",
        default=5.0,
        check=lambda v: v >= 0,
        expected="a number >= 0",
    )
    init_channels: int = _opt(
        "initial channels of the search network", default=16, check=lambda v: v >= 2, expected="an integer >= 2"
    )
    layers: int = _opt(
        "cells of the search network",
        default=8,
        check=lambda v: v >= 3,
        expected="an integer >= 3 (reduction cells sit at 1/3 and 2/3 of the depth)",
    )
    num_meta_node: int = _opt(
        "intermediate nodes per cell", default=4, check=lambda v: v >= 1, expected="an integer >= 1"
    )
    ops: str | None = _opt(
        "candidate ops: darts, cnas, or a comma-separated list of op names (default: the space's)", default=None
    )
    train_portion: float = _opt(
        "share of the training images for the weights; the rest trains α",
        default=0.5,
        check=lambda v: 0 < v < 1,
        expected="a number in (0, 1)",
    )
    arch_learning_rate: float = _opt(
        "learning rate of α (Adam)", default=3e-4, check=lambda v: v > 0, expected="a number > 0"
    )
    arch_weight_decay: float = _opt("weight decay of α", default=1e-3, check=lambda v: v >= 0, expected="a number >= 0")
    arch_beta1: float = _opt(
        "Adam's beta1 for α (beta2 is 0.999)", default=0.5, check=lambda v: 0 <= v < 1, expected="a number in [0, 1)"
    )
    sec_approx: bool = _opt(
        "second-order α gradient: one unrolled weight step, Hessian-vector product by finite differences",
        default=False,
    )
    use_sparse: bool = _opt("derive the sparse genotype (CNAS): none competes like any other op", default=False)
    max_skip: int | None = _opt(
        "derive at most this many skip_connect in the normal cell (P-DARTS; none: no limit)",
        default=None,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    partial_channels: int = _opt(
        "run each edge's ops on 1/K of the channels, with edge normalisation (PC-DARTS K=4; 1: off)",
        default=1,
        check=lambda v: v >= 1,
        expected="an integer >= 1",
    )
    weight_warmup_epochs: int = _opt(
        "epochs that train only the weights before α starts (PC-DARTS 15)",
        default=0,
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    eval_init_channels: int = _opt(
        "initial channels of the evaluation network written to arch.json and priced by the cost table "
        "(DARTS 36; the cnas space's default is 48, as its shuffle_conv_3x3 needs channels divisible by 16)",
        default=36,
        check=lambda v: v >= 2,
        expected="an integer >= 2",
    )
    eval_layers: int = _opt(
        "cells of the evaluation network written to arch.json and priced by the cost table",
        default=20,
        check=lambda v: v >= 3,
        expected="an integer >= 3",
    )
    cost: str | None = _opt(
        "add the evaluation network's expected cost to α's loss: latency (ms), macs or params (millions); "
        "none: plain DARTS",
        default=None,
        choices=COST_METRICS,
    )
    hc_weight: float = _opt(
        "λ: weight of the cost in α's loss (CE + λ·penalty)",
        default=0.005,
        check=lambda v: v >= 0,
        expected="a number >= 0",
    )
    target: float | None = _opt(
        "target cost, in the cost's unit (none: penalise all cost)",
        default=None,
        check=lambda v: v > 0,
        expected="a number > 0",
    )
    target_mode: str = _opt(
        "above: penalise only cost above the target; abs: |cost - target|", default="above", choices=TARGET_MODES
    )


def space_search_defaults(space, cls: type) -> dict:
    """A space's `search_defaults` (options of `hwnas search` its authors chose), checked to name options of `cls`."""
    defaults = dict(space.declaration.get("search_defaults") or {})
    known = keys(cls)
    for key in defaults:
        if key not in known:
            raise SpaceError(
                f"space {space.name}: search_defaults: unknown option {key!r}; expected one of {', '.join(known)}"
            )
    return defaults
