"""Options of one-shot supernet training (`SupernetConfig`), of layer-wise search (`SearchConfig`) and of
cell search (`DartsConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..choices import COST_METRICS, HW_LOSS_FORMS, MIXING_MODES, SAMPLINGS, STRATEGIES, TARGET_MODES
from ..engine.config import (
    MAX_BATCH,
    MAX_THREADS,
    OptionGroup,
    TrainConfig,
    at_least,
    check_config,
    integer_in,
    keys,
    non_negative,
    number_in,
    positive,
    redeclared,
)
from ..errors import HwnasError, SpaceError
from ..limits import MAX_CHANNELS

SEARCH = OptionGroup("search")
DNAS = OptionGroup("DNAS (FBNet)")
SUPERNET = OptionGroup("one-shot supernet (SPOS, FairNAS)")
ONE_SHOT = OptionGroup("one-shot search (random, evolution, pareto)")
CELL_NETWORK = OptionGroup("DARTS/CNAS search network")
CELL_ALPHA = OptionGroup("DARTS/CNAS architecture parameters (α)")
GENOTYPE = OptionGroup("DARTS/CNAS genotype and evaluation network")
HARDWARE = OptionGroup("hardware cost")
LATENCY = OptionGroup("latency measurement")


def _recompute(group: OptionGroup) -> object:
    return group.option(
        "soft mixtures: compute each layer's candidates again in the backward pass instead of keeping their "
        "activations (a quarter to a half of the memory, 1.2-1.4x the time on CPU; the same gradients)",
        False,
    )


def _limit(what: str) -> object:
    return HARDWARE.option(f"hard limit on {what} (default: no limit)", None, **positive())


@dataclass
class LatencyOptions:
    """Where and how latency tables are measured (or which table file to use instead)."""

    latency_device: str = LATENCY.option("where the latency table is measured: cpu, cuda, cuda:N, onnxruntime", "cpu")
    latency_threads: int = LATENCY.option("threads pinned while measuring latency", 1, **integer_in(1, MAX_THREADS))
    latency_batch: int = LATENCY.option("batch size of the latency measurements", 1, **integer_in(1, MAX_BATCH))
    latency_table: str | None = LATENCY.option(
        "use this cost table file instead of measuring (it must cover the space; default: the cached measurement)", None
    )
    latency_model: str | None = LATENCY.option(
        "price latency with your model instead of measuring: MODULE:NAME or FILE.py:NAME, a callable "
        "(hwnas.cost.models.LatencyQuery) -> ms per table entry, or an ArchitectureLatencyModel "
        "(random/evolution/pareto only) (default: measure)",
        None,
    )


@dataclass
class SupernetConfig(TrainConfig, LatencyOptions):
    """Options of `hwnas supernet train` (single-path one-shot) and the base of `hwnas search`."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = (SEARCH, SUPERNET, HARDWARE, LATENCY, *TrainConfig.HELP_GROUPS)

    space: str = SEARCH.option("search space: a built-in name or a space YAML path", "fbnet")
    sampling: str = SUPERNET.option(
        "supernet paths per step: uniform (SPOS, one random path), fair (FairNAS: m paths that "
        "use every candidate once, one update) or sandwich (BigNAS/OFA: the largest path on the labels, the "
        "smallest and two random ones distilled from it in place, one update)",
        "uniform",
        choices=SAMPLINGS,
    )
    epochs: int | None = redeclared(
        TrainConfig,
        "epochs",
        default=None,
        help="number of epochs (default: 10, or as many as make 1,000 steps on small data: a single-path "
        "supernet trains each candidate on a share of the steps only)",
    )
    crop_padding: int = redeclared(
        TrainConfig,
        "crop_padding",
        default=0,
        help="random crop after zero-padding by this many pixels; 0 for supernets, which underfit (on small "
        "inputs padded crops kept them near chance)",
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

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = (SEARCH, DNAS, ONE_SHOT, *SupernetConfig.HELP_GROUPS[1:])

    epochs: int = redeclared(TrainConfig, "epochs", default=10)
    crop_padding: int = redeclared(TrainConfig, "crop_padding", default=4)
    strategy: str = SEARCH.option(
        "dnas (differentiable, FBNet; with --mode softmax the one-shot tools' differentiable search), "
        "random, evolution or pareto (these three need --supernet)",
        "dnas",
        choices=STRATEGIES,
    )
    supernet: str | None = SEARCH.option(
        "run directory of `hwnas supernet train`: the supernet random, evolution and pareto search; "
        "dnas starts from its weights (differentiable search on a trained SPOS/FairNAS supernet; default: none, "
        "dnas starts from scratch)",
        None,
    )
    random_iteration: int = ONE_SHOT.option("random: architectures to evaluate", 1000, **integer_in(1, 10_000_000))
    generation_num: int = ONE_SHOT.option("evolution/pareto: generations", 20, **integer_in(1, 100_000))
    population: int = ONE_SHOT.option("evolution/pareto: population size", 60, **integer_in(2, 100_000))
    parent_num: int = ONE_SHOT.option(
        "evolution/pareto: parents kept each generation (SPOS's select_num)", 10, **at_least(1)
    )
    mutation_num: int = ONE_SHOT.option(
        "evolution/pareto: children made by mutation each generation", 25, **at_least(0)
    )
    crossover_num: int = ONE_SHOT.option(
        "evolution/pareto: children made by crossover each generation", 25, **at_least(0)
    )
    mutation_prob: float = ONE_SHOT.option("evolution/pareto: chance that a layer mutates", 0.1, **number_in("[0, 1]"))
    pareto_cost: str = ONE_SHOT.option("pareto: the cost traded against accuracy", "latency", choices=COST_METRICS)
    eval_images: int = ONE_SHOT.option(
        "evaluate candidates on the first this many validation images (0: all)", 0, **at_least(0)
    )
    require_healthy: bool = ONE_SHOT.option(
        "random/evolution/pareto: stop with an error, instead of a warning, when random paths of the supernet "
        "score close to chance (the supernet health check)",
        False,
    )

    mode: str = DNAS.option(
        "how θ mixes the candidates: gumbel (soft, FBNet), gumbel_hard (one sampled path runs; θ learns by the "
        "score function), softmax",
        "gumbel",
        choices=MIXING_MODES,
    )
    temperature: float = DNAS.option("initial Gumbel-softmax temperature", 5.0, **positive())
    temperature_decay: float | None = DNAS.option(
        "temperature multiplier per epoch (default: FBNet's 0.956 over its 90 epochs, compressed to this run's "
        "--epochs, so τ always ends at --temperature · 0.956^90)",
        None,
        **number_in("(0, 1]"),
    )
    weight_warmup_epochs: int = DNAS.option("epochs that train only the weights before θ starts", 2, **at_least(0))
    train_portion: float = DNAS.option(
        "share of the training images for the weights; the rest trains θ", 0.8, **number_in("(0, 1)")
    )
    a_optimizer: str = DNAS.option("optimizer of θ", "adam", choices=("adam", "sgd"))
    a_lr: float = DNAS.option("learning rate of θ", 0.01, **positive())
    a_momentum: float = DNAS.option("momentum of θ (sgd), beta1 (adam)", 0.9, **number_in("[0, 1)"))
    a_weight_decay: float = DNAS.option("weight decay of θ", 5e-4, **non_negative())
    cost: str = HARDWARE.option(
        "what the hardware loss prices: latency (ms), macs or params (millions)", "latency", choices=COST_METRICS
    )
    hw_loss: str = HARDWARE.option(
        "mul: CE·α·log(e·cost/reference)^β (FBNet; reference: the cheapest architecture, or --target); "
        "add: CE + λ·penalty",
        "mul",
        choices=HW_LOSS_FORMS,
    )
    alpha: float = HARDWARE.option("α of the mul loss", 0.2, **positive())
    beta: float = HARDWARE.option("β of the mul loss", 0.6, **non_negative())
    hc_weight: float = HARDWARE.option("λ of the add loss", 0.005, **non_negative())
    target: float | None = HARDWARE.option(
        "target cost, in the cost's unit (ms, millions); the architecture comes out within it "
        "(default: none, penalise all cost and take the argmax of θ)",
        None,
        **positive(),
    )
    target_mode: str = HARDWARE.option(
        "abs: aim at the target, |cost - target| (a target is a budget to use); above: penalise only cost above it",
        "abs",
        choices=TARGET_MODES,
    )
    recompute: bool = _recompute(DNAS)
    sample: int = DNAS.option(
        "draw this many architectures from θ and keep the best on validation (0: argmax of θ)", 0, **at_least(0)
    )
    recalibrate_batches: int = ONE_SHOT.option(
        "training batches that re-estimate BatchNorm statistics of each sampled network before it is evaluated "
        "(one-shot search, and dnas with --sample)",
        10,
        **at_least(0),
    )


@dataclass
class DartsConfig(TrainConfig, LatencyOptions):
    """Options of `hwnas search` on a cell space: DARTS (first or second order), CNAS's sparse genotypes,
    PC-DARTS's partial channels, P-DARTS's skip limit, and a hardware cost on α. Defaults are DARTS's;
    a space's `search_defaults` (e.g. CNAS's lr_min 0.003) sit between these and --config."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = (
        SEARCH,
        CELL_NETWORK,
        CELL_ALPHA,
        GENOTYPE,
        HARDWARE,
        LATENCY,
        *TrainConfig.HELP_GROUPS,
    )

    space: str = SEARCH.option("cell space: darts, cnas, or a space YAML path with kind: cell", "darts")
    epochs: int = redeclared(TrainConfig, "epochs", default=50)
    lr: float = redeclared(TrainConfig, "lr", default=0.025, help="learning rate of the weights (SGD)")
    lr_min: float = redeclared(
        TrainConfig,
        "lr_min",
        default=0.001,
        help="final learning rate of the cosine schedule (DARTS 0.001, CNAS 0.003)",
    )
    weight_decay: float = redeclared(TrainConfig, "weight_decay", default=3e-4)
    grad_clip: float = redeclared(
        TrainConfig, "grad_clip", default=5.0, help="clip the weights' gradient norm to this (0: off)"
    )
    init_channels: int = redeclared(
        TrainConfig, "init_channels", default=16, help="initial channels of the search network", group=CELL_NETWORK
    )
    layers: int = redeclared(TrainConfig, "layers", default=8, help="cells of the search network", group=CELL_NETWORK)
    num_meta_node: int = CELL_NETWORK.option("intermediate nodes per cell", 4, **integer_in(1, 32))
    ops: str | None = CELL_NETWORK.option(
        "candidate ops: darts, cnas, or a comma-separated list of op names (default: the space's)", None
    )
    train_portion: float = CELL_ALPHA.option(
        "share of the training images for the weights; the rest trains α", 0.5, **number_in("(0, 1)")
    )
    arch_learning_rate: float = CELL_ALPHA.option("learning rate of α (Adam)", 3e-4, **positive())
    arch_weight_decay: float = CELL_ALPHA.option("weight decay of α", 1e-3, **non_negative())
    arch_beta1: float = CELL_ALPHA.option("Adam's beta1 for α (beta2 is 0.999)", 0.5, **number_in("[0, 1)"))
    sec_approx: bool = CELL_ALPHA.option(
        "second-order α gradient: one unrolled weight step, Hessian-vector product by finite differences", False
    )
    use_sparse: bool = GENOTYPE.option("derive the sparse genotype (CNAS): none competes like any other op", False)
    max_skip: int | None = GENOTYPE.option(
        "derive at most this many skip_connect in the normal cell (P-DARTS; default: no limit)", None, **at_least(0)
    )
    partial_channels: int = CELL_NETWORK.option(
        "run each edge's ops on 1/K of the channels, with edge normalisation (PC-DARTS K=4; 1: off)", 1, **at_least(1)
    )
    recompute: bool = _recompute(CELL_NETWORK)
    weight_warmup_epochs: int = CELL_ALPHA.option(
        "epochs that train only the weights before α starts (PC-DARTS 15)", 0, **at_least(0)
    )
    eval_init_channels: int = GENOTYPE.option(
        "initial channels of the evaluation network written to arch.json and priced by the cost table "
        "(DARTS 36; the cnas space sets 48, as its shuffle_conv_3x3 needs channels divisible by 16)",
        36,
        **integer_in(2, MAX_CHANNELS // 4),
    )
    eval_layers: int = GENOTYPE.option(
        "cells of the evaluation network written to arch.json and priced by the cost table", 20, **integer_in(3, 1000)
    )
    cost: str | None = HARDWARE.option(
        "add the evaluation network's expected cost to α's loss: latency (ms), macs or params (millions) "
        "(default: none, plain DARTS)",
        None,
        choices=COST_METRICS,
    )
    hc_weight: float = HARDWARE.option("λ: weight of the cost in α's loss (CE + λ·penalty)", 0.005, **non_negative())
    target: float | None = HARDWARE.option(
        "target cost, in the cost's unit (default: none, penalise all cost)", None, **positive()
    )
    target_mode: str = HARDWARE.option(
        "above: penalise only cost above the target; abs: |cost - target|", "above", choices=TARGET_MODES
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
