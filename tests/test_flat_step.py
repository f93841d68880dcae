"""The trainer's update equals one flat step computed by an independent route.

The reference below is written out with plain autograd on the tiny two-head model of
``helpers.py``: clean gradients, per-part SAM/ASAM perturbations, perturbed gradients, the
two-task aggregators in closed form, and one SGD step. It shares no code with flatmtl.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from flatmtl import FlatMTLConfig, FlatMTLTrainer
from helpers import EXACT_SGD, TASKS, TwoHeadNet, toy_data

LR = 0.1
RHO_SHARED = 0.3
RHO_TASK = 0.2


def _names(model: TwoHeadNet) -> tuple[list[str], dict[str, list[str]]]:
    shared = ["trunk.weight", "trunk.bias"]
    return shared, {"a": ["head_a.weight", "head_a.bias"], "b": ["head_b.weight", "head_b.bias"]}


def _losses(model: TwoHeadNet, x: Tensor, labels: Tensor) -> dict[str, Tensor]:
    hidden = torch.tanh(x @ model.trunk.weight.T + model.trunk.bias)
    out = {}
    for index, task in enumerate(TASKS):
        head = getattr(model, f"head_{task}")
        logits = hidden @ head.weight.T + head.bias
        out[task] = torch.nn.functional.cross_entropy(logits, labels[:, index])
    return out


def _combine(name: str, g1: Tensor, g2: Tensor) -> Tensor:
    if name == "sum":
        return g1 + g2
    if name == "mean":
        return (g1 + g2) / 2
    # MGDA on two vectors: the minimum-norm point of the segment [g1, g2].
    diff = g1 - g2
    denom = diff @ diff
    w1 = torch.clamp((g2 @ g2 - g1 @ g2) / denom, 0.0, 1.0) if denom > 0 else torch.tensor(0.5)
    return w1 * g1 + (1 - w1) * g2


def _perturbation(grads: list[Tensor], weights: list[Tensor], rho: float, adaptive: bool):
    if adaptive:
        scaled = [w.abs() * g for w, g in zip(weights, grads)]
        norm = torch.sqrt(sum((s**2).sum() for s in scaled))
        return [rho * w**2 * g / (norm + 1e-12) for w, g in zip(weights, grads)]
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    return [rho * g / (norm + 1e-12) for g in grads]


def reference_update(
    model: TwoHeadNet,
    x: Tensor,
    labels: Tensor,
    aggregator: str,
    flat: bool,
    strategy: str,
    adaptive: bool,
) -> dict[str, Tensor]:
    """New parameter values after one SGD step of the flat (or plain) method."""
    params = dict(model.named_parameters())
    shared_names, task_names = _names(model)
    losses = _losses(model, x, labels)
    g, k = {}, {}
    for task in TASKS:
        grads = torch.autograd.grad(
            losses[task], [params[n] for n in shared_names + task_names[task]], retain_graph=True
        )
        g[task] = torch.cat([t.reshape(-1) for t in grads[: len(shared_names)]])
        k[task] = list(grads[len(shared_names) :])

    if flat:
        g_sam, k_sam = {}, {}
        for task in TASKS:
            own = task_names[task]
            shared_grads = list(
                torch.autograd.grad(
                    losses[task], [params[n] for n in shared_names], retain_graph=True
                )
            )
            e = _perturbation(
                shared_grads, [params[n].detach() for n in shared_names], RHO_SHARED, adaptive
            )
            f = _perturbation(k[task], [params[n].detach() for n in own], RHO_TASK, adaptive)
            original = {n: params[n].detach().clone() for n in shared_names + own}
            with torch.no_grad():
                for name, step in zip(shared_names + own, e + f):
                    params[name].add_(step)
            loss = _losses(model, x, labels)[task]
            grads = torch.autograd.grad(loss, [params[n] for n in shared_names + own])
            with torch.no_grad():
                for name, value in original.items():
                    params[name].copy_(value)
            g_sam[task] = torch.cat([t.reshape(-1) for t in grads[: len(shared_names)]])
            k_sam[task] = list(grads[len(shared_names) :])
        if strategy == "individual":
            h = {t: g_sam[t] - g[t] for t in TASKS}
            direction = _combine(aggregator, g["a"], g["b"]) + _combine(aggregator, h["a"], h["b"])
        else:
            direction = _combine(aggregator, g_sam["a"], g_sam["b"])
        task_grads = k_sam
    else:
        direction = _combine(aggregator, g["a"], g["b"])
        task_grads = k

    updated, offset = {}, 0
    for name in shared_names:
        numel = params[name].numel()
        step = direction[offset : offset + numel].view_as(params[name])
        updated[name] = params[name].detach() - LR * step
        offset += numel
    for task in TASKS:
        for name, grad in zip(task_names[task], task_grads[task]):
            updated[name] = params[name].detach() - LR * grad
    return updated


def trainer_update(
    model: TwoHeadNet, tmp_path, steps: int = 1, **config: object
) -> dict[str, Tensor]:
    data = toy_data()
    args = FlatMTLConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=len(data),
        max_steps=steps,
        learning_rate=LR,
        **EXACT_SGD,
        **config,
    )
    trainer = FlatMTLTrainer(model=model, args=args, train_dataset=data)
    trainer.train()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


CASES = [
    (aggregator, flat, strategy, adaptive)
    for aggregator, (flat, strategy), adaptive in itertools.product(
        ["sum", "mean", "mgda"],
        [(False, "individual"), (True, "individual"), (True, "direct")],
        [False, True],
    )
    if flat or not adaptive
]


@pytest.mark.parametrize("aggregator,flat,strategy,adaptive", CASES)
def test_update_matches_independent_reference(aggregator, flat, strategy, adaptive, tmp_path):
    data = toy_data()
    expected = reference_update(
        TwoHeadNet(), data.x, data.labels, aggregator, flat, strategy, adaptive
    )
    actual = trainer_update(
        TwoHeadNet(),
        tmp_path,
        aggregator=aggregator,
        flat=flat,
        flat_strategy=strategy,
        adaptive=adaptive,
        rho_shared=RHO_SHARED,
        rho_task=RHO_TASK,
    )
    initial = dict(TwoHeadNet().named_parameters())
    for name, value in expected.items():
        # The update must be non-trivial, and equal to the reference to 1e-5 relative.
        assert not torch.equal(value, initial[name].detach())
        torch.testing.assert_close(actual[name], value, rtol=1e-5, atol=1e-7)


def test_flat_update_differs_from_plain(tmp_path):
    plain = trainer_update(TwoHeadNet(), tmp_path / "p", aggregator="mgda", flat=False)
    flat = trainer_update(
        TwoHeadNet(),
        tmp_path / "f",
        aggregator="mgda",
        flat=True,
        rho_shared=RHO_SHARED,
        rho_task=RHO_TASK,
    )
    assert any(not torch.allclose(plain[n], flat[n]) for n in plain)


ZERO_RHO_CASES = [
    (aggregator, strategy)
    for aggregator in ["sum", "mean", "mgda", "pcgrad", "cagrad", "imtl", "nashmtl"]
    for strategy in ["individual", "direct"]
] + [("sum", "second"), ("sum", "each")]


@pytest.mark.parametrize("aggregator,strategy", ZERO_RHO_CASES)
def test_zero_rho_reproduces_plain_exactly(aggregator, strategy, tmp_path):
    # `individual` adds A(0) = 0 and `direct` re-takes g at the same point, so both reduce to
    # A(g) bit for bit. `second` / `each` nest a second aggregation, which reduces to A(g)
    # only for a method with A([v, 0]) = v (the sum).
    plain = trainer_update(TwoHeadNet(), tmp_path / "p", steps=2, aggregator=aggregator, flat=False)
    zero = trainer_update(
        TwoHeadNet(),
        tmp_path / "z",
        steps=2,
        aggregator=aggregator,
        flat=True,
        rho_shared=0.0,
        rho_task=0.0,
        flat_strategy=strategy,
    )
    for name in plain:
        assert torch.equal(plain[name], zero[name]), name


def test_sum_plain_equals_transformers_trainer(tmp_path):
    from transformers import Trainer, TrainingArguments

    data = toy_data()
    reference_model = TwoHeadNet(returns_sum=True)
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        per_device_train_batch_size=len(data),
        max_steps=2,
        learning_rate=LR,
        **EXACT_SGD,
    )
    Trainer(model=reference_model, args=args, train_dataset=data).train()
    ours = trainer_update(TwoHeadNet(), tmp_path / "ours", steps=2, aggregator="sum", flat=False)
    for name, param in reference_model.named_parameters():
        torch.testing.assert_close(ours[name], param.detach(), rtol=1e-6, atol=1e-7)
