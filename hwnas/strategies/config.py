"""Options of every search strategy: what all searches share (`SearchOptions`), the groups some strategies
share (the architecture parameters of DNAS and DARTS, their hardware cost, one-shot limits), and one class per
built-in strategy, registered with it (`hwnas.strategies.registry`). A user's strategy subclasses
`SearchOptions` the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..choices import (
    ALPHA_MODES,
    COST_METRICS,
    GENOTYPE_SELECTIONS,
    HW_LOSS_FORMS,
    MIXING_MODES,
    SAMPLINGS,
    TARGET_MODES,
)
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
ARCHITECTURE = OptionGroup("architecture parameters: θ (dnas), α (darts)")
HARDWARE = OptionGroup("hardware cost (dnas, darts)")
LIMITS = OptionGroup("hard limits (supernet training; random, evolution, pareto)")
ONE_SHOT = OptionGroup("random, evolution, pareto (over a trained supernet)")
LATENCY = OptionGroup("latency measurement")


def help_groups(*own: OptionGroup) -> tuple[OptionGroup, ...]:
    """The help groups of a search's options in --help order: the search's, `own`, then the shared ones."""
    return (SEARCH, *own, LATENCY, *TrainConfig.HELP_GROUPS)


def _limit(what: str) -> Any:
    return LIMITS.option(
        f"hard limit on {what}, for sampled paths and searched architectures (default: no limit)", None, **positive()
    )


def _several(what: str) -> str:
    return (
        f"hard limit on {what} for searched architectures; several values ship one network per value, each "
        "meeting its own (at most one limit may take several; default: no limit)"
    )


def _supernet() -> Any:
    return SEARCH.option(
        "run directory of `hwnas supernet train`: random, evolution and pareto search its weights (required); dnas "
        "starts from them (default: none, dnas starts from scratch)",
        None,
    )


def _recalibrate() -> Any:
    return ONE_SHOT.option(
        "training batches that re-estimate BatchNorm statistics of each sampled network before it is evaluated "
        "(random, evolution, pareto; dnas with --sample)",
        10,
        **at_least(0),
    )


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
class LimitOptions:
    """Hard limits that sampled paths and picked architectures keep to."""

    max_macs: float | None = _limit("MACs (millions)")
    max_params: float | None = _limit("parameters (millions)")
    max_latency: float | None = _limit("latency (ms, from the cost table)")


@dataclass
class SearchOptions(TrainConfig, LatencyOptions):
    """What every search shares: the space, the strategy, and the data, training, run and latency options. A
    strategy's options class subclasses it and sets `strategy`'s default to the strategy's name."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = help_groups()

    space: str = SEARCH.option("search space: a built-in name or a space YAML path", "fbnet")
    strategy: str = SEARCH.option(
        "the registered strategy that searches (listed at the end of --help; default: dnas on layer-wise spaces, "
        "darts on cell spaces)",
        "dnas",
    )
    epochs: int = redeclared(TrainConfig, "epochs", default=10)
    crop_padding: int = redeclared(TrainConfig, "crop_padding", default=4)


def strategy_field(name: str) -> Any:
    """The `strategy` option of a strategy's options class, defaulting to its name (`strategy: str =
    strategy_field("mine")`)."""
    return redeclared(SearchOptions, "strategy", default=name)


@dataclass
class ArchitectureOptions:
    """The architecture parameters' training (θ of DNAS, α of DARTS): which images, from when, how fast."""

    train_portion: float = ARCHITECTURE.option(
        "share of the training images for the weights; the rest trains the architecture parameters",
        0.8,
        **number_in("(0, 1)"),
    )
    weight_warmup_epochs: int = ARCHITECTURE.option(
        "epochs that train only the weights before the architecture parameters start", 2, **at_least(0)
    )
    arch_lr: float = ARCHITECTURE.option("learning rate of the architecture parameters", 0.01, **positive())
    arch_momentum: float = ARCHITECTURE.option(
        "momentum of the architecture parameters (sgd), Adam's beta1 (adam; beta2 is 0.999)",
        0.9,
        **number_in("[0, 1)"),
    )
    arch_weight_decay: float = ARCHITECTURE.option(
        "weight decay of the architecture parameters", 5e-4, **non_negative()
    )
    recompute: bool | None = ARCHITECTURE.option(
        "soft mixtures: compute each layer's candidates again in the backward pass instead of keeping their "
        "activations (a quarter to a half of the memory, 1.1-1.4x the time on CPU; the same gradients; "
        "default: on when the batch's activations would not fit in the free memory)",
        None,
    )


