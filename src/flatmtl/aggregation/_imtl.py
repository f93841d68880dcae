from __future__ import annotations

import torch
from torch import Tensor

from ._base import WeightedAggregator

__all__ = ["IMTLG"]


class IMTLG(WeightedAggregator):
    """Impartial gradient balancing: the combination of the task gradients, with weights summing
    to 1, whose projections on all unit task gradients are equal (Liu et al., *Towards
    Impartial Multi-task Learning*, ICLR 2021).

    With ``n_i = ||g_i||``, the conditions ``d . g_i / n_i = const`` read ``G w ∝ n``, so
    ``v = pinv(G) n`` and ``w = v / sum(v)`` (``w = 0`` when ``sum(v)`` vanishes). The weights
    sum to 1, so the direction scales linearly with the gradients; its orientation does not
    change when one task's gradient is multiplied by a positive factor (rows independent).

    Args:
        rcond: relative cut-off of the pseudo-inverse, on the trace-normalised Gramian
            (default ``1e-10``).

    .. note:: The official code solves the ``(m-1) x (m-1)`` system built from differences of
        gradients and unit gradients; it returns NaN for a zero gradient and needs a jitter for
        identical ones. The pseudo-inverse form gives the same weights whenever the rows are
        independent and stays finite otherwise (e.g. a zero gradient gets weight 0).
        The common projection can be negative for three or more tasks: the method does not
        claim non-conflict, only equal projections.
    """

    def __init__(self, rcond: float = 1e-10) -> None:
        super().__init__()
        if not rcond > 0:
            raise ValueError(f"`rcond` must be positive, found {rcond}; pass e.g. 1e-10.")
        self.rcond = rcond

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        m = gram.shape[0]
        trace = float(torch.trace(gram))
        if not trace > 0:
            return torch.zeros(m, dtype=torch.float64)
        gram = gram / trace
        norms = torch.sqrt(torch.clamp(torch.diagonal(gram), min=0.0))
        v = torch.linalg.pinv(gram, rtol=self.rcond, hermitian=True) @ norms
        total = float(v.sum())
        # On the normalised Gramian a regular problem has |sum(v)| of order ||n||_1 or larger;
        # a vanishing sum means no direction has a non-zero equal projection (e.g. opposite
        # gradients), and dividing by it would only amplify rounding errors.
        if abs(total) <= 1e-8 * float(norms.sum()):
            return torch.zeros(m, dtype=torch.float64)
        return v / total

    def _repr_args(self) -> dict[str, object]:
        return {"rcond": self.rcond}
