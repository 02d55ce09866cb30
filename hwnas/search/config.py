"""Options of one-shot supernet training (`SupernetConfig`) and of search (`SearchConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import COST_METRICS, HW_LOSS_FORMS, MIXING_MODES, SAMPLINGS, STRATEGIES, TARGET_MODES
from ..train.config import TrainConfig, _opt


def _limit(what: str) -> object:
    return _opt(f"hard limit on {what} (none: no limit)", default=None, check=lambda v: v > 0, expected="a number > 0")


@dataclass
class SupernetConfig(TrainConfig):
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
class SearchConfig(SupernetConfig):
    """Options of `hwnas search`: DNAS (w and θ trained in turns), or random, evolutionary or Pareto
    search over a trained one-shot supernet (`--supernet RUN_DIR`)."""

    strategy: str = _opt(
        "dnas (differentiable, FBNet; with --mode softmax it is seed 002's differentiable search), "
        "random, evolution or pareto (these three need --supernet)",
        default="dnas",
        choices=STRATEGIES,
    )
    supernet: str | None = _opt("run directory of `hwnas supernet train` (random, evolution, pareto)", default=None)
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

    mode: str = _opt(
        "how θ mixes the candidates: gumbel (soft, FBNet), gumbel_hard (straight-through, one path runs), softmax",
        default="gumbel",
        choices=MIXING_MODES,
    )
    temperature: float = _opt(
        "initial Gumbel-softmax temperature", default=5.0, check=lambda v: v > 0, expected="a number > 0"
    )
    temperature_decay: float = _opt(
        "temperature multiplier per epoch", default=0.956, check=lambda v: 0 < v <= 1, expected="a number in (0, 1]"
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
    hw_loss: str = _opt("mul: CE·α·log(cost)^β (FBNet); add: CE + λ·penalty", default="mul", choices=HW_LOSS_FORMS)
    alpha: float = _opt("α of the mul loss", default=0.2)
    beta: float = _opt("β of the mul loss", default=0.6)
    hc_weight: float = _opt("λ of the add loss", default=0.005)
    target: float | None = _opt(
        "target cost of the add loss, in the cost's unit (none: penalise all cost)", default=None
    )
    target_mode: str = _opt(
        "above: penalise only cost above the target; abs: |cost - target|", default="above", choices=TARGET_MODES
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
