from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import WeightedAggregator
from ._utils import require_losses

__all__ = ["FAMO"]


class FAMO(WeightedAggregator):
    """Fast adaptive multitask optimisation: balance the rates at which the log losses
    decrease, with task logits updated from the observed decrease (Liu et al., *FAMO: Fast
    Adaptive Multitask Optimization*, NeurIPS 2023).

    With ``z = softmax(xi)`` and ``D_i = L_i - b_i + eps``, ``w_i = c z_i / D_i`` with
    ``c = 1 / sum_j z_j / D_j`` (weights sum to 1; ``[2/3, 1/3]`` for ``L = [1, 2]`` at start),
    the gradient of ``c sum_i z_i log D_i``. After a step, ``delta = log D(before) - log D(after)``
    and the logits take one Adam step on the gradient of ``z . delta`` (L2 decay ``gamma``).

    Args:
        lr: Adam learning rate of the logits (default 0.025).
        gamma: L2 weight decay of the logits (default ``1e-3``, the paper's NYUv2 and CelebA
            runs; Cityscapes uses ``1e-2``).
        min_losses: lower bounds ``b`` of the losses, a float or one per task (default 0.0).
        eps: added inside the logs (default ``1e-8``).

    .. note:: The official update re-evaluates the losses of the *same* batch after the optimizer
        step (an extra forward). That does not fit a call that only sees ``(grads, losses)``:
        the trainer may call :meth:`update` with those losses; if it does not, the next call uses
        its own losses (a new batch) as "after", which adds batch noise to ``delta``.
    """

    stateful = True
    needs_losses = True

    def __init__(
        self,
        lr: float = 0.025,
        gamma: float = 1e-3,
        min_losses: float | list[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if not lr > 0 or gamma < 0 or eps < 0:
            raise ValueError(
                f"`lr` must be positive and `gamma`, `eps` >= 0, found {lr}, {gamma}, {eps}."
            )
        self.lr, self.gamma, self.min_losses, self.eps = lr, gamma, min_losses, eps
        self._reset_state()

    def _reset_state(self) -> None:
        self.logits: Tensor | None = None
        self.moments: list[Tensor] = []
        self.adam_step = 0
        self.pending: Tensor | None = None

    def _log_gaps(self, losses: Tensor) -> Tensor:
        gaps = losses - torch.as_tensor(self.min_losses, dtype=torch.float64) + self.eps
        require_losses(gaps, "FAMO (as `losses - min_losses + eps`)", floor=0.0)
        return torch.log(gaps)

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        losses = require_losses(losses, "FAMO")
        m = losses.numel()
        if self.logits is None or self.logits.numel() != m:
            self._reset_state()
            self.logits = torch.zeros(m, dtype=torch.float64)
            self.moments = [
                torch.zeros(m, dtype=torch.float64),
                torch.zeros(m, dtype=torch.float64),
            ]
        if self.pending is not None:
            self.update(losses)
        probabilities = torch.softmax(self.logits, 0)
        inverse_gaps = probabilities / torch.exp(self._log_gaps(losses))
        self.pending = losses.clone()
        return inverse_gaps / inverse_gaps.sum()

    def update(self, losses: Tensor) -> None:
        """Update the logits from the losses of the last call's batch after the optimizer step."""
        if self.pending is None or self.logits is None:
            raise RuntimeError("`FAMO.update` needs a previous call; call the aggregator first.")
        losses = torch.as_tensor(losses, dtype=torch.float64).detach().flatten()
        decrease = self._log_gaps(self.pending) - self._log_gaps(losses)
        self.pending = None
        probabilities = torch.softmax(self.logits, 0)
        grad = probabilities * (decrease - probabilities @ decrease) + self.gamma * self.logits
        self.adam_step += 1
        first, second = self.moments
        first.mul_(0.9).add_(grad, alpha=0.1)
        second.mul_(0.999).addcmul_(grad, grad, value=0.001)
        first_hat = first / (1 - 0.9**self.adam_step)
        second_hat = second / (1 - 0.999**self.adam_step)
        self.logits -= self.lr * first_hat / (second_hat.sqrt() + 1e-8)

    def state_dict(self) -> dict[str, Any]:
        def copy(value: Tensor | None) -> Tensor | None:
            return None if value is None else value.clone()

        return {
            **super().state_dict(),
            "logits": copy(self.logits),
            "moments": [moment.clone() for moment in self.moments],
            "adam_step": self.adam_step,
            "pending": copy(self.pending),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.logits = None if state["logits"] is None else state["logits"].clone()
        self.moments = [moment.clone() for moment in state["moments"]]
        self.adam_step = int(state["adam_step"])
        self.pending = None if state["pending"] is None else state["pending"].clone()

    def reset(self) -> None:
        super().reset()
        self._reset_state()
        self.weights = None

    def _repr_args(self) -> dict[str, object]:
        return {"lr": self.lr, "gamma": self.gamma, "min_losses": self.min_losses, "eps": self.eps}
