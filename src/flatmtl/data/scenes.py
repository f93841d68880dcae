"""NYUv2 and CityScapes, the dense scene benchmarks, from the Hub or from ``.npy`` files.

The preprocessed data of MTAN (Liu et al., CVPR 2019), used by CAGrad, Nash-MTL and F-MTL
(Phan et al., arXiv 2211.13723): NYUv2 at 288x384 with 13-class segmentation, depth and
surface normals (795 train / 654 test images), CityScapes at 128x256 with 7-class
segmentation and disparity (2975 / 500). The ``val`` split is the test set of the papers.

Items are torch tensors: ``pixel_values`` float32 ``(3, H, W)``, ``segmentation`` int64
``(H, W)`` with -1 = ignore, ``depth`` float32 ``(1, H, W)`` with 0 = missing, and on NYUv2
``normal`` float32 ``(3, H, W)`` with all-zero = missing. Arrays are read when an item is
read (a ``set_transform``), so nothing is copied or cached at load time.

Training augmentation (default on for ``train`` only), as the reference code: a random
scale-crop with scale drawn from {1, 1.2, 1.5} (a window of ``H/s x W/s`` resized back to
``H x W``: bilinear for image and normals, nearest for labels and depth, depth divided by
``s``, normals not re-normalised) and a horizontal flip with probability 1/2 (normals' x
component negated).

Local layout (MTAN's release)::

    root/{train,val}/image/{i}.npy    H x W x 3
    root/{train,val}/label/{i}.npy    H x W         (CityScapes: ``label_7/`` is found too)
    root/{train,val}/depth/{i}.npy    H x W x 1 or H x W
    root/{train,val}/normal/{i}.npy   H x W x 3     (NYUv2 only)

Hub: ``tanganke/nyuv2`` has columns ``image`` (3 x 288 x 384 float32), ``segmentation``
(288 x 384 int64), ``depth`` (1 x 288 x 384) and ``normal`` (3 x 288 x 384), splits ``train``
and ``val``. For the CityScapes mirror ``tanganke/cityscapes`` the same column names, splits
and channel-first arrays are assumed, without having been checked; pass ``columns`` to map
other names, and a schema that still differs raises an error listing what was found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SCENE_BENCHMARKS",
    "SCENE_SCALES",
    "SceneAugmentation",
    "SceneTransform",
    "load_cityscapes",
    "load_nyuv2",
    "load_scene",
    "scale_crop_flip",
]

#: benchmark -> (default Hub id, batch keys of its targets, image size H x W)
SCENE_BENCHMARKS: dict[str, tuple[str, tuple[str, ...], tuple[int, int]]] = {
    "nyuv2": ("tanganke/nyuv2", ("segmentation", "depth", "normal"), (288, 384)),
    "cityscapes": ("tanganke/cityscapes", ("segmentation", "depth"), (128, 256)),
}
SCENE_SCALES = (1.0, 1.2, 1.5)
_SPLIT_ALIASES = {"test": "val", "validation": "val"}
# batch key -> folder names of the local layout, first found wins
_FOLDERS = {
    "pixel_values": ("image",),
    "segmentation": ("label", "label_7"),
    "depth": ("depth",),
    "normal": ("normal",),
}
# batch key -> channels of the tensor (None: a 2-D label map)
_CHANNELS = {"pixel_values": 3, "segmentation": None, "depth": 1, "normal": 3}
_HUB_COLUMNS = {
    "pixel_values": "image",
    "segmentation": "segmentation",
    "depth": "depth",
    "normal": "normal",
}
_FETCH_HINT = (
    "use the preprocessed .npy release of MTAN (NYUv2 288x384, CityScapes 128x256) and keep "
    "its {train,val}/{image,label,depth,normal}/N.npy layout"
)


def scale_crop_flip(
    sample: Mapping[str, Tensor], scale: float, top: int, left: int, flip: bool
) -> dict[str, Tensor]:
    """Crop the ``int(H/scale) x int(W/scale)`` window at ``(top, left)``, resize it back to
    ``H x W`` and optionally flip it horizontally; keeps depth and normals consistent."""
    height, width = sample["pixel_values"].shape[-2:]
    crop_h, crop_w = int(height / scale), int(width / scale)
    if not (0 <= top <= height - crop_h and 0 <= left <= width - crop_w):
        raise ValueError(
            f"The crop window {crop_h}x{crop_w} at (`top`={top}, `left`={left}) does not fit "
            f"in a {height}x{width} image; draw top in [0, {height - crop_h}] and left in "
            f"[0, {width - crop_w}]."
        )
    size = (height, width)
    window = (slice(top, top + crop_h), slice(left, left + crop_w))
    out: dict[str, Tensor] = {}
    for key, value in sample.items():
        if key not in _CHANNELS:
            out[key] = value
            continue
        crop = value[..., window[0], window[1]]
        if key in ("pixel_values", "normal"):
            resized = F.interpolate(crop[None], size=size, mode="bilinear", align_corners=True)[0]
        elif key == "segmentation":
            resized = F.interpolate(crop[None, None].float(), size=size, mode="nearest")[0, 0]
            resized = resized.to(value.dtype)
        else:
            resized = F.interpolate(crop[None], size=size, mode="nearest")[0] / scale
        if flip:
            resized = resized.flip(-1)
            if key == "normal":
                resized[0] = -resized[0]
        out[key] = resized.contiguous()
    return out


class SceneAugmentation:
    """Random scale-crop and horizontal flip of a scene sample (see :func:`scale_crop_flip`).

    Draws come from a NumPy generator seeded with ``seed`` (and, inside a ``DataLoader``
    worker, with that worker's seed as well, so workers never repeat each other): the same
    seed and reading order give the same augmented samples.
    """

    def __init__(
        self, scales: Sequence[float] = SCENE_SCALES, flip_probability: float = 0.5, seed: int = 0
    ) -> None:
        if not scales or min(scales) < 1.0:
            raise ValueError(f"`scales` must be values >= 1 such as (1, 1.2, 1.5), found {scales}.")
        self.scales = tuple(float(scale) for scale in scales)
        self.flip_probability = flip_probability
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_owner: int | None = None

    def _generator(self) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        owner = None if worker is None else worker.id
        if self._rng is None or owner != self._rng_owner:
            entropy = [self.seed] if worker is None else [self.seed, worker.seed]
            self._rng = np.random.default_rng(entropy)
            self._rng_owner = owner
        return self._rng

    def draw(self, height: int, width: int) -> tuple[float, int, int, bool]:
        """One set of parameters ``(scale, top, left, flip)`` for an ``H x W`` image."""
        rng = self._generator()
        scale = self.scales[int(rng.integers(len(self.scales)))]
        crop_h, crop_w = int(height / scale), int(width / scale)
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        flip = bool(rng.random() < self.flip_probability)
        return scale, top, left, flip

    def __call__(self, sample: Mapping[str, Tensor]) -> dict[str, Tensor]:
        height, width = sample["pixel_values"].shape[-2:]
        return scale_crop_flip(sample, *self.draw(height, width))


def _to_layout(array: np.ndarray, key: str, where: str) -> Tensor:
    """Channel-first float32 (int64 for labels) tensor from an HWC, CHW or HW array."""
    channels = _CHANNELS[key]
    if channels is None:
        if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
            array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
        if array.ndim != 2:
            raise ValueError(
                f"{where} must be an H x W label map, found shape {array.shape}; {_FETCH_HINT}."
            )
        if array.dtype.kind == "f":
            array = np.rint(array)
        return torch.from_numpy(array.astype(np.int64))
    if channels == 1 and array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] == channels and array.shape[0] != channels:
        array = np.moveaxis(array, -1, 0)
    if array.ndim != 3 or array.shape[0] != channels:
        raise ValueError(
            f"{where} must be H x W x {channels} (or {channels} x H x W), found shape "
            f"{array.shape}; {_FETCH_HINT}."
        )
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class _NpyStore:
    """Reads sample ``i`` of a split from ``{key folder}/{i}.npy``."""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = {key: str(path) for key, path in folders.items()}

    def read(self, index: int) -> dict[str, Tensor]:
        sample = {}
        for key, folder in self.folders.items():
            path = os.path.join(folder, f"{index}.npy")
            try:
                array = np.load(path, allow_pickle=False)
            except FileNotFoundError as error:
                raise FileNotFoundError(
                    f"`{path}` is missing; every folder of a split needs 0.npy ... N-1.npy for "
                    f"the N images of image/; {_FETCH_HINT}."
                ) from error
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"`{path}` is not a readable .npy array ({error}); the file is truncated or "
                    f"corrupt: copy it again from the release."
                ) from error
            sample[key] = _to_layout(array, key, f"`{path}`")
        return sample


class _ArrowStore:
    """Reads sample ``i`` of a Hub split through NumPy formatting (no Python lists)."""

    def __init__(self, dataset: datasets.Dataset, columns: dict[str, str], name: str) -> None:
        self.columns = columns
        self.name = name
        self.dataset = dataset.with_format("numpy", columns=list(columns.values()))

    def read(self, index: int) -> dict[str, Tensor]:
        row = self.dataset[int(index)]
        where = f"row {index} of `{self.name}`"
        return {
            key: _to_layout(np.asarray(row[column]), key, f"column {column!r} of {where}")
            for key, column in self.columns.items()
        }


class SceneTransform:
    """Builds items from the sample indices of a split, optionally augmenting them.

    The wrapped ``datasets.Dataset`` holds one ``pixel_values`` column of sample indices;
    this transform reads the arrays of each index and returns the item's tensors.
    """

    def __init__(self, store: Any, augmentation: SceneAugmentation | None = None) -> None:
        self.store = store
        self.augmentation = augmentation

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Tensor]]:
        samples = [self.store.read(index) for index in batch["pixel_values"]]
        if self.augmentation is not None:
            samples = [self.augmentation(sample) for sample in samples]
        return {key: [sample[key] for sample in samples] for key in samples[0]} if samples else {}


def _local_store(root: Path, split: str, keys: Sequence[str]) -> tuple[_NpyStore, int]:
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"`data_dir` {str(root)!r} has no {split}/ folder; expected "
            f"{{train,val}}/{{image,label,depth[,normal]}}/N.npy; {_FETCH_HINT}."
        )
    folders: dict[str, Path] = {}
    for key in ("pixel_values", *keys):
        found = [split_dir / name for name in _FOLDERS[key] if (split_dir / name).is_dir()]
        if not found:
            raise FileNotFoundError(
                f"`{split_dir}` has no {' or '.join(_FOLDERS[key])}/ folder for {key!r}; "
                f"{_FETCH_HINT}."
            )
        folders[key] = found[0]
    indices = {
        key: {int(p.stem) for p in folder.glob("*.npy") if p.stem.isdigit()}
        for key, folder in folders.items()
    }
    count = len(indices["pixel_values"])
    if count == 0 or indices["pixel_values"] != set(range(count)):
        raise FileNotFoundError(
            f"`{folders['pixel_values']}` must hold 0.npy ... N-1.npy, found {count} numbered "
            f"files{'' if count == 0 else ' with gaps'}; {_FETCH_HINT}."
        )
    for key, found_indices in indices.items():
        missing = sorted(set(range(count)) - found_indices)
        if missing:
            raise FileNotFoundError(
                f"`{folders[key]}` lacks {len(missing)} of the {count} files of image/ (first: "
                f"{[f'{i}.npy' for i in missing[:3]]}); {_FETCH_HINT}."
            )
    return _NpyStore(folders), count


def _hub_store(
    repo_id: str, split: str, keys: Sequence[str], columns: Mapping[str, str] | None, **kwargs: Any
) -> tuple[_ArrowStore, int]:
    dataset = datasets.load_dataset(repo_id, split=split, **kwargs)
    mapping = {key: _HUB_COLUMNS[key] for key in ("pixel_values", *keys)}
    mapping.update(columns or {})
    missing = {key: col for key, col in mapping.items() if col not in dataset.column_names}
    if missing:
        raise ValueError(
            f"`{repo_id}` split {split!r} does not have the expected schema: no column for "
            f"{missing} (batch key -> column); found columns {dataset.column_names}. Pass "
            "`columns={batch_key: column}` to map them, or use the local .npy layout."
        )
    return _ArrowStore(dataset, mapping, f"{repo_id}:{split}"), len(dataset)


def load_scene(
    benchmark: str,
    source: str | os.PathLike[str] | None = None,
    split: str = "train",
    augment: bool | None = None,
    seed: int = 0,
    limit: int | None = None,
    columns: Mapping[str, str] | None = None,
    **hub_kwargs: Any,
) -> datasets.Dataset:
    """A scene benchmark split as a ``datasets.Dataset`` whose items are torch tensors.

    Args:
        benchmark: ``nyuv2`` or ``cityscapes``.
        source: a folder in the local layout, or a Hub id (default: the benchmark's mirror).
        split: ``train`` or ``val`` (aliases ``test``, ``validation``).
        augment: random scale-crop and flip; default on for ``train``, off otherwise.
        seed: seed of the augmentation draws.
        limit: keep only the first ``limit`` samples.
        columns: Hub only, batch key -> column name where the schema differs.
        hub_kwargs: passed to ``datasets.load_dataset``.
    """
    if benchmark not in SCENE_BENCHMARKS:
        raise ValueError(
            f"`benchmark` must be one of {sorted(SCENE_BENCHMARKS)}, found {benchmark!r}."
        )
    split = _SPLIT_ALIASES.get(split, split)
    if split not in ("train", "val"):
        raise ValueError(f"`split` must be 'train' or 'val' (alias 'test'), found {split!r}.")
    hub_id, keys, _ = SCENE_BENCHMARKS[benchmark]
    source = hub_id if source is None else source
    path = Path(source)
    if path.is_dir():
        store, count = _local_store(path, split, keys)
    elif path.exists() or str(source).count("/") != 1 or str(source).startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"`source` {str(source)!r} is neither a folder nor a Hub id such as {hub_id!r}; "
            f"pass the folder that holds train/ and val/."
        )
    else:
        store, count = _hub_store(str(source), split, keys, columns, **hub_kwargs)
    if limit is not None:
        count = min(count, limit)

    dataset = datasets.Dataset.from_dict(
        {"pixel_values": list(range(count))},
        features=datasets.Features({"pixel_values": datasets.Value("int64")}),
        split=split,
    )
    if augment is None:
        augment = split == "train"
    augmentation = SceneAugmentation(seed=seed) if augment else None
    dataset.set_transform(SceneTransform(store, augmentation))
    return dataset


def load_nyuv2(
    source: str | os.PathLike[str] | None = None, split: str = "train", **kwargs: Any
) -> datasets.Dataset:
    """NYUv2 (13-class segmentation, depth, normals); see :func:`load_scene`."""
    return load_scene("nyuv2", source, split, **kwargs)


def load_cityscapes(
    source: str | os.PathLike[str] | None = None, split: str = "train", **kwargs: Any
) -> datasets.Dataset:
    """CityScapes (7-class segmentation, disparity); see :func:`load_scene`."""
    return load_scene("cityscapes", source, split, **kwargs)
