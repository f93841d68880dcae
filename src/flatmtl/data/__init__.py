"""Benchmark data: builders and loaders for the Hub and for local files."""

from .idx import load_idx_folder, read_idx
from .multi_mnist import (
    MULTI_MNIST_TASKS,
    MULTI_MNIST_VARIANTS,
    MultiMNISTDataset,
    build_multi_mnist,
    load_multi_mnist,
)

__all__ = [
    "MULTI_MNIST_TASKS",
    "MULTI_MNIST_VARIANTS",
    "MultiMNISTDataset",
    "build_multi_mnist",
    "load_idx_folder",
    "load_multi_mnist",
    "read_idx",
]
