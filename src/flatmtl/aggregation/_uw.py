from __future__ import annotations

import torch
from torch import Tensor

from ._learned import LearnedWeighting

__all__ = ["UW"]


class UW(LearnedWeighting):
    """Uncertainty weighting: each task loss is weighted by a learned homoscedastic
    uncertainty (Kendall et al., *Multi-Task Learning Using Uncertainty to Weigh Losses for
    Scene Geometry and Semantics*, CVPR 2018).

    With learned log-variances ``s`` (:attr:`logits`), the objective is
    ``sum_i exp(-s_i) L_i / 2 + s_i / 2``, so ``w_i = exp(-s_i) / 2`` (``1/2`` each at ``s = 0``)
    and ``d = w @ grads``; the call adds ``(1 - exp(-s_i) L_i) / 2`` to ``s.grad``.

    Args:
        num_tasks: number of tasks, needed up front so the optimizer sees :attr:`logits`.
        init: initial log-variance (default 0.0; the MTAN code uses -0.5).

    .. note:: Some reference code trains ``s`` with its own learning rate (0.025) in a separate
        parameter group; here :attr:`logits` is stepped by whatever optimizer the Trainer builds
        from :meth:`parameters`.
    """

    def weights_and_grad(
        self, logits: Tensor, gram: Tensor, losses: Tensor
    ) -> tuple[Tensor, Tensor]:
        weights = 0.5 * torch.exp(-logits)
        return weights, 0.5 - weights * losses