@dataclass
class HardwareCostOptions:
    """A cost (latency, MACs or parameters) added to the architecture parameters' loss."""

    cost: str | None = HARDWARE.option(
        "what the hardware loss prices: latency (ms), macs or params (millions)", "latency", choices=COST_METRICS
    )
    hc_weight: float = HARDWARE.option(
        "λ: weight of the cost in the add loss (CE + λ·penalty)", 0.005, **non_negative()
    )
    target: float | None = HARDWARE.option(
        "target cost, in the cost's unit (ms, millions); the architecture comes out within it "
        "(default: none, penalise all cost)",
        None,
        **positive(),
    )
    target_mode: str = HARDWARE.option(
        "abs: aim at the target, |cost - target| (a target is a budget to use); above: penalise only cost above it",
        "abs",
        choices=TARGET_MODES,
    )


DNAS = OptionGroup("dnas (FBNet)")


@dataclass
class DnasConfig(SearchOptions, ArchitectureOptions, HardwareCostOptions):
    """`hwnas search --strategy dnas`: FBNet's differentiable search, w and θ trained in turns, from scratch or
    from a trained one-shot supernet's weights."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = help_groups(DNAS, ARCHITECTURE, HARDWARE, ONE_SHOT)

    supernet: str | None = _supernet()
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
    arch_optimizer: str = DNAS.option("optimizer of θ", "adam", choices=("adam", "sgd"))
    cost: str = redeclared(HardwareCostOptions, "cost", default="latency")
    alpha: float = DNAS.option("α of the mul loss", 0.2, **positive())
    beta: float = DNAS.option("β of the mul loss", 0.6, **non_negative())
    hw_loss: str = DNAS.option(
        "mul: CE·α·log(e·cost/reference)^β (FBNet; reference: the cheapest architecture, or --target); "
        "add: CE + λ·penalty",
        "mul",
        choices=HW_LOSS_FORMS,
    )
    sample: int = DNAS.option(
        "draw this many architectures from θ and keep the best on validation (0: argmax of θ)", 0, **at_least(0)
    )
    recalibrate_batches: int = _recalibrate()


Limits = float | list[float]  # one limit, or several values of it: one network per value
LIMIT_FLAGS = {"max_macs": "--max-macs", "max_params": "--max-params", "max_latency": "--max-latency"}  # the options
RANDOM = OptionGroup("random")
EVOLUTION = OptionGroup("evolution, pareto")
PARETO = OptionGroup("pareto")


FINETUNE_EPOCHS, FINETUNE_MIN_STEPS = 2, 100  # a shipped pick's default fine-tune: 2 epochs, 100 steps at least


@dataclass
class SupernetSearchOptions(SearchOptions, LimitOptions):
    """What random, evolutionary and Pareto search over a trained one-shot supernet share."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = help_groups(ONE_SHOT, RANDOM, EVOLUTION, PARETO, LIMITS)

    supernet: str | None = _supernet()
    # option() returns a dataclass field whose default is None: ruff cannot see that through the list annotation
    max_macs: Limits | None = LIMITS.option(_several("MACs (millions)"), None, **positive())  # noqa: RUF009
    max_params: Limits | None = LIMITS.option(_several("parameters (millions)"), None, **positive())  # noqa: RUF009
    max_latency: Limits | None = LIMITS.option(_several("latency (ms, from the cost table)"), None, **positive())  # noqa: RUF009
    eval_images: int = ONE_SHOT.option(
        "evaluate candidates on the first this many validation images (0: all)", 0, **at_least(0)
    )
    require_healthy: bool = ONE_SHOT.option(
        "stop with an error, instead of a warning, when random paths of the supernet score close to chance "
        "(the supernet health check)",
        False,
    )
    recalibrate_batches: int = _recalibrate()
    finetune_epochs: int | None = ONE_SHOT.option(
        "epochs that fine-tune each shipped pick from its inherited weights, at --lr with a cosine schedule, "
        "before it is measured and written (0: ship the inherited weights with BatchNorm re-estimated; default: "
        f"{FINETUNE_EPOCHS}, or as many as make {FINETUNE_MIN_STEPS} steps on small data)",
        None,
        **at_least(0),
    )
    finetune_top: int = ONE_SHOT.option(
        "fine-tune this many of the most accurate candidates within each limit (by inherited accuracy) and ship the "
        "one most accurate on the validation split after it (1: the most accurate by inherited accuracy)",
        3,
        **integer_in(1, 100),
    )
    crop_padding: int = redeclared(
        TrainConfig,
        "crop_padding",
        default=0,
        help="random crop after zero-padding by this many pixels while fine-tuning a pick (0, as supernets train)",
    )

    def check_together(self, where: str) -> None:
        """At most one limit takes several values (one network per value); the others apply to every network."""
        several = [flag for name, flag in LIMIT_FLAGS.items() if isinstance(getattr(self, name), list)]
        if len(several) > 1:
            raise HwnasError(
                f"{where}: {' and '.join(several)} both got several values; expected several values for one limit "
                "at most (one network per value), the other limits with one value each"
            )


