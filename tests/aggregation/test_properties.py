"""Properties every method must have on a grid of matrices, and those each paper claims."""

from __future__ import annotations

import warnings

import pytest
import torch
from agg_cases import FULL_ROW_RANK, GRID, METHODS, ORDER_RANDOM, build, losses_for


def _relative_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> bool:
    scale = max(float(expected.norm()), float(actual.norm()), 1e-300)
    return float((actual - expected).norm()) <= rtol * scale


@pytest.fixture(autouse=True)
def _quiet_solvers() -> None:
    # Failures on degenerate inputs are expected here; they are logged once and counted.
    warnings.simplefilter("ignore")


@pytest.mark.parametrize("matrix", sorted(GRID))
@pytest.mark.parametrize("name", METHODS)
def test_finite_output_of_right_shape(name: str, matrix: str) -> None:
    grads = GRID[matrix]
    for dtype in (torch.float64, torch.float32):
        aggregator = build(name, grads.shape[0])
        direction = aggregator(grads.to(dtype), losses_for(grads.shape[0]))
        assert direction.shape == (grads.shape[1],)
        assert direction.dtype == dtype
        assert torch.isfinite(direction).all()
        weights = getattr(aggregator, "weights", None)
        if weights is not None:
            assert weights.shape == (grads.shape[0],) and torch.isfinite(weights).all()


@pytest.mark.parametrize("matrix", sorted(GRID))
@pytest.mark.parametrize("name", [name for name in METHODS if name not in ORDER_RANDOM])
def test_permutation_equivariance(name: str, matrix: str) -> None:
    grads = GRID[matrix]
    m = grads.shape[0]
    losses = losses_for(m)
    permutation = torch.randperm(m, generator=torch.Generator().manual_seed(3))
    aggregator = build(name, m)
    direction = aggregator(grads, losses)
    if getattr(aggregator, "failures", 0):
        pytest.skip("no fixed point: the fallback iterate depends on the path, not on the tasks")
    permuted = build(name, m)(grads[permutation], losses[permutation])
    assert _relative_close(permuted, direction, 1e-5)


# name -> (kwargs, absolute tolerance relative to max_i ||g_i||^2). UPGrad's ridge (1e-4 of
# the trace) allows conflicts of that order; without it the projection is exact. CAGrad's
# guarantee needs c >= 1 and its SLSQP solve is accurate to about 1e-7.
NON_CONFLICTING = {
    "mgda": ({}, 1e-9),
    "upgrad": ({}, 2e-4),
    "upgrad_exact": ({"reg_eps": 0.0}, 1e-9),
    "cagrad": ({"c": 1.0}, 1e-6),
    "nashmtl": ({}, 1e-9),
    "fairgrad": ({}, 1e-9),
}


@pytest.mark.parametrize("matrix", sorted(GRID))
@pytest.mark.parametrize("name", sorted(NON_CONFLICTING))
def test_no_conflict(name: str, matrix: str) -> None:
    if name in ("nashmtl", "fairgrad") and matrix not in FULL_ROW_RANK + ["zero_row_3x6"]:
        pytest.skip("the fixed point exists only when no non-negative combination cancels")
    grads = GRID[matrix]
    kwargs, atol = NON_CONFLICTING[name]
    direction = build(name.removesuffix("_exact"), grads.shape[0], **kwargs)(grads)
    products = grads @ direction
    largest = float(grads.norm(dim=1).max())
    tolerance = 1e-6 * largest * float(direction.norm()) + atol * largest**2
    assert float(products.min()) >= -tolerance


def _scale_exponent(name: str) -> float:
    # d(c J) = c^k d(J) for c > 0: Nash-MTL fixes ||d||^2 = m (k = 0); FairGrad's fixed point
    # G w = w^(-1/alpha) gives k = (1 - alpha) / (1 + alpha) (-1/3 at the default alpha = 2);
    # every other method is positively homogeneous of degree 1.
    return {"nashmtl": 0.0, "fairgrad": -1.0 / 3.0}.get(name, 1.0)


@pytest.mark.parametrize("scale", [1e-3, 7.0, 1e4])
@pytest.mark.parametrize("matrix", ["random_2x5", "random_3x7", "random_8x20"])
@pytest.mark.parametrize("name", METHODS)
def test_global_scaling(name: str, matrix: str, scale: float) -> None:
    grads = GRID[matrix]
    m = grads.shape[0]
    losses = losses_for(m)
    direction = build(name, m)(grads, losses)
    scaled = build(name, m)(scale * grads, losses)
    assert _relative_close(scaled, scale ** _scale_exponent(name) * direction, 1e-5)


@pytest.mark.parametrize("matrix", ["random_2x5", "random_3x7", "random_8x20"])
def test_nash_direction_ignores_per_task_scaling(matrix: str) -> None:
    # alpha_i (G alpha)_i = 1 is solved by alpha_i / s_i when row i is scaled by s_i > 0.
    grads = GRID[matrix]
    factors = torch.linspace(0.1, 20.0, grads.shape[0], dtype=torch.float64)
    direction = build("nashmtl", 3)(grads)
    assert _relative_close(build("nashmtl", 3)(factors[:, None] * grads), direction, 1e-5)


@pytest.mark.parametrize("matrix", ["random_2x5", "random_3x7", "random_8x20"])
def test_imtl_equal_projections_and_orientation(matrix: str) -> None:
    grads = GRID[matrix]
    direction = build("imtl", 3)(grads)
    projections = (grads @ direction) / grads.norm(dim=1)
    assert torch.allclose(projections, projections.mean().expand_as(projections), rtol=1e-8)
    # The unit gradients do not change under a positive per-task scaling, so neither does the
    # direction's orientation (only its length, since the weights sum to 1).
    factors = torch.linspace(0.1, 20.0, grads.shape[0], dtype=torch.float64)
    scaled = build("imtl", 3)(factors[:, None] * grads)
    assert _relative_close(scaled / scaled.norm(), direction / direction.norm(), 1e-8)


def test_si_ignores_loss_scales() -> None:
    # Scaling L_i by c_i scales g_i by c_i too; the gradient of sum log L_i does not change.
    grads, losses = GRID["random_3x7"], losses_for(3)
    factors = torch.tensor([0.01, 1.0, 300.0], dtype=torch.float64)
    direction = build("si", 3)(grads, losses)
    assert _relative_close(
        build("si", 3)(factors[:, None] * grads, factors * losses), direction, 1e-5
    )


@pytest.mark.parametrize("name", METHODS)
def test_output_is_detached(name: str) -> None:
    grads = GRID["random_3x7"].clone().requires_grad_(True)
    assert not build(name, 3)(grads, losses_for(3)).requires_grad
