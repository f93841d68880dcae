"""flatmtl: multi-task learning that seeks flat regions of every task's loss.

A Hugging Face ``Trainer`` plugin implementing Phan et al., *Improving Multi-task Learning
via Seeking Task-based Flat Regions* (arXiv 2211.13723) on top of any gradient-based MTL
aggregator.
"""

from .aggregation import AGGREGATORS, Aggregator, get_aggregator, register_aggregator
from .config import FlatMTLConfig
from .flat import FLAT_STRATEGIES, FlatSettings, FlatStep, FlatStepOutput, NonFiniteLossError
from .modeling import MultiTaskConfig, MultiTaskModel, MultiTaskOutput
from .partition import ParameterPartition
from .trainer import FlatMTLTrainer, extract_losses

__version__ = "0.1.0"

__all__ = [
    "AGGREGATORS",
    "FLAT_STRATEGIES",
    "Aggregator",
    "FlatMTLConfig",
    "FlatMTLTrainer",
    "FlatSettings",
    "FlatStep",
    "FlatStepOutput",
    "MultiTaskConfig",
    "MultiTaskModel",
    "MultiTaskOutput",
    "NonFiniteLossError",
    "ParameterPartition",
    "__version__",
    "extract_losses",
    "get_aggregator",
    "register_aggregator",
]
