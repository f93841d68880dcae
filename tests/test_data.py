from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flatmtl.data import load_idx_folder, load_multi_mnist
from flatmtl.data.multi_mnist import build_multi_mnist, compose

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def test_compose_places_items_top_left_and_bottom_right():
    first = np.zeros((1, 28, 28), dtype=np.uint8)
    second = np.zeros((1, 28, 28), dtype=np.uint8)
    first[0, 0, 0] = 200  # top-left corner pixel of the first item
    second[0, 27, 27] = 100  # bottom-right corner pixel of the second item
    rng = np.random.default_rng(0)
    canvas = compose(first, second, rng)[0]
    ((y1, x1),) = np.argwhere(canvas == 200)
    ((y2, x2),) = np.argwhere(canvas == 100)
    assert 0 <= y1 <= 4 and 0 <= x1 <= 4  # shifted by up to 4 px from the corner
    assert 31 <= y2 <= 35 and 31 <= x2 <= 35
    assert canvas.shape == (36, 36)


def test_overlap_is_pixelwise_maximum():
    first = np.full((1, 28, 28), 50, dtype=np.uint8)
    second = np.full((1, 28, 28), 80, dtype=np.uint8)
    canvas = compose(first, second, np.random.default_rng(1))[0]
    assert set(np.unique(canvas).tolist()) <= {0, 50, 80}
    assert canvas[12:24, 12:24].min() == 80  # the overlap always takes the larger value


def test_build_is_deterministic_and_labels_differ():
    images = np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    labels = np.arange(50) % 10
    a = build_multi_mnist((images, labels), (images, labels), seed=3, distinct_classes=True)
    b = build_multi_mnist((images, labels), (images, labels), seed=3, distinct_classes=True)
    c = build_multi_mnist((images, labels), (images, labels), seed=4, distinct_classes=True)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert len(a) == 100 and (a.labels[:, 0] != a.labels[:, 1]).all()
    # Each source image is the top-left item exactly twice.
    assert sorted(a.labels[:, 0].tolist()) == sorted((labels.tolist()) * 2)


def test_bundled_sample_variants():
    mixed = load_multi_mnist("multi_fashion_and_mnist", "test", limit=100)
    item = mixed[0]
    assert item["pixel_values"].shape == (1, 36, 36) and item["pixel_values"].dtype == torch.float32
    assert 0.0 <= float(item["pixel_values"].min()) and float(item["pixel_values"].max()) <= 1.0
    assert item["labels"].dtype == torch.int64 and len(mixed) == 200
    train = load_multi_mnist("multi_mnist", "train")
    assert len(train) == 16000
    test = load_multi_mnist("multi_mnist", "test")
    assert len(test) == 4000
    hf = load_multi_mnist("multi_fashion", "test", limit=5).to_hf_dataset()
    assert hf[0]["pixel_values"].shape == (1, 36, 36) and hf[0]["labels"].shape == (2,)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the shared MNIST copy is not present")
def test_real_idx_folder_and_bundled_sample_agree():
    images, labels = load_idx_folder(SHARED_MNIST, "test")
    assert images.shape == (10000, 28, 28) and np.bincount(labels)[0] == 980
    from_idx = load_multi_mnist(
        "multi_mnist", "test", source="idx", mnist_dir=SHARED_MNIST, limit=2000
    )
    from_sample = load_multi_mnist("multi_mnist", "test")
    assert torch.equal(from_idx.images, from_sample.images)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`variant` must be one of"):
        load_multi_mnist("multi_cifar")
    with pytest.raises(ValueError, match="`split` must be 'train' or 'test'"):
        load_multi_mnist(split="validation")
    with pytest.raises(ValueError, match="`source` must be one of"):
        load_multi_mnist(source="ftp")
