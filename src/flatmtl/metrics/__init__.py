"""Per-task metrics and ``compute_metrics`` factories."""

from .classification import classification_metrics
from .dense import DepthMetric, NormalMetric, SegmentationMetric
from .multitask import (
    CITYSCAPES_STL,
    NYUV2_STL,
    AttributeErrorMetric,
    MultiTaskMetrics,
    delta_m,
    multitask_metrics,
)
from .reporting import LastEvaluationsMean

__all__ = [
    "CITYSCAPES_STL",
    "NYUV2_STL",
    "AttributeErrorMetric",
    "DepthMetric",
    "LastEvaluationsMean",
    "MultiTaskMetrics",
    "NormalMetric",
    "SegmentationMetric",
    "classification_metrics",
    "delta_m",
    "multitask_metrics",
]
