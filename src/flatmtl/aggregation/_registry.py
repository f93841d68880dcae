from __future__ import annotations

from typing import Any

from ._base import Aggregator
from ._cagrad import CAGrad
from ._linear import Mean, Sum
from ._mgda import MGDA
from ._pcgrad import PCGrad

__all__ = ["AGGREGATORS", "get_aggregator", "register_aggregator"]

#: Registry name -> aggregator class.
AGGREGATORS: dict[str, type[Aggregator]] = {
    "mean": Mean,
    "sum": Sum,
    "mgda": MGDA,
    "pcgrad": PCGrad,
    "cagrad": CAGrad,
}


def register_aggregator(name: str, cls: type[Aggregator]) -> None:
    """Make ``cls`` available to :func:`get_aggregator` and the ``aggregator`` config field."""
    if not (isinstance(cls, type) and issubclass(cls, Aggregator)):
        raise TypeError(f"`cls` must be a subclass of Aggregator, found {cls!r}.")
    AGGREGATORS[name.lower()] = cls


def get_aggregator(name: str, **kwargs: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` with ``kwargs``."""
    key = name.lower() if isinstance(name, str) else name
    if key not in AGGREGATORS:
        known = ", ".join(sorted(AGGREGATORS))
        raise ValueError(f"Unknown aggregator {name!r}; expected one of: {known}.")
    try:
        return AGGREGATORS[key](**kwargs)
    except TypeError as error:
        raise TypeError(
            f"`aggregator_kwargs` {kwargs} do not fit aggregator {name!r} "
            f"({AGGREGATORS[key].__name__}): {error}"
        ) from error
