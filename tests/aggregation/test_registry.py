"""Registry, exports, repr and argument errors."""

from __future__ import annotations

import inspect

import pytest
import torch
from agg_cases import METHODS, NEEDS_NUM_TASKS, build

import flatmtl.aggregation as aggregation
from flatmtl.aggregation import AGGREGATORS, get_aggregator


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="Unknown aggregator 'nope'") as error:
        get_aggregator("nope")
    for name in AGGREGATORS:
        assert name in str(error.value)


def test_every_method_registered_and_exported() -> None:
    expected = {
        "mean", "sum", "mgda", "pcgrad", "cagrad", "imtl", "nashmtl", "fairgrad", "graddrop",
        "upgrad", "aligned_mtl", "dbmtl", "rlw", "dwa", "uw", "si", "imtl_l", "famo", "gradnorm",
    }  # fmt: skip
    assert expected <= set(AGGREGATORS)
    for cls in AGGREGATORS.values():
        assert cls.__name__ in aggregation.__all__


@pytest.mark.parametrize("name", METHODS)
def test_repr_echoes_arguments(name: str) -> None:
    aggregator = build(name, 2)
    cls = AGGREGATORS[name]
    text = repr(aggregator)
    assert text.startswith(f"{cls.__name__}(")
    owner = next(klass for klass in cls.__mro__ if "__init__" in klass.__dict__)
    if owner in (aggregation.Aggregator, aggregation.WeightedAggregator):
        return  # no arguments of its own (the base's seed is unused by deterministic methods)
    for parameter in list(inspect.signature(cls.__init__).parameters)[1:]:
        assert f"{parameter}=" in text


def test_repr_shows_given_values() -> None:
    assert repr(get_aggregator("fairgrad", alpha=1.5)).startswith("FairGrad(alpha=1.5,")
    assert "update_weights_every=3" in repr(get_aggregator("nashmtl", update_weights_every=3))


@pytest.mark.parametrize("name", METHODS)
def test_signatures_fully_annotated(name: str) -> None:
    cls = AGGREGATORS[name]
    for method in (cls.__init__, cls.__call__):
        signature = inspect.signature(method)
        assert signature.return_annotation is not inspect.Signature.empty
        for parameter in list(signature.parameters.values())[1:]:
            assert parameter.annotation is not inspect.Parameter.empty


@pytest.mark.parametrize(
    "name, kwargs, argument",
    [
        ("fairgrad", {"alpha": 0.0}, "`alpha`"),
        ("nashmtl", {"update_weights_every": 0}, "`update_weights_every`"),
        ("upgrad", {"reduction": "max"}, "`reduction`"),
        ("aligned_mtl", {"scale_mode": "max"}, "`scale_mode`"),
        ("graddrop", {"leak": 2.0}, "`leak`"),
        ("dwa", {"temperature": -1.0}, "`temperature`"),
        ("dbmtl", {"beta": 1.0}, "`beta`"),
        ("uw", {"num_tasks": 0}, "`num_tasks`"),
    ],
)
def test_invalid_arguments_name_the_argument(name: str, kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        get_aggregator(name, **kwargs)


def test_missing_losses_and_wrong_task_count() -> None:
    grads = torch.randn(2, 3)
    for name in ("si", "dwa", "famo", "dbmtl", *NEEDS_NUM_TASKS):
        with pytest.raises(ValueError, match="`losses`"):
            build(name, 2)(grads)
    with pytest.raises(ValueError, match="`num_tasks=3`"):
        build("uw", 2)(torch.randn(3, 4), torch.ones(3))
    with pytest.raises(TypeError, match="`aggregator_kwargs`"):
        get_aggregator("uw")
