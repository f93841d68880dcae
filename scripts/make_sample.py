"""Build the real MNIST / Fashion-MNIST sample bundled in the package.

Reads the original IDX files and keeps the first ``--train`` training and the first ``--test``
test images of each set, in their original order, as compressed ``.npz`` files in
``src/flatmtl/data/sample/``. Deterministic: the same IDX files give byte-identical arrays.

    python scripts/make_sample.py --mnist_dir ../shared/data/mnist \
        --fashion_dir ../shared/data/fashion-mnist
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from flatmtl.data.idx import load_idx_folder

OUT = Path(__file__).resolve().parent.parent / "src" / "flatmtl" / "data" / "sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist_dir", required=True)
    parser.add_argument("--fashion_dir", required=True)
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--test", type=int, default=2000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, folder in (("mnist", args.mnist_dir), ("fashion_mnist", args.fashion_dir)):
        train_x, train_y = load_idx_folder(folder, "train")
        test_x, test_y = load_idx_folder(folder, "test")
        arrays = {
            "train_images": train_x[: args.train],
            "train_labels": train_y[: args.train],
            "test_images": test_x[: args.test],
            "test_labels": test_y[: args.test],
        }
        path = OUT / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        digest = hashlib.sha256(b"".join(a.tobytes() for a in arrays.values())).hexdigest()
        print(f"{path.name}: {path.stat().st_size:,} bytes, arrays sha256 {digest}")


if __name__ == "__main__":
    main()
