"""The optimised paths of the flat step compute exactly what the plain path computes.

Speed itself is measured by ``benchmarks/step_time.py``, never asserted here.
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import Tensor
from torch.utils.data import Dataset

import flatmtl.flat as flat_module
from flatmtl import FlatMTLConfig, FlatMTLTrainer, MultiTaskConfig, MultiTaskModel
from flatmtl.aggregation import get_aggregator
from flatmtl.flat import FlatSettings, FlatStep, build_aggregators
from helpers import TASKS, StopAt, TwoHeadNet, toy_data
from test_flat_step import (
    LR,
    RHO_SHARED,
    RHO_TASK,
    _combine,
    _losses,
    _names,
    _perturbation,
    trainer_update,
)

# ---------------------------------------------------------------------- helpers


def _flat_step(model: TwoHeadNet, aggregator: str = "mgda", **settings: object) -> FlatStep:
    options = dict(rho_shared=RHO_SHARED, rho_task=RHO_TASK, **settings)
    flat_settings = FlatSettings(**options)
    aggregators = build_aggregators(lambda: get_aggregator(aggregator), flat_settings, 2)
    shared = [model.trunk.weight, model.trunk.bias]
    tasks = {
        t: [getattr(model, f"head_{t}").weight, getattr(model, f"head_{t}").bias] for t in TASKS
    }
    return FlatStep(model, shared, tasks, aggregators, flat_settings)


def _forward(model: TwoHeadNet, x: Tensor, labels: Tensor, calls: list | None = None):
    def forward(tasks: list[str] | None) -> dict[str, Tensor]:
        if calls is not None:
            calls.append(tasks)
        return model(x, labels, tasks=tasks)["losses"]

    return forward


def _reference_parts(model: TwoHeadNet, x: Tensor, labels: Tensor, aggregator: str):
    """``A_loss(g)``, ``A_flat(h)``, ``k`` and ``k_sam`` at the model's weights (independent of
    flatmtl, SAM with one norm per part)."""
    params = dict(model.named_parameters())
    shared_names, task_names = _names(model)
    losses = _losses(model, x, labels)
    g, k, g_sam, k_sam = {}, {}, {}, {}
    for task in TASKS:
        names = shared_names + task_names[task]
        grads = torch.autograd.grad(losses[task], [params[n] for n in names], retain_graph=True)
        g[task] = torch.cat([t.reshape(-1) for t in grads[: len(shared_names)]])
        k[task] = list(grads[len(shared_names) :])
        shared_grads = list(grads[: len(shared_names)])
        e = _perturbation(shared_grads, [], RHO_SHARED, False)
        f = _perturbation(k[task], [], RHO_TASK, False)
        original = {n: params[n].detach().clone() for n in names}
        with torch.no_grad():
            for name, step in zip(names, e + f):
                params[name].add_(step)
        loss = _losses(model, x, labels)[task]
        perturbed = torch.autograd.grad(loss, [params[n] for n in names])
        with torch.no_grad():
            for name, value in original.items():
                params[name].copy_(value)
        g_sam[task] = torch.cat([t.reshape(-1) for t in perturbed[: len(shared_names)]])
        k_sam[task] = list(perturbed[len(shared_names) :])
    h = {t: g_sam[t] - g[t] for t in TASKS}
    return _combine(aggregator, g["a"], g["b"]), _combine(aggregator, h["a"], h["b"]), k, k_sam


def _reference_run(steps: int, every: int, aggregator: str = "mgda") -> dict[str, Tensor]:
    """SGD steps of the flat method that recompute the flat part every ``every`` steps and
    reuse the stored ``A_flat(h)`` and ``k_sam - k`` in between."""
    model = TwoHeadNet()
    data = toy_data()
    params = dict(model.named_parameters())
    shared_names, task_names = _names(model)
    stored_direction, stored_task = None, None
    for step in range(steps):
        loss_direction, flat_direction, k, k_sam = _reference_parts(
            model, data.x, data.labels, aggregator
        )
        if step % every == 0:
            stored_direction = flat_direction
            stored_task = {t: [s - c for s, c in zip(k_sam[t], k[t])] for t in TASKS}
        direction = loss_direction + stored_direction
        task_grads = {t: [c + s for c, s in zip(k[t], stored_task[t])] for t in TASKS}
        with torch.no_grad():
            offset = 0
            for name in shared_names:
                numel = params[name].numel()
                params[name].sub_(LR * direction[offset : offset + numel].view_as(params[name]))
                offset += numel
            for task in TASKS:
                for name, grad in zip(task_names[task], task_grads[task]):
                    params[name].sub_(LR * grad)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ---------------------------------------------------------------------- batched backward


@pytest.mark.parametrize("batch_norm", [False, True])
def test_batched_task_gradients_equal_the_looped_ones(batch_norm):
    data = toy_data()
    results = {}
    for batched in (False, True):
        model = TwoHeadNet(batch_norm=batch_norm)
        step = _flat_step(model, batched_task_grads=batched)
        losses = model(data.x, data.labels)["losses"]
        results[batched] = step._task_gradients(losses, 1.0, None)
    (shared_loop, own_loop), (shared_batched, own_batched) = results[False], results[True]
    assert float(shared_loop.abs().max()) > 0
    torch.testing.assert_close(shared_batched, shared_loop, rtol=1e-6, atol=1e-8)
    for task in TASKS:
        for looped, batched in zip(own_loop[task], own_batched[task]):
            torch.testing.assert_close(batched, looped, rtol=1e-6, atol=1e-8)


def test_batched_task_gradients_on_a_convolutional_model():
    tasks = [
        {"name": name, "type": "classification", "num_labels": 10, "label_index": index}
        for index, name in enumerate(("left", "right"))
    ]
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 36, 36, generator=generator)
    labels = torch.randint(0, 10, (6, 2), generator=generator)
    results = {}
    for batched in (False, True):
        torch.manual_seed(0)
        model = MultiTaskModel(MultiTaskConfig(tasks=tasks, backbone="lenet"))
        shared = list(model.backbone.parameters())
        own = {t["name"]: list(model.heads[t["name"]].parameters()) for t in tasks}
        settings = FlatSettings(batched_task_grads=batched)
        aggregators = build_aggregators(lambda: get_aggregator("sum"), settings, 2)
        step = FlatStep(model, shared, own, aggregators, settings)
        losses = model(pixel_values=x, labels=labels).losses
        results[batched] = step._task_gradients(losses, 1.0, None)
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-5, atol=1e-7)
    for task in ("left", "right"):
        for looped, batched in zip(results[False][1][task], results[True][1][task]):
            torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("flat", [False, True])
def test_batched_training_matches_the_independent_reference(flat, tmp_path):
    options = dict(aggregator="mgda", flat=flat, rho_shared=RHO_SHARED, rho_task=RHO_TASK)
    looped = trainer_update(TwoHeadNet(), tmp_path / "loop", steps=2, **options)
    batched = trainer_update(
        TwoHeadNet(), tmp_path / "batched", steps=2, batched_task_grads=True, **options
    )
    for name, value in looped.items():
        torch.testing.assert_close(batched[name], value, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------- what the step runs


class _Images(Dataset):
    def __init__(self, count: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.rand(count, 1, 36, 36, generator=generator)
        self.labels = torch.randint(0, 10, (count, 3), generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"pixel_values": self.x[index], "labels": self.labels[index]}


def test_perturbed_passes_run_one_head_and_save_the_weights_once(tmp_path, monkeypatch):
    tasks = [
        {"name": name, "type": "classification", "num_labels": 10, "label_index": index}
        for index, name in enumerate(("left", "right", "middle"))
    ]
    model = MultiTaskModel(MultiTaskConfig(tasks=tasks, backbone="lenet"))
    head_calls = {name: 0 for name in model.heads}
    for name, head in model.heads.items():
        head.register_forward_hook(
            lambda *_, name=name: head_calls.__setitem__(name, head_calls[name] + 1)
        )
    flatten_calls = []
    original_flatten = flat_module._flatten

    def counting_flatten(tensors):
        flatten_calls.append(len(tensors))
        return original_flatten(tensors)

    monkeypatch.setattr(flat_module, "_flatten", counting_flatten)
    args = FlatMTLConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, use_cpu=True,
        report_to="none", save_strategy="no", disable_tqdm=True, aggregator="mgda",
    )  # fmt: skip
    FlatMTLTrainer(model=model, args=args, train_dataset=_Images(8)).train()
    # Per step: every head in the clean pass, then each head in its own perturbed pass only.
    assert head_calls == {name: 4 for name in model.heads}
    assert flatten_calls == [len(list(model.backbone.parameters()))] * 2


# ---------------------------------------------------------------------- flat_every


def test_flat_every_one_is_the_every_step_method_bit_for_bit(tmp_path):
    options = dict(aggregator="mgda", rho_shared=RHO_SHARED, rho_task=RHO_TASK)
    default = trainer_update(TwoHeadNet(), tmp_path / "d", steps=3, **options)
    every_one = trainer_update(TwoHeadNet(), tmp_path / "one", steps=3, flat_every=1, **options)
    reference = _reference_run(steps=3, every=1)
    for name, value in default.items():
        assert torch.equal(every_one[name], value), name
        torch.testing.assert_close(value, reference[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("aggregator", ["sum", "mgda"])
def test_flat_every_reuses_the_stored_flat_part(aggregator, tmp_path):
    options = dict(aggregator=aggregator, rho_shared=RHO_SHARED, rho_task=RHO_TASK)
    actual = trainer_update(TwoHeadNet(), tmp_path / "k", steps=3, flat_every=2, **options)
    expected = _reference_run(steps=3, every=2, aggregator=aggregator)
    every_step = _reference_run(steps=3, every=1, aggregator=aggregator)
    assert any(not torch.allclose(expected[n], every_step[n], atol=1e-6) for n in expected)
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=1e-5, atol=1e-7)


def test_in_between_step_adds_exactly_the_stored_parts():
    data = toy_data()
    model = TwoHeadNet()
    calls: list = []
    step = _flat_step(model, flat_every=2)
    refreshed = step(_forward(model, data.x, data.labels, calls), step=0)
    stored = step.reuse_state_dict()
    assert calls == [None, ["a"], ["b"]]

    calls.clear()
    reused = step(_forward(model, data.x, data.labels, calls), step=1)
    assert calls == [None]  # no perturbed pass: the plain F + m B
    plain = _flat_step(model, flat=False)(_forward(model, data.x, data.labels))
    assert torch.equal(reused.shared_direction, plain.shared_direction + stored["direction"])
    for task in TASKS:
        for got, grad, part in zip(
            reused.task_grads[task], plain.task_grads[task], stored["task"][task]
        ):
            assert torch.equal(got, grad + part)
    assert reused.stats["flat_refresh"] == 0.0 and refreshed.stats["flat_refresh"] == 1.0

    again = step(_forward(model, data.x, data.labels, calls), step=2)
    assert torch.equal(again.shared_direction, refreshed.shared_direction)


def test_stored_flat_part_is_the_mean_over_micro_batches():
    data = toy_data(16)
    halves = [(data.x[:8], data.labels[:8]), (data.x[8:], data.labels[8:])]
    alone = []
    for x, labels in halves:
        model = TwoHeadNet()
        step = _flat_step(model, flat_every=3)
        step(_forward(model, x, labels), step=0)
        alone.append(step.reuse_state_dict())
    model = TwoHeadNet()
    step = _flat_step(model, flat_every=3)
    for x, labels in halves:
        step(_forward(model, x, labels), step=0)
    joint = step.reuse_state_dict()
    assert joint["count"] == 2
    mean = (alone[0]["direction"] + alone[1]["direction"]) / 2
    torch.testing.assert_close(joint["direction"], mean, rtol=1e-6, atol=1e-8)
    for task in TASKS:
        for got, first, second in zip(
            joint["task"][task], alone[0]["task"][task], alone[1]["task"][task]
        ):
            torch.testing.assert_close(got, (first + second) / 2, rtol=1e-6, atol=1e-8)


def _resume_trainer(output_dir, callbacks=None) -> tuple[FlatMTLTrainer, TwoHeadNet]:
    model = TwoHeadNet(batch_norm=True)
    args = FlatMTLConfig(
        output_dir=str(output_dir), per_device_train_batch_size=2, max_steps=6,
        learning_rate=LR, optim="sgd", lr_scheduler_type="constant", weight_decay=0.0,
        max_grad_norm=0.0, report_to="none", save_strategy="steps", save_steps=3,
        use_cpu=True, disable_tqdm=True, aggregator="mgda", rho_shared=RHO_SHARED,
        rho_task=RHO_TASK, flat_every=2, seed=3,
    )  # fmt: skip
    trainer = FlatMTLTrainer(model=model, args=args, train_dataset=toy_data(8),
                             callbacks=callbacks)  # fmt: skip
    return trainer, model


def test_resume_at_an_odd_step_equals_the_uninterrupted_run(tmp_path):
    trainer, full = _resume_trainer(tmp_path / "full")
    trainer.train()

    cut, _ = _resume_trainer(tmp_path / "cut", callbacks=[StopAt(3)])
    cut.train()
    checkpoint = tmp_path / "cut" / "checkpoint-3"
    saved = torch.load(os.path.join(checkpoint, "flatmtl_state.pt"), weights_only=False)
    assert saved["reused_flat"]["step"] == 2  # step 3 reuses the part stored at step 2

    resumed_trainer, resumed = _resume_trainer(tmp_path / "cut")
    resumed_trainer.train(resume_from_checkpoint=str(checkpoint))
    assert resumed_trainer.state.global_step == 6
    for name, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)

    # Without the stored part, step 3 recomputes it: the run differs (the state matters).
    saved["reused_flat"] = {}
    torch.save(saved, os.path.join(checkpoint, "flatmtl_state.pt"))
    lost_trainer, lost = _resume_trainer(tmp_path / "cut")
    lost_trainer.train(resume_from_checkpoint=str(checkpoint))
    assert not torch.allclose(lost.trunk.weight, full.trunk.weight)


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_flat_every_must_be_a_positive_integer(value, tmp_path):
    with pytest.raises(ValueError, match="`flat_every`"):
        FlatMTLConfig(output_dir=str(tmp_path), use_cpu=True, flat_every=value)


@pytest.mark.parametrize("strategy", ["direct", "second", "each"])
def test_flat_every_needs_the_individual_strategy(strategy, tmp_path):
    with pytest.raises(ValueError, match="flat_strategy='individual'"):
        FlatMTLConfig(output_dir=str(tmp_path), use_cpu=True, flat_every=2, flat_strategy=strategy)
    # With `flat=False` there is no flat part: any `flat_every` is accepted.
    FlatMTLConfig(output_dir=str(tmp_path), use_cpu=True, flat=False, flat_every=2,
                  flat_strategy=strategy)  # fmt: skip


def test_logged_perturbation_norms_average_over_refreshing_steps_only(tmp_path):
    data = toy_data()
    args = FlatMTLConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=4, logging_steps=4,
        use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True,
        aggregator="mgda", rho_shared=RHO_SHARED, rho_task=RHO_TASK, flat_every=2,
    )  # fmt: skip
    trainer = FlatMTLTrainer(model=TwoHeadNet(), args=args, train_dataset=data)
    trainer.train()
    log = next(entry for entry in trainer.state.log_history if "flat_refresh" in entry)
    assert log["flat_refresh"] == 0.5
    for task in TASKS:
        assert abs(log[f"perturbation_norm/shared/{task}"] - RHO_SHARED) < 1e-6
        assert abs(log[f"perturbation_norm/task/{task}"] - RHO_TASK) < 1e-6
