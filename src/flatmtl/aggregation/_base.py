"""The aggregator interface shared by every method.

An aggregator maps the ``m x d`` matrix of task gradients over the shared parameters (and,
optionally, the ``m`` current losses) to one update direction of length ``d``. Methods that
produce the direction as ``weights @ grads`` derive from :class:`WeightedAggregator` and keep
the weights of their last call in :attr:`WeightedAggregator.weights` for logging.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["Aggregator", "WeightedAggregator"]


class Aggregator:
    """Base class: combine task gradients into one direction.

    Subclasses implement :meth:`aggregate`. Stateful subclasses override :meth:`state_dict`,
    :meth:`load_state_dict` and :meth:`reset`; subclasses that draw random numbers use
    :attr:`generator`, a private ``torch.Generator`` whose state is part of the state dict, so
    that every process of a distributed run (seeded alike) draws the same numbers and a resumed
    run draws what the uninterrupted one would have.
    """

    #: Whether the method keeps state across calls (saved in Trainer checkpoints).
    stateful: bool = False
    #: Whether the method reads ``losses`` (it then raises when they are missing).
    needs_losses: bool = False
    #: Whether the method draws random numbers.
    random: bool = False

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, grads: Tensor, losses: Tensor | None = None) -> Tensor:
        check_grads(grads)
        if losses is not None:
            losses = torch.as_tensor(losses, dtype=torch.float64).detach().flatten()
            if losses.numel() != grads.shape[0]:
                raise ValueError(
                    f"`losses` must hold one value per row of `grads` ({grads.shape[0]}), "
                    f"found {losses.numel()} values; pass the current task losses in task order."
                )
        elif self.needs_losses:
            raise ValueError(
                f"{type(self).__name__} weighs tasks by their losses, but `losses` is None; "
                "call it as `aggregator(grads, losses)`."
            )
        with torch.no_grad():
            return self.aggregate(grads.detach(), losses)

    def aggregate(self, grads: Tensor, losses: Tensor | None) -> Tensor:
        raise NotImplementedError

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learned parameters of the method (e.g. UW's log-variances), trained by the
        Trainer's optimizer. The method writes their ``.grad`` when called."""
        return []

    @property
    def seed(self) -> int:
        """Seed of :attr:`generator`."""
        return self._seed

    def reseed(self, seed: int) -> None:
        """Restart :attr:`generator` from ``seed`` (the flat step gives each of its instances
        its own seed, so the loss and flat sub-problems draw independent numbers)."""
        self._seed = seed
        self.generator.manual_seed(seed)

    def on_epoch_end(self) -> None:
        """Called by the trainer at the end of every training epoch (epoch-level methods)."""

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])

    def reset(self) -> None:
        """Forget all state, as if freshly constructed."""
        self.generator.manual_seed(self._seed)

    def _repr_args(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self._repr_args().items())
        return f"{type(self).__name__}({args})"


class WeightedAggregator(Aggregator):
    """An aggregator whose direction is ``weights @ grads``.

    Subclasses implement :meth:`compute_weights` from the Gramian ``G = grads @ grads.T``
    (float64) and, when needed, the gradients and losses themselves.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.weights: Tensor | None = None

    def aggregate(self, grads: Tensor, losses: Tensor | None) -> Tensor:
        gram = gramian(grads)
        weights = self.compute_weights(gram, grads, losses).to(torch.float64)
        self.weights = weights.detach().clone()
        return weights.to(grads.dtype) @ grads

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        raise NotImplementedError


def gramian(grads: Tensor) -> Tensor:
    """``grads @ grads.T`` in float64, so small solvers see no float32 rounding of the products."""
    return (grads @ grads.T).to(torch.float64)


def check_grads(grads: Tensor) -> None:
    if not isinstance(grads, Tensor) or grads.ndim != 2:
        found = tuple(grads.shape) if isinstance(grads, Tensor) else type(grads).__name__
        raise ValueError(
            f"`grads` must be a 2-D tensor of shape (num_tasks, num_params), found {found}; "
            "stack one flattened gradient per task."
        )
    if grads.shape[0] == 0:
        raise ValueError("`grads` must have at least one row (one task), found 0 rows.")
