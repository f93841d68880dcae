from __future__ import annotations

from torch import Tensor

from ._base import WeightedAggregator
from ._utils import require_losses

__all__ = ["SI"]


class SI(WeightedAggregator):
    """Scale-invariant linear scalarisation: descend on the sum of the log losses (the SI
    baseline of Navon et al., *Multi-Task Learning as a Bargaining Game*, ICML 2022).

    The gradient of ``sum_i log(L_i + eps)`` is ``d = sum_i g_i / (L_i + eps)``, so
    ``w_i = 1 / (L_i + eps)``; multiplying one loss by a constant leaves ``d`` unchanged.

    Args:
        eps: added to each loss (default ``1e-8``).

    .. note:: The reference takes the log of the raw loss (``eps = 0``), which gives an infinite
        weight at a zero loss; ``eps`` keeps it finite. Losses ``<= -eps`` raise an error.
    """

    needs_losses = True

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        if eps < 0:
            raise ValueError(f"`eps` must be >= 0, found {eps}.")
        self.eps = eps

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        losses = require_losses(losses, "SI", floor=-self.eps)
        return 1.0 / (losses + self.eps)

    def _repr_args(self) -> dict[str, object]:
        return {"eps": self.eps}
