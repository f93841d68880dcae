"""CelebA with its 40 binary attributes, from the Hub or from the original files.

The benchmark of MGDA-UB (Sener & Koltun, NeurIPS 2018) and F-MTL (Phan et al., arXiv
2211.13723): aligned faces resized to 64x64 with values in [0, 1], one binary task per
attribute, and the standard partition (``train``, ``valid``, ``test``). Items are
``{"pixel_values": float32 (3, S, S), "labels": int64 (40,)}`` with attributes mapped from
-1/1 to 0/1. Images are decoded and resized when an item is read (a ``set_transform``), so
loading is quick and nothing of the 200k images is cached.

Local layout (the files of the official release; ``Anno/`` and ``Eval/`` sub-folders and the
doubly nested ``img_align_celeba/img_align_celeba/`` of some mirrors are found too)::

    root/img_align_celeba/000001.jpg ...
    root/list_attr_celeba.txt        count line, header of 40 names, "000001.jpg -1 1 ..." rows
    root/list_eval_partition.txt     "000001.jpg 0" rows: 0 train, 1 valid, 2 test

Hub: ``flwrlabs/celeba`` (config ``img_align+identity+attr``; splits ``train``, ``valid``,
``test``; an ``image`` column and one boolean column per attribute, named as in the header).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch import Tensor

from ..modeling.presets import CELEBA_ATTRIBUTES

__all__ = [
    "CELEBA_ATTRIBUTES",
    "CELEBA_HUB_ID",
    "CELEBA_SPLITS",
    "CelebATransform",
    "load_celeba",
    "read_attribute_file",
    "read_partition_file",
]

CELEBA_HUB_ID = "flwrlabs/celeba"
#: Split name -> code in ``list_eval_partition.txt``.
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
_SPLIT_ALIASES = {"val": "valid", "validation": "valid"}
_FETCH_HINT = (
    "download the aligned images and annotations of the CelebA release "
    "(img_align_celeba.zip, list_attr_celeba.txt, list_eval_partition.txt)"
)


def _require_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            "CelebA needs Pillow to decode its images; install it with "
            "`pip install flatmtl[vision]`."
        ) from error
    return Image


def read_attribute_file(path: str | os.PathLike[str]) -> tuple[list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: file names and an ``(N, 40)`` int64 array of 0/1.

    The file has a count line, a header line with the 40 attribute names, then one row per
    image: its file name and 40 values, each -1 or 1.
    """
    path = Path(path)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ValueError(
            f"`{path}` is not a CelebA attribute file: expected a count line, a header line "
            f"and one row per image, found first line {lines[0][:60]!r} if any; "
            f"{_FETCH_HINT} again."
        )
    count = int(lines[0])
    header = lines[1].split()
    if tuple(header) != CELEBA_ATTRIBUTES:
        raise ValueError(
            f"`{path}` line 2 must name the 40 CelebA attributes in order (5_o_Clock_Shadow ... "
            f"Young), found {len(header)} names starting {header[:3]}; {_FETCH_HINT} again."
        )
    rows = lines[2:]
    if len(rows) != count:
        raise ValueError(
            f"`{path}` announces {count} images on line 1 but has {len(rows)} rows; the file "
            f"is truncated or edited, {_FETCH_HINT} again."
        )
    names, values = [], np.empty((count, len(header)), dtype=np.int64)
    for number, row in enumerate(rows):
        fields = row.split()
        try:
            parsed = [int(value) for value in fields[1:]]
        except ValueError:
            parsed = []
        if len(fields) != len(header) + 1 or any(value not in (-1, 1) for value in parsed):
            raise ValueError(
                f"`{path}` line {number + 3} must be a file name and 40 values of -1 or 1, "
                f"found {row[:80]!r}; {_FETCH_HINT} again."
            )
        names.append(fields[0])
        values[number] = parsed
    return names, (values > 0).astype(np.int64)


def read_partition_file(path: str | os.PathLike[str]) -> dict[str, int]:
    """Parse ``list_eval_partition.txt``: file name -> 0 (train), 1 (valid) or 2 (test)."""
    path = Path(path)
    partition: dict[str, int] = {}
    for number, row in enumerate(path.read_text().splitlines()):
        fields = row.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(
                f"`{path}` line {number + 1} must be a file name and a split code 0, 1 or 2, "
                f"found {row[:80]!r}; {_FETCH_HINT} again."
            )
        partition[fields[0]] = int(fields[1])
    return partition


class CelebATransform:
    """Turns raw CelebA rows into model inputs, when items are read.

    Rows hold ``pixel_values`` (an image path, encoded bytes, or a PIL image) and ``labels``
    (40 ints of 0/1), or, for Hub rows, ``image`` and one boolean column per attribute.
    Images are converted to RGB, resized to ``image_size`` with bilinear filtering and scaled
    to [0, 1].
    """

    def __init__(self, image_size: int = 64, root: str | None = None) -> None:
        self.image_size = image_size
        self.root = root

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Tensor]]:
        if "labels" in batch:
            labels = [torch.as_tensor(row, dtype=torch.int64) for row in batch["labels"]]
            images = batch["pixel_values"]
        else:
            table = np.stack([np.asarray(batch[name], dtype=bool) for name in CELEBA_ATTRIBUTES])
            labels = list(torch.from_numpy(table.T.astype(np.int64)))
            images = batch["image"]
        return {"pixel_values": [self._image(image) for image in images], "labels": labels}

    def _image(self, image: Any) -> Tensor:
        pil = _require_pillow()
        where = "an in-memory image"
        try:
            if isinstance(image, str):
                where = f"`{os.path.join(self.root or '', image)}`"
                image = pil.open(os.path.join(self.root or "", image))
            elif isinstance(image, dict):
                where = f"`{image.get('path')}`"
                image = pil.open(
                    io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
                )
            elif isinstance(image, bytes):
                image = pil.open(io.BytesIO(image))
            image = image.convert("RGB").resize(
                (self.image_size, self.image_size), pil.Resampling.BILINEAR
            )
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{where} could not be decoded as a CelebA image ({error}); the file is missing, "
                f"truncated or corrupt: extract img_align_celeba.zip again."
            ) from error
        array = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy())


