import math

import pytest
import torch
from torch import nn

from hwnas.engine.config import TrainConfig
from hwnas.engine.optim import build_optimizer, build_schedule, lr_factor


def net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


@pytest.mark.parametrize(
    "name,cls,extra",
    [
        ("sgd", torch.optim.SGD, {"nesterov": True, "momentum": 0.8}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.999)}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0.9}),
    ],
)
def test_optimizers(name, cls, extra):
    cfg = TrainConfig(optimizer=name, lr=0.3, momentum=extra.get("momentum", 0.9), nesterov=True, weight_decay=1e-4)
    opt = build_optimizer(net(), cfg)
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.3 and opt.param_groups[0]["weight_decay"] == 1e-4
    for key, value in extra.items():
        assert opt.param_groups[0][key] == value


def test_weight_decay_exemption():
    model = net()
    opt = build_optimizer(model, TrainConfig(weight_decay=1e-3, no_decay_bn_bias=True))
    decayed, exempt = opt.param_groups
    assert decayed["weight_decay"] == 1e-3 and exempt["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert len(exempt["params"]) == 4  # BN weight and bias, conv bias, linear bias


def lrs(cfg: TrainConfig, steps_per_epoch: int, at: list[int]) -> list[float]:
    return [cfg.lr * lr_factor(cfg, s, steps_per_epoch) for s in at]


def test_cosine_to_lr_min():
    cfg = TrainConfig(lr=0.1, lr_min=0.001, epochs=10, schedule="cosine")
    first, mid, last = lrs(cfg, 10, [0, 50, 100])
    assert first == pytest.approx(0.1) and mid == pytest.approx(0.0505) and last == pytest.approx(0.001)


def test_warmup_then_cosine():
    cfg = TrainConfig(lr=0.2, epochs=5, warmup_epochs=1, schedule="cosine")
    assert lrs(cfg, 4, [0, 1, 3, 4, 20]) == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.0])


def test_step_schedule():
    cfg = TrainConfig(lr=0.1, epochs=90, schedule="step", step_epochs=30, gamma=0.1)
    assert lrs(cfg, 10, [0, 299, 300, 600]) == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_exponential_schedule():
    cfg = TrainConfig(lr=0.5, epochs=250, schedule="exponential", gamma=0.97)
    assert lrs(cfg, 10, [0, 9, 10, 25]) == pytest.approx([0.5, 0.5, 0.485, 0.5 * 0.97**2])


def test_constant_schedule():
    assert lrs(TrainConfig(lr=0.01, schedule="constant"), 3, [0, 100]) == [0.01, 0.01]


def test_scheduler_drives_the_optimizer():
    cfg = TrainConfig(lr=1.0, epochs=2, schedule="cosine")
    opt = build_optimizer(net(), cfg)
    schedule = build_schedule(opt, cfg, steps_per_epoch=2)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert seen == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))])
