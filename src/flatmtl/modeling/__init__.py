"""Multi-head models: :class:`MultiTaskConfig`, :class:`MultiTaskModel`, backbones and heads."""

from .backbones import BACKBONES, LeNet, ResNet18, register_backbone
from .configuration import MultiTaskConfig, TaskSpec
from .heads import HEADS, ClassificationHead, Head, register_head
from .modeling import MultiTaskModel, MultiTaskOutput

__all__ = [
    "BACKBONES",
    "HEADS",
    "ClassificationHead",
    "Head",
    "LeNet",
    "MultiTaskConfig",
    "MultiTaskModel",
    "MultiTaskOutput",
    "ResNet18",
    "TaskSpec",
    "register_backbone",
    "register_head",
]
