"""Reading MNIST-style IDX files (optionally gzipped)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["IDX_FILES", "load_idx_folder", "read_idx"]

#: split -> (images file, labels file), the names of the original distributions.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MAGIC = {2051: 3, 2049: 1}  # images: 3 dimensions, labels: 1


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file of unsigned bytes (magic 2051 images or 2049 labels)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(
            f"Cannot read IDX file {str(path)!r}: {error}. Replace it with an intact copy."
        ) from error
    if len(data) < 8:
        raise ValueError(
            f"{str(path)!r} is not an IDX file: expected at least an 8-byte header, found "
            f"{len(data)} bytes. Replace it with an intact copy."
        )
    magic = int.from_bytes(data[:4], "big")
    if magic not in _MAGIC:
        raise ValueError(
            f"{str(path)!r} is not an IDX file of unsigned bytes: expected magic number 2051 "
            f"(images) or 2049 (labels), found {magic}. Replace it with an intact copy."
        )
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(
            f"{str(path)!r} is truncated or corrupt: its header promises shape {shape} "
            f"({expected} bytes of data), found {len(data) - header} bytes. Replace it with an "
            "intact copy."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_folder(folder: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` of ``split`` from an IDX folder.

    Each file may be plain or gzipped (``.gz``), under its original name.
    """
    if split not in IDX_FILES:
        raise ValueError(f"`split` must be one of {sorted(IDX_FILES)}, found {split!r}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"IDX folder {str(folder)!r} does not exist; pass the folder that holds "
            f"{IDX_FILES[split][0]}[.gz] and {IDX_FILES[split][1]}[.gz]."
        )
    arrays = []
    for name in IDX_FILES[split]:
        candidates = [folder / name, folder / f"{name}.gz"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            present = sorted(p.name for p in folder.iterdir())[:10]
            raise FileNotFoundError(
                f"IDX folder {str(folder)!r} lacks {name} (or {name}.gz) for the {split!r} split; "
                f"found {present}. Download the original MNIST-format files into it."
            )
        arrays.append(read_idx(found))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"IDX folder {str(folder)!r}: images {images.shape} and labels {labels.shape} of the "
            f"{split!r} split do not match (expected (N, H, W) and (N,)). Replace the files."
        )
    return images, labels
