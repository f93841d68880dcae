"""Ready-made :class:`MultiTaskConfig` for the paper's CelebA, NYUv2 and CityScapes benchmarks.

The model of each benchmark follows F-MTL (Phan et al., arXiv 2211.13723) and the code it
builds on: a CIFAR-style ResNet-18 with 40 two-way heads on CelebA (as MGDA-UB), SegNet with
MTAN attention and dense heads on NYUv2 and CityScapes (as CAGrad and Nash-MTL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .configuration import MultiTaskConfig

__all__ = [
    "CELEBA_ATTRIBUTES",
    "celeba_config",
    "cityscapes_config",
    "nyuv2_config",
]

#: The 40 CelebA attributes, in the column order of ``list_attr_celeba.txt``.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip


def celeba_config(
    attributes: Sequence[str] = CELEBA_ATTRIBUTES, width: int = 64, **kwargs: Any
) -> MultiTaskConfig:
    """CelebA: CIFAR-style ResNet-18 (2048-d feature) and one ``Linear(2048, 2)`` head per
    attribute, reading column ``i`` of the ``labels`` batch key (11,332,752 parameters with
    the defaults). ``width`` shrinks the backbone for quick runs."""
    unknown = [name for name in attributes if name not in CELEBA_ATTRIBUTES]
    if unknown or not attributes:
        raise ValueError(
            f"`attributes` must be a non-empty subset of the 40 CelebA attributes, found "
            f"unknown names {unknown} in {list(attributes)}."
        )
    tasks = [
        {
            "name": name,
            "type": "classification",
            "num_labels": 2,
            "label_key": "labels",
            "label_index": CELEBA_ATTRIBUTES.index(name),
        }
        for name in attributes
    ]
    return MultiTaskConfig(
        tasks=tasks, backbone="cifar_resnet18", backbone_config={"width": width}, **kwargs
    )


def _scene_config(
    tasks: list[dict[str, Any]],
    filters: Sequence[int] | None,
    log_sigma: bool,
    kwargs: dict[str, Any],
) -> MultiTaskConfig:
    backbone_config: dict[str, Any] = {"log_sigma": log_sigma}
    if filters is not None:
        backbone_config["filters"] = [int(value) for value in filters]
    return MultiTaskConfig(
        tasks=tasks, backbone="segnet_mtan", backbone_config=backbone_config, **kwargs
    )


def nyuv2_config(
    filters: Sequence[int] | None = None, log_sigma: bool = False, **kwargs: Any
) -> MultiTaskConfig:
    """NYUv2: SegNet-MTAN with 13-class segmentation, depth and surface-normal heads, reading
    the ``segmentation``, ``depth`` and ``normal`` batch keys (44,229,073 parameters; 44,229,076
    with ``log_sigma=True``, the reference MTAN count). ``filters`` shrinks the SegNet."""
    tasks = [
        {"name": "segmentation", "type": "segmentation", "num_labels": 13,
         "label_key": "segmentation"},
        {"name": "depth", "type": "depth", "num_labels": 1, "label_key": "depth"},
        {"name": "normal", "type": "normal", "num_labels": 3, "label_key": "normal"},
    ]  # fmt: skip
    return _scene_config(tasks, filters, log_sigma, kwargs)


def cityscapes_config(
    filters: Sequence[int] | None = None, log_sigma: bool = False, **kwargs: Any
) -> MultiTaskConfig:
    """CityScapes: SegNet-MTAN with 7-class segmentation and depth (disparity) heads, reading
    the ``segmentation`` and ``depth`` batch keys (41,206,984 parameters; 41,206,986 with
    ``log_sigma=True``). ``filters`` shrinks the SegNet."""
    tasks = [
        {"name": "segmentation", "type": "segmentation", "num_labels": 7,
         "label_key": "segmentation"},
        {"name": "depth", "type": "depth", "num_labels": 1, "label_key": "depth"},
    ]  # fmt: skip
    return _scene_config(tasks, filters, log_sigma, kwargs)
