"""MultiMNIST, MultiFashion and MultiFashion+MNIST: two items on one 36x36 canvas.

Construction (Sabour et al., NeurIPS 2017; Lin et al., *Pareto Multi-Task Learning*, NeurIPS
2019): a 28x28 item at the top-left and another at the bottom-right of a 36x36 canvas, each
shifted by up to 4 pixels in each direction, combined by pixel-wise maximum. The two tasks
classify the top-left and the bottom-right item. Each source image of a split is the
top-left item of two composites (so 60k MNIST images give the usual 120k), its partner is
drawn uniformly from the images of a different class (MultiMNIST, MultiFashion) or from the
other data set (MultiFashion+MNIST: MNIST digit top-left, Fashion item bottom-right).
Everything is drawn from ``numpy.random.default_rng(seed)``: the same sources and seed give
the same data set.

Sources: the sample bundled in the package (default; 8,000 / 2,000 real images per set), a
folder of IDX files, or the Hugging Face Hub (``ylecun/mnist``, ``zalando-datasets/fashion_mnist``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import Dataset

from .idx import load_idx_folder

__all__ = ["MULTI_MNIST_TASKS", "MULTI_MNIST_VARIANTS", "MultiMNISTDataset", "load_multi_mnist"]

#: variant -> (source of the top-left item, source of the bottom-right item)
MULTI_MNIST_VARIANTS = {
    "multi_mnist": ("mnist", "mnist"),
    "multi_fashion": ("fashion_mnist", "fashion_mnist"),
    "multi_fashion_and_mnist": ("mnist", "fashion_mnist"),
}
MULTI_MNIST_TASKS = ("top_left", "bottom_right")
HUB_IDS = {"mnist": "ylecun/mnist", "fashion_mnist": "zalando-datasets/fashion_mnist"}
SOURCES = ("sample", "idx", "hub")
CANVAS = 36
MAX_SHIFT = 4


class MultiMNISTDataset(Dataset):
    """Composite images ``(N, 36, 36)`` uint8 and labels ``(N, 2)``.

    Items are ``{"pixel_values": float32 (1, 36, 36) in [0, 1], "labels": int64 (2,)}``.
    """

    task_names = MULTI_MNIST_TASKS

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pixels = self.images[index].unsqueeze(0).to(torch.float32).div_(255.0)
        return {"pixel_values": pixels, "labels": self.labels[index]}

    def to_hf_dataset(self) -> datasets.Dataset:
        """The same data as a ``datasets.Dataset`` with torch formatting."""

        features = datasets.Features(
            {
                "pixel_values": datasets.Array3D((1, CANVAS, CANVAS), "float32"),
                "labels": datasets.Sequence(datasets.Value("int64"), length=2),
            }
        )
        data = {
            "pixel_values": (self.images.unsqueeze(1).float() / 255.0).numpy(),
            "labels": self.labels.numpy(),
        }
        return datasets.Dataset.from_dict(data, features=features).with_format("torch")


def compose(
    first: np.ndarray,
    second: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Put ``first[k]`` top-left and ``second[k]`` bottom-right on 36x36 canvases."""
    count, height, width = first.shape
    margin = CANVAS - height
    canvas = np.zeros((count, CANVAS, CANVAS), dtype=np.uint8)
    top_left = rng.integers(0, MAX_SHIFT + 1, size=(count, 2))
    bottom_right = rng.integers(margin - MAX_SHIFT, margin + 1, size=(count, 2))
    for k in range(count):
        y, x = top_left[k]
        canvas[k, y : y + height, x : x + width] = first[k]
        y, x = bottom_right[k]
        region = canvas[k, y : y + height, x : x + width]
        np.maximum(region, second[k], out=region)
    return canvas


def build_multi_mnist(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    seed: int,
    distinct_classes: bool,
    copies: int = 2,
) -> MultiMNISTDataset:
    """Composite data set from (images, labels) of the top-left and bottom-right sources."""
    rng = np.random.default_rng(seed)
    first_images, first_labels = first
    second_images, second_labels = second
    anchor = np.tile(np.arange(len(first_labels)), copies)
    partner = rng.integers(0, len(second_labels), size=len(anchor))
    if distinct_classes:
        by_class = {c: np.flatnonzero(second_labels != c) for c in np.unique(first_labels)}
        for cls, allowed in by_class.items():
            rows = np.flatnonzero(first_labels[anchor] == cls)
            partner[rows] = allowed[rng.integers(0, len(allowed), size=len(rows))]
    images = compose(first_images[anchor], second_images[partner], rng)
    labels = np.stack([first_labels[anchor], second_labels[partner]], axis=1)
    return MultiMNISTDataset(images, labels)


def load_multi_mnist(
    variant: str = "multi_mnist",
    split: str = "train",
    source: str = "sample",
    mnist_dir: str | os.PathLike[str] | None = None,
    fashion_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    copies: int = 2,
    limit: int | None = None,
) -> MultiMNISTDataset:
    """Build a Multi-MNIST-family split.

    Args:
        variant: ``multi_mnist``, ``multi_fashion`` or ``multi_fashion_and_mnist``.
        split: ``train`` or ``test``.
        source: ``sample`` (bundled real images, no download), ``idx`` (folders of the
            original IDX files: ``mnist_dir`` / ``fashion_dir``) or ``hub``.
        seed: seed of the composition (use different seeds for train and test only if you
            want different shifts; the splits never share source images).
        copies: composites per top-left source image (2 gives 120k / 20k from full MNIST).
        limit: use only the first ``limit`` source images of the split.
    """
    if variant not in MULTI_MNIST_VARIANTS:
        raise ValueError(
            f"`variant` must be one of {sorted(MULTI_MNIST_VARIANTS)}, found {variant!r}."
        )
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', found {split!r}.")
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}, found {source!r}.")
    if copies < 1:
        raise ValueError(f"`copies` must be a positive integer, found {copies}.")
    first_name, second_name = MULTI_MNIST_VARIANTS[variant]
    folders = {"mnist": mnist_dir, "fashion_mnist": fashion_dir}
    first = _load_source(first_name, split, source, folders[first_name], limit)
    second = (
        first
        if second_name == first_name
        else _load_source(second_name, split, source, folders[second_name], limit)
    )
    split_seed = seed * 2 + (split == "test")
    return build_multi_mnist(
        first, second, split_seed, distinct_classes=first_name == second_name, copies=copies
    )


def _load_source(
    name: str, split: str, source: str, folder: str | os.PathLike[str] | None, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if source == "sample":
        with resources.files("flatmtl.data").joinpath(f"sample/{name}.npz").open("rb") as handle:
            archive = np.load(handle)
            images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
    elif source == "idx":
        if folder is None:
            option = "mnist_dir" if name == "mnist" else "fashion_dir"
            raise ValueError(
                f"`source='idx'` needs `{option}`: the folder of the {name} IDX files "
                "(train-images-idx3-ubyte[.gz], ...)."
            )
        images, labels = load_idx_folder(Path(folder), split)
    else:
        images, labels = _load_hub(name, split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)


def _load_hub(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = datasets.load_dataset(HUB_IDS[name], split=split)
    except Exception as error:  # the Hub client raises many types for "unreachable"
        raise RuntimeError(
            f"Could not load {HUB_IDS[name]!r} from the Hugging Face Hub ({error}). Use "
            "`source='idx'` with a local folder of IDX files, or `source='sample'`."
        ) from error
    images = np.stack([np.asarray(image, dtype=np.uint8) for image in data["image"]])
    return images, np.asarray(data["label"], dtype=np.int64)
