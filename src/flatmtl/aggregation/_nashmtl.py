from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import torch
from torch import Tensor
from transformers.utils import logging

from ._base import WeightedAggregator
from ._fixed_point import active_rows, fixed_point_residual, newton_fixed_point

__all__ = ["NashMTL"]

logger = logging.get_logger(__name__)


class NashMTL(WeightedAggregator):
    """Nash bargaining over the tasks' utilities ``g_i . d`` (Navon et al., *Multi-Task Learning
    as a Bargaining Game*, ICML 2022).

    ``alpha > 0`` solves ``alpha_i (G alpha)_i = 1`` for every task and ``d = alpha @ grads``;
    then ``||d||^2 = m`` and ``g_i . d = 1 / alpha_i > 0`` (no conflict). The weights are not
    normalised (paper), so the direction does not change when a task's gradient is multiplied
    by a positive factor, nor when all gradients are.

    Args:
        max_norm: if positive, shrink the weights so that ``||d|| <= max_norm`` (default 0.0,
            off, as in the paper; the official code clips the shared gradient at 1.0).
        update_weights_every: solve every this many calls and reuse the last weights in
            between (default 1).
        optim_niter: at most this many Newton refinement steps after the conic solve
            (default 20).
        tol: accept the weights when ``max_i |alpha_i (G alpha)_i - 1| <= tol``, measured on
            the Gramian actually given (default ``1e-6``).

    .. note:: The official code runs up to 20 sequential convex (CCCP) solves with ECOS and stops
        on a residual measured on the *normalised* Gramian while its constraints use the raw one,
        so it can stop at its initial weights (e.g. identical gradients give ``d = m g``); a
        failed solve silently keeps the previous weights. Here the fixed point is the minimum of
        the strictly convex ``alpha^T G alpha / 2 - sum log alpha_i``, solved once with cvxpy and
        CLARABEL (warm-started from the previous weights), refined by Newton, and accepted only
        if the residual on the raw Gramian is below ``tol``. Zero gradients get weight 0. A
        failure (no fixed point: gradients that cancel) is logged, counted in
        :attr:`failures`, and the previous weights (ones at the first call) are used, as the
        official code does.
    """

    stateful = True

    def __init__(
        self,
        max_norm: float = 0.0,
        update_weights_every: int = 1,
        optim_niter: int = 20,
        tol: float = 1e-6,
    ) -> None:
        super().__init__()
        checks = [
            ("max_norm", max_norm, max_norm >= 0, ">= 0 (0 disables clipping)"),
            ("update_weights_every", update_weights_every, update_weights_every >= 1, ">= 1"),
            ("optim_niter", optim_niter, optim_niter >= 0, ">= 0"),
            ("tol", tol, tol > 0, "positive"),
        ]
        for name, value, valid, expected in checks:
            if not valid:
                raise ValueError(f"`{name}` must be {expected}, found {value}.")
        self.max_norm, self.update_weights_every = max_norm, update_weights_every
        self.optim_niter, self.tol = optim_niter, tol
        self.failures, self.step = 0, 0
        self._alpha: np.ndarray | None = None
        self._problems: dict[int, tuple[cp.Problem, cp.Variable, cp.Parameter]] = {}

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        g = gram.numpy()
        m = g.shape[0]
        previous = self._alpha if self._alpha is not None and len(self._alpha) == m else None
        if previous is None or self.step % self.update_weights_every == 0:
            self._alpha = self._solve(g, previous)
        self.step += 1
        weights = self._alpha.copy()
        if self.max_norm > 0:
            norm = float(np.sqrt(max(weights @ g @ weights, 0.0)))
            if norm > self.max_norm:
                weights *= self.max_norm / norm
        return torch.from_numpy(weights)

    def _solve(self, g: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        m = g.shape[0]
        fallback = previous if previous is not None else np.ones(m)
        active = active_rows(g)
        if not active.any():
            return np.zeros(m)
        sub = g[np.ix_(active, active)]
        trace = float(np.trace(sub))
        sub = sub / trace
        start = None if previous is None else previous[active] * np.sqrt(trace)
        solution = self._conic_solve(sub, start)
        if solution is not None:
            solution, _ = newton_fixed_point(sub, 1.0, solution, self.optim_niter, self.tol / 10)
            alpha = np.zeros(m)
            alpha[active] = solution / np.sqrt(trace)
            if fixed_point_residual(sub, solution, 1.0) <= self.tol:
                return alpha
        self.failures += 1
        logger.warning_once(
            "NashMTL: the fixed point alpha_i (G alpha)_i = 1 was not reached (no solution when "
            "the gradients cancel); using the previous weights (ones at the first call). "
            "Failures are counted in `failures`."
        )
        return fallback.copy()

    def _conic_solve(self, sub: np.ndarray, start: np.ndarray | None) -> np.ndarray | None:
        k = sub.shape[0]
        if k not in self._problems:
            alpha = cp.Variable(k)
            factor = cp.Parameter((k, k))
            objective = 0.5 * cp.sum_squares(factor @ alpha) - cp.sum(cp.log(alpha))
            self._problems[k] = (cp.Problem(cp.Minimize(objective)), alpha, factor)
        problem, alpha, factor = self._problems[k]
        eigenvalues, eigenvectors = np.linalg.eigh(sub)
        factor.value = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * eigenvectors.T
        alpha.value = start
        try:
            problem.solve(solver=cp.CLARABEL, warm_start=True)
        except (cp.error.SolverError, ValueError, ArithmeticError):
            return None
        value = alpha.value
        solved = problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and value is not None
        if not solved or not np.all(np.isfinite(value)) or np.any(value <= 0):
            return None
        return np.asarray(value, dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        alpha = None if self._alpha is None else torch.from_numpy(self._alpha.copy())
        return {**super().state_dict(), "alpha": alpha, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        alpha = state["alpha"]
        self._alpha = None if alpha is None else alpha.numpy().astype(np.float64).copy()
        self.step = int(state["step"])

    def reset(self) -> None:
        super().reset()
        self._alpha, self.step, self.weights = None, 0, None

    def _repr_args(self) -> dict[str, object]:
        names = ("max_norm", "update_weights_every", "optim_niter", "tol")
        return {name: getattr(self, name) for name in names}
