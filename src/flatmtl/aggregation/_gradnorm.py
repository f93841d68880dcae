from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._learned import LearnedWeighting

__all__ = ["GradNorm"]


class GradNorm(LearnedWeighting):
    """Gradient normalisation: learn task weights so that each weighted gradient norm tracks the
    mean norm times the task's relative inverse training rate (Chen et al., *GradNorm: Gradient
    Normalization for Adaptive Loss Balancing in Deep Multitask Networks*, ICML 2018).

    ``w = m softmax(s)`` (weights sum to ``m``, 1 each at start), ``n_i = ||g_i||``,
    ``r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))``; the call adds the gradient w.r.t. ``s`` of
    ``sum_i |w_i n_i - mean_j(w_j n_j) r_i^alpha|`` (target held constant) to ``s.grad``, and
    ``d = w @ grads`` with the weights before that step.

    Args:
        num_tasks: number of tasks, needed up front so the optimizer sees :attr:`logits`.
        alpha: restoring-force strength (default 1.5).

    .. note:: Where the paper does not fit this interface: it measures ``n_i`` on the last shared
        layer only, while here the norms are over all shared parameters the method is given;
        it keeps the weights summing to ``m`` by renormalising after each optimizer step, which a
        Trainer-owned optimizer cannot do, so the weights are parametrised as ``m softmax(s)``
        (as in LibMTL). ``L_i(0)`` are the losses of the first call, kept in the state.
    """

    def __init__(self, num_tasks: int, alpha: float = 1.5) -> None:
        super().__init__(num_tasks, init=0.0)
        if alpha < 0:
            raise ValueError(f"`alpha` must be >= 0, found {alpha}; the paper uses 0.12 to 1.5.")
        self.alpha = alpha
        self.initial_losses: Tensor | None = None

    def weights_and_grad(
        self, logits: Tensor, gram: Tensor, losses: Tensor
    ) -> tuple[Tensor, Tensor]:
        m = logits.shape[0]
        if self.initial_losses is None:
            if bool((losses <= 0).any()):
                raise ValueError(
                    f"`losses` must be positive at the first GradNorm call (they are the "
                    f"reference L(0)), found {losses.tolist()}."
                )
            self.initial_losses = losses.clone()
        probabilities = torch.softmax(logits, 0)
        weights = m * probabilities
        norms = torch.sqrt(torch.clamp(torch.diagonal(gram), min=0.0))
        weighted_norms = weights * norms
        ratios = losses / self.initial_losses
        target = weighted_norms.mean() * (ratios / ratios.mean()) ** self.alpha
        grad_weights = torch.sign(weighted_norms - target) * norms
        # Chain rule through w = m softmax(s).
        grad_logits = m * probabilities * (grad_weights - probabilities @ grad_weights)
        return weights, grad_logits

    def state_dict(self) -> dict[str, Any]:
        initial = None if self.initial_losses is None else self.initial_losses.clone()
        return {**super().state_dict(), "initial_losses": initial}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else initial.clone()

    def reset(self) -> None:
        super().reset()
        self.initial_losses = None

    def _repr_args(self) -> dict[str, object]:
        return {"num_tasks": self.num_tasks, "alpha": self.alpha}
