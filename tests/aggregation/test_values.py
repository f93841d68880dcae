"""Pinned values computed by hand, and equivalences between methods."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from agg_cases import build

from flatmtl.aggregation import FairGrad, NashMTL
from flatmtl.aggregation._mgda import frank_wolfe_weights, min_norm_weights


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


ORTHOGONAL = t([[1.0, 0.0], [0.0, 2.0]])  # norms 1 and 2
OPPOSITE = t([[1.0, 0.0], [-1.0, 0.0]])
IDENTICAL = t([[1.0, 1.0], [1.0, 1.0]])
ONE_ZERO = t([[0.0, 0.0], [0.0, 1.0]])
THREE_ORTHONORMAL = torch.eye(3, dtype=torch.float64)
LOSSES = torch.tensor([2.0, 4.0], dtype=torch.float64)

# Orthogonal rows g1 = e1, g2 = 2 e2, losses L = [2, 4], by hand:
# mgda: w1 = |g2|^2 / (|g1|^2 + |g2|^2) = 4/5.  imtl: w ∝ 1/|g_i| -> [2/3, 1/3].
# nashmtl: alpha_i^2 |g_i|^2 = 1 -> [1, 1/2].  fairgrad(alpha): w_i = |g_i|^(-2 alpha/(alpha+1)).
# aligned_mtl: B = sqrt(lambda_min) G^(-1/2) = diag(1, 1/2), w = B 1.  upgrad: no constraint
# binds, w = 1/m.  si: w = 1/L.  uw at s = 0: 1/2.  imtl_l at s = 0: 1.  famo at start:
# w ∝ 1/L -> [2/3, 1/3].  dbmtl, first call: b = 0.1 g / L, |b| = [0.05, 0.05], scales [1, 1].
# cagrad(c=0.5, rescale=1): w* = e1 (the objective decreases up to the vertex), radius
# r = c |g0| with g0 = (1/2, 1); d = (g0 + r g1) / (1 + c^2).
RADIUS = 0.5 * math.sqrt(1.25)
ORTHOGONAL_EXPECTED = {
    "mean": ([0.5, 0.5], [0.5, 1.0]),
    "sum": ([1.0, 1.0], [1.0, 2.0]),
    "mgda": ([0.8, 0.2], [0.8, 0.4]),
    "imtl": ([2 / 3, 1 / 3], [2 / 3, 2 / 3]),
    "pcgrad": ([1.0, 1.0], [1.0, 2.0]),
    "nashmtl": ([1.0, 0.5], [1.0, 1.0]),
    "fairgrad": ([1.0, 2 ** (-4 / 3)], [1.0, 2 * 2 ** (-4 / 3)]),
    "upgrad": ([0.5, 0.5], [0.5, 1.0]),
    "aligned_mtl": ([1.0, 0.5], [1.0, 1.0]),
    "cagrad": (None, [(0.5 + RADIUS) / 1.25, 1.0 / 1.25]),
    "graddrop": (None, [1.0, 2.0]),
    "si": ([0.5, 0.25], [0.5, 0.5]),
    "uw": ([0.5, 0.5], [0.5, 1.0]),
    "imtl_l": ([1.0, 1.0], [1.0, 2.0]),
    "famo": ([2 / 3, 1 / 3], [2 / 3, 2 / 3]),
    "dwa": ([1.0, 1.0], [1.0, 2.0]),
    "gradnorm": ([1.0, 1.0], [1.0, 2.0]),
    "dbmtl": (None, [0.05, 0.05]),
}


@pytest.mark.parametrize("name", sorted(ORTHOGONAL_EXPECTED))
def test_orthogonal_unequal_norms(name: str) -> None:
    weights, direction = ORTHOGONAL_EXPECTED[name]
    kwargs = {"c": 0.5} if name == "cagrad" else {}
    aggregator = build(name, 2, **kwargs)
    assert torch.allclose(aggregator(ORTHOGONAL, LOSSES), t([direction])[0], atol=1e-6)
    if weights is not None:
        assert torch.allclose(aggregator.weights, t([weights])[0], atol=1e-6)


def test_rlw_draws_softmax_of_its_generator() -> None:
    expected = torch.softmax(
        torch.randn(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64), 0
    )
    aggregator = build("rlw", 2)
    assert torch.allclose(aggregator(ORTHOGONAL), expected @ ORTHOGONAL)
    assert math.isclose(float(aggregator.weights.sum()), 1.0)


@pytest.mark.parametrize(
    "name",
    ["mean", "mgda", "imtl", "pcgrad", "upgrad", "aligned_mtl", "cagrad", "nashmtl", "fairgrad"],
)
def test_opposite_gradients_give_zero(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aggregator = build(name, 2)
        direction = aggregator(OPPOSITE)
    assert torch.allclose(direction, torch.zeros(2, dtype=torch.float64), atol=1e-9)
    if name in ("nashmtl", "fairgrad"):
        assert aggregator.failures == 1  # no fixed point: logged and counted, never silent


def test_graddrop_opposite_keeps_one_sign() -> None:
    # P = 1/2 on the first coordinate: the output is +e1 or -e1, never 0, never NaN.
    outputs = {tuple(build("graddrop", 2, seed=s)(OPPOSITE).tolist()) for s in range(20)}
    assert outputs == {(1.0, 0.0), (-1.0, 0.0)}


# Identical gradients g = (1, 1), |g|^2 = 2: Nash's fixed point alpha * 4 alpha = 1 gives
# alpha = 1/2 and d = g (the official stop test returns alpha = 1, d = 2 g).
IDENTICAL_EXPECTED = {
    "mean": [1.0, 1.0],
    "sum": [2.0, 2.0],
    "mgda": [1.0, 1.0],
    "imtl": [1.0, 1.0],
    "pcgrad": [2.0, 2.0],
    "upgrad": [1.0, 1.0],
    "aligned_mtl": [2.0, 2.0],  # sum preference: B 1 = 1 on the rank-1 Gramian
    "nashmtl": [1.0, 1.0],
    "fairgrad": [2 ** (-1 / 3), 2 ** (-1 / 3)],  # alpha=2: (4 w) = w^(-1/2), w = 4^(-2/3)
}


@pytest.mark.parametrize("name", sorted(IDENTICAL_EXPECTED))
def test_identical_gradients(name: str) -> None:
    direction = build(name, 2)(IDENTICAL)
    assert torch.allclose(direction, t([IDENTICAL_EXPECTED[name]])[0], atol=1e-6)


def test_nash_identical_reaches_fixed_point_not_initial_weights() -> None:
    aggregator = NashMTL()
    aggregator(IDENTICAL)
    assert torch.allclose(aggregator.weights, torch.full((2,), 0.5, dtype=torch.float64))


# One zero gradient: MGDA's min-norm point is the zero vector itself; the others give the zero
# task weight 0 (IMTL-G, Nash, FairGrad, Aligned) or no projection at all (PCGrad, UPGrad).
ONE_ZERO_EXPECTED = {
    "mgda": [0.0, 0.0],
    "imtl": [0.0, 1.0],
    "pcgrad": [0.0, 1.0],
    "nashmtl": [0.0, 1.0],
    "fairgrad": [0.0, 1.0],
    "aligned_mtl": [0.0, 1.0],
    "upgrad": [0.0, 0.5],
}


@pytest.mark.parametrize("name", sorted(ONE_ZERO_EXPECTED))
def test_one_zero_gradient(name: str) -> None:
    direction = build(name, 2)(ONE_ZERO)
    assert torch.allclose(direction, t([ONE_ZERO_EXPECTED[name]])[0], atol=1e-6)


# Three orthonormal gradients: MGDA, IMTL-G and UPGrad give 1/3 each; Nash and FairGrad
# give 1 each (alpha_i (G alpha)_i = alpha_i^2 = 1); Aligned-MTL (sum) gives 1 each.
@pytest.mark.parametrize(
    "name, weight",
    [("mgda", 1 / 3), ("imtl", 1 / 3), ("upgrad", 1 / 3), ("nashmtl", 1.0), ("fairgrad", 1.0)]
    + [("aligned_mtl", 1.0), ("pcgrad", 1.0), ("mean", 1 / 3)],
)
def test_three_orthonormal_tasks(name: str, weight: float) -> None:
    aggregator = build(name, 3)
    aggregator(THREE_ORTHONORMAL)
    assert torch.allclose(aggregator.weights, torch.full((3,), weight, dtype=torch.float64))


def test_three_tasks_conflicting_pcgrad_and_mgda() -> None:
    # g1 = e1, g2 = e2, g3 = -(e1 + e2) / 2 + e3: MGDA's KKT conditions and PCGrad's sum-form
    # are checked against direct formulas instead of a solver.
    grads = t([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-0.5, -0.5, 1.0]])
    mgda = build("mgda", 3)
    direction = mgda(grads)
    w = mgda.weights
    assert float(w.min()) >= 0 and math.isclose(float(w.sum()), 1.0)
    products = grads @ direction
    assert float(products.min()) >= float(direction @ direction) - 1e-8
    assert torch.allclose(products[w > 1e-8], (direction @ direction).expand(int((w > 1e-8).sum())))


def _pcgrad_two(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    dot = float(g1 @ g2)
    if dot >= 0:
        return g1 + g2
    return (g1 - dot / float(g2 @ g2) * g2) + (g2 - dot / float(g1 @ g1) * g1)


def test_pcgrad_two_tasks_hand_formula() -> None:
    generator = torch.Generator().manual_seed(5)
    conflicts = 0
    for _ in range(20):
        grads = torch.randn(2, 6, generator=generator, dtype=torch.float64)
        conflicts += float(grads[0] @ grads[1]) < 0
        assert torch.allclose(build("pcgrad", 2)(grads), _pcgrad_two(grads[0], grads[1]))
    assert conflicts > 3  # the conflicting branch was exercised


def test_pcgrad_equals_upgrad_sum_without_ridge_on_two_tasks() -> None:
    generator = torch.Generator().manual_seed(6)
    for _ in range(10):
        grads = torch.randn(2, 5, generator=generator, dtype=torch.float64)
        upgrad = build("upgrad", 2, reduction="sum", reg_eps=0.0)(grads)
        assert torch.allclose(build("pcgrad", 2)(grads), upgrad, atol=1e-9)


def test_mgda_two_task_closed_form_equals_general_solver() -> None:
    generator = torch.Generator().manual_seed(7)
    for _ in range(20):
        grads = torch.randn(2, 4, generator=generator, dtype=torch.float64)
        gram = (grads @ grads.T).numpy()
        closed = min_norm_weights(gram)
        general = frank_wolfe_weights(gram / np.trace(gram))
        assert np.allclose(closed, general, atol=1e-8)


def test_fairgrad_alpha_one_equals_nash_fixed_point() -> None:
    generator = torch.Generator().manual_seed(8)
    for m, d in [(2, 3), (3, 7), (6, 15)]:
        grads = torch.randn(m, d, generator=generator, dtype=torch.float64)
        fair, nash = FairGrad(alpha=1.0), NashMTL(max_norm=0.0)
        assert torch.allclose(fair(grads), nash(grads), atol=1e-6)
        alpha = nash.weights
        products = alpha * ((grads @ grads.T) @ alpha)
        assert torch.allclose(products, torch.ones(m, dtype=torch.float64), atol=1e-6)
        assert fair.failures == nash.failures == 0


def test_nash_max_norm_clips_by_weights() -> None:
    # ||d|| = sqrt(m) at the fixed point; max_norm = 1 divides the weights by sqrt(2).
    aggregator = NashMTL(max_norm=1.0)
    direction = aggregator(ORTHOGONAL)
    assert torch.allclose(direction, t([[1.0, 1.0]])[0] / math.sqrt(2))


def test_fairgrad_options_scale_and_clip() -> None:
    plain = FairGrad(alpha=1.0)(ORTHOGONAL)
    assert torch.allclose(FairGrad(alpha=1.0, scale_by_num_tasks=True)(ORTHOGONAL), 2 * plain)
    clipped = FairGrad(alpha=1.0, scale_by_num_tasks=True, max_norm=1.0)(ORTHOGONAL)
    assert math.isclose(float(clipped.norm()), 1.0, rel_tol=1e-9)


def test_learned_gradients_written_and_accumulated() -> None:
    # UW: d/ds of (e^-s L + s) / 2 at s = 0 is (1 - L) / 2; IMTL-L: e^s L - 1 = L - 1.
    # GradNorm at the first call: w n = [1, 2], target mean = 1.5 (r = 1), sign [-1, 1],
    # q = sign * n = [-1, 2], d/ds = m z (q - z.q) = q - 1/2.
    expected = {"uw": [-0.5, -1.5], "imtl_l": [1.0, 3.0], "gradnorm": [-1.5, 1.5]}
    for name, grad in expected.items():
        aggregator = build(name, 2)
        aggregator(ORTHOGONAL, LOSSES)
        (parameter,) = aggregator.parameters()
        assert isinstance(parameter, torch.nn.Parameter)
        assert torch.allclose(parameter.grad.double(), t([grad])[0])
        aggregator(ORTHOGONAL, LOSSES)
        assert torch.allclose(parameter.grad.double(), 2 * t([grad])[0])


def test_dwa_epoch_weights() -> None:
    # Epoch means [1, 1] then [1, 4]: r = [1, 4], w = 2 softmax([0.5, 2]).
    aggregator = build("dwa", 2)
    for losses in ([1.0, 1.0], [1.0, 4.0]):
        aggregator(ORTHOGONAL, torch.tensor(losses))
        aggregator(ORTHOGONAL, torch.tensor(losses))
        aggregator.on_epoch_end()
    aggregator(ORTHOGONAL, torch.tensor([3.0, 5.0]))
    expected = 2 * torch.softmax(torch.tensor([0.5, 2.0], dtype=torch.float64), 0)
    assert torch.allclose(aggregator.weights, expected)
    assert torch.allclose(expected, torch.tensor([0.3649, 1.6351], dtype=torch.float64), atol=1e-4)


def test_famo_update_moves_weight_to_slower_task() -> None:
    aggregator = build("famo", 2)
    aggregator(ORTHOGONAL, torch.tensor([1.0, 1.0]))
    aggregator.update(torch.tensor([0.5, 0.99]))  # task 0 fell much more than task 1
    aggregator(ORTHOGONAL, torch.tensor([1.0, 1.0]))
    assert float(aggregator.weights[1]) > float(aggregator.weights[0])
