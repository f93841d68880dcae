"""Stateful and random methods: a restored instance continues exactly; reset equals fresh."""

from __future__ import annotations

import copy

import pytest
import torch
from agg_cases import METHODS, build

from flatmtl.aggregation import AGGREGATORS, Aggregator

KWARGS = {"nashmtl": {"update_weights_every": 2}}
WITH_STATE = sorted(
    name for name in METHODS if AGGREGATORS[name].stateful or AGGREGATORS[name].random
)


def _calls(num_calls: int = 8, m: int = 3, d: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(11)
    calls = []
    for step in range(num_calls):
        grads = torch.randn(m, d, generator=generator, dtype=torch.float64)
        losses = (1.0 + torch.rand(m, generator=generator, dtype=torch.float64)) / (1 + step)
        calls.append((grads, losses))
    return calls


def _run(aggregator: Aggregator, calls: list, start: int = 0) -> list[torch.Tensor]:
    """Call, step the learned parameters like an optimizer would, and end an epoch every
    second call."""
    outputs = []
    for step, (grads, losses) in enumerate(calls, start=start):
        outputs.append(aggregator(grads, losses))
        with torch.no_grad():
            for parameter in aggregator.parameters():
                parameter -= 0.1 * parameter.grad
                parameter.grad = None
        if step % 2 == 1:
            aggregator.on_epoch_end()
    return outputs


def test_state_list_is_complete() -> None:
    expected = {"nashmtl", "dwa", "uw", "imtl_l", "famo", "gradnorm", "dbmtl"}
    assert expected <= {name for name in METHODS if AGGREGATORS[name].stateful}
    assert {"pcgrad", "rlw", "graddrop"} <= {n for n in METHODS if AGGREGATORS[n].random}


@pytest.mark.parametrize("name", WITH_STATE)
def test_restored_instance_continues_exactly(name: str) -> None:
    calls = _calls()
    uninterrupted = build(name, 3, **KWARGS.get(name, {}))
    expected = _run(uninterrupted, calls)

    first = build(name, 3, **KWARGS.get(name, {}))
    _run(first, calls[:3])
    state = copy.deepcopy(first.state_dict())
    _run(first, calls[3:5], start=3)  # the saved state must not alias live buffers
    restored = build(name, 3, **KWARGS.get(name, {}))
    restored.load_state_dict(state)
    continued = _run(restored, calls[3:], start=3)
    for actual, reference in zip(continued, expected[3:]):
        assert torch.equal(actual, reference)
    changed = any(not torch.allclose(a, b) for a, b in zip(expected[1:], expected[:-1]))
    assert changed


@pytest.mark.parametrize("name", WITH_STATE)
def test_reset_equals_fresh(name: str) -> None:
    calls = _calls()
    aggregator = build(name, 3, **KWARGS.get(name, {}))
    _run(aggregator, calls)
    aggregator.reset()
    fresh = build(name, 3, **KWARGS.get(name, {}))
    for actual, reference in zip(_run(aggregator, calls), _run(fresh, calls)):
        assert torch.equal(actual, reference)


@pytest.mark.parametrize("name", ["nashmtl", "dwa", "famo", "dbmtl", "uw"])
def test_state_changes_the_output(name: str) -> None:
    # The state matters: the same input gives another output after some history.
    calls = _calls()
    aggregator = build(name, 3)
    grads, losses = calls[0]
    first = aggregator(grads, losses)
    _run(aggregator, calls[1:6], start=1)
    aggregator.on_epoch_end()
    if name == "nashmtl":
        # Warm start only: the fixed point is unique, so the output is the same.
        assert torch.allclose(aggregator(grads, losses), first, atol=1e-6)
    else:
        assert not torch.allclose(aggregator(grads, losses), first)


def test_nash_update_weights_every_reuses_weights() -> None:
    calls = _calls(4)
    aggregator = build("nashmtl", 3, update_weights_every=2)
    aggregator(*calls[0])
    first = aggregator.weights.clone()
    aggregator(*calls[1])
    assert torch.equal(aggregator.weights, first)
    aggregator(*calls[2])
    assert not torch.equal(aggregator.weights, first)
    assert aggregator.state_dict()["step"] == 3
