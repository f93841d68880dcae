"""Train SegNet-MTAN on CityScapes (7-class segmentation, disparity) with FlatMTLTrainer.

    python examples/cityscapes.py --data_dir data/cityscapes --aggregator cagrad --flat \
        --rho_shared 0.05 --rho_task 0.05 --output_dir outputs/cityscapes

The paper's protocol by default (see ``scene_benchmark.py``); any flag overrides it.
"""

from __future__ import annotations

import sys

from scene_benchmark import main as run_benchmark


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run_benchmark("cityscapes", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
