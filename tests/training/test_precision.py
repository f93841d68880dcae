"""bf16 autocast and fp16 loss scaling.

The bf16 test runs the real Accelerate path on the CPU (``bf16=True, use_cpu=True``:
Accelerate wraps every forward in its own autocast region). Accelerate creates no gradient
scaler for fp16 on the CPU, so the fp16 tests install a real ``torch.amp.GradScaler("cpu")``
on ``trainer.accelerator`` before training (the optimizer it prepares then steps through the
scaler, as on a GPU) and run the model's forwards under float16 autocast on the CPU. What
runs on a GPU only: Accelerate creating the scaler and the CUDA float16 kernels themselves.
"""

from __future__ import annotations

import contextlib

import torch
from tiny import TASKS, TinyNet, make_trainer, state, toy_data
from torch import Tensor

RHO_SHARED, RHO_TASK, LR = 0.5, 0.5, 0.1
SHARED = ["trunk.weight", "trunk.bias"]
OWN = {"a": ["head_a.weight", "head_a.bias"], "b": ["head_b.weight", "head_b.bias"]}


def _bf16() -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _sam_sum_update(model: TinyNet, one_region: bool) -> dict[str, Tensor]:
    """One SGD step of flat ``sum`` (``individual``) computed by hand under bf16 autocast:
    every forward in its own region, or all of them in one region with the weight cache on."""
    data = toy_data(8)
    params = dict(model.named_parameters())
    outer = _bf16() if one_region else contextlib.nullcontext()
    with outer:
        region = contextlib.nullcontext if one_region else _bf16
        with region():
            losses = model(data.x, data.labels)["losses"]
        direction = torch.zeros(sum(params[n].numel() for n in SHARED))
        updated = {}
        for task in TASKS:
            names = SHARED + OWN[task]
            grads = torch.autograd.grad(losses[task], [params[n] for n in names], retain_graph=True)
            shared, own = grads[:2], grads[2:]
            shared_norm = torch.sqrt(sum((g**2).sum() for g in shared))
            own_norm = torch.sqrt(sum((g**2).sum() for g in own))
            original = {n: params[n].detach().clone() for n in names}
            with torch.no_grad():
                for name, grad in zip(SHARED, shared):
                    params[name].add_(RHO_SHARED * grad / (shared_norm + 1e-12))
                for name, grad in zip(OWN[task], own):
                    params[name].add_(RHO_TASK * grad / (own_norm + 1e-12))
            with region():
                loss = model(data.x, data.labels, [task])["losses"][task]
            sam = torch.autograd.grad(loss, [params[n] for n in names])
            with torch.no_grad():
                for name, value in original.items():
                    params[name].copy_(value)
            direction += torch.cat([g.reshape(-1) for g in sam[:2]])
            for name, grad in zip(OWN[task], sam[2:]):
                updated[name] = params[name].detach() - LR * grad
    offset = 0
    for name in SHARED:
        numel = params[name].numel()
        updated[name] = params[name].detach() - LR * direction[offset : offset + numel].view_as(
            params[name]
        )
        offset += numel
    return updated


def test_bf16_perturbed_forward_sees_perturbed_weights(tmp_path):
    model = TinyNet()
    dtypes = []
    model.trunk.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    trainer = make_trainer(
        model, str(tmp_path), toy_data(8), per_device_train_batch_size=8, max_steps=1,
        aggregator="sum", flat=True, rho_shared=RHO_SHARED, rho_task=RHO_TASK, bf16=True,
    )  # fmt: skip
    trainer.train()
    assert dtypes and set(dtypes) == {torch.bfloat16}, dtypes  # autocast really ran
    separate = _sam_sum_update(TinyNet(), one_region=False)
    stale = _sam_sum_update(TinyNet(), one_region=True)
    trained = dict(model.named_parameters())
    # One region with the weight cache reuses the unperturbed bf16 weights: a different step.
    assert max(float((separate[n] - stale[n]).abs().max()) for n in SHARED) > 1e-3
    for name, value in separate.items():
        torch.testing.assert_close(trained[name].detach(), value, rtol=1e-5, atol=1e-6)
    assert max(float((trained[n].detach() - stale[n]).abs().max()) for n in SHARED) > 1e-3


def _fp16_run(tmp_path, init_scale: float | None) -> tuple[TinyNet, object, object]:
    model = TinyNet(fp16_autocast=True)
    trainer = make_trainer(
        model, str(tmp_path), toy_data(8), per_device_train_batch_size=8, max_steps=1,
        aggregator="mgda", flat=True,
    )  # fmt: skip
    scaler = None
    if init_scale is not None:
        scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=1000)
        trainer.accelerator.scaler = scaler
    trainer.train()
    return model, trainer, scaler


def test_fp16_overflow_skips_step_and_lowers_scale(tmp_path):
    # 2**20 times a loss gradient of ~0.1 at the fp16 logits exceeds fp16's 65504: inf.
    model, trainer, scaler = _fp16_run(tmp_path, 2.0**20)
    initial = state(TinyNet())
    for name, value in state(model).items():
        assert torch.equal(value, initial[name]), name
    assert scaler.get_scale() == 2.0**19
    assert trainer._skipped_steps == 1
    assert trainer.optimizer.step_was_skipped


def test_fp16_scaled_step_equals_unscaled_step(tmp_path):
    # A power-of-two scale is exact: dividing by it before the MTL math and the perturbation
    # and multiplying the written gradient by it must give the unscaled step.
    scaled, trainer, scaler = _fp16_run(tmp_path / "s", 2.0**8)
    plain, _, _ = _fp16_run(tmp_path / "p", None)
    assert scaler.get_scale() == 2.0**8 and trainer._skipped_steps == 0
    initial = state(TinyNet())
    for name, value in state(plain).items():
        assert not torch.equal(value, initial[name]), name
        torch.testing.assert_close(state(scaled)[name], value, rtol=1e-6, atol=1e-7)
