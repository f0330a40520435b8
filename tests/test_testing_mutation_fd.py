"""Tests that kill the mutants mutmut left alive in krylovadv/finite_difference.py.

``estimate_error`` was checked only loosely; here it is checked exactly on
gradients whose finite-difference truncation error is known in closed form:

* forward differences of a *quadratic* gradient ``g_i = c_i x_i^2 / 2`` err by
  exactly ``t c_i v_i^2 / 2`` (first order in ``t``);
* central differences of a *cubic* gradient ``g_i = c_i x_i^3`` err by exactly
  ``t^2 c_i v_i^3`` (second order in ``t``).

The Richardson estimate ``||Hv_t - Hv_{t/2}|| / (1 - 2^-p)`` then equals the true
error of ``Hv_t``; a step (``eta``) of 1e-3 makes truncation dominate rounding by
ten orders of magnitude, so the comparison holds to 1e-6.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from krylovadv import FiniteDifferenceHVP

C = np.array([1.0, -2.0, 0.5, 3.0, 1.5])


def quadratic_gradient(z):
    return C * z**2 / 2


def cubic_gradient(z):
    return C * z**3


def true_relative_error(op, v, hessian_v):
    hv = op @ v
    return np.linalg.norm(hv - hessian_v, axis=-1) / np.linalg.norm(hv, axis=-1)


@pytest.mark.parametrize("seed", [0, 1])
def test_forward_estimate_equals_the_true_first_order_error(seed):
    rng = np.random.default_rng(seed)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    op = FiniteDifferenceHVP(quadratic_gradient, x, eta=1e-3)
    estimate = op.estimate_error(v)
    exact = true_relative_error(op, v, C * x * v)
    np.testing.assert_allclose(estimate, exact, rtol=1e-6)
    assert estimate[0] > 1e-5  # truncation, not rounding, is measured


@pytest.mark.parametrize("seed", [0, 1])
def test_central_estimate_equals_the_true_second_order_error(seed):
    rng = np.random.default_rng(seed)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    op = FiniteDifferenceHVP(cubic_gradient, x, eta=1e-2, scheme="central")
    estimate = op.estimate_error(v)
    exact = true_relative_error(op, v, 3 * C * x**2 * v)
    np.testing.assert_allclose(estimate, exact, rtol=1e-6)
    # Second order: the error scales like eta^2 (halving eta quarters it).
    half = FiniteDifferenceHVP(cubic_gradient, x, eta=5e-3, scheme="central")
    np.testing.assert_allclose(half.estimate_error(v), estimate / 4, rtol=1e-3)


def test_estimate_error_keeps_the_last_product_step_and_counts_work():
    x = np.linspace(-1.0, 1.0, 5)
    op = FiniteDifferenceHVP(quadratic_gradient, x, eta=1e-3)
    op @ np.ones(5)
    step, rounding, products = op.step.copy(), op.step_rounding.copy(), op.num_products
    estimate = op.estimate_error(np.ones(5))
    np.testing.assert_array_equal(op.step, step)
    np.testing.assert_array_equal(op.step_rounding, rounding)
    np.testing.assert_array_equal(op.error_estimate, estimate)
    assert op.num_products == products + 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_direction_is_the_seeded_draw_in_the_operator_dtype(dtype):
    x = np.linspace(-1.0, 1.0, 5).astype(dtype)
    op = FiniteDifferenceHVP(quadratic_gradient, x, eta=1e-2)
    draw = np.random.default_rng(7).standard_normal((1, 5)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a deprecated np.finfo(None) in the estimate
        by_seed = op.estimate_error(seed=7)
    np.testing.assert_array_equal(by_seed, op.estimate_error(draw))


def test_estimate_error_rejects_a_wrong_direction_shape_naming_v():
    op = FiniteDifferenceHVP(quadratic_gradient, np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"v has shape \(3, 5\); expected \(2, 5\)"):
        op.estimate_error(np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"\bv\b"):
        op.estimate_error(np.ones((2, 5, 1)))


def test_torch_estimate_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    c = torch.as_tensor(C)
    op_np = FiniteDifferenceHVP(quadratic_gradient, x, eta=1e-3)
    op_t = FiniteDifferenceHVP(lambda z: c * z**2 / 2, torch.as_tensor(x), eta=1e-3)
    np.testing.assert_allclose(
        op_t.estimate_error(torch.as_tensor(v)), op_np.estimate_error(v), rtol=1e-9
    )


def test_default_step_estimate_halves_the_default_step():
    # Tiny x: the default forward step t = sqrt(eps)(1 + ||x||) makes truncation
    # (relative t / (2 x_1) ~ 1e-4) dominate rounding (~ eps x_1 / t ~ 1e-12) by 1e8, so
    # the Richardson estimate with steps t and t/2 equals the true error to 1e-3.
    x = np.array([1e-4, 2e-4, -1e-4, 3e-4, 1e-4])
    v = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    op = FiniteDifferenceHVP(quadratic_gradient, x)
    estimate = op.estimate_error(v)
    exact = true_relative_error(op, v, C * x * v)
    np.testing.assert_allclose(estimate, exact, rtol=1e-3)


def test_central_step_rounding_measures_the_total_displacement():
    rng = np.random.default_rng(4)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    op = FiniteDifferenceHVP(cubic_gradient, x, scheme="central")
    op @ v
    # x + t u and x - t u round, but the displacement stays along u to O(eps):
    # the off-axis part relative to the step is rounding, far below 1.
    assert 0 <= op.step_rounding[0] < 1e-6, op.step_rounding


def test_a_step_that_rounds_away_gives_nan_without_dividing_by_zero():
    x = np.full(3, 1e20)  # x + t u == x in float64 for t = 1e-10
    op = FiniteDifferenceHVP(lambda z: 2 * z, x, eta=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "never a division by zero" (docs/contract.rst)
        hv = op @ np.array([1.0, 0.0, 0.0])
    assert np.all(np.isnan(hv))
    assert op.step[0] == 0.0 and op.step_rounding[0] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"scheme": "backward"},
            ValueError,
            r"^scheme must be 'forward' or 'central'; got 'backward'",
        ),
        ({"eta": -1.0}, ValueError, r"^eta must be a positive finite float or None; got -1\.0"),
        ({"pass_indices": True}, TypeError, r"^pass_indices=True needs grad\(points, indices\)\.$"),
        ({"x": np.ones(3, dtype=np.int64)}, TypeError, r"^x has dtype int64; "),
        ({"x": np.ones((2, 2, 2))}, ValueError, r"^x must have shape \(n,\) or \(B, n\)"),
        ({"x": np.array([1.0, np.nan])}, ValueError, r"^x contains NaN or Inf\.$"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, message):
    # Errors name the argument and the fix (the project's standard), word for word.
    arguments = {"x": np.ones(3), **kwargs}
    with pytest.raises(error, match=message):
        FiniteDifferenceHVP(lambda z: z, arguments.pop("x"), **arguments)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_operator_dtype_is_the_point_dtype(dtype):
    op = FiniteDifferenceHVP(lambda z: z, np.ones(3, dtype=dtype))
    assert op.dtype == dtype and op.shape == (3, 3)


def test_grad_x_errors_name_grad_x_and_no_estimate_before_one_is_asked_for():
    with pytest.raises(ValueError, match=r"^grad_x must have shape \(n,\) or \(B, n\)"):
        FiniteDifferenceHVP(lambda z: z, np.ones(3), grad_x=np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"^grad_x has shape \(4,\) but x has shape \(3,\)\.$"):
        FiniteDifferenceHVP(lambda z: z, np.ones(3), grad_x=np.ones(4))
    op = FiniteDifferenceHVP(lambda z: z, np.ones(3))
    assert op.error_estimate is None


def batched_problem():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 2))  # B = 3 samples, n = 2: k = 2 active rows is ambiguous
    return X, rng.standard_normal((3, 2))


def test_active_subset_calls_a_full_batch_gradient_with_the_full_batch():
    X, V = batched_problem()
    calls = []

    def grad(points):  # a batched gradient that only works on the whole batch
        assert points.shape == (3, 2), points.shape
        calls.append(points.copy())
        return quadratic_gradient_2(points)

    op = FiniteDifferenceHVP(grad, X, eta=1e-3)
    assert op.num_grad_evals == 3  # grad(x) once, for 3 samples
    full = op.matvec(V)
    assert op.num_grad_evals == 6
    idx = np.array([2, 0])
    part = op.matvec(V[idx], idx)
    # Only rows 2 and 0 are perturbed; the inactive row keeps x; one call for 3 samples.
    np.testing.assert_array_equal(calls[-1][1], X[1])
    assert op.num_grad_evals == 9
    np.testing.assert_allclose(part, full[idx], rtol=1e-12)


def test_pass_indices_counts_only_the_active_samples():
    X, V = batched_problem()
    seen = []

    def grad(points, indices):
        seen.append(np.asarray(indices).copy())
        return quadratic_gradient_2(points)

    op = FiniteDifferenceHVP(grad, X, eta=1e-3, pass_indices=True)
    start = op.num_grad_evals
    np.testing.assert_array_equal(seen[-1], [0, 1, 2])
    assert seen[-1].dtype == np.int64
    op.matvec(V[[1]], np.array([1]))
    assert op.num_grad_evals == start + 1
    np.testing.assert_array_equal(seen[-1], [1])


def test_single_problem_counts_one_evaluation_per_product():
    op = FiniteDifferenceHVP(lambda z: 2 * z, np.ones(4), eta=1e-3)
    before = op.num_grad_evals
    op @ np.ones(4)
    assert op.num_grad_evals == before + 1


def test_gradient_in_another_dtype_is_cast_back_to_the_point_dtype():
    x = np.linspace(-1.0, 1.0, 4).astype(np.float32)
    op = FiniteDifferenceHVP(lambda z: (2 * z).astype(np.float64), x)
    hv = op @ np.ones(4, dtype=np.float32)
    assert hv.dtype == np.float32
    np.testing.assert_allclose(hv, 2.0, rtol=1e-2)


def test_estimate_error_counts_two_products_per_sample():
    X, V = batched_problem()
    op = FiniteDifferenceHVP(quadratic_gradient_2, X, eta=1e-3)
    before = op.num_products
    op.estimate_error(V)
    assert op.num_products == before + 2 * 3


def quadratic_gradient_2(z):
    return np.array([1.0, -2.0]) * z**2 / 2
