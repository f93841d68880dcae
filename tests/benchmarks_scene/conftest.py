"""Fixture data in the exact on-disk formats of CelebA, NYUv2 and CityScapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flatmtl.modeling.presets import CELEBA_ATTRIBUTES


@pytest.fixture(autouse=True)
def _single_thread():
    # The machine's cores are shared; one thread is also the fastest for these tiny models.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_celeba(root: Path, splits: tuple[int, ...] = (0, 0, 0, 0, 1, 1, 2, 2)) -> np.ndarray:
    """Writes img_align_celeba/*.jpg and the two annotation files; returns the -1/1 table."""
    from PIL import Image

    rng = np.random.default_rng(0)
    image_dir = root / "img_align_celeba"
    image_dir.mkdir(parents=True)
    names = [f"{index + 1:06d}.jpg" for index in range(len(splits))]
    table = rng.choice([-1, 1], size=(len(names), len(CELEBA_ATTRIBUTES)))
    for index, name in enumerate(names):
        # Solid colours survive JPEG and resizing nearly unchanged; the first image is red.
        colour = (255, 0, 0) if index == 0 else tuple(int(v) for v in rng.integers(0, 256, 3))
        Image.new("RGB", (178, 218), colour).save(image_dir / name, quality=95)
    # The release pads columns with spaces and ends the header with a space.
    lines = [str(len(names)), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, table)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition = [f"{name} {split}" for name, split in zip(names, splits)]
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return table


def write_scene(
    root: Path,
    with_normal: bool = True,
    sizes: dict[str, int] | None = None,
    shape: tuple[int, int] = (32, 64),
    label_folder: str = "label",
    num_classes: int = 13,
) -> None:
    """Writes {train,val}/{image,label,depth[,normal]}/N.npy in MTAN's HWC layout."""
    rng = np.random.default_rng(1)
    height, width = shape
    for split, count in (sizes or {"train": 4, "val": 2}).items():
        folders = ["image", label_folder, "depth"] + (["normal"] if with_normal else [])
        for folder in folders:
            (root / split / folder).mkdir(parents=True)
        for index in range(count):
            label = rng.integers(-1, num_classes, size=(height, width)).astype(np.float32)
            depth = rng.uniform(0.5, 5.0, size=(height, width, 1)).astype(np.float32)
            depth[rng.random((height, width)) < 0.2] = 0.0
            np.save(root / split / "image" / f"{index}.npy", rng.random((height, width, 3)))
            np.save(root / split / label_folder / f"{index}.npy", label)
            np.save(root / split / "depth" / f"{index}.npy", depth)
            if with_normal:
                normal = rng.normal(size=(height, width, 3))
                normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
                normal[:2] = 0.0  # a missing border, as in the release
                np.save(root / split / "normal" / f"{index}.npy", normal.astype(np.float32))


@pytest.fixture
def celeba_dir(tmp_path: Path) -> Path:
    write_celeba(tmp_path / "celeba")
    return tmp_path / "celeba"


@pytest.fixture
def nyuv2_dir(tmp_path: Path) -> Path:
    write_scene(tmp_path / "nyuv2")
    return tmp_path / "nyuv2"


@pytest.fixture
def cityscapes_dir(tmp_path: Path) -> Path:
    write_scene(tmp_path / "cityscapes", with_normal=False, label_folder="label_7", num_classes=7)
    return tmp_path / "cityscapes"


@pytest.fixture
def scene_writer():
    return write_scene


@pytest.fixture
def celeba_writer():
    return write_celeba
