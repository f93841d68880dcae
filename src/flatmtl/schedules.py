"""The step-decay learning-rate schedule of the benchmark protocols, counted in epochs."""

from __future__ import annotations

import math
from typing import Any

import torch

from .config import FlatMTLConfig
from .trainer import FlatMTLTrainer

__all__ = ["StepDecayTrainer", "steps_per_epoch"]


class StepDecayTrainer(FlatMTLTrainer):
    """``FlatMTLTrainer`` with ``StepLR``: the learning rate is multiplied by ``lr_gamma`` every
    ``lr_step_size`` optimizer steps (the papers' "x0.85 every 10 epochs", "halved every 100
    epochs"; convert with :func:`steps_per_epoch`). ``lr_step_size <= 0`` falls back to
    ``args.lr_scheduler_type``.
    """

    def __init__(self, *args: Any, lr_step_size: int, lr_gamma: float, **kwargs: Any) -> None:
        if lr_gamma <= 0:
            raise ValueError(f"`lr_gamma` must be positive, found {lr_gamma}.")
        self.lr_step_size = lr_step_size
        self.lr_gamma = lr_gamma
        super().__init__(*args, **kwargs)

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        if self.lr_step_size <= 0:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer or self.optimizer, step_size=self.lr_step_size, gamma=self.lr_gamma
            )
        return self.lr_scheduler


def steps_per_epoch(num_samples: int, training: FlatMTLConfig) -> int:
    """Optimizer steps in one epoch of ``num_samples`` under ``training``'s batch settings."""
    batch = training.per_device_train_batch_size * max(1, training.world_size)
    drop = training.dataloader_drop_last
    batches = num_samples // batch if drop else math.ceil(num_samples / batch)
    return max(1, math.ceil(batches / training.gradient_accumulation_steps))
