import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwnas import zoo
from hwnas.arch import Architecture
from hwnas.cost import count, measure_latency, profile_arch
from hwnas.model import build_model


def test_mobilenet_v2_matches_torchvision_exactly():
    profile = profile_arch(Architecture.from_zoo("mobilenet_v2"))
    assert (profile.params, profile.macs) == (3_504_872, 300_774_272)


def test_fbnet_a_matches_the_paper_within_half_a_percent():
    profile = profile_arch(Architecture.from_zoo("fbnet_a"))
    assert abs(profile.macs / 249e6 - 1) < 0.005
    assert abs(profile.params / 4.3e6 - 1) < 0.005


@pytest.mark.parametrize("name", zoo.names())
def test_macs_agree_with_flop_counter(name):
    arch = Architecture.from_zoo(name).with_space_args(input_size=[3, 64, 64])
    model = build_model(arch).eval()
    profile = profile_arch(arch, model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *arch.spec.input_size))
    assert profile.macs == counter.get_total_flops() // 2
    assert sum(u.macs for u in profile.units) == profile.macs
    assert sum(u.params for u in profile.units) == profile.params


def test_units_cover_the_network():
    arch = Architecture.from_zoo("proxylessnas_gpu")
    profile = profile_arch(arch)
    assert [u.name for u in profile.units] == ["stem.0", "stem.1", *(f"layers.{i}" for i in range(21)), "head"]
    zero = profile.units[2 + 1]
    assert zero.op == "zero" and zero.params == zero.macs == 0 and zero.input_shape == zero.output_shape
    assert profile.units[0].input_shape == (3, 224, 224) and profile.units[-1].output_shape == (1000,)


def test_grouped_and_linear_macs():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False), nn.Flatten(), nn.Linear(16 * 25, 10))
    profile = count(model, (8, 5, 5), [("all", "test", model)])
    assert profile.macs == 25 * 16 * (8 // 4) * 9 + 16 * 25 * 10
    assert profile.params == 16 * 2 * 9 + 16 * 25 * 10 + 10


def test_frozen_parameters_are_not_counted():
    model = nn.Linear(4, 4)
    model.bias.requires_grad_(False)
    assert count(model, (4,), [("fc", "linear", model)]).params == 16


def test_latency_is_measured():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    threads = torch.get_num_threads()
    latency = measure_latency(model, (3, 16, 16), batch=2, threads=1, min_run_time=0.05)
    assert latency.median_ms > 0 and latency.runs >= 1 and latency.batch == 2 and latency.threads == 1
    assert torch.get_num_threads() == threads  # restored after pinning
