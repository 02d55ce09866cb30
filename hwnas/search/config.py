"""`SearchConfig`: the training options plus those of differentiable search (DNAS)."""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import COST_METRICS, HW_LOSS_FORMS, MIXING_MODES, TARGET_MODES
from ..train.config import TrainConfig, _opt


@dataclass
class SearchConfig(TrainConfig):
    """Options of `hwnas search` (DNAS: w and θ trained in turns on two splits)."""

    space: str = _opt("search space: a built-in name or a space YAML path", default="fbnet")
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
