from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from transformers.utils import logging

from ._base import WeightedAggregator
from ._fixed_point import active_rows, newton_fixed_point

__all__ = ["FairGrad"]

logger = logging.get_logger(__name__)


class FairGrad(WeightedAggregator):
    """Alpha-fair task weighting: the weights whose direction gives every task a utility
    ``g_i . d`` equal to ``w_i^(-1/alpha)`` (Ban & Ji, *Fair Resource Allocation in
    Multi-Task Learning*, ICML 2024).

    ``w >= 0`` solves ``G w = w^(-1/alpha)`` and ``d = w @ grads``. The weights are not
    normalised (paper); scaling the gradients by ``c`` scales ``d`` by ``c^((1-alpha)/(1+alpha))``,
    so ``alpha = 1`` (Nash-MTL's fixed point) is scale-invariant.

    Args:
        alpha: fairness exponent, ``> 0`` (default 2.0, the value of every supervised run of
            the official code; its command-line default is 1.0).
        max_iter: Newton iterations (default 100).
        tol: stop when ``max_i |w_i^(1/alpha) (G w)_i - 1| <= tol`` (default ``1e-9``).
        scale_by_num_tasks: multiply the direction by ``m`` (default ``False``; the official
            code does, then clips, "to match the sum loss").
        max_norm: if positive, shrink the weights so that ``||d|| <= max_norm`` (default 0.0,
            off; the official code clips the shared gradient at 1.0).

    .. note:: The official code runs ``scipy.optimize.least_squares`` on the residual from
        ``w = 1/m``. Here the equations are solved as the minimum of a strictly convex function
        (see ``_fixed_point``) by damped Newton on the trace-normalised Gramian, which reaches
        the fixed point to ``tol``. Zero gradients get weight 0. When no fixed point exists
        (gradients that cancel), the failure is logged and counted in :attr:`failures`, and
        the last Newton iterate is used (its direction tends to 0, as the official one does).
    """

    def __init__(
        self,
        alpha: float = 2.0,
        max_iter: int = 100,
        tol: float = 1e-9,
        scale_by_num_tasks: bool = False,
        max_norm: float = 0.0,
    ) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"`alpha` must be positive, found {alpha}; the paper uses 1 or 2.")
        if max_iter < 1:
            raise ValueError(f"`max_iter` must be a positive integer, found {max_iter}.")
        if not tol > 0:
            raise ValueError(f"`tol` must be positive, found {tol}.")
        if max_norm < 0:
            raise ValueError(f"`max_norm` must be >= 0 (0 disables clipping), found {max_norm}.")
        self.alpha = float(alpha)
        self.max_iter = max_iter
        self.tol = tol
        self.scale_by_num_tasks = scale_by_num_tasks
        self.max_norm = max_norm
        self.failures = 0

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        g = gram.numpy()
        m = g.shape[0]
        weights = np.zeros(m)
        active = active_rows(g)
        if active.any():
            sub = g[np.ix_(active, active)]
            trace = float(np.trace(sub))
            sub = sub / trace
            init = np.diag(sub) ** (-self.alpha / (self.alpha + 1.0))
            solution, converged = newton_fixed_point(sub, self.alpha, init, self.max_iter, self.tol)
            if not converged:
                self.failures += 1
                logger.warning_once(
                    "FairGrad: no fixed point G w = w^(-1/alpha) reached (the gradients may "
                    "cancel); using the last Newton iterate. Failures are counted in `failures`."
                )
            # Undo the normalisation G = trace * G_n: w = trace^(-alpha / (alpha + 1)) w_n.
            weights[active] = solution * trace ** (-self.alpha / (self.alpha + 1.0))
        if self.scale_by_num_tasks:
            weights = weights * m
        if self.max_norm > 0:
            norm = float(np.sqrt(max(weights @ g @ weights, 0.0)))
            if norm > self.max_norm:
                weights = weights * (self.max_norm / norm)
        return torch.from_numpy(weights)

    def _repr_args(self) -> dict[str, object]:
        return {
            "alpha": self.alpha,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "scale_by_num_tasks": self.scale_by_num_tasks,
            "max_norm": self.max_norm,
        }
