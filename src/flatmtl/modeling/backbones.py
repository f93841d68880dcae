"""Shared backbones, registered by name.

A backbone is an ``nn.Module`` built from a :class:`MultiTaskConfig` with an ``out_features``
attribute (the feature size the heads read) and ``forward(pixel_values, tasks) -> Tensor``
(features shared by every head) or ``-> dict[str, Tensor]`` (features per task, e.g. MTAN).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn
from transformers import ResNetConfig, ResNetModel

from .configuration import MultiTaskConfig

__all__ = ["BACKBONES", "LeNet", "ResNet18", "register_backbone"]

BACKBONES: dict[str, type[nn.Module]] = {}


def register_backbone(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers a backbone class under ``name``."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        BACKBONES[name] = cls
        return cls

    return decorator


@register_backbone("lenet")
class LeNet(nn.Module):
    """The Multi-MNIST LeNet of Pareto MTL (Lin et al., NeurIPS 2019): conv 9x9 -> 10,
    conv 5x5 -> 20, fc 500 -> 50, on 1x36x36 inputs; 31,910 parameters with two 10-way heads.

    Options (``backbone_config``): ``in_channels`` (1), ``feature_dim`` (50).
    """

    def __init__(self, config: MultiTaskConfig) -> None:
        super().__init__()
        options = config.backbone_config
        self.conv1 = nn.Conv2d(options.get("in_channels", 1), 10, kernel_size=9)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.out_features = options.get("feature_dim", 50)
        self.fc = nn.Linear(500, self.out_features)

    def forward(self, pixel_values: Tensor, tasks: list[str] | None = None) -> Tensor:
        hidden = F.max_pool2d(F.relu(self.conv1(pixel_values)), 2)
        hidden = F.max_pool2d(F.relu(self.conv2(hidden)), 2)
        return F.relu(self.fc(hidden.flatten(1)))


@register_backbone("resnet18")
class ResNet18(nn.Module):
    """ResNet-18 (He et al., CVPR 2016) with a 7x7 stem, as the F-MTL and Pareto MTL code use on
    Multi-MNIST: transformers' ``ResNetModel``, then ``Linear(512, 100)`` and ReLU.

    Options (``backbone_config``): ``in_channels`` (1), ``feature_dim`` (100).
    """

    def __init__(self, config: MultiTaskConfig) -> None:
        super().__init__()
        options = config.backbone_config
        resnet_config = ResNetConfig(
            num_channels=options.get("in_channels", 1),
            embedding_size=64,
            hidden_sizes=[64, 128, 256, 512],
            depths=[2, 2, 2, 2],
            layer_type="basic",
            downsample_in_first_stage=False,
        )
        self.resnet = ResNetModel(resnet_config)
        self.out_features = options.get("feature_dim", 100)
        self.fc = nn.Linear(512, self.out_features)

    def forward(self, pixel_values: Tensor, tasks: list[str] | None = None) -> Tensor:
        pooled = self.resnet(pixel_values).pooler_output.flatten(1)
        return F.relu(self.fc(pooled))
