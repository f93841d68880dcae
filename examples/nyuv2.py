"""Train SegNet-MTAN on NYUv2 (13-class segmentation, depth, surface normals) with FlatMTLTrainer.

    python examples/nyuv2.py --data_dir data/nyuv2 --aggregator cagrad --flat \
        --rho_shared 0.05 --rho_task 0.05 --output_dir outputs/nyuv2

The paper's protocol by default (see ``scene_benchmark.py``); any flag overrides it.
"""

from __future__ import annotations

import sys

from scene_benchmark import main as run_benchmark


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run_benchmark("nyuv2", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
