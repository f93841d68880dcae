"""The fixed point ``w_i^(1/alpha) (G w)_i = 1`` shared by FairGrad and Nash-MTL (``alpha = 1``).

The equations are the stationarity conditions of the strictly convex function
``f(w) = w^T G w / 2 + h(w)`` on ``w > 0``, with ``h(w) = -sum log w_i`` for ``alpha = 1`` and
``h(w) = -alpha / (alpha - 1) sum w_i^((alpha - 1) / alpha)`` otherwise (``h' = -w^(-1/alpha)``).
So the fixed point is unique when it exists, and damped Newton on ``f`` finds it. It exists
unless some ``v >= 0, v != 0`` has ``G v = 0`` (a zero gradient, or gradients that cancel).
"""

from __future__ import annotations

import numpy as np

__all__ = ["active_rows", "fixed_point_residual", "newton_fixed_point"]


def active_rows(gram: np.ndarray, rel_tol: float = 1e-12) -> np.ndarray:
    """Boolean mask of the tasks whose gradient is not negligible next to the largest one."""
    diagonal = np.diag(gram)
    return diagonal > rel_tol * max(float(diagonal.max(initial=0.0)), 1e-300)


def fixed_point_residual(gram: np.ndarray, weights: np.ndarray, alpha: float) -> float:
    """``max_i |w_i^(1/alpha) (G w)_i - 1|``, zero exactly at the fixed point."""
    return float(np.max(np.abs(weights ** (1.0 / alpha) * (gram @ weights) - 1.0)))


def _objective(gram: np.ndarray, weights: np.ndarray, alpha: float) -> float:
    if alpha == 1.0:
        barrier = -np.sum(np.log(weights))
    else:
        power = (alpha - 1.0) / alpha
        barrier = -np.sum(weights**power) / power
    return float(0.5 * weights @ gram @ weights + barrier)


def newton_fixed_point(
    gram: np.ndarray,
    alpha: float,
    init: np.ndarray,
    max_iter: int,
    tol: float,
    max_weight: float = 1e4,
) -> tuple[np.ndarray, bool]:
    """Damped Newton on ``f`` from ``init > 0``; returns the last iterate and whether the
    residual fell below ``tol``. ``gram`` should be normalised (trace 1) by the caller.

    Without a fixed point the iterates grow without bound along a cancelling combination; the
    loop then stops once a weight exceeds ``max_weight``, so that ``w @ grads`` stays free of
    float32 cancellation noise."""
    weights = np.array(init, dtype=np.float64)
    for _ in range(max_iter):
        if fixed_point_residual(gram, weights, alpha) <= tol:
            return weights, True
        if float(weights.max()) > max_weight:
            return weights, False
        gradient = gram @ weights - weights ** (-1.0 / alpha)
        hessian = gram + np.diag(weights ** (-1.0 / alpha - 1.0) / alpha)
        try:
            step = -np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return weights, False
        # Stay inside w > 0 (fraction to the boundary), then backtrack on f (Armijo).
        shrinking = step < 0
        size = min(1.0, 0.99 * float(np.min(-weights[shrinking] / step[shrinking], initial=np.inf)))
        current = _objective(gram, weights, alpha)
        slope = float(gradient @ step)
        while size > 1e-12:
            candidate = weights + size * step
            if _objective(gram, candidate, alpha) <= current + 1e-4 * size * slope:
                break
            size *= 0.5
        if size <= 1e-12:
            break
        weights = candidate
    return weights, fixed_point_residual(gram, weights, alpha) <= tol
