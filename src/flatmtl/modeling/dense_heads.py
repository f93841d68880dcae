"""Dense prediction heads of the scene benchmarks: segmentation, depth and surface normals.

Each head is the MTAN prediction layer (Liu et al., CVPR 2019): a 3x3 convolution and a 1x1
convolution to the output channels, with no normalisation or activation in between, on the
per-task feature map of :class:`~flatmtl.modeling.mtan.SegNetMTAN`. Missing targets follow the
scene benchmarks: label ``-1``, depth ``0``, an all-zero normal.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .configuration import TaskSpec
from .heads import Head, masked_mean, register_head
from .mtan import init_mtan_weights

__all__ = ["DenseHead", "DepthHead", "NormalHead", "SegmentationHead"]


class DenseHead(Head):
    """``Conv3x3(C, C)`` then ``Conv1x1(C, num_labels)`` on a ``(B, C, H, W)`` feature map.

    Options (``head_config``): ``hidden_channels`` (the input channels).
    """

    def __init__(self, in_features: int, task: TaskSpec) -> None:
        super().__init__(in_features, task)
        hidden = int(task["head_config"].get("hidden_channels", in_features))
        self.conv = nn.Conv2d(in_features, hidden, 3, padding=1)
        self.classifier = nn.Conv2d(hidden, task["num_labels"], 1)
        init_mtan_weights(self)

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(self.conv(features))


@register_head("segmentation")
class SegmentationHead(DenseHead):
    """Per-pixel class logits ``(B, C, H, W)``; cross-entropy over pixels whose label is not
    ``-1`` (labels ``(B, H, W)``)."""

    ignore_index = -1

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        target = target.long()
        if not bool((target != self.ignore_index).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index)


@register_head("depth")
class DepthHead(DenseHead):
    """Per-pixel depth ``(B, 1, H, W)``; L1 error averaged over pixels whose target is not 0."""

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        target = target.to(logits.dtype).reshape(logits.shape)
        valid = (target != 0).to(logits.dtype)
        return masked_mean((logits - target).abs(), valid)


@register_head("normal")
class NormalHead(DenseHead):
    """Unit surface normals ``(B, 3, H, W)``, L2-normalised over channels in ``forward``; loss
    ``1 - cos`` averaged over pixels whose target is not all zero.

    .. note:: The reference divides by the norm with no epsilon; here ``F.normalize`` guards a
       zero prediction with ``eps=1e-12``, which changes nothing for non-zero vectors.
    """

    def forward(self, features: Tensor) -> Tensor:
        return F.normalize(super().forward(features), p=2, dim=1, eps=1e-12)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        target = target.to(logits.dtype)
        valid = (target != 0).any(dim=1).to(logits.dtype)
        cosine = (logits * target).sum(dim=1)
        return 1.0 - masked_mean(cosine, valid) if bool(valid.any()) else cosine.sum() * 0.0
