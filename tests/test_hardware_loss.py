"""The hardware-aware losses: `mul` normalised by a reference cost, so any unit and scale works."""

import math

import pytest
import torch

from hwnas.cost.cost_model import CostModel
from hwnas.cost.hardware_loss import HardwareLoss
from hwnas.errors import HwnasError

ROWS = [[0.05, 0.12, 0.30], [0.08, 0.02, 0.40], [0.20, 0.10, 0.15]]
FIXED = 0.1
OPS = [["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c"]]


def cost_model(scale: float = 1.0, metric: str = "latency") -> CostModel:
    return CostModel(metric, FIXED * scale, [torch.tensor(row) * scale for row in ROWS])


def mul_loss(scale: float, **options) -> float:
    cost = cost_model(scale)
    loss = HardwareLoss("mul", **options).fitted(cost)
    logits = [torch.linspace(-1.0, 1.0, 3) * (i + 1) for i in range(len(ROWS))]
    return float(loss(torch.tensor(1.7), cost.expected([t.softmax(0) for t in logits])))


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_mul_is_finite_and_the_same_at_any_cost_scale(scale):
    reference = mul_loss(1.0)
    assert math.isfinite(reference) and reference > 0
    assert mul_loss(scale) == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_mul_with_a_target_is_the_same_at_any_cost_scale(scale):
    assert mul_loss(scale, target=0.6 * scale) == pytest.approx(mul_loss(1.0, target=0.6), rel=1e-5)


def test_mul_is_alpha_times_ce_at_the_reference():
    cost = cost_model()
    loss = HardwareLoss("mul", alpha=0.2, beta=0.6).fitted(cost)
    cheapest, _ = cost.cheapest()
    assert loss.reference == pytest.approx(cheapest)
    assert float(loss(torch.tensor(2.0), torch.tensor(cheapest))) == pytest.approx(2.0 * 0.2)


def cost_gradient(loss: HardwareLoss, value: float) -> float:
    cost = torch.tensor(value, requires_grad=True)
    loss(torch.tensor(1.0), cost).backward()
    return float(cost.grad)


def test_mul_above_a_target_pushes_only_costs_above_it():
    loss = HardwareLoss("mul", target=0.5, target_mode="above")
    assert cost_gradient(loss, 0.3) == 0
    assert cost_gradient(loss, 0.8) > 0
    assert float(loss(torch.tensor(1.0), torch.tensor(0.3))) == pytest.approx(0.2)


def test_mul_abs_pushes_toward_the_target_from_both_sides():
    loss = HardwareLoss("mul", target=0.5, target_mode="abs")
    assert cost_gradient(loss, 0.3) < 0 < cost_gradient(loss, 0.8)


def test_mul_accepts_a_cheapest_cost_under_one_ms():
    cost = CostModel("latency", 0.2, [torch.tensor([0.0, 0.3]), torch.tensor([0.1, 0.0])])
    assert cost.cheapest()[0] == pytest.approx(0.2)
    loss = HardwareLoss("mul").fitted(cost)
    loss.check(cost, [["a", "b"], ["a", "b"]])
    assert math.isfinite(float(loss(torch.tensor(1.0), cost.expected([torch.tensor([0.5, 0.5])] * 2))))


def test_a_target_below_the_cheapest_is_refused_in_the_cost_unit():
    cost = cost_model()
    cheapest, _ = cost.cheapest()
    refused = r"--target 0\.1 ms: no architecture .* the cheapest costs 0\.27 ms \(a, b, b\)"
    with pytest.raises(HwnasError, match=refused):
        HardwareLoss("mul", target=0.1).fitted(cost).check(cost, OPS)
    assert cheapest == pytest.approx(0.27)


def test_a_cheapest_cost_of_zero_cannot_normalise_mul():
    cost = CostModel("params", 0.0, [torch.tensor([0.0, 1.0])])
    with pytest.raises(HwnasError, match=r"costs 0 M params \(a\), expected a cost > 0 M params"):
        HardwareLoss("mul").check(cost, [["a", "b"]])


def test_mul_without_a_reference_or_target_says_how_to_fit_it():
    with pytest.raises(ValueError, match="fitted"):
        HardwareLoss("mul")(torch.tensor(1.0), torch.tensor(2.0))


def test_add_is_unchanged():
    ce, c = torch.tensor(2.0), torch.tensor(3.0)
    assert float(HardwareLoss("add", weight=0.5)(ce, c)) == pytest.approx(3.5)
    assert float(HardwareLoss("add", weight=0.5, target=4.0)(ce, c)) == pytest.approx(2.0)
    assert float(HardwareLoss("add", weight=0.5, target=2.0, target_mode="abs")(ce, c)) == pytest.approx(2.5)
