"""The fused soft mixture (FBNet/DARTS-style weight vectors) equals the unfused `sum_k w_k op_k(x)`:
outputs, gradients of the input, of every parameter and of the weights, and BatchNorm running statistics."""

import copy

import pytest
import torch
from torch import nn

from hwnas.spaces import builtin_spaces, load_space
from hwnas.supernet import ChoiceLayer, Supernet, fusion

LAYERWISE = [name for name in builtin_spaces() if load_space(name).kind == "layerwise"]
SMALL = {"input_size": [3, 16, 16], "num_classes": 10}
WIDTH = {"fbnet_se": 0.5}  # bottleneck_g32 needs 32 | c_out / 4; the others at a quarter width


def randomized_supernet(name: str, generator: torch.Generator) -> Supernet:
    """A supernet whose BatchNorms have random scales, shifts and running statistics."""
    supernet = Supernet(load_space(name, **SMALL, width_mult=WIDTH.get(name, 0.25)))
    with torch.no_grad():
        for m in supernet.modules():
            if isinstance(m, nn.BatchNorm2d):
                for t, low, high in ((m.weight, 0.5, 1.5), (m.running_var, 0.5, 2.0)):
                    t.copy_(low + (high - low) * torch.rand(t.shape, generator=generator))
                for t in (m.bias, m.running_mean):
                    t.copy_(0.1 * torch.randn(t.shape, generator=generator))
    return supernet


def random_weights(n: int, generator: torch.Generator) -> torch.Tensor:
    """A softmax over `n` candidates, with about one entry in four set exactly to zero."""
    w = torch.randn(n, generator=generator).softmax(0)
    w[torch.rand(n, generator=generator) < 0.25] = 0
    if not w.any():
        w[0] = 1
    return w


def run(layer: ChoiceLayer, x: torch.Tensor, weights: torch.Tensor, fused: bool, train: bool) -> dict:
    """Output, gradients (input, weights, every parameter) and buffers after one forward/backward."""
    layer = copy.deepcopy(layer).train(train)
    x = x.clone().requires_grad_()
    w = weights.clone().requires_grad_()
    with fusion(fused):
        out = layer(x, w)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    results = {"output": out.detach(), "input gradient": x.grad, "weight gradient": w.grad}
    results |= {f"gradient of {name}": p.grad for name, p in layer.named_parameters()}
    return results | {f"buffer {name}": b for name, b in layer.named_buffers()}


def assert_same(fused: torch.Tensor | None, reference: torch.Tensor | None, what: str) -> None:
    if reference is None or fused is None:
        assert fused is None and reference is None, f"{what}: present in only one of fused/reference"
        return
    scale = max(reference.abs().max().item(), 1.0) if reference.numel() else 1.0
    torch.testing.assert_close(fused, reference, rtol=1e-3, atol=1e-4 * scale, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("name", LAYERWISE)
@pytest.mark.slow
def test_fused_mixture_equals_unfused(name):
    generator = torch.Generator().manual_seed(len(name))
    supernet = randomized_supernet(name, generator)
    for i, (spec, layer) in enumerate(zip(supernet.space.layers, supernet.layers, strict=True)):
        x = torch.randn(4, *spec.input_shape, generator=generator)
        weights = random_weights(len(layer.ops), generator)
        for train in (True, False):
            fused, reference = run(layer, x, weights, True, train), run(layer, x, weights, False, train)
            assert fused.keys() == reference.keys()
            for key in reference:
                assert_same(fused[key], reference[key], f"{name} layer {i} {'train' if train else 'eval'} {key}")


def test_inverted_residuals_of_fbnet_run_fused():
    """Under fusion the plain inverted residuals never run as modules; the grouped and skip candidates still do."""
    supernet = Supernet(load_space("fbnet_small"))
    layer = supernet.layers[1]
    calls = []
    for op, module in zip(layer.ops, layer.candidates, strict=True):
        module.register_forward_hook(lambda *_, op=op: calls.append(op))
    x = torch.randn(2, *supernet.space.layers[1].input_shape)
    w = torch.full((len(layer.ops),), 1 / len(layer.ops))
    with fusion(True):
        layer(x, w)
    assert sorted(calls) == ["ir_k3_e1_g2", "ir_k5_e1_g2", "skip"]
    calls.clear()
    layer(x, w)  # the default: the unfused reference
    assert calls == list(layer.ops)


def test_fusion_switch_restores_previous_state():
    with fusion(False):
        with fusion(True):
            pass
        supernet = Supernet(load_space("fbnet_small"))
        layer = supernet.layers[0]
        hits = []
        layer.candidates[0].register_forward_hook(lambda *_: hits.append(1))
        layer(torch.randn(2, *supernet.space.layers[0].input_shape), torch.full((len(layer.ops),), 0.5))
        assert hits == [1]
