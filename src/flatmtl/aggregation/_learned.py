"""Base of the methods whose task weights come from parameters learned by the Trainer."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import WeightedAggregator
from ._utils import require_losses, require_num_tasks

__all__ = ["LearnedWeighting"]


class LearnedWeighting(WeightedAggregator):
    """Task weights computed from one learned vector :attr:`logits` of ``num_tasks`` values.

    The vector is a ``torch.nn.Parameter`` returned by :meth:`parameters`, to be stepped by the
    Trainer's optimizer. Each call adds the gradient of the method's own objective with respect
    to it into its ``.grad`` (adding, so that gradient accumulation works), and the
    direction uses the weights *before* that step, as a joint backward pass would.
    Subclasses implement :meth:`weights_and_grad`.
    """

    stateful = True
    needs_losses = True

    def __init__(self, num_tasks: int, init: float = 0.0) -> None:
        super().__init__()
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(
                f"`num_tasks` must be a positive integer, found {num_tasks!r}; pass the number "
                f"of tasks (e.g. in `aggregator_kwargs`) so the optimizer can see the parameters."
            )
        self.num_tasks = num_tasks
        self.init = float(init)
        self.logits = torch.nn.Parameter(torch.full((num_tasks,), self.init))

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        require_num_tasks(self.num_tasks, gram.shape[0], type(self).__name__)
        losses = require_losses(losses, type(self).__name__)
        logits = self.logits.detach().to(torch.float64)
        weights, grad = self.weights_and_grad(logits, gram, losses)
        grad = grad.to(self.logits.dtype)
        if self.logits.grad is None:
            self.logits.grad = grad.clone()
        else:
            self.logits.grad.add_(grad)
        return weights

    def weights_and_grad(
        self, logits: Tensor, gram: Tensor, losses: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The task weights and the gradient of the method's objective w.r.t. ``logits``."""
        raise NotImplementedError

    def parameters(self) -> list[torch.nn.Parameter]:
        return [self.logits]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "logits": self.logits.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.logits.copy_(state["logits"])

    def reset(self) -> None:
        super().reset()
        with torch.no_grad():
            self.logits.fill_(self.init)
        self.logits.grad = None
        self.weights = None

    def _repr_args(self) -> dict[str, object]:
        return {"num_tasks": self.num_tasks, "init": self.init}