@dataclass
class RandomSearchConfig(SupernetSearchOptions):
    """`hwnas search --strategy random`: random architectures scored with the supernet's weights (SPOS's
    baseline)."""

    strategy: str = strategy_field("random")
    random_iteration: int = RANDOM.option("architectures to evaluate", 1000, **integer_in(1, 10_000_000))


@dataclass
class EvolutionConfig(SupernetSearchOptions):
    """`hwnas search --strategy evolution`: SPOS's evolutionary search with the supernet's weights."""

    strategy: str = strategy_field("evolution")
    generation_num: int = EVOLUTION.option("generations", 20, **integer_in(1, 100_000))
    population: int = EVOLUTION.option("population size", 60, **integer_in(2, 100_000))
    parent_num: int = EVOLUTION.option("parents kept each generation (SPOS's select_num)", 10, **at_least(1))
    mutation_num: int = EVOLUTION.option("children made by mutation each generation", 25, **at_least(0))
    crossover_num: int = EVOLUTION.option("children made by crossover each generation", 25, **at_least(0))
    mutation_prob: float = EVOLUTION.option("chance that a layer mutates", 0.1, **number_in("[0, 1]"))


@dataclass
class ParetoConfig(EvolutionConfig):
    """`hwnas search --strategy pareto`: evolution that keeps the front of accuracy against a cost."""

    strategy: str = strategy_field("pareto")
    pareto_cost: str = PARETO.option("the cost traded against accuracy", "latency", choices=COST_METRICS)


CELL_NETWORK = OptionGroup("darts: search network (DARTS, CNAS, PC-DARTS)")
GENOTYPE = OptionGroup("darts: genotype and evaluation network")


