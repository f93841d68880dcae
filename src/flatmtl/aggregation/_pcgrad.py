from __future__ import annotations

import torch
from torch import Tensor

from ._base import WeightedAggregator

__all__ = ["PCGrad"]


class PCGrad(WeightedAggregator):
    """Projecting conflicting gradients (Yu et al., *Gradient Surgery for Multi-Task
    Learning*, NeurIPS 2020).

    For each task ``i``, ``g_i^PC`` starts at ``g_i`` and, over the other tasks ``j`` in a fresh
    random order, loses its component along ``g_j`` whenever ``g_i^PC . g_j < 0`` (projection
    of the *updated* vector on the *original* ``g_j``). The direction is ``sum_i g_i^PC``.

    It is computed in weight form on the Gramian, so the cost beyond ``G`` is ``O(m^3)``.
    The orders come from :attr:`generator` (seed ``seed``), identical on every process.

    Args:
        reduction: ``"sum"`` (default, as in the paper and the official code) or ``"mean"``.
        seed: seed of the private generator (default 0).
    """

    random = True

    def __init__(self, reduction: str = "sum", seed: int = 0) -> None:
        super().__init__(seed)
        if reduction not in ("sum", "mean"):
            raise ValueError(f"`reduction` must be 'sum' or 'mean', found {reduction!r}.")
        self.reduction = reduction

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        m = gram.shape[0]
        total = torch.zeros(m, dtype=torch.float64)
        for i in range(m):
            weights = torch.zeros(m, dtype=torch.float64)
            weights[i] = 1.0
            for j in torch.randperm(m, generator=self.generator).tolist():
                if j == i:
                    continue
                dot = float(gram[j] @ weights)
                if dot < 0.0:
                    weights[j] -= dot / float(gram[j, j])
            total += weights
        return total / m if self.reduction == "mean" else total

    def _repr_args(self) -> dict[str, object]:
        return {"reduction": self.reduction, "seed": self._seed}
