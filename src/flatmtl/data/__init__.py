"""Benchmark data: builders and loaders for the Hub and for local files."""

from .celeba import (
    CELEBA_ATTRIBUTES,
    CELEBA_HUB_ID,
    CELEBA_SPLITS,
    CelebATransform,
    load_celeba,
    read_attribute_file,
    read_partition_file,
)
from .idx import load_idx_folder, read_idx
from .multi_mnist import (
    MULTI_MNIST_TASKS,
    MULTI_MNIST_VARIANTS,
    MultiMNISTDataset,
    build_multi_mnist,
    load_multi_mnist,
)
from .scenes import (
    SCENE_BENCHMARKS,
    SCENE_SCALES,
    SceneAugmentation,
    SceneTransform,
    load_cityscapes,
    load_nyuv2,
    load_scene,
    scale_crop_flip,
)

__all__ = [
    "CELEBA_ATTRIBUTES",
    "CELEBA_HUB_ID",
    "CELEBA_SPLITS",
    "SCENE_BENCHMARKS",
    "SCENE_SCALES",
    "CelebATransform",
    "SceneAugmentation",
    "SceneTransform",
    "load_celeba",
    "load_cityscapes",
    "load_nyuv2",
    "load_scene",
    "read_attribute_file",
    "read_partition_file",
    "scale_crop_flip",
    "MULTI_MNIST_TASKS",
    "MULTI_MNIST_VARIANTS",
    "MultiMNISTDataset",
    "build_multi_mnist",
    "load_idx_folder",
    "load_multi_mnist",
    "read_idx",
]
