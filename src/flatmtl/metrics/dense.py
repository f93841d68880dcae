"""Streaming metrics of the scene benchmarks: segmentation, depth and surface normals.

The definitions are those of the MTAN family of benchmarks (Liu et al., CVPR 2019), used by
F-MTL (Phan et al., arXiv 2211.13723). By default every statistic is exact over the whole
split: one confusion matrix, and depth and angle statistics pooled over all valid pixels.
``per_batch=True`` reproduces the reference code instead, which averages the per-batch depth
and normal statistics with equal weight per batch (so the result depends on the batch size).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DepthMetric", "NormalMetric", "SegmentationMetric", "to_tensor"]

NORMAL_THRESHOLDS = (11.25, 22.5, 30.0)


def to_tensor(value: Any) -> Tensor:
    """A detached tensor from a tensor, a numpy array or nested lists."""
    if isinstance(value, Tensor):
        return value.detach()
    return torch.as_tensor(np.asarray(value))


class SegmentationMetric:
    """mIoU and pixel accuracy from one confusion matrix over every ``update``.

    ``update(pred, target)`` takes logits ``(B, C, H, W)`` or class ids ``(B, H, W)`` and labels
    ``(B, H, W)``; labels outside ``[0, num_classes)`` (``ignore_index`` included) are skipped.
    ``compute()`` gives ``miou``, the mean IoU over the classes present (a class with an empty
    union, absent from both labels and predictions, is left out instead of giving NaN as the
    reference's plain mean does), and ``pixel_accuracy``, both fractions.
    """

    def __init__(self, num_classes: int, ignore_index: int = -1) -> None:
        if num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive int, found {num_classes}.")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, pred: Any, target: Any) -> None:
        pred, target = to_tensor(pred), to_tensor(target).long()
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(dim=1)
        if pred.shape != target.shape:
            raise ValueError(
                f"`pred` must be logits (B, C, H, W) or class ids shaped like `target` "
                f"{tuple(target.shape)}, found {tuple(pred.shape)}."
            )
        valid = (target >= 0) & (target < self.num_classes) & (target != self.ignore_index)
        pairs = target[valid] * self.num_classes + pred.long()[valid]
        counts = torch.bincount(pairs, minlength=self.num_classes**2)
        self.confusion += counts.reshape(self.num_classes, self.num_classes).cpu()

    def compute(self) -> dict[str, float]:
        confusion = self.confusion.double()
        total = confusion.sum()
        if total == 0:
            return {"miou": math.nan, "pixel_accuracy": math.nan}
        hits = confusion.diagonal()
        union = confusion.sum(0) + confusion.sum(1) - hits
        present = union > 0
        return {
            "miou": float((hits[present] / union[present]).mean()),
            "pixel_accuracy": float(hits.sum() / total),
        }


class DepthMetric:
    """Absolute error ``|p - g|`` and relative error ``|p - g| / |g|`` over pixels with
    ``g != 0`` (0 marks missing depth), as raw ratios (not percentages).

    ``update(pred, target)`` takes ``(B, 1, H, W)`` (or ``(B, H, W)``) depth maps. By default
    the errors are averaged over all valid pixels of the split; with ``per_batch=True`` each
    batch's mean is averaged with equal weight, as the reference code does (batches without a
    valid pixel are skipped there, where the reference would produce NaN).
    """

    def __init__(self, per_batch: bool = False) -> None:
        self.per_batch = per_batch
        self.reset()

    def reset(self) -> None:
        self.abs_sum = 0.0
        self.rel_sum = 0.0
        self.count = 0
        self.batch_values: list[tuple[float, float]] = []

    def update(self, pred: Any, target: Any) -> None:
        pred, target = to_tensor(pred).double(), to_tensor(target).double()
        target = target.reshape(pred.shape)
        valid = target != 0
        count = int(valid.sum())
        if count == 0:
            return
        error = (pred[valid] - target[valid]).abs()
        abs_sum = float(error.sum())
        rel_sum = float((error / target[valid].abs()).sum())
        self.abs_sum += abs_sum
        self.rel_sum += rel_sum
        self.count += count
        self.batch_values.append((abs_sum / count, rel_sum / count))

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {"abs_err": math.nan, "rel_err": math.nan}
        if self.per_batch:
            values = np.asarray(self.batch_values)
            return {"abs_err": float(values[:, 0].mean()), "rel_err": float(values[:, 1].mean())}
        return {"abs_err": self.abs_sum / self.count, "rel_err": self.rel_sum / self.count}


class NormalMetric:
    """Angular error of surface normals, in degrees, over pixels whose target is not all zero.

    ``update(pred, target)`` takes ``(B, 3, H, W)`` maps; predictions are L2-normalised over
    channels first (a no-op for the normal head's output) and the cosine is clamped to
    ``[-1, 1]``. ``compute()`` gives ``angle_mean``, ``angle_median`` and the fractions
    ``within_11.25``, ``within_22.5``, ``within_30`` (strictly below the threshold).

    The mean and the fractions are exact. The median needs every angle: by default a histogram
    of ``bin_width``-degree bins over ``[0, 180]`` is kept (18,000 counts, constant memory,
    where the NYUv2 test split has tens of millions of valid pixels, some 300 MB as float32)
    and the middle angles are placed evenly inside their bins, so the median is within
    ``bin_width`` of the exact one (the mean of the two middle angles for an even count).
    ``exact_median=True`` keeps all angles instead. With ``per_batch=True`` each batch's
    statistics (its exact median included) are averaged with equal weight, as the reference.
    """

    def __init__(
        self, per_batch: bool = False, bin_width: float = 0.01, exact_median: bool = False
    ) -> None:
        if not 0 < bin_width <= 180:
            raise ValueError(f"`bin_width` must be in (0, 180] degrees, found {bin_width}.")
        self.per_batch = per_batch
        self.bin_width = bin_width
        self.exact_median = exact_median
        self.num_bins = int(math.ceil(180.0 / bin_width))
        self.reset()

    def reset(self) -> None:
        self.histogram = torch.zeros(self.num_bins, dtype=torch.int64)
        self.angle_sum = 0.0
        self.count = 0
        self.within = [0] * len(NORMAL_THRESHOLDS)
        self.angles: list[Tensor] = []
        self.batch_values: list[list[float]] = []

    def update(self, pred: Any, target: Any) -> None:
        pred, target = to_tensor(pred).double(), to_tensor(target).double()
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
            raise ValueError(
                f"`pred` and `target` must both be (B, 3, H, W) normal maps, found "
                f"{tuple(pred.shape)} and {tuple(target.shape)}."
            )
        valid = (target != 0).any(dim=1)
        count = int(valid.sum())
        if count == 0:
            return
        pred = F.normalize(pred, p=2, dim=1, eps=1e-12)
        cosine = (pred * target).sum(dim=1)[valid].clamp(-1.0, 1.0)
        angles = torch.rad2deg(torch.acos(cosine))
        within = [int((angles < threshold).sum()) for threshold in NORMAL_THRESHOLDS]

        self.count += count
        self.angle_sum += float(angles.sum())
        self.within = [total + part for total, part in zip(self.within, within)]
        bins = (angles / self.bin_width).long().clamp(0, self.num_bins - 1)
        self.histogram += torch.bincount(bins, minlength=self.num_bins).cpu()
        if self.exact_median:
            self.angles.append(angles.float().cpu())
        if self.per_batch:
            median = float(np.median(angles.cpu().numpy()))
            self.batch_values.append(
                [float(angles.mean()), median] + [part / count for part in within]
            )

    def _histogram_rank(self, cumulative: Tensor, rank: int) -> float:
        # The angles of a bin are taken as evenly spread over it, so the estimate of any
        # rank lies in the bin of the true value: within one bin width of it.
        index = int(torch.searchsorted(cumulative, torch.tensor(rank, dtype=torch.int64)))
        before = int(cumulative[index - 1]) if index > 0 else 0
        inside = int(self.histogram[index])
        return (index + (rank - before - 0.5) / inside) * self.bin_width

    def _histogram_median(self) -> float:
        cumulative = torch.cumsum(self.histogram, 0)
        if self.count % 2:
            return self._histogram_rank(cumulative, (self.count + 1) // 2)
        lower = self._histogram_rank(cumulative, self.count // 2)
        return (lower + self._histogram_rank(cumulative, self.count // 2 + 1)) / 2

    def compute(self) -> dict[str, float]:
        keys = ["angle_mean", "angle_median"] + [f"within_{t:g}" for t in NORMAL_THRESHOLDS]
        if self.count == 0:
            return dict.fromkeys(keys, math.nan)
        if self.per_batch:
            return dict(zip(keys, np.asarray(self.batch_values).mean(axis=0).tolist()))
        if self.exact_median:
            median = float(np.median(torch.cat(self.angles).double().numpy()))
        else:
            median = self._histogram_median()
        values = [self.angle_sum / self.count, median]
        values += [part / self.count for part in self.within]
        return dict(zip(keys, values))