def _find(root: Path, candidates: Sequence[str], name: str) -> Path:
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    raise FileNotFoundError(
        f"`data_dir` {str(root)!r} has no {name} (looked for {list(candidates)}); expected the "
        f"CelebA release layout; {_FETCH_HINT} there."
    )


def _load_local(root: Path, split: str, limit: int | None, image_size: int) -> datasets.Dataset:
    attribute_file = _find(
        root, ["list_attr_celeba.txt", "Anno/list_attr_celeba.txt"], "list_attr_celeba.txt"
    )
    partition_file = _find(
        root,
        ["list_eval_partition.txt", "Eval/list_eval_partition.txt"],
        "list_eval_partition.txt",
    )
    image_dir = _find(
        root, ["img_align_celeba/img_align_celeba", "img_align_celeba"], "img_align_celeba/"
    )

    names, labels = read_attribute_file(attribute_file)
    partition = read_partition_file(partition_file)
    code = CELEBA_SPLITS[split]
    unlisted = [name for name in names if name not in partition]
    if unlisted:
        raise ValueError(
            f"`{partition_file}` has no split for {len(unlisted)} images of the attribute file "
            f"(first: {unlisted[:3]}); the two files come from different releases, "
            f"{_FETCH_HINT} again."
        )
    rows = [index for index, name in enumerate(names) if partition[name] == code]
    if limit is not None:
        rows = rows[:limit]
    present = set(os.listdir(image_dir))
    missing = [names[index] for index in rows if names[index] not in present]
    if missing:
        raise FileNotFoundError(
            f"`{image_dir}` lacks {len(missing)} of the {len(rows)} {split} images listed in "
            f"the attribute file (first: {missing[:3]}); extract img_align_celeba.zip fully."
        )
    data = {
        "pixel_values": [names[index] for index in rows],
        "labels": [labels[index].tolist() for index in rows],
    }
    features = datasets.Features(
        {
            "pixel_values": datasets.Value("string"),
            "labels": datasets.Sequence(datasets.Value("int64"), length=len(CELEBA_ATTRIBUTES)),
        }
    )
    dataset = datasets.Dataset.from_dict(data, features=features, split=split)
    dataset.set_transform(CelebATransform(image_size, root=str(image_dir)))
    return dataset


def _load_hub(
    repo_id: str, split: str, limit: int | None, image_size: int, **kwargs: Any
) -> datasets.Dataset:
    names = [split] + [alias for alias, target in _SPLIT_ALIASES.items() if target == split]
    dataset = None
    errors = []
    for name in names:
        try:
            dataset = datasets.load_dataset(repo_id, split=name, **kwargs)
            break
        except ValueError as error:  # an unknown split name
            errors.append(str(error))
    if dataset is None:
        raise ValueError(
            f"`{repo_id}` has no split {split!r} (also tried {names[1:]}): {errors[-1]}"
        )
    missing = [c for c in ("image", *CELEBA_ATTRIBUTES) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"`{repo_id}` does not have the expected CelebA schema: an `image` column and one "
            f"boolean column per attribute ({CELEBA_ATTRIBUTES[0]} ... {CELEBA_ATTRIBUTES[-1]}); "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, found "
            f"{dataset.column_names[:8]}. Use {CELEBA_HUB_ID!r} or the local files (`data_dir`)."
        )
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    dataset.set_transform(CelebATransform(image_size))
    return dataset


def load_celeba(
    source: str | os.PathLike[str] = CELEBA_HUB_ID,
    split: str = "train",
    image_size: int = 64,
    limit: int | None = None,
    **hub_kwargs: Any,
) -> datasets.Dataset:
    """CelebA as a ``datasets.Dataset`` whose items are torch tensors.

    Args:
        source: a folder with the release files (see the module docstring) or a Hub id
            (default ``flwrlabs/celeba``).
        split: ``train``, ``valid`` (alias ``val``, ``validation``) or ``test``.
        image_size: side of the square resized image (64 in the benchmark).
        limit: keep only the first ``limit`` images of the split.
        hub_kwargs: passed to ``datasets.load_dataset`` (``name``, ``cache_dir``, ...).
    """
    split = _SPLIT_ALIASES.get(split, split)
    if split not in CELEBA_SPLITS:
        raise ValueError(
            f"`split` must be one of {sorted(CELEBA_SPLITS)} (or val / validation), found "
            f"{split!r}."
        )
    if image_size < 1:
        raise ValueError(f"`image_size` must be a positive int, found {image_size}.")
    path = Path(source)
    if path.is_dir():
        return _load_local(path, split, limit, image_size)
    if path.exists() or not _looks_like_hub_id(str(source)):
        raise FileNotFoundError(
            f"`source` {str(source)!r} is neither a folder nor a Hub id such as "
            f"{CELEBA_HUB_ID!r}; pass the folder that holds img_align_celeba/."
        )
    return _load_hub(str(source), split, limit, image_size, **hub_kwargs)


def _looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~"))
