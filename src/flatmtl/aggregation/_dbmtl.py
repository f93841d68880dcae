from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Aggregator
from ._utils import require_losses

__all__ = ["DBMTL"]


class DBMTL(Aggregator):
    """Dual balancing: balance loss scales with log losses and gradient magnitudes by scaling
    every task's (averaged) gradient to the largest norm (Lin et al., *Dual-Balancing for
    Multi-Task Learning*, arXiv 2308.12029, 2023).

    With ``h_i = g_i / (L_i + eps)``, the gradient of ``log(L_i + eps)``, an exponential moving
    average ``b_i <- beta_t b_i + (1 - beta_t) h_i`` with ``beta_t = beta / t^beta_sigma`` (``t``
    the call count from 1) and ``u_i = ||b_i||``, the direction is
    ``d = sum_i (max_j u_j / u_i) b_i``. It scales linearly with the gradients for fixed losses.

    Args:
        beta: EMA factor (default 0.9).
        beta_sigma: decay exponent of the EMA factor (default 0.0, a constant ``beta``).
        eps: added to the losses inside the log (default ``1e-8``).

    .. note:: As in the reference code the buffer starts at zero without bias correction (the
        first direction is built from ``0.1 h``). The reference divides by ``u_i + 1e-8``; here a
        zero ``u_i`` gets scale 0 and the others ``max_j u_j / u_i`` exactly, so the direction
        stays linear at tiny gradient scales. The buffer (``m x d``) is part of the state.
    """

    stateful = True
    needs_losses = True

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__()
        if not 0 <= beta < 1:
            raise ValueError(f"`beta` must be in [0, 1), found {beta}; the paper uses 0.9.")
        if beta_sigma < 0:
            raise ValueError(f"`beta_sigma` must be >= 0, found {beta_sigma}.")
        if eps < 0:
            raise ValueError(f"`eps` must be >= 0, found {eps}.")
        self.beta = beta
        self.beta_sigma = beta_sigma
        self.eps = eps
        self.step = 0
        self.buffer: Tensor | None = None
        self.scales: Tensor | None = None

    def aggregate(self, grads: Tensor, losses: Tensor | None) -> Tensor:
        losses = require_losses(losses, "DBMTL", floor=-self.eps)
        if self.buffer is None or self.buffer.shape != grads.shape:
            self.buffer = torch.zeros_like(grads)
        self.step += 1
        beta = self.beta / self.step**self.beta_sigma
        log_grads = grads / (losses + self.eps).to(grads.device, grads.dtype)[:, None]
        self.buffer.mul_(beta).add_(log_grads, alpha=1.0 - beta)
        norms = torch.linalg.vector_norm(self.buffer.double(), dim=1)
        scales = torch.where(norms > 0, norms.max() / norms.clamp_min(1e-300), 0.0)
        self.scales = scales
        return scales.to(grads.dtype) @ self.buffer

    def state_dict(self) -> dict[str, Any]:
        buffer = None if self.buffer is None else self.buffer.clone()
        return {**super().state_dict(), "buffer": buffer, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer = None if state["buffer"] is None else state["buffer"].clone()
        self.step = int(state["step"])

    def reset(self) -> None:
        super().reset()
        self.buffer, self.scales, self.step = None, None, 0

    def _repr_args(self) -> dict[str, object]:
        return {"beta": self.beta, "beta_sigma": self.beta_sigma, "eps": self.eps}
