from __future__ import annotations

import torch
from torch import Tensor

from ._base import WeightedAggregator

__all__ = ["Mean", "Sum"]


class Sum(WeightedAggregator):
    """Linear scalarisation: the gradient of ``sum_i L_i``, ``d = sum_i g_i`` (weights 1)."""

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        return torch.ones(gram.shape[0], dtype=torch.float64)


class Mean(WeightedAggregator):
    """Equal weighting: the gradient of ``mean_i L_i``, ``d = (1/m) sum_i g_i``."""

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        m = gram.shape[0]
        return torch.full((m,), 1.0 / m, dtype=torch.float64)