@dataclass
class DartsConfig(SearchOptions, ArchitectureOptions, HardwareCostOptions):
    """`hwnas search` on a cell space: DARTS (first or second order), CNAS's sparse genotypes, PC-DARTS's
    partial channels, P-DARTS's skip limit, and a hardware cost on α. Defaults are DARTS's; a space's
    `search_defaults` (e.g. CNAS's lr_min 0.003) sit between these and --config."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = help_groups(CELL_NETWORK, ARCHITECTURE, GENOTYPE, HARDWARE)

    space: str = SEARCH.option("cell space: darts, cnas, or a space YAML path with kind: cell", "darts")
    strategy: str = strategy_field("darts")
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
    train_portion: float = redeclared(ArchitectureOptions, "train_portion", default=0.5)
    weight_warmup_epochs: int = redeclared(
        ArchitectureOptions,
        "weight_warmup_epochs",
        default=0,
        help="epochs that train only the weights before α starts (PC-DARTS 15)",
    )
    arch_lr: float = redeclared(ArchitectureOptions, "arch_lr", default=3e-4, help="learning rate of α (Adam)")
    arch_momentum: float = redeclared(
        ArchitectureOptions, "arch_momentum", default=0.5, help="Adam's beta1 for α (beta2 is 0.999)"
    )
    arch_weight_decay: float = redeclared(ArchitectureOptions, "arch_weight_decay", default=1e-3)
    sec_approx: bool = ARCHITECTURE.option(
        "darts: second-order α gradient: one unrolled weight step, Hessian-vector product by finite differences",
        False,
    )
    mode: str = ARCHITECTURE.option(
        "how α mixes each edge's ops: softmax (DARTS); dirichlet (DrNAS, Chen et al., ICLR 2021: a fresh draw "
        "from Dirichlet(elu(α) + 1) every step, with a KL anchor to the uniform Dirichlet; first order only); "
        "uniform (α fixed, every op weighed alike: the network trained alone, for --select perturbation); or "
        "random (RSPS, Li and Talwalkar, UAI 2019: one random genotype a step, for --select sampled or perturbation)",
        "softmax",
        choices=ALPHA_MODES,
    )
    beta_decay: float = ARCHITECTURE.option(
        "β-DARTS (Ye et al., CVPR 2022): add λ · the mean over edges of logsumexp(α) to α's loss, λ rising "
        "linearly from 0 to this over the search, which keeps α from running away to parameter-free ops "
        "(β-DARTS rises to about 25 over 50 epochs; 0: off)",
        0.0,
        **non_negative(),
    )
    select: str = GENOTYPE.option(
        "how the genotype is picked from the trained search network: alpha (DARTS: the strongest ops and edges of "
        "α) or perturbation (DARTS-PT, Wang et al., ICLR 2021: on each edge the op whose removal costs the most "
        "validation accuracy, the network tuned a few steps after each choice; then each node's two edges whose "
        "removal costs most); or sampled (RSPS: the best of --sampled-genotypes random genotypes, each scored with "
        "the network's weights on held-out batches of α's split)",
        "alpha",
        choices=GENOTYPE_SELECTIONS,
    )
    sampled_genotypes: int = GENOTYPE.option(
        "--select sampled: random genotypes scored (RSPS scored 1,000 on a small split)", 100, **integer_in(1, 100_000)
    )
    use_sparse: bool = GENOTYPE.option("derive the sparse genotype (CNAS): none competes like any other op", False)
    max_skip: int | None = GENOTYPE.option(
        "derive at most this many skip_connect in the normal cell (P-DARTS; default: no limit)", None, **at_least(0)
    )
    partial_channels: int = CELL_NETWORK.option(
        "run each edge's ops on 1/K of the channels, with edge normalisation (PC-DARTS K=4; 1: off)", 1, **at_least(1)
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
    cost: str | None = redeclared(
        HardwareCostOptions,
        "cost",
        default=None,
        help="add the evaluation network's expected cost to α's loss: latency (ms), macs or params (millions) "
        "(default: none, plain DARTS)",
    )
    target_mode: str = redeclared(HardwareCostOptions, "target_mode", default="above")


SUPERNET = OptionGroup("one-shot supernet (SPOS, FairNAS, sandwich)")


@dataclass
class SupernetConfig(TrainConfig, LatencyOptions, LimitOptions):
    """Options of `hwnas supernet train` (single-path one-shot): `sampling` is its strategy."""

    HELP_GROUPS: ClassVar[tuple[OptionGroup, ...]] = (SEARCH, SUPERNET, LIMITS, LATENCY, *TrainConfig.HELP_GROUPS)

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


def space_search_defaults(space: Any, cls: type, known_anywhere: set[str]) -> dict[str, Any]:
    """A space's `search_defaults` (options of `hwnas search` its authors chose) that `cls`, the options of the
    strategy that runs, takes, checked as its values; a name that no strategy takes (`known_anywhere`) is refused."""
    where = f"space {space.name}: search_defaults"
    declared = space.declaration.get("search_defaults") or {}
    if not isinstance(declared, dict):
        raise SpaceError(f"{where}: got {declared!r}, expected a mapping of search options to values")
    for key in declared:
        if key not in known_anywhere:
            raise SpaceError(f"{where}: unknown option {key!r}; expected one of {', '.join(sorted(known_anywhere))}")
    taken = {key: value for key, value in declared.items() if key in keys(cls)}
    try:
        check_config(cls(**taken), where)
    except HwnasError as exc:
        raise SpaceError(str(exc)) from None
    return taken
