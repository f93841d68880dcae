"""Tasks without labels in a batch contribute nothing; DeepSpeed / FSDP are refused."""

from __future__ import annotations

import pytest
import torch
from tiny import IGNORE, TinyNet, make_trainer, state, toy_data

from flatmtl import FlatSettings, FlatStep, get_aggregator
from flatmtl.flat import build_aggregators


def _without_b_labels(n: int = 8):
    data = toy_data(n)
    data.labels[:, 1] = IGNORE
    return data


@pytest.mark.parametrize("aggregator", ["sum", "mgda", "pcgrad", "cagrad", "imtl", "nashmtl"])
def test_missing_task_labels_give_no_gradient_and_no_nan(aggregator, tmp_path):
    model = TinyNet()
    trainer = make_trainer(model, str(tmp_path), _without_b_labels(), max_steps=2,
                           per_device_train_batch_size=8, logging_steps=1,
                           aggregator=aggregator, flat=True)  # fmt: skip
    trainer.train()
    after, initial = state(model), state(TinyNet())
    assert all(torch.isfinite(v).all() for v in after.values())
    for name in ("head_b.weight", "head_b.bias"):
        assert torch.equal(after[name], initial[name]), name
    assert not torch.equal(after["head_a.weight"], initial["head_a.weight"])
    log = next(e for e in trainer.state.log_history if "loss" in e)
    assert log["loss/b"] == 0.0 and log["grad_norm/b"] == 0.0 and log["skipped_steps"] == 0
    assert log["perturbation_norm/shared/b"] == 0.0 and log["perturbation_norm/task/b"] == 0.0
    assert all(v == v for k, v in log.items() if isinstance(v, float))  # no NaN


def test_zero_gradient_row_perturbs_nothing_and_aggregators_stay_finite():
    model = TinyNet()
    data = _without_b_labels()
    shared = [model.trunk.weight, model.trunk.bias]
    tasks = {"a": list(model.head_a.parameters()), "b": list(model.head_b.parameters())}
    settings = FlatSettings(rho_shared=0.5, rho_task=0.5, adaptive=True)
    seen = []

    def forward(selected):
        if selected == ["b"]:  # task b's perturbed pass: no weight may have moved
            seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return model(data.x, data.labels, selected)["losses"]

    before = state(model)
    for name in ("mgda", "pcgrad", "imtl", "upgrad", "aligned_mtl", "fairgrad", "graddrop"):
        step = FlatStep(
            model,
            shared,
            tasks,
            build_aggregators(lambda n=name: get_aggregator(n), settings, 2),
            settings,
        )
        output = step(forward)  # fmt: skip
        assert torch.isfinite(output.shared_direction).all(), name
        assert all(g is None or bool((g == 0).all()) for g in output.task_grads["b"]), name
        assert output.stats["perturbation_norm/shared/b"] == 0.0
    for snapshot in seen:
        for key, value in snapshot.items():
            assert torch.equal(value, before[key]), key


def _flag_trainer(monkeypatch, tmp_path, flag: str):
    from transformers import Trainer

    original = Trainer.create_accelerator_and_postprocess

    def with_flag(self):
        original(self)
        setattr(self, flag, True)

    monkeypatch.setattr(Trainer, "create_accelerator_and_postprocess", with_flag)
    return make_trainer(TinyNet(), str(tmp_path), toy_data(8))


@pytest.mark.parametrize(
    "flag,backend", [("is_deepspeed_enabled", "DeepSpeed"), ("is_fsdp_enabled", "FSDP")]
)
def test_sharded_engines_are_refused(monkeypatch, tmp_path, flag, backend):
    # DeepSpeed is not installed and FSDP needs several processes on an accelerator, so the
    # Trainer's own flags are set the way its Accelerate set-up would set them.
    with pytest.raises(ValueError, match=f"does not support {backend}.*Supported: one process"):
        _flag_trainer(monkeypatch, tmp_path, flag)
