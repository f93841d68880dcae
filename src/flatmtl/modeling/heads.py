"""Task heads and their losses, registered by task type.

A head maps the backbone's features for its task to predictions and computes its loss
against the target. Targets use ``-100`` (classification) or ``-1`` (dense labels) for
"missing": a head whose batch holds no valid target returns a zero loss that is still
connected to its parameters, so the task contributes no gradient and no NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from .configuration import TaskSpec

__all__ = ["HEADS", "ClassificationHead", "Head", "register_head"]


class Head(nn.Module):
    """Base class of a task head."""

    def __init__(self, in_features: int, task: TaskSpec) -> None:
        super().__init__()
        self.task = task

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError


class ClassificationHead(Head):
    """``Linear(in_features, num_labels)`` with cross-entropy; ``-100`` marks a missing label."""

    ignore_index = -100

    def __init__(self, in_features: int, task: TaskSpec) -> None:
        super().__init__(in_features, task)
        self.classifier = nn.Linear(in_features, task["num_labels"])

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(features.flatten(1))

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        target = target.long()
        valid = target != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index)


#: Task type -> head class. Dense heads register themselves from their modules.
HEADS: dict[str, type[Head]] = {"classification": ClassificationHead}


def register_head(name: str) -> Callable[[type[Head]], type[Head]]:
    """Class decorator that registers a head class for a task type."""

    def decorator(cls: type[Head]) -> type[Head]:
        HEADS[name] = cls
        return cls

    return decorator


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; a zero (still differentiable) when the mask is empty."""
    count = mask.sum()
    if int(count) == 0:
        return values.sum() * 0.0
    return (values * mask).sum() / count
