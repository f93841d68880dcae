from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls
from torch import Tensor
from transformers.utils import logging

from ._base import WeightedAggregator

__all__ = ["UPGrad"]

logger = logging.get_logger(__name__)


class UPGrad(WeightedAggregator):
    """Unconflicting projection of gradients: the sum of the projections of the
    preference-weighted task gradients onto the dual cone ``{x : g_j . x >= 0 for all j}``
    (Quinton & Rey, *Jacobian Descent for Multi-Objective Optimization*, arXiv 2406.16232, 2024).

    In weight space each projection is ``v_i = argmin_{v >= p_i e_i} v^T G v`` and
    ``w = sum_i v_i``; then ``G w >= 0`` (no conflict) and ``d`` scales linearly with the
    gradients. The preference ``p`` is ``1/m`` (``reduction="mean"``, the paper's default) or 1.

    Args:
        reduction: ``"mean"`` (default, ``p_i = 1/m``) or ``"sum"`` (``p_i = 1``).
        reg_eps: ridge added to the trace-normalised Gramian (default ``1e-4``, as the paper's
            code) so that each projection is a strictly convex problem.

    .. note:: The reference code solves the ``m`` quadratic programs with quadprog. Here each one
        is written as a non-negative least-squares problem on the Cholesky factor ``R`` of the
        regularised Gramian, ``min_{x >= 0} ||R (x + p_i e_i)||``, solved exactly by the
        active-set method of ``scipy.optimize.nnls``; no extra dependency. The reference treats
        a Gramian of trace below ``1e-4`` as zero; here only an exactly zero one is, so that the
        direction stays linear in the gradients down to tiny scales.
    """

    def __init__(self, reduction: str = "mean", reg_eps: float = 1e-4) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"`reduction` must be 'mean' or 'sum', found {reduction!r}.")
        if reg_eps < 0:
            raise ValueError(f"`reg_eps` must be >= 0 (0 disables the ridge), found {reg_eps}.")
        self.reduction = reduction
        self.reg_eps = reg_eps
        self.failures = 0

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        m = gram.shape[0]
        preference = 1.0 / m if self.reduction == "mean" else 1.0
        trace = float(torch.trace(gram))
        if not trace > 0:
            return torch.full((m,), preference, dtype=torch.float64)
        g = gram.numpy() / trace + self.reg_eps * np.eye(m)
        try:
            factor = np.linalg.cholesky(g).T
        except np.linalg.LinAlgError:
            # Only reachable with reg_eps = 0 and a singular Gramian: use a symmetric square root.
            eigenvalues, eigenvectors = np.linalg.eigh(g)
            factor = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * eigenvectors.T
        weights = np.zeros(m)
        for i in range(m):
            anchor = np.zeros(m)
            anchor[i] = preference
            try:
                shift, _ = nnls(factor, -factor @ anchor, maxiter=50 * m)
            except RuntimeError as error:
                self.failures += 1
                logger.warning_once(
                    f"UPGrad: the projection of task {i} did not converge ({error}); using the "
                    "unprojected preference-weighted gradient. Failures are counted in `failures`."
                )
                shift = np.zeros(m)
            weights += anchor + shift
        return torch.from_numpy(weights)

    def _repr_args(self) -> dict[str, object]:
        return {"reduction": self.reduction, "reg_eps": self.reg_eps}
