"""timm's model interface on every network build_model returns: features, head, classifier reset, feature_info."""

import random

import pytest
import torch

from hwnas.arch import Architecture
from hwnas.errors import HwnasError
from hwnas.model import build_model, load_weights, save_weights
from hwnas.nets import CosineClassifier
from hwnas.spaces import load_space
from tests.helpers import random_choices

SIDE = 32
TINY_SE = """
extends: fbnet_se
knobs: {input_size: [3, 32, 32], num_classes: 4, classifier: cosine}
stem: [{op: conv_k3, channels: 8, stride: 2}]
candidates: [bottleneck, bottleneck_se, skip]
stages:
  - {channels: 16, layers: 2, stride: 1, overrides: {0: [bottleneck_se]}}
  - {channels: 32, layers: 1, stride: 2}
head: {op: conv_k3, channels: 16}
"""


def zoo_model() -> Architecture:
    return Architecture.from_zoo("fbnet_a").with_space_args(input_size=[3, SIDE, SIDE], num_classes=10)


def random_layerwise() -> Architecture:
    space = load_space("fbnet_cifar", num_classes=7)
    return Architecture.from_space(space, random_choices(space, random.Random(5)))


def darts_cells(stem: str = "cifar", side: int = SIDE) -> Architecture:
    knobs = {"init_channels": 4, "layers": 5, "auxiliary": stem == "cifar", "num_classes": 6, "stem": stem}
    return Architecture.from_zoo("darts_v2").with_space_args(input_size=[3, side, side], **knobs)


def face_se(directory) -> Architecture:
    (directory / "tiny_se.yaml").write_text(TINY_SE)
    space = load_space(str(directory / "tiny_se.yaml"))
    return Architecture.from_space(space, ["bottleneck_se", "skip", "bottleneck"])


@pytest.fixture(params=["zoo", "layerwise", "cells", "face"])
def net(request, tmp_path) -> torch.nn.Module:
    arch = {"zoo": zoo_model, "layerwise": random_layerwise, "cells": darts_cells}.get(request.param)
    torch.manual_seed(0)
    return build_model(arch() if arch else face_se(tmp_path)).eval()


def images(side: int = SIDE) -> torch.Tensor:
    return torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_forward_is_the_head_on_the_features_and_pre_logits_are_pooled(net):
    x = images()
    features = net.forward_features(x)
    assert features.dim() == 4 and features.shape[1] == net.num_features
    logits = net(x)
    assert logits.shape == (2, net.num_classes)
    assert torch.equal(net.forward_head(features), logits)
    pooled = net.forward_head(features, pre_logits=True)
    assert torch.allclose(pooled, features.mean((2, 3))) and pooled.shape == (2, net.num_features)
    assert torch.allclose(net.get_classifier()(pooled), logits, atol=1e-6)


@torch.no_grad()
def test_reset_classifier_gives_a_new_width_and_zero_gives_pooled_features(net):
    x = images()
    kind = type(net.get_classifier())
    with pytest.raises(HwnasError, match=r"num_classes: got -1, expected an integer >= 0 \(0: no classifier\)"):
        net.reset_classifier(-1)
    net.reset_classifier(5)
    assert net.num_classes == 5 and net(x).shape == (2, 5) and isinstance(net.get_classifier(), kind)
    net.reset_classifier(0)
    assert net.num_classes == 0
    assert torch.allclose(net(x), net.forward_head(net.forward_features(x), pre_logits=True))
    assert net(x).shape == (2, net.num_features)


@torch.no_grad()
def test_feature_info_names_the_end_of_each_stride_stage(net):
    info = net.feature_info
    reductions = [entry["reduction"] for entry in info]
    assert len(info) >= 2 and reductions == sorted(set(reductions))
    caught = {}
    for entry in info:
        net.get_submodule(entry["module"]).register_forward_hook(
            lambda _m, _i, out, name=entry["module"]: caught.__setitem__(name, out.shape)
        )
    final = net.forward_features(images())
    for entry in info:
        assert caught[entry["module"]][1:] == (entry["num_chs"], SIDE // entry["reduction"], SIDE // entry["reduction"])
    assert final.shape[2] == SIDE // reductions[-1]
    again, maps = net.forward_intermediates(images())
    assert torch.equal(again, final)
    assert [m.shape[1:] for m in maps] == [caught[entry["module"]][1:] for entry in info]
    last_two = net.forward_intermediates(images(), indices=2, intermediates_only=True)
    assert [m.shape for m in last_two] == [m.shape for m in maps[-2:]]
    with pytest.raises(HwnasError, match="indices: got 99"):
        net.forward_intermediates(images(), indices=[99])


def test_weight_files_keep_their_tensor_names_and_load(tmp_path):
    model = build_model(darts_cells())
    assert {"stem.first.0.weight", "classifier.weight", "auxiliary.classifier.weight"} <= set(model.state_dict())
    layerwise = build_model(random_layerwise())
    assert {"stem.0.0.weight", "head.classifier.weight"} <= set(layerwise.state_dict())
    save_weights(layerwise.state_dict(), tmp_path / "w.pt")
    again = build_model(random_layerwise())
    load_weights(again, tmp_path / "w.pt")
    x = images()
    with torch.no_grad():
        assert torch.equal(again.eval()(x), layerwise.eval()(x))


def test_cell_network_trains_with_its_auxiliary_head_until_the_classifier_is_removed():
    model = build_model(darts_cells()).train()
    logits, aux = model(images())
    assert logits.shape == aux.shape == (2, 6)
    model.reset_classifier(3)
    logits, aux = model(images())
    assert logits.shape == aux.shape == (2, 3)
    model.reset_classifier(0)
    assert model(images()).shape == (2, model.num_features) and model.auxiliary is None


CELL_STAGES = {  # 5 cells, reduction cells 1 and 3: the stem's own stage survives only when no cell works at it
    "cifar": [("cells.0", 1), ("cells.2", 2), ("cells.4", 4)],
    "cnas64": [("cells.0", 2), ("cells.2", 4), ("cells.4", 8)],
    "imagenet": [("stem.first", 4), ("cells.0", 8), ("cells.2", 16), ("cells.4", 32)],
}


@pytest.mark.parametrize("stem", sorted(CELL_STAGES))
def test_cell_stems_report_their_reductions(stem):
    side = 128 if stem == "imagenet" else SIDE
    model = build_model(darts_cells(stem, side)).eval()
    assert [(e["module"], e["reduction"]) for e in model.feature_info] == CELL_STAGES[stem]
    with torch.no_grad():
        maps = model.forward_intermediates(images(side), intermediates_only=True)
    for entry, m in zip(model.feature_info, maps, strict=True):
        assert m.shape[1:] == (entry["num_chs"], side // entry["reduction"], side // entry["reduction"])


def test_face_network_keeps_its_cosine_classifier_through_a_reset(tmp_path):
    model = build_model(face_se(tmp_path)).eval()
    assert isinstance(model.get_classifier(), CosineClassifier)
    model.reset_classifier(9)
    assert isinstance(model.get_classifier(), CosineClassifier)
    with torch.no_grad():
        assert model(images()).shape == (2, 9) and model(images()).abs().max() <= 1 + 1e-5
