"""Recomputed soft mixtures (`recompute(True)`, `--recompute`): the same outputs, gradients and BatchNorm
statistics as keeping the activations, for whole supernets of every built-in space and a DARTS search network,
with far fewer bytes kept for the backward pass."""

import copy
from types import SimpleNamespace

import pytest
import torch
import yaml

from hwnas.cli import main
from hwnas.spaces import load_space
from hwnas.supernet import CellArchParams, CellSupernet, fusion, recompute
from tests.helpers import last_theta
from tests.test_dnas import SEARCH
from tests.test_fused_layers import LAYERWISE, assert_same, random_weights, randomized_supernet

TINY_CELLS = {"input_size": [3, 8, 8], "init_channels": 4, "layers": 3, "nodes": 2}


def step(model: torch.nn.Module, forward, recomputed: bool, fused: bool = False) -> dict:
    """Output, every gradient and every buffer after one training forward/backward; and the bytes autograd
    kept for the backward pass."""
    model = copy.deepcopy(model).train()
    torch.manual_seed(0)  # the same dropout masks in both runs
    kept = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept.append(t.numel() * t.element_size())
        return t

    with recompute(recomputed), fusion(fused), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, inputs = forward(model)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    results = {"output": out.detach()} | {f"gradient of input {i}": t.grad for i, t in enumerate(inputs)}
    results |= {f"gradient of {name}": p.grad for name, p in model.named_parameters()}
    results |= {f"buffer {name}": b.clone() for name, b in model.named_buffers()}
    return results | {"kept bytes": sum(kept)}


def assert_equal_steps(recomputed: dict, kept: dict, what: str) -> None:
    assert recomputed.keys() == kept.keys()
    for key in kept:
        if key != "kept bytes":
            assert_same(recomputed[key], kept[key], f"{what}: {key}")


@pytest.mark.parametrize("name", LAYERWISE)
@pytest.mark.slow
def test_a_recomputed_supernet_step_equals_the_kept_one(name):
    generator = torch.Generator().manual_seed(7 + len(name))
    supernet = randomized_supernet(name, generator)
    x = torch.randn(4, *supernet.space.input_size, generator=generator)
    weights = [random_weights(len(layer.ops), generator) for layer in supernet.layers]

    def forward(model):
        images, w = x.clone().requires_grad_(), [v.clone().requires_grad_() for v in weights]
        return model(images, w), [images, *w]

    kept, recomputed = step(supernet, forward, False), step(supernet, forward, True)
    assert_equal_steps(recomputed, kept, name)
    assert recomputed["kept bytes"] <= 0.5 * kept["kept bytes"], (recomputed["kept bytes"], kept["kept bytes"])
    if name == "fbnet_small":
        assert_equal_steps(step(supernet, forward, True, fused=True), kept, f"{name} fused")


def test_a_recomputed_darts_step_equals_the_kept_one():
    torch.manual_seed(0)
    space = load_space("darts", **TINY_CELLS)
    network, alpha = CellSupernet(space), CellArchParams(space)
    x = torch.randn(4, *space.input_size)

    def forward(model):
        images = x.clone().requires_grad_()
        weights = alpha.weights()
        return model(images, weights), [images]

    kept, recomputed = step(network, forward, False), step(network, forward, True)
    assert_equal_steps(recomputed, kept, "darts")
    assert recomputed["kept bytes"] <= 0.5 * kept["kept bytes"]


def test_recompute_changes_nothing_outside_training_or_without_autograd():
    supernet = randomized_supernet("fbnet_small", torch.Generator().manual_seed(1))
    x = torch.randn(2, *supernet.space.input_size)
    weights = [torch.full((len(layer.ops),), 1 / len(layer.ops)) for layer in supernet.layers]
    with torch.no_grad():
        expected = supernet.eval()(x, weights)
        with recompute(True):
            assert torch.equal(supernet(x, weights), expected)


@pytest.mark.slow
def test_a_soft_search_with_recompute_ends_with_the_same_theta(space_file, tiny_latency_cached, tmp_path):
    thetas = []
    for flag in ("--no-recompute", "--recompute"):
        run = tmp_path / flag
        assert main(["search", str(space_file), *SEARCH, "--mode", "gumbel", flag, "--run-dir", str(run)]) == 0
        assert yaml.safe_load((run / "config.yaml").read_text())["recompute"] is (flag == "--recompute")
        thetas.append(last_theta(run))
    torch.testing.assert_close(torch.tensor(thetas[1]), torch.tensor(thetas[0]), rtol=1e-4, atol=1e-5)


def test_recompute_turns_itself_on_when_the_activations_would_not_fit(monkeypatch, caplog):
    from hwnas.supernet import Supernet, memory

    supernet = Supernet(load_space("fbnet_small")).train()
    weights = [torch.full((len(layer.ops),), 1 / len(layer.ops)) for layer in supernet.layers]
    shape = tuple(supernet.space.input_size)

    trainer = SimpleNamespace(
        model=supernet,
        device=torch.device("cpu"),
        preprocess=SimpleNamespace(shape=shape),
        channels_last=False,
        cfg=SimpleNamespace(batch_size=256),
        ctx=SimpleNamespace(world=1),
    )

    def decide(option, free):
        monkeypatch.setattr(memory, "free_bytes", lambda device: free)
        return memory.recompute_default(option, trainer, lambda x: supernet(x, weights))

    need = memory.saved_bytes(supernet, lambda: supernet(torch.zeros(2, *shape), weights)) * 128
    buffers = {name: b.clone() for name, b in supernet.named_buffers()}
    rng = torch.get_rng_state()
    with caplog.at_level("INFO", logger="hwnas"):
        assert decide(None, int(need)) is True
    assert "recompute on" in caplog.text and "--no-recompute" in caplog.text
    assert decide(None, int(need / memory.FREE_SHARE) + 2**20) is False
    assert decide(None, None) is False  # free memory unknown: keep the activations
    assert decide(False, 1) is False and decide(True, 2**50) is True
    for name, b in supernet.named_buffers():  # the probe leaves no trace
        assert torch.equal(b, buffers[name]), name
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.slow
def test_a_search_turns_recompute_on_by_itself_when_memory_is_short(
    space_file, tiny_latency_cached, tmp_path, monkeypatch, caplog
):
    from hwnas.supernet import memory

    monkeypatch.setattr(memory, "free_bytes", lambda device: 1)
    run = tmp_path / "short"
    with caplog.at_level("INFO", logger="hwnas"):
        assert main(["search", str(space_file), *SEARCH, "--mode", "gumbel", "--run-dir", str(run)]) == 0
    assert "recompute on" in caplog.text
    assert yaml.safe_load((run / "config.yaml").read_text())["recompute"] is None
