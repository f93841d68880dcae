from __future__ import annotations

import torch
from torch import Tensor

from ._base import WeightedAggregator

__all__ = ["AlignedMTL"]

_SCALE_MODES = ("min", "median", "rmse")


class AlignedMTL(WeightedAggregator):
    """Aligned-MTL: make the task gradients orthogonal with equal norms (a condition number
    of 1) by a Procrustes-style linear map, then combine them (Senushkin et al.,
    *Independent Component Alignment for Multi-Task Learning*, CVPR 2023).

    With ``G = V diag(lambda) V^T`` restricted to its ``r`` non-negligible eigenvalues,
    ``B = sqrt(sigma) V_r diag(lambda_r)^(-1/2) V_r^T`` and the aligned gradients are the rows of
    ``B @ grads``; the weights are ``w = B p`` with preference ``p``. ``sigma`` is the smallest
    kept eigenvalue (``"min"``), their median, or their mean (``"rmse"``). ``B`` does not change
    when the gradients are scaled, so ``d`` scales linearly.

    Args:
        scale_mode: ``"min"`` (default, the official code's default), ``"median"`` or ``"rmse"``.
        reduction: ``"sum"`` (default, ``p = 1``: the official code sums the aligned gradients)
            or ``"mean"`` (``p = 1/m``, half of it for two tasks).
        rel_tol: eigenvalues below ``rel_tol * m * lambda_max`` are dropped (default ``1.2e-7``,
            float32's machine epsilon, since gradients arrive in float32).

    .. note:: The official code applies the weights ``B p`` to the task heads too
        (``scale_decoder_grad``); here only the shared direction is produced. A zero Gramian
        gives ``w = p``, which multiplies zero gradients.
    """

    def __init__(
        self, scale_mode: str = "min", reduction: str = "sum", rel_tol: float = 1.2e-7
    ) -> None:
        super().__init__()
        if scale_mode not in _SCALE_MODES:
            raise ValueError(f"`scale_mode` must be one of {_SCALE_MODES}, found {scale_mode!r}.")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"`reduction` must be 'sum' or 'mean', found {reduction!r}.")
        if not rel_tol > 0:
            raise ValueError(f"`rel_tol` must be positive, found {rel_tol}.")
        self.scale_mode = scale_mode
        self.reduction = reduction
        self.rel_tol = rel_tol

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        m = gram.shape[0]
        preference = torch.full((m,), 1.0 / m if self.reduction == "mean" else 1.0).double()
        trace = float(torch.trace(gram))
        if not trace > 0:
            return preference
        eigenvalues, eigenvectors = torch.linalg.eigh(gram / trace)
        keep = eigenvalues > self.rel_tol * m * float(eigenvalues.max())
        eigenvalues, eigenvectors = eigenvalues[keep], eigenvectors[:, keep]
        if self.scale_mode == "min":
            sigma = eigenvalues.min()
        elif self.scale_mode == "median":
            sigma = eigenvalues.median()
        else:
            sigma = eigenvalues.mean()
        alignment = torch.sqrt(sigma) * (eigenvectors / torch.sqrt(eigenvalues)) @ eigenvectors.T
        return alignment @ preference

    def _repr_args(self) -> dict[str, object]:
        return {"scale_mode": self.scale_mode, "reduction": self.reduction, "rel_tol": self.rel_tol}
