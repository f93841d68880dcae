from __future__ import annotations

import torch
from torch import Tensor

from ._base import Aggregator

__all__ = ["GradDrop"]


class GradDrop(Aggregator):
    """Gradient sign dropout: per coordinate, keep only the positive or only the negative task
    gradients, choosing the sign at random in proportion to its share (Chen et al., *Just Pick
    a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout*, NeurIPS 2020).

    Per coordinate ``k``, ``P_k = (1 + sum_i g_ik / sum_i |g_ik|) / 2`` and ``U_k ~ U(0, 1)``;
    ``M_ik = [P_k > U_k][g_ik > 0] + [P_k < U_k][g_ik < 0]`` and
    ``d_k = sum_i (leak_i + (1 - leak_i) M_ik) g_ik``, a sum over tasks (its expectation is
    ``sum_i g_i``). A positive scale of the gradients scales ``d`` linearly.

    Args:
        leak: share of each task's gradient kept whatever the mask, a float or one value per
            task in ``[0, 1]`` (default 0.0, as the paper's experiments).
        seed: seed of the private generator that draws ``U`` (default 0).

    .. note:: The paper applies the mask to gradients with respect to a layer's input,
        multiplied by the sign of that input; this code (like several public re-implementations)
        applies it to the per-task gradients over the shared parameters it is given. The
        uniform draws are made on the CPU from :attr:`generator`, so every process draws alike.
    """

    random = True

    def __init__(self, leak: float | list[float] = 0.0, seed: int = 0) -> None:
        super().__init__(seed)
        values = torch.as_tensor(leak, dtype=torch.float64).flatten()
        if values.numel() == 0 or bool(((values < 0) | (values > 1)).any()):
            raise ValueError(f"`leak` must be a float or floats in [0, 1], found {leak!r}.")
        self.leak = leak
        self._leak = values

    def aggregate(self, grads: Tensor, losses: Tensor | None) -> Tensor:
        m, d = grads.shape
        if self._leak.numel() not in (1, m):
            raise ValueError(
                f"`leak` holds {self._leak.numel()} values but `grads` has {m} tasks; pass one "
                "float or one value per task."
            )
        leak = self._leak.to(grads.device, grads.dtype).expand(m)[:, None]
        purity = 0.5 * (
            1.0 + grads.sum(0) / grads.abs().sum(0).clamp_min(torch.finfo(grads.dtype).tiny)
        )
        uniform = torch.rand(d, generator=self.generator, dtype=torch.float64)
        uniform = uniform.to(grads.device, grads.dtype)
        mask = ((purity > uniform) & (grads > 0)) | ((purity < uniform) & (grads < 0))
        return ((leak + (1.0 - leak) * mask) * grads).sum(0)

    def _repr_args(self) -> dict[str, object]:
        return {"leak": self.leak, "seed": self._seed}
