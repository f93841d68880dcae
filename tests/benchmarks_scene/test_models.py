"""CIFAR ResNet-18, SegNet-MTAN and the dense heads: sizes, shapes, losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from flatmtl.modeling import MultiTaskModel, celeba_config, cityscapes_config, nyuv2_config

TINY = [4, 8, 16, 32, 32]


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_parameter_counts_match_the_reference_models():
    celeba = MultiTaskModel(celeba_config())
    assert count(celeba) == 11_332_752 and count(celeba.backbone) == 11_168_832

    nyuv2 = MultiTaskModel(nyuv2_config(log_sigma=True))
    assert count(nyuv2) == 44_229_076  # MTAN's module, with its 3 log-variances
    assert count(nyuv2) - nyuv2.backbone.log_sigma.numel() == 44_229_073  # Nash-MTL / F-MTL
    assert count(nyuv2.heads) == 111_889

    cityscapes = MultiTaskModel(cityscapes_config())
    assert count(cityscapes) == 41_206_984 and count(cityscapes.backbone) == 41_132_608

    tiny = count(MultiTaskModel(nyuv2_config(filters=TINY)))
    assert count(MultiTaskModel(nyuv2_config(filters=TINY, log_sigma=True))) == tiny + 3


def test_cifar_resnet_feature_is_the_reference_pooling():
    torch.manual_seed(0)
    model = MultiTaskModel(celeba_config(attributes=["Smiling", "Young"], width=4)).eval()
    backbone = model.backbone
    images = torch.rand(2, 3, 64, 64)
    features = backbone(images)
    hidden = F.relu(backbone.bn1(backbone.conv1(images)))
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        hidden = stage(hidden)
    assert hidden.shape[-2:] == (8, 8)
    assert torch.allclose(features, F.avg_pool2d(hidden, 4).flatten(1))
    assert features.shape == (2, 32 * 4)  # 8 * width channels on a 2 x 2 grid

    out = model(images, labels=torch.randint(0, 2, (2, 40)))
    assert out.logits["Smiling"].shape == (2, 2) and set(out.losses) == {"Smiling", "Young"}
    assert model(torch.rand(1, 3, 16, 16)).logits["Young"].shape == (1, 2)
    with pytest.raises(ValueError, match="pooling grid"):
        model(torch.rand(1, 3, 8, 8))


def test_mtan_forward_heads_and_losses():
    torch.manual_seed(0)
    model = MultiTaskModel(nyuv2_config(filters=TINY))
    images = torch.rand(2, 3, 32, 64)
    targets = {
        "segmentation": torch.randint(-1, 13, (2, 32, 64)),
        "depth": torch.rand(2, 1, 32, 64),
        "normal": F.normalize(torch.randn(2, 3, 32, 64), dim=1),
    }
    out = model(images, **targets)
    assert {k: tuple(v.shape) for k, v in out.logits.items()} == {
        "segmentation": (2, 13, 32, 64),
        "depth": (2, 1, 32, 64),
        "normal": (2, 3, 32, 64),
    }
    assert torch.allclose(out.logits["normal"].norm(dim=1), torch.ones(2, 32, 64), atol=1e-5)
    expected_seg = F.cross_entropy(
        out.logits["segmentation"], targets["segmentation"], ignore_index=-1
    )
    assert torch.allclose(out.losses["segmentation"], expected_seg)
    cosine = (out.logits["normal"] * targets["normal"]).sum(1).mean()
    assert torch.allclose(out.losses["normal"], 1 - cosine, atol=1e-6)
    assert torch.allclose(
        out.losses["depth"], (out.logits["depth"] - targets["depth"]).abs().mean(), atol=1e-6
    )

    only_depth = model(images, tasks=["depth"], depth=targets["depth"])
    assert list(only_depth.logits) == ["depth"]
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.rand(1, 3, 30, 64))


def test_missing_targets_give_zero_connected_losses():
    model = MultiTaskModel(nyuv2_config(filters=TINY))
    out = model(
        torch.rand(1, 3, 32, 32),
        segmentation=torch.full((1, 32, 32), -1),
        depth=torch.zeros(1, 1, 32, 32),
        normal=torch.zeros(1, 3, 32, 32),
    )
    for name, loss in out.losses.items():
        assert float(loss.detach()) == 0.0, name
        (grad,) = torch.autograd.grad(loss, model.heads[name].classifier.weight, retain_graph=True)
        assert torch.count_nonzero(grad) == 0

    # Partially missing depth: only valid pixels count.
    depth = torch.zeros(1, 1, 32, 32)
    depth[..., 0, 0] = 2.0
    prediction = model(torch.rand(1, 3, 32, 32), depth=depth, tasks=["depth"])
    logits = prediction.logits["depth"]
    assert torch.allclose(prediction.losses["depth"], (logits[..., 0, 0] - 2.0).abs().squeeze())


def test_scene_model_round_trips_through_save_pretrained(tmp_path):
    torch.manual_seed(0)
    model = MultiTaskModel(cityscapes_config(filters=TINY)).eval()
    model.save_pretrained(tmp_path)
    loaded = MultiTaskModel.from_pretrained(tmp_path).eval()
    images = torch.rand(1, 3, 32, 64)
    assert loaded.config.backbone_config["filters"] == TINY
    for name, logits in model(images).logits.items():
        assert torch.allclose(logits, loaded(images).logits[name])
