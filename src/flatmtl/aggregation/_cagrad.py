from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor
from transformers.utils import logging

from ._base import WeightedAggregator

__all__ = ["CAGrad"]

logger = logging.get_logger(__name__)


class CAGrad(WeightedAggregator):
    """Conflict-averse gradient descent (Liu et al., *Conflict-Averse Gradient Descent for
    Multi-task Learning*, NeurIPS 2021).

    With ``g0`` the mean gradient, ``w* = argmin_{w in simplex} (w @ G) . g0 + c ||g0|| ||w @ G||``
    and ``d = g0 + (c ||g0|| / ||g_w*||) g_w*``, divided by ``1 + c^2`` when ``rescale=1``
    (the official code's default) or by ``1 + c`` when ``rescale=2``.

    Args:
        c: radius of the ball around ``g0`` (default 0.4, the value of the paper's runs).
        rescale: 0, 1 (default) or 2, as above.
        scale_by_num_tasks: multiply the direction by ``m`` (default ``False``; the official
            NYUv2/CityScapes code does, "to match the sum loss").

    .. note:: The inner problem is solved on the trace-normalised Gramian with SLSQP, as the
        official code does; a solver failure is logged, counted in :attr:`failures`, and the
        method falls back to ``w* = 1/m`` for that call.
    """

    def __init__(self, c: float = 0.4, rescale: int = 1, scale_by_num_tasks: bool = False) -> None:
        super().__init__()
        if c < 0:
            raise ValueError(f"`c` must be non-negative, found {c}.")
        if rescale not in (0, 1, 2):
            raise ValueError(f"`rescale` must be 0, 1 or 2, found {rescale}.")
        self.c = c
        self.rescale = rescale
        self.scale_by_num_tasks = scale_by_num_tasks
        self.failures = 0

    def compute_weights(self, gram: Tensor, grads: Tensor, losses: Tensor | None) -> Tensor:
        m = gram.shape[0]
        scale = float(torch.trace(gram))
        uniform = np.full(m, 1.0 / m)
        if not np.isfinite(scale) or scale <= 0:
            weights = uniform
        else:
            g = gram.numpy() / scale
            g0_norm = float(np.sqrt(max(uniform @ g @ uniform, 0.0)))
            radius = self.c * g0_norm
            x = self._solve(g, uniform, radius)
            gw_norm = float(np.sqrt(max(x @ g @ x, 0.0)))
            lam = radius / gw_norm if gw_norm > 1e-12 else 0.0
            weights = uniform + lam * x
        if self.rescale == 1:
            weights = weights / (1.0 + self.c**2)
        elif self.rescale == 2:
            weights = weights / (1.0 + self.c)
        if self.scale_by_num_tasks:
            weights = weights * m
        return torch.from_numpy(np.asarray(weights, dtype=np.float64))

    def _solve(self, g: np.ndarray, uniform: np.ndarray, radius: float) -> np.ndarray:
        m = g.shape[0]
        gb = g @ uniform

        def objective(x: np.ndarray) -> float:
            return float(x @ gb + radius * np.sqrt(x @ g @ x + 1e-12))

        def jacobian(x: np.ndarray) -> np.ndarray:
            return gb + radius * (g @ x) / np.sqrt(x @ g @ x + 1e-12)

        result = minimize(
            objective,
            uniform,
            jac=jacobian,
            bounds=[(0.0, 1.0)] * m,
            constraints={"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones(m)},
            method="SLSQP",
            options={"ftol": 1e-12, "maxiter": 200},
        )
        if not result.success or not np.all(np.isfinite(result.x)):
            self.failures += 1
            logger.warning_once(
                f"CAGrad: SLSQP did not converge ({result.message}); using uniform weights "
                "for the inner problem on this call. Failures are counted in `failures`."
            )
            return uniform
        x = np.clip(result.x, 0.0, None)
        return x / x.sum()

    def _repr_args(self) -> dict[str, object]:
        return {"c": self.c, "rescale": self.rescale, "scale_by_num_tasks": self.scale_by_num_tasks}
