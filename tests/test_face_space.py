"""FBNet-SE: the face-recognition space, BatchNorm outside the blocks, margin heads, identity checks."""

import math

import pytest
import torch
from torch import nn

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.cost import profile_arch
from hwnas.engine.heads import margin_logits
from hwnas.model import build_model
from hwnas.nets import CosineClassifier
from hwnas.spaces import load_space
from hwnas.supernet import Supernet, extract_model
from tests.helpers import random_choices

OPS = "[bottleneck, bottleneck_se, bottleneck_g2, bottleneck_shuffle_g2, bottleneck_deform]"
TINY_SE = f"""
extends: fbnet_se
knobs: {{input_size: [3, 16, 16], num_classes: 4}}
stem: [{{op: conv_k3, channels: 8, stride: 1}}]
candidates: [bottleneck, bottleneck_se, bottleneck_g2, bottleneck_shuffle_g2, bottleneck_deform, skip]
stages:
  - {{channels: 16, layers: 2, stride: 1, overrides: {{0: {OPS}}}}}
  - {{channels: 32, layers: 2, stride: 2, overrides: {{0: {OPS}}}}}
head: {{op: conv_k3, channels: 16}}
"""


@pytest.fixture
def tiny_se(tmp_path) -> str:
    path = tmp_path / "tiny_se.yaml"
    path.write_text(TINY_SE)
    return str(path)


def test_fbnet_se_is_the_se_resnet50_macro():
    space = load_space("fbnet_se")
    assert space.input_size == (3, 108, 108) and space.stem[0].stride == 1
    assert [sum(la.stage == s for la in space.layers) for s in range(4)] == [3, 4, 6, 3]
    assert [space.layers[i].c_out for i in (0, 3, 7, 13)] == [256, 512, 1024, 2048]
    assert space.head.channels == 512 and space.head.input_hw == (7, 7)
    assert "skip" not in space.layers[0].candidates and "skip" in space.layers[1].candidates
    assert len(space.layers[1].candidates) == 6 and "bottleneck_deform" in space.layers[1].candidates
    assert load_space("fbnet_se", stem_stride=2).layers[0].input_hw == (27, 27)


def test_norm_outside_puts_one_batchnorm_after_each_block_and_none_inside(tiny_se):
    arch = Architecture.from_space(load_space(tiny_se), ["bottleneck_se", "skip", "bottleneck_deform", "skip"])
    model = build_model(arch)
    for layer in model.layers:
        assert isinstance(layer, nn.Sequential) and isinstance(layer[1], nn.BatchNorm2d)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in layer[0].modules())
    inside = build_model(arch.with_space_args(norm="inside"))
    assert all(
        not isinstance(layer, nn.Sequential) or not isinstance(layer[-1], nn.BatchNorm2d) for layer in inside.layers
    )
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_a_supernet_path_is_the_standalone_model(tiny_se):
    import random

    space = load_space(tiny_se)
    supernet = Supernet(space).eval()
    choices = random_choices(space, random.Random(1))
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(supernet(x, choices), extract_model(supernet, choices).eval()(x), atol=1e-5)


def test_margin_logits_match_hand_computed_values():
    cos = torch.tensor([[0.5, 0.2], [0.1, 0.9], [-0.99, 0.3]])
    labels = torch.tensor([0, 1, 0])
    am = margin_logits(cos, labels, "am_softmax", 2.0, 0.3)
    assert torch.allclose(am, torch.tensor([[0.4, 0.4], [0.2, 1.2], [2 * (-0.99 - 0.3), 0.6]]))
    arc = margin_logits(cos, labels, "arcface", 2.0, 0.3)
    expected = [
        [2 * math.cos(math.acos(0.5) + 0.3), 0.4],
        [0.2, 2 * math.cos(math.acos(0.9) + 0.3)],
        [2 * (-0.99 - 0.3 * math.sin(0.3)), 0.6],  # θ + m would pass π: cos θ − m·sin m
    ]
    assert torch.allclose(arc, torch.tensor(expected), atol=1e-6)
    assert torch.equal(margin_logits(cos, labels, "arcface", 2.0, 0.0), 2 * cos)


def test_cosine_classifier_gives_cosines_and_margin_heads_use_it(tiny_se):
    head = CosineClassifier(3, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0, 0], [0, 0, -5.0]]))
    assert torch.allclose(head(torch.tensor([[3.0, 0, 0], [0, 0, 1.0]])), torch.tensor([[1.0, 0], [0, -1.0]]))
    arch = Architecture.from_space(load_space(tiny_se), ["bottleneck"] * 4).with_space_args(classifier="cosine")
    model = build_model(arch)
    assert isinstance(model.head.classifier, CosineClassifier)
    out = model(torch.randn(3, 3, 16, 16))
    assert out.abs().max() <= 1 + 1e-5
    embedding = model.embed(torch.randn(3, 3, 16, 16))
    assert embedding.shape == (3, 16) and torch.allclose(embedding.norm(dim=1), torch.ones(3))
    assert profile_arch(arch).params == sum(p.numel() for p in model.parameters())


