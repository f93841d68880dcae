"""Gradient accumulation scales the loss once; resuming equals an uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from tiny import TinyNet, make_trainer, state, toy_data

from helpers import StopAt


def test_sum_accumulation_equals_doubled_batch(tmp_path):
    big = TinyNet()
    make_trainer(big, str(tmp_path / "big"), toy_data(16), per_device_train_batch_size=8,
                 max_steps=2, aggregator="sum", flat=False).train()  # fmt: skip
    small = TinyNet()
    make_trainer(small, str(tmp_path / "ga"), toy_data(16), per_device_train_batch_size=4,
                 gradient_accumulation_steps=2, max_steps=2, aggregator="sum",
                 flat=False).train()  # fmt: skip
    initial = state(TinyNet())
    for name, value in state(big).items():
        assert not torch.equal(value, initial[name])
        torch.testing.assert_close(state(small)[name], value, rtol=1e-6, atol=1e-7)


def test_nonlinear_aggregator_averages_micro_batch_directions(tmp_path):
    # MGDA under accumulation: one MGDA direction per micro-batch, then their mean (the
    # documented behaviour), which differs from MGDA on the 8-sample batch.
    options = dict(per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=1,
                   aggregator="mgda", flat=False)  # fmt: skip
    batches = list(make_trainer(TinyNet(), str(tmp_path / "order"), toy_data(8),
                                **options).get_train_dataloader())[:2]  # fmt: skip
    trained = TinyNet()
    make_trainer(trained, str(tmp_path / "ga"), toy_data(8), **options).train()

    def mgda_grads(model: TinyNet, micro_batches: list[dict]) -> dict[str, torch.Tensor]:
        # The two-task MGDA closed form on the shared part; heads get their own gradient.
        params = dict(model.named_parameters())
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        for batch in micro_batches:
            losses = model(batch["x"], batch["labels"])["losses"]
            grads = {t: torch.autograd.grad(losses[t], list(params.values()), retain_graph=True,
                                            allow_unused=True) for t in ("a", "b")}  # fmt: skip
            flat = {t: torch.cat([g.reshape(-1) for g in grads[t][:2]]) for t in grads}
            diff = flat["a"] - flat["b"]
            w = float(torch.clamp((flat["b"] @ flat["b"] - flat["a"] @ flat["b"]) / (diff @ diff),
                                  0, 1))  # fmt: skip
            for index, name in enumerate(params):
                if name.startswith("trunk"):
                    value = w * grads["a"][index] + (1 - w) * grads["b"][index]
                else:
                    value = grads[name[5]][index]
                total[name] += value / len(micro_batches)
        return {n: (p - 0.1 * total[n]).detach() for n, p in params.items()}

    averaged = mgda_grads(TinyNet(), batches)
    joined = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    big_batch = mgda_grads(TinyNet(), [joined])
    for name, value in averaged.items():
        torch.testing.assert_close(trained.state_dict()[name], value, rtol=1e-5, atol=1e-7)
    assert float((averaged["trunk.weight"] - big_batch["trunk.weight"]).abs().max()) > 1e-4


@pytest.mark.parametrize(
    "aggregator,kwargs",
    [("nashmtl", {}), ("dwa", {}), ("famo", {}), ("pcgrad", {}), ("rlw", {})],
)
def test_resume_equals_uninterrupted(aggregator, kwargs, tmp_path):
    # 4 samples, batch 2: an epoch every 2 steps (DWA's weights move from step 5), the stop
    # falls mid-epoch, and dropout draws from the restored RNG state.
    options = dict(
        per_device_train_batch_size=2, max_steps=6, aggregator=aggregator,
        aggregator_kwargs=kwargs, flat=True, save_strategy="steps", save_steps=3,
    )  # fmt: skip
    full = TinyNet(dropout=0.2)
    make_trainer(full, str(tmp_path / "full"), toy_data(4), **options).train()

    first = TinyNet(dropout=0.2)
    make_trainer(first, str(tmp_path / "cut"), toy_data(4), callbacks=[StopAt(3)],
                 **options).train()  # fmt: skip
    resumed = TinyNet(dropout=0.2)
    trainer = make_trainer(resumed, str(tmp_path / "cut"), toy_data(4), **options)
    trainer.train(resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-3"))
    assert trainer.state.global_step == 6
    initial = state(TinyNet(dropout=0.2))
    for name, value in state(full).items():
        assert not torch.equal(value, initial[name])
        torch.testing.assert_close(state(resumed)[name], value, rtol=1e-6, atol=1e-7, msg=name)
