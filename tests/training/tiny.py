"""A tiny two-head model, data and a trainer factory for the training tests.

Kept free of pytest (as is ``helpers``) so that the multi-process script (``ddp_train.py``)
runs the very same code as the single-process references.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from flatmtl import FlatMTLConfig, FlatMTLTrainer
from flatmtl.modeling.heads import ClassificationHead
from helpers import EXACT_SGD

TASKS = ("a", "b")
IGNORE = ClassificationHead.ignore_index


class TinyNet(nn.Module):
    """``Linear(4, 6)`` trunk (optional BatchNorm, dropout), tanh, two ``Linear(6, 3)`` heads.

    Losses are cross-entropy with ``-100`` marking a missing label (a task whose labels are all
    missing gets a zero loss still connected to its head). ``fp16_autocast`` runs each forward
    in its own float16 autocast region on the CPU, as Accelerate does on a GPU.
    """

    def __init__(
        self,
        seed: int = 0,
        batch_norm: bool = False,
        dropout: float = 0.0,
        fp16_autocast: bool = False,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.trunk = nn.Linear(4, 6)
        self.norm = nn.BatchNorm1d(6) if batch_norm else None
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.head_a = nn.Linear(6, 3)
        self.head_b = nn.Linear(6, 3)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.7)
        self.fp16_autocast = fp16_autocast

    def forward(
        self, x: Tensor, labels: Tensor | None = None, tasks: list[str] | None = None
    ) -> dict[str, Any]:
        if self.fp16_autocast:
            with torch.autocast("cpu", dtype=torch.float16):
                return self._forward(x, labels, tasks)
        return self._forward(x, labels, tasks)

    def _forward(self, x: Tensor, labels: Tensor | None, tasks: list[str] | None) -> dict[str, Any]:
        hidden = self.trunk(x)
        if self.norm is not None:
            hidden = self.norm(hidden)
        hidden = torch.tanh(hidden)
        if self.dropout is not None:
            hidden = self.dropout(hidden)
        heads = {"a": self.head_a, "b": self.head_b}
        selected = list(tasks) if tasks is not None else list(TASKS)
        logits = {t: heads[t](hidden) for t in selected}
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            losses = {
                t: masked_cross_entropy(logits[t], labels[:, TASKS.index(t)]) for t in selected
            }
            out["losses"] = losses
            out["loss"] = torch.stack(list(losses.values())).sum()
        return out


def masked_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over the labels that are not ``-100``; zero when none is."""
    if not bool((target != IGNORE).any()):
        return logits.float().sum() * 0.0
    return nn.functional.cross_entropy(logits.float(), target, ignore_index=IGNORE)


class TensorDictDataset(Dataset):
    def __init__(self, x: Tensor, labels: Tensor) -> None:
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"x": self.x[index], "labels": self.labels[index]}


def toy_data(n: int = 24, seed: int = 1, nan_index: int | None = None) -> TensorDictDataset:
    """``n`` samples; ``nan_index`` puts a NaN in that sample's input."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    labels = torch.randint(0, 3, (n, 2), generator=generator)
    if nan_index is not None:
        x[nan_index, 0] = float("nan")
    return TensorDictDataset(x, labels)


def make_trainer(
    model: nn.Module, output_dir: str, data: Dataset, **overrides: Any
) -> FlatMTLTrainer:
    """A trainer on ``data`` with SGD, a constant rate and no clipping (exact comparisons)."""
    settings: dict[str, Any] = dict(
        output_dir=output_dir,
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=0.1,
        **EXACT_SGD,
        dataloader_num_workers=0,
        aggregator="mgda",
        rho_shared=0.3,
        rho_task=0.2,
        seed=7,
    )
    settings.update(overrides)
    callbacks = settings.pop("callbacks", None)
    return FlatMTLTrainer(
        model=model, args=FlatMTLConfig(**settings), train_dataset=data, callbacks=callbacks
    )


def state(model: nn.Module) -> dict[str, Tensor]:
    """Parameters and buffers, detached copies."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}
