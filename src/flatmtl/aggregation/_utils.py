"""Small checks shared by the loss-based methods."""

from __future__ import annotations

from torch import Tensor

__all__ = ["require_losses", "require_num_tasks"]


def require_losses(losses: Tensor | None, method: str, floor: float | None = None) -> Tensor:
    """Return ``losses``; raise when they are missing or, with ``floor``, not above it."""
    if losses is None:
        raise ValueError(
            f"{method} weighs tasks by their losses, but `losses` is None; "
            "call it as `aggregator(grads, losses)`."
        )
    if floor is not None and bool((losses <= floor).any()):
        raise ValueError(
            f"`losses` must all be above {floor} for {method}, which takes their log or "
            f"inverse; found {losses.tolist()}. Shift the losses (e.g. `min_losses`) or raise "
            "`eps`."
        )
    return losses


def require_num_tasks(num_tasks: int, found: int, method: str) -> None:
    """Raise when a method built for ``num_tasks`` tasks receives ``found`` of them."""
    if found != num_tasks:
        raise ValueError(
            f"{method} was built with `num_tasks={num_tasks}` but received {found} tasks; "
            f"construct it with `num_tasks={found}`."
        )
