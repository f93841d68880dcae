"""Scene and attribute metrics: hand-worked values, streaming, Delta_m, reporting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flatmtl.metrics import (
    CITYSCAPES_STL,
    NYUV2_STL,
    DepthMetric,
    LastEvaluationsMean,
    NormalMetric,
    SegmentationMetric,
    delta_m,
    multitask_metrics,
)
from flatmtl.modeling import celeba_config, nyuv2_config


def one_hot_logits(ids: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(ids.clamp(min=0), num_classes).permute(0, 3, 1, 2).float()


def test_segmentation_by_hand_with_ignore_and_absent_class():
    target = torch.tensor([[[0, 0, 1, -1], [1, 1, 0, -1]]])
    pred = torch.tensor([[[0, 1, 1, 2], [1, 2, 0, 0]]])
    # confusion[t, p]: t0 -> p0 x2, p1 x1; t1 -> p1 x2, p2 x1. Class 2 is never a label,
    # class 3 is in neither labels nor predictions.
    for num_classes in (3, 4):
        metric = SegmentationMetric(num_classes)
        metric.update(one_hot_logits(pred, num_classes), target)
        result = metric.compute()
        assert result["miou"] == pytest.approx((2 / 3 + 2 / 4 + 0 / 1) / 3)
        assert result["pixel_accuracy"] == pytest.approx(4 / 6)
    metric.reset()
    assert math.isnan(metric.compute()["miou"])


def test_segmentation_streaming_equals_whole_split():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, 8, 8, generator=generator)
    labels = torch.randint(-1, 5, (6, 8, 8), generator=generator)
    whole, streamed = SegmentationMetric(5), SegmentationMetric(5)
    whole.update(logits, labels)
    for start in (0, 1, 4):
        stop = {0: 1, 1: 4, 4: 6}[start]
        streamed.update(logits[start:stop].numpy(), labels[start:stop].numpy())
    assert torch.equal(whole.confusion, streamed.confusion)
    assert streamed.compute() == whole.compute()


def test_depth_by_hand_and_per_batch_mode():
    target = torch.tensor([[[[1.0, 0.0], [2.0, 4.0]]]])
    pred = torch.tensor([[[[2.0, 5.0], [1.0, 4.0]]]])
    metric = DepthMetric()
    metric.update(pred, target)  # the missing pixel (error 5) is skipped
    assert metric.compute() == pytest.approx({"abs_err": 2 / 3, "rel_err": (1 + 0.5 + 0) / 3})

    # A second batch with one valid pixel: pooled vs reference per-batch averaging.
    second_pred, second_target = torch.full((1, 1, 1, 2), 3.0), torch.tensor([[[[2.0, 0.0]]]])
    pooled, per_batch = DepthMetric(), DepthMetric(per_batch=True)
    for metric in (pooled, per_batch):
        metric.update(pred, target)
        metric.update(second_pred, second_target)
        metric.update(torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))  # no valid pixel
    assert pooled.compute() == pytest.approx({"abs_err": 3 / 4, "rel_err": 2 / 4})
    assert per_batch.compute() == pytest.approx(
        {"abs_err": (2 / 3 + 1) / 2, "rel_err": (0.5 + 0.5) / 2}
    )


def normal_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four pixels: angles 0, 90, 60 degrees, one with an all-zero (missing) target."""
    half = math.sqrt(3) / 2
    pred = torch.tensor([[2.0, 0, 0], [0, 1, 0], [0.5, half, 0], [0, 0, 1]])  # not unit: #0
    target = torch.tensor([[1.0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]])
    return pred.T.reshape(1, 3, 1, 4), target.T.reshape(1, 3, 1, 4)


def test_normal_by_hand_with_zero_normals():
    pred, target = normal_batch()
    exact = NormalMetric(exact_median=True)
    exact.update(pred, target)
    result = exact.compute()
    assert result["angle_mean"] == pytest.approx(50.0)
    assert result["angle_median"] == pytest.approx(60.0)
    assert result["within_11.25"] == pytest.approx(1 / 3)
    assert result["within_22.5"] == pytest.approx(1 / 3)
    assert result["within_30"] == pytest.approx(1 / 3)

    histogram = NormalMetric(bin_width=0.01)
    histogram.update(pred, target)
    assert histogram.compute()["angle_median"] == pytest.approx(60.0, abs=0.01)


