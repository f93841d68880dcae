"""Per-task classification metrics for the Trainer's evaluation loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from transformers import EvalPrediction

__all__ = ["classification_metrics"]


def classification_metrics(
    task_names: Sequence[str], label_indices: Sequence[int | None] | None = None
) -> Callable[[EvalPrediction], dict[str, float]]:
    """A ``compute_metrics`` function giving ``accuracy_<task>`` for each task and their mean.

    The predictions are one array per task, in task order (class ids, or logits whose last
    axis is the class); the labels are one ``(N, m)`` array (column ``label_indices[i]`` for
    task ``i``) or one array per task. Labels equal to ``-100`` are not counted.
    """
    names = list(task_names)
    indices = list(label_indices) if label_indices is not None else list(range(len(names)))
    if len(indices) != len(names):
        raise ValueError(
            f"`label_indices` must give one entry per task ({len(names)}), found {len(indices)}."
        )

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        predictions = prediction.predictions
        if not isinstance(predictions, (tuple, list)):
            predictions = (predictions,)
        if len(predictions) != len(names):
            raise ValueError(
                f"Expected predictions for {len(names)} tasks {names}, found {len(predictions)}."
            )
        labels = prediction.label_ids
        metrics: dict[str, float] = {}
        for position, (name, scores) in enumerate(zip(names, predictions)):
            scores = np.asarray(scores)
            predicted = scores.argmax(-1) if scores.ndim > 1 else scores
            if isinstance(labels, (tuple, list)):
                target = np.asarray(labels[position])
            else:
                target = np.asarray(labels)
                if indices[position] is not None:
                    target = target[:, indices[position]]
            valid = target != -100
            metrics[f"accuracy_{name}"] = float((predicted[valid] == target[valid]).mean())
        metrics["accuracy_mean"] = float(np.mean([metrics[f"accuracy_{n}"] for n in names]))
        return metrics

    return compute
