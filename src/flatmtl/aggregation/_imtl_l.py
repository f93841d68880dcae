from __future__ import annotations

import torch
from torch import Tensor

from ._learned import LearnedWeighting

__all__ = ["IMTLL"]


class IMTLL(LearnedWeighting):
    """Impartial loss balancing: learned scales that make every scaled loss equal to 1 at
    their optimum (Liu et al., *Towards Impartial Multi-task Learning*, ICLR 2021).

    With learned ``s`` (:attr:`logits`) the objective is ``sum_i exp(s_i) L_i - s_i``, so
    ``w_i = exp(s_i)`` (1 each at ``s = 0``; ``1 / L_i`` at the optimum) and ``d = w @ grads``;
    the call adds ``exp(s_i) L_i - 1`` to ``s.grad``.

    Args:
        num_tasks: number of tasks, needed up front so the optimizer sees :attr:`logits`.
        init: initial scale ``s`` (default 0.0).

    .. note:: The official IMTL is a hybrid that applies IMTL-G to the gradients of the scaled
        losses; this class is the loss part alone (:class:`IMTLG` is the gradient part).
    """

    def weights_and_grad(
        self, logits: Tensor, gram: Tensor, losses: Tensor
    ) -> tuple[Tensor, Tensor]:
        weights = torch.exp(logits)
        return weights, weights * losses - 1.0