def test_margin_heads_need_two_images_per_identity_and_feature_dim_is_layerwise(tmp_path, tiny_se, capsys):
    from tests.fake_data import write_folder

    data = write_folder(tmp_path / "ids", ["ann", "bob", "cyd"], per_class=1, size=(16, 16))
    arch = Architecture.from_space(load_space(tiny_se), ["bottleneck"] * 4).save(tmp_path / "a.json")
    common = ["--data", f"folder:{data}", "--epochs", "1", "--no-progress", "--device", "cpu"]
    assert main(["train", str(arch), *common, "--head", "arcface", "--val-split", "0.3"]) == 2
    assert "a margin head needs at least 2 images per identity" in capsys.readouterr().err
    assert main(["train", "darts_v2", *common, "--feature-dim", "128"]) == 2
    assert "--feature-dim applies to layer-wise spaces" in capsys.readouterr().err


def test_a_group_count_that_does_not_divide_a_width_is_one_line(tmp_path):
    from hwnas.errors import SpaceError

    with pytest.raises(SpaceError, match=r"groups 32 must divide the bottleneck width 16"):
        load_space("fbnet_se", stage_channels=[64, 128, 256, 512])


@pytest.mark.slow
def test_search_on_synthetic_identities_retrains_and_verifies(tmp_path, tiny_se, capsys):
    import json

    faces = tmp_path / "faces"
    assert main(["faces", str(faces), "--identities", "6", "--test-identities", "4", "--per-identity", "6",
                 "--size", "16", "--folds", "2", "--per-fold", "4"]) == 0  # fmt: skip
    common = ["--data", f"folder:{faces / 'train'}", "--head", "arcface", "--no-progress", "--device", "cpu",
              "--batch-size", "8", "--val-split", "0.25", "--workers", "0"]  # fmt: skip
    search_dir = tmp_path / "search"
    code = main(
        ["search", tiny_se, *common, "--epochs", "2", "--weight-warmup-epochs", "1", "--cost", "macs",
         "--hc-weight", "0.1", "--mode", "gumbel_hard",
         "--run-dir", str(search_dir)]
    )  # fmt: skip
    assert code == 0
    assert "--head arcface" in json.loads(capsys.readouterr().out)["retrain"]
    arch = Architecture.load(search_dir / "arch.json")
    assert arch.space_args["classifier"] == "cosine" and len(arch.choices) == 4
    config = __import__("yaml").safe_load((search_dir / "config.yaml").read_text())
    assert (config["hw_loss"], config["warmup_epochs"], config["batch_size"]) == ("add", 1, 8)  # MXNet FBNet's defaults
    train_dir = tmp_path / "train"
    assert main(["train", str(search_dir / "arch.json"), *common, "--epochs", "2", "--run-dir", str(train_dir)]) == 0
    capsys.readouterr()
    weights = train_dir / "model.pt"
    assert main(["verify", str(train_dir / "arch.json"), "--weights", str(weights), "--pairs", str(faces / "pairs.txt"),
                 "--images", str(faces / "test")]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 16 and report["folds"] == 2 and 0 <= report["accuracy"] <= 100
    assert 0 <= report["tar_at_far_1e-3"] <= 1


def test_the_margin_applies_to_the_classifier_also_beside_an_auxiliary_head():
    from types import SimpleNamespace

    import torch.nn.functional as F

    from hwnas.engine.config import TrainConfig
    from hwnas.engine.trainer import Trainer
    from hwnas.nets import AuxiliaryOutputs

    cos, aux, labels = (
        torch.tensor([[0.5, 0.2], [0.1, 0.9]]),
        torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
        torch.tensor([0, 1]),
    )
    trainer = SimpleNamespace(cfg=TrainConfig(head="arcface", auxiliary_weight=0.4))
    expected = F.cross_entropy(margin_logits(cos, labels, "arcface", 64.0, 0.5), labels)
    assert torch.isclose(Trainer.loss(trainer, cos, labels), expected)
    combined = Trainer.loss(trainer, AuxiliaryOutputs(cos, aux), labels)
    assert torch.isclose(combined, expected + 0.4 * F.cross_entropy(aux, labels))
