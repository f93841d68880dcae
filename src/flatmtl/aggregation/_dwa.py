from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import WeightedAggregator
from ._utils import require_losses

__all__ = ["DWA"]


class DWA(WeightedAggregator):
    """Dynamic weight average: weigh each task by the recent rate of change of its epoch loss
    (Liu et al., *End-to-End Multi-Task Learning with Attention*, CVPR 2019).

    With ``Lbar_i(t)`` the mean loss of task ``i`` over epoch ``t``, from the third epoch on
    ``r_i = Lbar_i(t-1) / Lbar_i(t-2)`` and ``w = m softmax(r / T)`` (weights sum to ``m``, a
    weighted sum of losses); the first two epochs use ``w = 1``. ``d = w @ grads``.

    Args:
        temperature: the softmax temperature ``T`` (default 2.0).

    The method is epoch-level: each call adds its losses to the running epoch mean and
    :meth:`on_epoch_end`, which the trainer calls at the end of every epoch, closes the epoch.
    Without those calls the weights stay at 1.

    .. note:: Some public code (Nash-MTL's) replaces epochs by a window of 25 iterations and
        divides the weighted loss by ``m``; this class follows the paper (epochs, sum).
    """

    stateful = True
    needs_losses = True

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"`temperature` must be positive, found {temperature}.")
        self.temperature = temperature
        self._reset_state()

    def _reset_state(self) -> None:
        self.loss_sums: Tensor | None = None
        self.num_calls = 0
        self.epoch_losses: list[Tensor] = []

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        losses = require_losses(losses, "DWA")
        m = losses.numel()
        for previous in [self.loss_sums, *self.epoch_losses]:
            if previous is not None and previous.numel() != m:
                raise ValueError(
                    f"DWA has seen {previous.numel()} tasks but now received {m}; call "
                    "`reset()` before changing the number of tasks."
                )
        self.loss_sums = losses.clone() if self.loss_sums is None else self.loss_sums + losses
        self.num_calls += 1
        if len(self.epoch_losses) < 2:
            return torch.ones(m, dtype=torch.float64)
        rates = self.epoch_losses[-1] / self.epoch_losses[-2]
        return m * torch.softmax(rates / self.temperature, 0)

    def on_epoch_end(self) -> None:
        if self.num_calls == 0 or self.loss_sums is None:
            return
        self.epoch_losses = [*self.epoch_losses[-1:], self.loss_sums / self.num_calls]
        self.loss_sums, self.num_calls = None, 0

    def state_dict(self) -> dict[str, Any]:
        sums = None if self.loss_sums is None else self.loss_sums.clone()
        return {
            **super().state_dict(),
            "loss_sums": sums,
            "num_calls": self.num_calls,
            "epoch_losses": [loss.clone() for loss in self.epoch_losses],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.loss_sums = None if state["loss_sums"] is None else state["loss_sums"].clone()
        self.num_calls = int(state["num_calls"])
        self.epoch_losses = [loss.clone() for loss in state["epoch_losses"]]

    def reset(self) -> None:
        super().reset()
        self._reset_state()
        self.weights = None

    def _repr_args(self) -> dict[str, object]:
        return {"temperature": self.temperature}
