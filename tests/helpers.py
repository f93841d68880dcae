"""Tiny models and data shared by the tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from transformers import TrainerCallback

# One plain SGD step per batch: no schedule, decay or clipping between a trainer and a
# hand-computed reference.
EXACT_SGD = dict(
    optim="sgd",
    lr_scheduler_type="constant",
    weight_decay=0.0,
    max_grad_norm=0.0,
    report_to="none",
    save_strategy="no",
    use_cpu=True,
    disable_tqdm=True,
)

TASKS = ("a", "b")


class TwoHeadNet(nn.Module):
    """Shared ``Linear(4, 3) + tanh`` trunk, two ``Linear(3, 2)`` heads, cross-entropy losses.

    ``batch_norm=True`` inserts a BatchNorm1d after the trunk; ``dropout`` adds dropout.
    """

    def __init__(self, batch_norm: bool = False, seed: int = 0, returns_sum: bool = False) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.trunk = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3) if batch_norm else None
        self.head_a = nn.Linear(3, 2)
        self.head_b = nn.Linear(3, 2)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.7)
        self.returns_sum = returns_sum

    def features(self, x: Tensor) -> Tensor:
        hidden = self.trunk(x)
        if self.norm is not None:
            hidden = self.norm(hidden)
        return torch.tanh(hidden)

    def forward(
        self, x: Tensor, labels: Tensor | None = None, tasks: list[str] | None = None
    ) -> dict[str, object]:
        hidden = self.features(x)
        heads = {"a": self.head_a, "b": self.head_b}
        selected = list(tasks) if tasks is not None else list(TASKS)
        logits = {t: heads[t](hidden) for t in selected}
        out: dict[str, object] = {"logits": logits}
        if labels is not None:
            losses = {
                t: nn.functional.cross_entropy(logits[t], labels[:, TASKS.index(t)])
                for t in selected
            }
            out["losses"] = losses
            out["loss"] = torch.stack(list(losses.values())).sum()
        if self.returns_sum:
            return {"loss": out["loss"], "logits": logits}
        return out


class TensorDictDataset(Dataset):
    def __init__(self, x: Tensor, labels: Tensor) -> None:
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"x": self.x[index], "labels": self.labels[index]}


def toy_data(n: int = 8, seed: int = 1) -> TensorDictDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    labels = torch.randint(0, 2, (n, 2), generator=generator)
    return TensorDictDataset(x, labels)


class StopAt(TrainerCallback):
    """Save a checkpoint and stop training after optimizer step ``step`` (to test resuming)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True
            control.should_training_stop = True
        return control
