import random

import pytest
import torch
from torch import nn

from hwnas.arch import Architecture
from hwnas.errors import ArchError
from hwnas.model import build_model
from hwnas.spaces import builtin_spaces, load_space
from hwnas.supernet import ChoiceLayer, Supernet, extract_model, path_state_dict
from tests.helpers import random_choices

SMALL = {"input_size": [3, 32, 32], "num_classes": 10}


def trained_supernet(space_name: str) -> tuple[Supernet, random.Random]:
    """A supernet whose BN statistics are no longer the defaults (a few train-mode passes)."""
    space = load_space(space_name, **SMALL)
    supernet = Supernet(space)
    rng = random.Random(space_name)
    with torch.no_grad():
        for _ in range(3):
            supernet(torch.randn(4, 3, 32, 32), random_choices(space, rng))
    return supernet.eval(), rng


@pytest.mark.parametrize("space_name", [n for n in builtin_spaces() if load_space(n).kind == "layerwise"])
@pytest.mark.slow
def test_path_equals_standalone_model(space_name):
    supernet, rng = trained_supernet(space_name)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(3):
        choices = random_choices(supernet.space, rng)
        model = extract_model(supernet, choices).eval()
        with torch.no_grad():
            assert torch.equal(supernet(x, choices), model(x))


def test_weights_from_another_supernet_give_different_outputs():
    supernet, rng = trained_supernet("fbnet_cifar")
    other, _ = trained_supernet("fbnet_cifar")
    choices = random_choices(supernet.space, rng)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(supernet(x, choices), extract_model(other, choices).eval()(x))


def test_standalone_model_has_no_nas_machinery():
    model = build_model(Architecture.from_space(load_space("fbnet", **SMALL), ["ir_k3_e6"] * 22))
    assert not any(isinstance(m, ChoiceLayer | Supernet) for m in model.modules())
    assert len(model.layers) == 22


def test_choices_by_index_or_name():
    supernet, _ = trained_supernet("spos")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(supernet(x, [1] * 20), supernet(x, ["shuffle_k5"] * 20))


@pytest.mark.parametrize(
    "choices,match",
    [
        (["shuffle_k3"] * 19, "19 choices, expected 20"),
        (["shuffle_k3"] * 19 + ["ir_k3_e6"], r"choices\[19\]: 'ir_k3_e6' is not a candidate"),
        ([0] * 19 + [4], r"choices\[19\]: index 4 is out of range 0..3"),
    ],
)
def test_bad_paths(choices, match):
    supernet, _ = trained_supernet("spos")
    with pytest.raises(ArchError, match=match):
        supernet(torch.randn(1, 3, 32, 32), choices)


def test_supernet_shares_stem_and_head_keys_with_the_model():
    supernet, _ = trained_supernet("proxylessnas")
    model = build_model(Architecture.from_space(supernet.space, [layer.ops[0] for layer in supernet.layers]))
    assert set(path_state_dict(supernet, [0] * 21)) == set(model.state_dict())


def test_candidates_built_through_the_registry():
    supernet = Supernet(load_space("fbnet", **SMALL))
    layer = supernet.layers[2]
    assert layer.ops == supernet.space.layers[2].candidates
    assert len(layer.candidates) == 9
    assert isinstance(layer.candidates[layer.ops.index("skip")], nn.Identity)


@pytest.mark.parametrize("space_name", ["fbnet", "spos", "proxylessnas"])
@pytest.mark.slow
def test_model_scripts_and_exports(space_name):
    space = load_space(space_name, **SMALL)
    model = build_model(Architecture.from_space(space, random_choices(space, random.Random(1)))).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(torch.jit.script(model)(x), expected, atol=1e-5)
        assert torch.allclose(torch.export.export(model, (x,)).module()(x), expected, atol=1e-5)


def test_residual_candidates_start_as_the_identity():
    """A new supernet's residual candidates equal the identity (OFA's zero-initialised last BatchNorm scale),
    so paths drawn at random agree at the start; a standalone model keeps the usual initialisation."""
    space = load_space("fbnet_small")
    supernet = Supernet(space).eval()
    layer = next(i for i, la in enumerate(space.layers) if la.c_in == la.c_out and la.stride == 1)
    x = torch.randn(2, space.layers[layer].c_in, *space.layers[layer].input_hw)
    for op, candidate in zip(supernet.layers[layer].ops, supernet.layers[layer].candidates, strict=True):
        if op.startswith("ir_"):
            assert torch.equal(candidate(x), x), op
    model = build_model(Architecture.from_space(space, ["ir_k3_e6"] * len(space.layers))).eval()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all()) for m in norms)
