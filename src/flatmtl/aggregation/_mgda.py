from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._base import WeightedAggregator

__all__ = ["MGDA", "frank_wolfe_weights", "min_norm_weights"]


class MGDA(WeightedAggregator):
    """Multiple-gradient descent: the minimum-norm point of the convex hull of the task
    gradients (Désidéri 2012; Sener & Koltun, *Multi-Task Learning as Multi-Objective
    Optimization*, NeurIPS 2018).

    ``w = argmin_{w in simplex} ||w @ G||^2`` and ``d = w @ G``; the weights sum to 1, so
    ``g_i . d >= ||d||^2 >= 0`` for every task (no conflict). Two tasks use the closed form;
    more use Frank-Wolfe with exact line search on the trace-normalised Gramian.

    Args:
        scale_by_num_tasks: multiply the direction by ``m`` (default ``False``). The official
            Nash-MTL and F-MTL code does this on CelebA, NYUv2 and CityScapes; the paper's
            algorithm does not.
        max_iter: Frank-Wolfe iterations for ``m > 2`` (default 1000).
        tol: stop when the line-search step falls below this (default ``1e-10``).

    .. note:: Unlike Sener & Koltun's solver, a zero task gradient gives ``d = 0`` (it is the
        minimum-norm point), not ``0.001 g_other``.
    """

    def __init__(
        self, scale_by_num_tasks: bool = False, max_iter: int = 1000, tol: float = 1e-10
    ) -> None:
        super().__init__()
        if max_iter < 1:
            raise ValueError(f"`max_iter` must be a positive integer, found {max_iter}.")
        if tol <= 0:
            raise ValueError(f"`tol` must be positive, found {tol}.")
        self.scale_by_num_tasks = scale_by_num_tasks
        self.max_iter = max_iter
        self.tol = tol

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        weights = torch.from_numpy(min_norm_weights(gram.numpy(), self.max_iter, self.tol))
        return weights * gram.shape[0] if self.scale_by_num_tasks else weights

    def _repr_args(self) -> dict[str, object]:
        return {
            "scale_by_num_tasks": self.scale_by_num_tasks,
            "max_iter": self.max_iter,
            "tol": self.tol,
        }


def min_norm_weights(gram: np.ndarray, max_iter: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Weights on the simplex minimising ``w^T G w``."""
    m = gram.shape[0]
    scale = np.trace(gram)
    if m == 1:
        return np.ones(1)
    if not np.isfinite(scale) or scale <= 0:
        return np.full(m, 1.0 / m)
    gram = gram / scale
    if m == 2:
        return _two_task_weights(gram)
    return frank_wolfe_weights(gram, max_iter, tol)


def frank_wolfe_weights(gram: np.ndarray, max_iter: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """The general (``m > 2``) path of :func:`min_norm_weights`, usable for any ``m``:
    Frank-Wolfe from ``1/m`` with exact line search on the given Gramian."""
    m = gram.shape[0]
    weights = np.full(m, 1.0 / m)
    for _ in range(max_iter):
        gw = gram @ weights
        vertex = int(np.argmin(gw))
        step = _segment_step(weights @ gw, weights @ gram[:, vertex], gram[vertex, vertex])
        if step < tol:
            break
        weights = (1.0 - step) * weights
        weights[vertex] += step
    return weights


def _two_task_weights(gram: np.ndarray) -> np.ndarray:
    g11, g12, g22 = gram[0, 0], gram[0, 1], gram[1, 1]
    denominator = g11 + g22 - 2.0 * g12
    if denominator <= 0:
        return np.array([0.5, 0.5])
    w1 = float(np.clip((g22 - g12) / denominator, 0.0, 1.0))
    return np.array([w1, 1.0 - w1])


def _segment_step(ww: float, wv: float, vv: float) -> float:
    """Exact minimiser over ``gamma in [0, 1]`` of ``||(1-gamma) x + gamma v||^2`` with
    ``ww = x.x``, ``wv = x.v``, ``vv = v.v``."""
    if wv >= ww:
        return 0.0
    if wv >= vv:
        return 1.0
    return float((ww - wv) / (ww + vv - 2.0 * wv))
