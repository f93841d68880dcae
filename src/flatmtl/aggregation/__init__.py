"""Gradient aggregators for multi-task learning, one method per module, and their registry.

Each aggregator is called as ``aggregator(grads, losses=None) -> direction`` with ``grads`` the
``m x d`` matrix of task gradients over the shared parameters.
"""

from ._base import Aggregator, WeightedAggregator
from ._cagrad import CAGrad
from ._linear import Mean, Sum
from ._mgda import MGDA
from ._pcgrad import PCGrad
from ._registry import AGGREGATORS, get_aggregator, register_aggregator

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "CAGrad",
    "MGDA",
    "Mean",
    "PCGrad",
    "Sum",
    "WeightedAggregator",
    "get_aggregator",
    "register_aggregator",
]
