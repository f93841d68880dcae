"""Multi-task evaluation: Delta_m, the STL baselines, and streaming ``compute_metrics``.

``Delta_m%`` (Maninis et al., CVPR 2019) as reported by Nash-MTL and F-MTL (Phan et al., arXiv
2211.13723): the mean relative change of every metric against single-task learning (STL),
signed so that a positive value is worse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from ..modeling.configuration import MultiTaskConfig
from .dense import DepthMetric, NormalMetric, SegmentationMetric, to_tensor

__all__ = [
    "CITYSCAPES_STL",
    "NYUV2_STL",
    "AttributeErrorMetric",
    "MultiTaskMetrics",
    "delta_m",
    "multitask_metrics",
]

#: STL results on NYUv2 as ``metric -> (value, higher_is_better)``: the single-task SegNet
#: numbers that CAGrad reports and Nash-MTL and the F-MTL code use as the Delta_m base.
#: Units: fractions for mIoU, pixel accuracy and the within-angle shares, metres for the
#: absolute depth error, a ratio for the relative error, degrees for the angles.
NYUV2_STL: dict[str, tuple[float, bool]] = {
    "segmentation_miou": (0.3830, True),
    "segmentation_pixel_accuracy": (0.6376, True),
    "depth_abs_err": (0.6754, False),
    "depth_rel_err": (0.2780, False),
    "normal_angle_mean": (25.01, False),
    "normal_angle_median": (19.21, False),
    "normal_within_11.25": (0.3014, True),
    "normal_within_22.5": (0.5720, True),
    "normal_within_30": (0.6915, True),
}

#: STL results on CityScapes (7 classes, disparity), same source and conventions as
#: :data:`NYUV2_STL`; the relative error is a ratio on inverse depth, hence its size.
CITYSCAPES_STL: dict[str, tuple[float, bool]] = {
    "segmentation_miou": (0.7401, True),
    "segmentation_pixel_accuracy": (0.9316, True),
    "depth_abs_err": (0.0125, False),
    "depth_rel_err": (27.77, False),
}


def delta_m(results: Mapping[str, float], baseline: Mapping[str, tuple[float, bool]]) -> float:
    """``Delta_m% = (100 / K) * sum_k (-1)^{h_k} (M_k - S_k) / S_k`` over the K baseline
    metrics, ``h_k = 1`` when higher is better; lower is better.

    ``results`` may carry a prefix such as ``eval_``: a key ``name`` of ``baseline`` is looked
    up as ``name`` and then as ``eval_name``.
    """
    if not baseline:
        raise ValueError("`baseline` is empty; pass e.g. flatmtl.metrics.NYUV2_STL.")
    terms = []
    for name, (reference, higher_is_better) in baseline.items():
        key = name if name in results else f"eval_{name}"
        if key not in results:
            raise KeyError(
                f"`results` has no {name!r} (nor 'eval_{name}') needed by the baseline; found "
                f"{sorted(results)}. Evaluate every task of the benchmark."
            )
        change = (float(results[key]) - reference) / reference
        terms.append(-change if higher_is_better else change)
    return 100.0 * float(np.mean(terms))


class AttributeErrorMetric:
    """Error rate of each binary (or multi-class) attribute and their mean, over every update.

    ``update(task_index, pred, target)`` takes logits ``(B, C)`` or class ids ``(B,)`` and
    labels ``(B,)``; labels ``-100`` are skipped.
    """

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks = num_tasks
        self.reset()

    def reset(self) -> None:
        self.wrong = np.zeros(self.num_tasks, dtype=np.int64)
        self.total = np.zeros(self.num_tasks, dtype=np.int64)

    def update(self, task_index: int, pred: Any, target: Any) -> None:
        pred, target = to_tensor(pred), to_tensor(target).long().reshape(-1)
        if pred.dim() > 1:
            pred = pred.argmax(dim=-1)
        pred = pred.reshape(-1).long()
        valid = target != -100
        self.wrong[task_index] += int((pred[valid] != target[valid]).sum())
        self.total[task_index] += int(valid.sum())

    def compute(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.wrong / self.total


class MultiTaskMetrics:
    """A ``compute_metrics`` for the Trainer that streams over evaluation batches.

    Use it with ``TrainingArguments(batch_eval_metrics=True)``: the Trainer then calls
    ``metrics(eval_pred, compute_result=is_last_batch)`` once per batch, each call folds the
    batch into running statistics (nothing of the split is kept), and the last one returns the
    results and resets. Without ``batch_eval_metrics`` it is called once on the whole split,
    which gives the same numbers.

    ``eval_pred.predictions`` holds one prediction per task, in task order, as a tuple or list,
    or as a ``dict`` keyed by task (a single array when there is one task).
    ``eval_pred.label_ids`` holds one array per batch key in ``label_names`` order (default:
    ``config.label_keys``, the order of ``TrainingArguments.label_names``), or one array when
    there is a single key.

    Results, per task: ``{task}_error`` (classification; plus ``mean_error`` over them),
    ``{task}_miou`` / ``{task}_pixel_accuracy`` (segmentation), ``{task}_abs_err`` /
    ``{task}_rel_err`` (depth), ``{task}_angle_mean`` / ``_angle_median`` / ``_within_11.25`` /
    ``_within_22.5`` / ``_within_30`` (normal); ``delta_m`` when a ``baseline`` is given.
    """

    def __init__(
        self,
        config: MultiTaskConfig,
        baseline: Mapping[str, tuple[float, bool]] | None = None,
        per_batch: bool = False,
        label_names: Sequence[str] | None = None,
        exact_median: bool = False,
    ) -> None:
        self.tasks = list(config.tasks)
        self.label_names = list(label_names or config.label_keys)
        missing = [t["label_key"] for t in self.tasks if t["label_key"] not in self.label_names]
        if missing:
            raise ValueError(
                f"`label_names` {self.label_names} lacks the label keys {missing} of the tasks; "
                "pass the keys in TrainingArguments.label_names order."
            )
        self.baseline = dict(baseline) if baseline else None
        self.classification = [t["name"] for t in self.tasks if t["type"] == "classification"]
        self.attributes = AttributeErrorMetric(len(self.classification))
        self.dense: dict[str, Any] = {}
        for task in self.tasks:
            if task["type"] == "segmentation":
                self.dense[task["name"]] = SegmentationMetric(task["num_labels"])
            elif task["type"] == "depth":
                self.dense[task["name"]] = DepthMetric(per_batch=per_batch)
            elif task["type"] == "normal":
                self.dense[task["name"]] = NormalMetric(
                    per_batch=per_batch, exact_median=exact_median
                )
            elif task["type"] != "classification":
                raise ValueError(
                    f"Task {task['name']!r} has `type` {task['type']!r}, which has no metric; "
                    "expected classification, segmentation, depth or normal."
                )

    def reset(self) -> None:
        self.attributes.reset()
        for metric in self.dense.values():
            metric.reset()

    def update(self, predictions: Any, label_ids: Any) -> None:
        """Fold one batch (or the whole split) into the running statistics."""
        per_task = self._split_predictions(predictions)
        labels = self._split_labels(label_ids)
        for task, pred in zip(self.tasks, per_task):
            target = labels[task["label_key"]]
            if task["label_index"] is not None:
                target = target[:, task["label_index"]]
            if task["type"] == "classification":
                self.attributes.update(self.classification.index(task["name"]), pred, target)
            else:
                self.dense[task["name"]].update(pred, target)

    def compute(self) -> dict[str, float]:
        """The metrics of everything folded in since the last reset."""
        results: dict[str, float] = {}
        if self.classification:
            errors = self.attributes.compute()
            for name, error in zip(self.classification, errors):
                results[f"{name}_error"] = float(error)
            results["mean_error"] = float(np.nanmean(errors)) if errors.size else float("nan")
        for name, metric in self.dense.items():
            for key, value in metric.compute().items():
                results[f"{name}_{key}"] = value
        if self.baseline is not None:
            results["delta_m"] = delta_m(results, self.baseline)
        return results

    def __call__(self, eval_pred: Any, compute_result: bool = True) -> dict[str, float]:
        predictions, label_ids = eval_pred[0], eval_pred[1]
        self.update(predictions, label_ids)
        if not compute_result:
            return {}
        results = self.compute()
        self.reset()
        return results

    def _split_predictions(self, predictions: Any) -> list[Any]:
        names = [task["name"] for task in self.tasks]
        if isinstance(predictions, Mapping):
            missing = [name for name in names if name not in predictions]
            if missing:
                raise ValueError(
                    f"`predictions` has no entry for tasks {missing}; found {sorted(predictions)}."
                )
            return [predictions[name] for name in names]
        if isinstance(predictions, (Tensor, np.ndarray)):
            predictions = [predictions]
        predictions = list(predictions)
        if len(predictions) != len(names):
            raise ValueError(
                f"Expected one prediction per task {names} ({len(names)}), found "
                f"{len(predictions)}; keep the model's task order."
            )
        return predictions

    def _split_labels(self, label_ids: Any) -> dict[str, Any]:
        if isinstance(label_ids, Mapping):
            return dict(label_ids)
        if isinstance(label_ids, (Tensor, np.ndarray)):
            label_ids = [label_ids]
        label_ids = list(label_ids)
        if len(label_ids) != len(self.label_names):
            raise ValueError(
                f"Expected one label array per key {self.label_names}, found {len(label_ids)}; "
                "set TrainingArguments.label_names to those keys, in that order."
            )
        return dict(zip(self.label_names, label_ids))


def multitask_metrics(
    config: MultiTaskConfig,
    baseline: Mapping[str, tuple[float, bool]] | str | None = None,
    per_batch: bool = False,
    label_names: Sequence[str] | None = None,
) -> MultiTaskMetrics:
    """A streaming ``compute_metrics`` for ``config``'s tasks (see :class:`MultiTaskMetrics`).

    ``baseline`` is a ``metric -> (value, higher_is_better)`` mapping, or ``"nyuv2"`` /
    ``"cityscapes"`` for the STL values of those benchmarks; it adds ``delta_m``.
    """
    if isinstance(baseline, str):
        known = {"nyuv2": NYUV2_STL, "cityscapes": CITYSCAPES_STL}
        if baseline not in known:
            raise ValueError(
                f"`baseline` {baseline!r} is not a known benchmark; expected one of "
                f"{sorted(known)} or a mapping metric -> (value, higher_is_better)."
            )
        baseline = known[baseline]
    return MultiTaskMetrics(config, baseline=baseline, per_batch=per_batch, label_names=label_names)
