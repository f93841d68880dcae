from __future__ import annotations

import torch
from torch import Tensor

from ._base import WeightedAggregator

__all__ = ["RLW"]


class RLW(WeightedAggregator):
    """Random loss weighting: weights drawn afresh at every call (Lin et al., *Reasonable
    Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning*, TMLR 2022).

    ``z ~ N(0, I_m)``, ``w = softmax(z)`` (positive, summing to 1) and ``d = w @ grads``.

    Args:
        seed: seed of the private generator that draws ``z`` (default 0); every process seeded
            alike draws the same weights.
    """

    random = True

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        logits = torch.randn(gram.shape[0], generator=self.generator, dtype=torch.float64)
        return torch.softmax(logits, 0)

    def _repr_args(self) -> dict[str, object]:
        return {"seed": self._seed}
