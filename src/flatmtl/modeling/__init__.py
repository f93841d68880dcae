"""Multi-head models: :class:`MultiTaskConfig`, :class:`MultiTaskModel`, backbones and heads."""

from .auto import register_auto_classes
from .auto_backbone import TransformersBackbone
from .backbones import BACKBONES, LeNet, ResNet18, register_backbone
from .cifar_resnet import CifarResNet18
from .configuration import MultiTaskConfig, TaskSpec
from .dense_heads import DenseHead, DepthHead, NormalHead, SegmentationHead
from .heads import HEADS, ClassificationHead, Head, register_head
from .modeling import MultiTaskModel, MultiTaskOutput
from .mtan import SegNetMTAN
from .presets import CELEBA_ATTRIBUTES, celeba_config, cityscapes_config, nyuv2_config

__all__ = [
    "BACKBONES",
    "CELEBA_ATTRIBUTES",
    "HEADS",
    "ClassificationHead",
    "CifarResNet18",
    "DenseHead",
    "DepthHead",
    "Head",
    "LeNet",
    "MultiTaskConfig",
    "MultiTaskModel",
    "MultiTaskOutput",
    "NormalHead",
    "ResNet18",
    "SegNetMTAN",
    "SegmentationHead",
    "TaskSpec",
    "TransformersBackbone",
    "celeba_config",
    "cityscapes_config",
    "nyuv2_config",
    "register_auto_classes",
    "register_backbone",
    "register_head",
]
