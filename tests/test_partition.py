from __future__ import annotations

import pytest
import torch
from torch import nn

from flatmtl import ParameterPartition
from helpers import TwoHeadNet, toy_data


class WithExtras(TwoHeadNet):
    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(2, 2)
        self.gate_a = nn.Parameter(torch.ones(3))

    def forward(self, x, labels=None, tasks=None):
        hidden = self.features(x)
        losses = {
            "a": nn.functional.cross_entropy(self.head_a(hidden * self.gate_a), labels[:, 0]),
            "b": nn.functional.cross_entropy(self.head_b(hidden), labels[:, 1]),
        }
        return {"losses": losses}


def test_partition_from_the_autograd_graph():
    model = WithExtras()
    data = toy_data()
    partition = ParameterPartition.infer(model, model(data.x, data.labels)["losses"])
    assert partition.shared == ["trunk.weight", "trunk.bias"]
    assert partition.tasks == {
        "a": ["gate_a", "head_a.weight", "head_a.bias"],
        "b": ["head_b.weight", "head_b.bias"],
    }
    assert partition.unused == ["unused.weight", "unused.bias"]
    assert "shared: 2 tensors (15 values)" in partition.describe(model)


def test_partition_override_makes_task_modules_shared():
    model = WithExtras()
    data = toy_data()
    losses = model(data.x, data.labels)["losses"]
    partition = ParameterPartition.infer(model, losses, shared_patterns=[r"^gate_"])
    assert partition.shared == ["gate_a", "trunk.weight", "trunk.bias"]
    assert partition.tasks["a"] == ["head_a.weight", "head_a.bias"]
    restored = ParameterPartition.from_dict(partition.to_dict())
    assert restored == partition
    shared, tasks = restored.resolve(model)
    assert shared[0] is model.gate_a and tasks["b"][0] is model.head_b.weight


def test_partition_ignores_frozen_parameters():
    model = TwoHeadNet()
    model.trunk.bias.requires_grad_(False)
    data = toy_data()
    partition = ParameterPartition.infer(model, model(data.x, data.labels)["losses"])
    assert partition.shared == ["trunk.weight"]


def test_a_bad_shared_pattern_is_named():
    model = WithExtras()
    data = toy_data()
    losses = model(data.x, data.labels)["losses"]
    with pytest.raises(ValueError, match=r"`shared_patterns` holds '\(', which is not a regular"):
        ParameterPartition.infer(model, losses, shared_patterns=["("])
