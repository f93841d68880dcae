"""CelebA and scene loaders on fixtures in the exact release formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flatmtl.data import celeba as celeba_module
from flatmtl.data import scenes as scenes_module
from flatmtl.data.celeba import load_celeba, read_attribute_file
from flatmtl.data.scenes import SceneAugmentation, load_cityscapes, load_nyuv2, scale_crop_flip
from flatmtl.modeling.presets import CELEBA_ATTRIBUTES


def test_celeba_local_shapes_values_and_splits(tmp_path, celeba_writer):
    table = celeba_writer(tmp_path / "celeba")
    sizes = {split: len(load_celeba(tmp_path / "celeba", split)) for split in ("train", "val")}
    assert sizes == {"train": 4, "val": 2}
    assert len(load_celeba(tmp_path / "celeba", "test")) == 2

    train = load_celeba(tmp_path / "celeba", "train")
    item = train[0]
    assert item["pixel_values"].shape == (3, 64, 64) and item["pixel_values"].dtype == torch.float32
    assert item["labels"].shape == (40,) and item["labels"].dtype == torch.int64
    assert torch.equal(item["labels"], torch.from_numpy((table[0] > 0).astype(np.int64)))
    # The first fixture image is pure red: [0, 1] range, RGB order, after JPEG and resizing.
    red = item["pixel_values"].mean(dim=(1, 2))
    assert red[0] > 0.95 and red[1] < 0.05 and red[2] < 0.05
    batch = train.__getitems__([1, 2])
    assert len(batch) == 2 and batch[1]["pixel_values"].shape == (3, 64, 64)
    assert load_celeba(tmp_path / "celeba", "train", image_size=16)[0]["pixel_values"].shape == (
        3,
        16,
        16,
    )


def test_celeba_attribute_file_layout(tmp_path, celeba_writer):
    table = celeba_writer(tmp_path / "celeba")
    names, labels = read_attribute_file(tmp_path / "celeba" / "list_attr_celeba.txt")
    assert names[:2] == ["000001.jpg", "000002.jpg"]
    assert labels.shape == (8, 40) and set(np.unique(labels)) <= {0, 1}
    assert np.array_equal(labels, (table > 0).astype(np.int64))


def test_celeba_errors_name_the_file(tmp_path, celeba_writer):
    root = tmp_path / "celeba"
    celeba_writer(root)
    attribute_file = root / "list_attr_celeba.txt"
    lines = attribute_file.read_text().splitlines()

    attribute_file.write_text("\n".join(["9"] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match="announces 9 images"):
        load_celeba(root, "train")
    attribute_file.write_text("\n".join(lines[:2] + [lines[2].replace("-1", " 0", 1)] + lines[3:]))
    with pytest.raises(ValueError, match=r"line 3 must be .* -1 or 1"):
        load_celeba(root, "train")
    attribute_file.write_text("\n".join(lines) + "\n")

    (root / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000002.jpg"):
        load_celeba(root, "train")
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    dataset = load_celeba(root, "train")
    with pytest.raises(ValueError, match=r"000002\.jpg.*corrupt"):
        dataset[1]

    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt"):
        load_celeba(root, "train")
    with pytest.raises(ValueError, match="`split`"):
        load_celeba(root, "dev")


def test_celeba_hub_schema(monkeypatch):
    import datasets
    from PIL import Image

    rows = {"image": [Image.new("RGB", (30, 40), (0, 0, 255))], "celeb_id": [7]}
    rows.update({name: [index % 3 == 0] for index, name in enumerate(CELEBA_ATTRIBUTES)})
    calls = []

    def fake_load_dataset(repo_id, split, **kwargs):
        calls.append((repo_id, split))
        if split != "valid":
            raise ValueError(f"Unknown split {split!r}")
        return datasets.Dataset.from_dict(rows)

    monkeypatch.setattr(celeba_module.datasets, "load_dataset", fake_load_dataset)
    item = load_celeba("flwrlabs/celeba", "val")[0]
    assert calls == [("flwrlabs/celeba", "valid")]
    assert item["pixel_values"].shape == (3, 64, 64) and item["pixel_values"][2].min() > 0.95
    assert item["labels"].tolist() == [int(index % 3 == 0) for index in range(40)]

    del rows["Young"]
    with pytest.raises(ValueError, match=r"missing \['Young'\]"):
        load_celeba("flwrlabs/celeba", "valid")


def read_npy(root, split, folder, index):
    return np.load(root / split / folder / f"{index}.npy")


def test_nyuv2_local_shapes_and_conventions(nyuv2_dir):
    test = load_nyuv2(nyuv2_dir, "val")  # evaluation: never augmented
    assert len(test) == 2 and len(load_nyuv2(nyuv2_dir, "train")) == 4
    item = test[1]
    expected = {
        "pixel_values": ((3, 32, 64), torch.float32),
        "segmentation": ((32, 64), torch.int64),
        "depth": ((1, 32, 64), torch.float32),
        "normal": ((3, 32, 64), torch.float32),
    }
    assert {k: (tuple(v.shape), v.dtype) for k, v in item.items()} == expected
    image = read_npy(nyuv2_dir, "val", "image", 1)
    assert torch.allclose(item["pixel_values"], torch.from_numpy(image.transpose(2, 0, 1)).float())
    label = read_npy(nyuv2_dir, "val", "label", 1)
    assert torch.equal(item["segmentation"], torch.from_numpy(label).long())
    assert int(item["segmentation"].min()) == -1  # ignore label kept
    depth = read_npy(nyuv2_dir, "val", "depth", 1)
    assert torch.equal(item["depth"][0], torch.from_numpy(depth[..., 0]))
    assert bool((item["depth"] == 0).any())  # missing depth kept as 0
    assert bool((item["normal"][:, :2] == 0).all())  # missing normals kept as zero


def test_cityscapes_label_7_folder_and_no_normals(cityscapes_dir):
    item = load_cityscapes(cityscapes_dir, "test")[0]
    assert sorted(item) == ["depth", "pixel_values", "segmentation"]
    assert item["segmentation"].shape == (32, 64) and int(item["segmentation"].max()) <= 6


def ramp_sample(height: int = 12, width: int = 16) -> dict[str, torch.Tensor]:
    ids = torch.arange(height * width, dtype=torch.float32).reshape(height, width)
    normal = torch.stack([torch.full_like(ids, 0.6), torch.full_like(ids, 0.8), ids * 0])
    return {
        "pixel_values": torch.stack([ids, -ids, ids * 2]),
        "segmentation": ids.long(),
        "depth": (ids + 1)[None],
        "normal": normal,
    }


def test_flip_keeps_depth_and_normals_consistent():
    sample = ramp_sample()
    out = scale_crop_flip(sample, scale=1.0, top=0, left=0, flip=True)
    # Pixel (3, 2) lands at (3, W - 1 - 2); its depth is unchanged, its normal's x negated.
    assert out["segmentation"][3, 13] == sample["segmentation"][3, 2]
    assert out["depth"][0, 3, 13] == sample["depth"][0, 3, 2]
    assert out["pixel_values"][:, 3, 13].tolist() == sample["pixel_values"][:, 3, 2].tolist()
    assert out["normal"][:, 3, 13].tolist() == pytest.approx([-0.6, 0.8, 0.0])


def test_scale_crop_divides_depth_and_keeps_pixels_aligned():
    sample = ramp_sample()
    out = scale_crop_flip(sample, scale=1.5, top=2, left=3, flip=False)
    # The crop is 8 x 10 at (2, 3); the corners map exactly onto the output corners.
    assert out["segmentation"][0, 0] == sample["segmentation"][2, 3]
    assert out["depth"][0, 0, 0] == pytest.approx(float(sample["depth"][0, 2, 3]) / 1.5)
    assert out["pixel_values"][:, -1, -1].tolist() == sample["pixel_values"][:, 9, 12].tolist()
    # Label and depth are both taken from the same (nearest) source pixel everywhere.
    assert torch.equal(out["depth"][0] * 1.5 - 1, out["segmentation"].float())
    assert out["normal"][:, 5, 7].tolist() == pytest.approx([0.6, 0.8, 0.0])
    assert out["depth"].shape == (1, 12, 16) and out["segmentation"].dtype == torch.int64
    with pytest.raises(ValueError, match="does not fit"):
        scale_crop_flip(sample, scale=1.5, top=5, left=0, flip=False)


def test_augmentation_is_deterministic_for_a_seed(nyuv2_dir):
    def epoch(seed):
        dataset = load_nyuv2(nyuv2_dir, "train", seed=seed)
        return [dataset[index]["depth"] for index in range(4)]

    first, again, other = epoch(3), epoch(3), epoch(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    draws = SceneAugmentation(seed=0)
    scales = {draws.draw(288, 384)[0] for _ in range(50)}
    assert scales == {1.0, 1.2, 1.5}
    plain = load_nyuv2(nyuv2_dir, "train", augment=False)[0]["depth"][0]
    assert torch.equal(plain, torch.from_numpy(read_npy(nyuv2_dir, "train", "depth", 0)[..., 0]))


def test_scene_errors_name_the_file(nyuv2_dir):
    (nyuv2_dir / "train" / "depth" / "2.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"depth.*\['2.npy'\]"):
        load_nyuv2(nyuv2_dir, "train")
    (nyuv2_dir / "val" / "normal" / "1.npy").write_bytes(b"garbage")
    dataset = load_nyuv2(nyuv2_dir, "val")
    with pytest.raises(ValueError, match=r"normal/1\.npy.*corrupt"):
        dataset[1]
    np.save(nyuv2_dir / "val" / "image" / "0.npy", np.zeros((32, 64, 4)))
    with pytest.raises(ValueError, match=r"image/0\.npy.*H x W x 3"):
        dataset[0]
    with pytest.raises(FileNotFoundError, match="neither a folder nor a Hub id"):
        load_nyuv2(nyuv2_dir / "missing" / "deeper", "train")


def test_scene_hub_schema(monkeypatch):
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Array3D((3, 32, 64), "float32"),
            "segmentation": datasets.Array2D((32, 64), "int64"),
            "depth": datasets.Array3D((1, 32, 64), "float32"),
            "normal": datasets.Array3D((3, 32, 64), "float32"),
        }
    )
    rng = np.random.default_rng(0)
    rows = {
        "image": [rng.random((3, 32, 64), dtype=np.float32)],
        "segmentation": [rng.integers(-1, 13, (32, 64))],
        "depth": [rng.random((1, 32, 64), dtype=np.float32)],
        "normal": [rng.random((3, 32, 64), dtype=np.float32)],
    }
    hub = datasets.Dataset.from_dict(rows, features=features)
    monkeypatch.setattr(scenes_module.datasets, "load_dataset", lambda repo, split, **kw: hub)
    item = load_nyuv2("tanganke/nyuv2", "val")[0]
    assert torch.allclose(item["pixel_values"], torch.from_numpy(rows["image"][0]))
    assert torch.equal(item["segmentation"], torch.from_numpy(rows["segmentation"][0]))
    assert item["normal"].shape == (3, 32, 64)

    renamed = hub.rename_column("segmentation", "semantic")
    monkeypatch.setattr(scenes_module.datasets, "load_dataset", lambda repo, split, **kw: renamed)
    with pytest.raises(ValueError, match=r"no column for \{'segmentation'"):
        load_nyuv2("tanganke/nyuv2", "val")
    mapped = load_nyuv2("tanganke/nyuv2", "val", columns={"segmentation": "semantic"})
    assert mapped[0]["segmentation"].shape == (32, 64)
