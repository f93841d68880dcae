"""Per-task metrics and ``compute_metrics`` factories."""

from .classification import classification_metrics

__all__ = ["classification_metrics"]
