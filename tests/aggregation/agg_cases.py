"""Shared builders for the aggregator tests: a grid of matrices and a factory per method."""

from __future__ import annotations

import torch

from flatmtl.aggregation import AGGREGATORS, Aggregator, get_aggregator

#: Methods whose weights are learned parameters: they need the number of tasks up front.
NEEDS_NUM_TASKS = {"uw", "imtl_l", "gradnorm"}
#: Methods whose output depends on a random draw that is not symmetric in the tasks.
ORDER_RANDOM = {"pcgrad", "rlw"}


def build(name: str, num_tasks: int, **kwargs: object) -> Aggregator:
    if name in NEEDS_NUM_TASKS:
        kwargs.setdefault("num_tasks", num_tasks)
    return get_aggregator(name, **kwargs)


def _low_rank(m: int, d: int, rank: int, generator: torch.Generator) -> torch.Tensor:
    left = torch.randn(m, rank, generator=generator, dtype=torch.float64)
    return left @ torch.randn(rank, d, generator=generator, dtype=torch.float64)


def matrix_grid() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def normal(m: int, d: int) -> torch.Tensor:
        return torch.randn(m, d, generator=generator, dtype=torch.float64)

    grid = {
        "one_row": normal(1, 4),
        "random_2x5": normal(2, 5),
        "random_3x7": normal(3, 7),
        "random_8x20": normal(8, 20),
        "wide_5x4": normal(5, 4),
        "low_rank_6x10_r2": _low_rank(6, 10, 2, generator),
    }
    zero_row = normal(3, 6)
    zero_row[1] = 0.0
    grid["zero_row_3x6"] = zero_row
    grid["all_zero_3x5"] = torch.zeros(3, 5, dtype=torch.float64)
    base = normal(3, 7)
    grid["scaled_1e-10"] = 1e-10 * base
    grid["scaled_1e10"] = 1e10 * base
    return grid


#: Grid members whose rows are linearly independent (Nash-MTL and FairGrad have a fixed point).
FULL_ROW_RANK = [
    "one_row",
    "random_2x5",
    "random_3x7",
    "random_8x20",
    "scaled_1e-10",
    "scaled_1e10",
]

GRID = matrix_grid()
METHODS = sorted(AGGREGATORS)


def losses_for(m: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.5 + 1.5 * torch.rand(m, generator=generator, dtype=torch.float64)