def test_normal_streaming_equals_whole_split_and_per_batch_differs():
    generator = torch.Generator().manual_seed(1)
    target = F.normalize(torch.randn(6, 3, 8, 8, generator=generator), dim=1)
    target[:, :, :2] = 0.0
    pred = F.normalize(target + 0.7 * torch.randn(6, 3, 8, 8, generator=generator), dim=1)
    whole, streamed, per_batch = NormalMetric(), NormalMetric(), NormalMetric(per_batch=True)
    whole.update(pred, target)
    for chunk in (slice(0, 1), slice(1, 4), slice(4, 6)):
        streamed.update(pred[chunk], target[chunk])
        per_batch.update(pred[chunk], target[chunk])
    assert streamed.compute() == pytest.approx(whole.compute(), abs=1e-12)

    valid = (target != 0).any(1)
    angles = torch.rad2deg(torch.acos((pred * target).sum(1)[valid].clamp(-1, 1))).numpy()
    result = whole.compute()
    assert result["angle_mean"] == pytest.approx(angles.mean())
    assert result["angle_median"] == pytest.approx(np.median(angles), abs=0.01)
    assert result["within_22.5"] == pytest.approx((angles < 22.5).mean())
    # Batches of 1, 3 and 2 images: the reference mean weights them equally.
    sizes = [int(valid[chunk].sum()) for chunk in (slice(0, 1), slice(1, 4), slice(4, 6))]
    batch_means = [part.mean() for part in np.split(angles, np.cumsum(sizes)[:-1])]
    assert per_batch.compute()["angle_mean"] == pytest.approx(np.mean(batch_means))
    assert per_batch.compute()["angle_median"] != pytest.approx(result["angle_median"], abs=1e-6)


def test_delta_m_by_hand_and_baselines():
    baseline = {"a": (0.5, True), "b": (2.0, False)}
    # a improves by 20% (counts -20), b worsens by 25% (+25): mean 2.5.
    assert delta_m({"a": 0.6, "eval_b": 2.5}, baseline) == pytest.approx(2.5)
    at_stl = {name: value for name, (value, _) in NYUV2_STL.items()}
    assert delta_m(at_stl, NYUV2_STL) == pytest.approx(0.0)
    assert len(NYUV2_STL) == 9 and len(CITYSCAPES_STL) == 4
    assert NYUV2_STL["segmentation_miou"] == (0.3830, True)
    assert CITYSCAPES_STL["depth_rel_err"] == (27.77, False)
    with pytest.raises(KeyError, match="segmentation_miou"):
        delta_m({"depth_abs_err": 1.0}, CITYSCAPES_STL)


def test_compute_metrics_streams_like_the_trainer_calls_it():
    config = nyuv2_config(filters=[4, 8, 16, 32, 32])
    generator = torch.Generator().manual_seed(2)
    logits = (
        torch.randn(4, 13, 8, 8, generator=generator),
        torch.rand(4, 1, 8, 8, generator=generator),
        F.normalize(torch.randn(4, 3, 8, 8, generator=generator), dim=1),
    )
    labels = (
        torch.randint(-1, 13, (4, 8, 8), generator=generator),
        torch.rand(4, 1, 8, 8, generator=generator) * (torch.rand(4, 1, 8, 8) > 0.3),
        F.normalize(torch.randn(4, 3, 8, 8, generator=generator), dim=1),
    )
    whole = multitask_metrics(config, baseline="nyuv2")((logits, labels))
    streaming = multitask_metrics(config, baseline="nyuv2")
    for start, last in ((0, False), (2, True)):
        chunk = slice(start, start + 2)
        batch = (tuple(x[chunk] for x in logits), tuple(y[chunk] for y in labels))
        out = streaming(batch, compute_result=last)
    assert out == pytest.approx(whole, abs=1e-9)
    assert set(NYUV2_STL) <= set(out) and "delta_m" in out
    assert streaming(batch)["segmentation_miou"] != out["segmentation_miou"]  # it was reset


def test_attribute_error_by_hand():
    config = celeba_config(attributes=["Smiling", "Male"])
    labels = np.zeros((3, 40), dtype=np.int64)
    labels[:, 31] = [1, 0, 1]  # Smiling
    labels[:, 20] = [0, 0, 1]  # Male
    smiling = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # predicts 1, 1, 0: 2 wrong
    male = np.array([0, 0, 1])  # class ids: all right
    result = multitask_metrics(config)(((smiling, male), labels))
    assert result["Smiling_error"] == pytest.approx(2 / 3)
    assert result["Male_error"] == 0.0
    assert result["mean_error"] == pytest.approx(1 / 3)


def test_last_evaluations_mean():
    report = LastEvaluationsMean(last=10)

    class State:
        epoch = 0.0
        is_world_process_zero = False

    for epoch in range(12):
        State.epoch = float(epoch + 1)
        report.on_evaluate(None, State, None, metrics={"eval_miou": float(epoch), "note": "x"})
    summary = report.summarise()
    assert summary["eval_miou"] == pytest.approx(np.mean(range(2, 12)))
    assert summary["num_evaluations"] == 10 and summary["first_epoch"] == 3.0
