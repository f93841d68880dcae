"""CIFAR-style ResNet-18 backbone for the CelebA benchmark.

ResNet-18 (He et al., CVPR 2016) in the small-image form used by MGDA-UB (Sener & Koltun,
NeurIPS 2018) and F-MTL (Phan et al., arXiv 2211.13723) on CelebA: a 3x3 stride-1 stem with no
max-pool, four stages of two basic blocks, and a 4x4 average pool that turns the 8x8 map of a
64x64 face into a 2x2x512 = 2048-d feature shared by the 40 attribute heads.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import register_backbone
from .configuration import MultiTaskConfig

__all__ = ["BasicBlock", "CifarResNet18"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, hidden: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(hidden)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(hidden))


@register_backbone("cifar_resnet18")
class CifarResNet18(nn.Module):
    """CIFAR-style ResNet-18 (He et al., CVPR 2016) as the CelebA encoder of MGDA-UB and F-MTL.

    The final map is average-pooled to a ``pool_grid x pool_grid`` grid and flattened. On the
    benchmark's 64x64 input the 8x8 map and the default grid of 2 make this exactly the
    reference ``avg_pool2d(out, 4)``; other input sizes (multiples of 8, at least 16) keep the
    same 2048-d feature, so the heads do not depend on the image size.

    Options (``backbone_config``): ``in_channels`` (3), ``width`` (64: channels of the first
    stage, doubled at each later stage), ``pool_grid`` (2).

    .. note:: With the defaults the backbone has 11,168,832 parameters and a model with 40
       ``Linear(2048, 2)`` heads 11,332,752, the counts of the reference CelebA model.
    """

    def __init__(self, config: MultiTaskConfig) -> None:
        super().__init__()
        options = config.backbone_config
        width = int(options.get("width", 64))
        if width < 1:
            raise ValueError(f"`backbone_config['width']` must be a positive int, found {width}.")
        self.pool_grid = int(options.get("pool_grid", 2))
        self.conv1 = nn.Conv2d(options.get("in_channels", 3), width, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages = []
        in_channels = width
        for index, channels in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    BasicBlock(in_channels, channels, stride), BasicBlock(channels, channels, 1)
                )
            )
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_features = in_channels * self.pool_grid**2

    def forward(self, pixel_values: Tensor, tasks: list[str] | None = None) -> Tensor:
        hidden = F.relu(self.bn1(self.conv1(pixel_values)))
        hidden = self.layer4(self.layer3(self.layer2(self.layer1(hidden))))
        if hidden.shape[-1] < self.pool_grid or hidden.shape[-2] < self.pool_grid:
            raise ValueError(
                f"`pixel_values` of size {tuple(pixel_values.shape[-2:])} give a final map of "
                f"{tuple(hidden.shape[-2:])}, smaller than the {self.pool_grid}x{self.pool_grid} "
                "pooling grid; use images of at least 8 * pool_grid pixels per side (64 on CelebA)."
            )
        return F.adaptive_avg_pool2d(hidden, self.pool_grid).flatten(1)
