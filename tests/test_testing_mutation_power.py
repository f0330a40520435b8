"""Tests that kill the mutants mutmut left alive in krylovadv/power.py."""

from __future__ import annotations

import numpy as np
import pytest

from krylovadv import FunctionOperator, SolverStatus, power_iteration

A = np.diag([1.0, -5.0, 2.0])


def test_default_maxiter_is_1000_products():
    # +-5: the iteration oscillates forever and runs out of the default budget.
    result = power_iteration(np.diag([5.0, -5.0, 1.0]), np.array([1.0, 1.0, 1.0]))
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert result.iterations == 1000


def test_smallest_valid_arguments_are_accepted():
    eps = float(np.finfo(np.float64).eps)
    one = power_iteration(A, np.array([0.0, 1.0, 0.0]), maxiter=1, tol=eps)
    assert one.status == SolverStatus.CONVERGED and one.iterations == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tol": 0.0}, r"^tol must be a positive finite float; got 0\.0\.$"),
        ({"maxiter": 0}, r"^maxiter must be >= 1; got 0\.$"),
        ({"tol": 1e-17}, r"^tol=1e-17 is below machine epsilon 2\.2e-16 of float64\.$"),
        ({"v0": np.array([1.0, np.nan, 0.0])}, r"^v0 contains NaN or Inf\.$"),
        ({"v0": np.zeros(3)}, r"^v0 must be nonzero for every sample\.$"),
        ({"v0": np.ones(4)}, r"^A has shape \(3, 3\) but v0 has shape \(4,\)\.$"),
        ({"v0": np.ones((2, 2, 3))}, r"^v0 must have shape"),
    ],
)
def test_bad_input_messages_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        power_iteration(A, **kwargs)


def test_integer_v0_is_rejected_naming_v0():
    with pytest.raises(TypeError, match=r"^v0 has dtype int64"):
        power_iteration(A, np.ones(3, dtype=np.int64))


def test_batch_size_mismatch_message():
    batched = np.stack([A, A])
    with pytest.raises(ValueError, match=r"^A holds 2 operators but there are 3 start vectors\.$"):
        power_iteration(batched, np.ones((3, 3)))


def test_default_start_is_a_single_problem_and_works_for_any_operator():
    dense = power_iteration(A, seed=0)
    assert np.ndim(dense.eigenvalue) == 0 and dense.eigenvalue == pytest.approx(-5.0)
    op = FunctionOperator(lambda x: x @ A.T, (3, 3))
    res = power_iteration(op, seed=0)
    assert np.ndim(res.eigenvalue) == 0 and res.eigenvalue == pytest.approx(-5.0)


def test_a_scaled_eigenvector_start_converges_at_once_to_its_eigenvalue():
    result = power_iteration(A, np.array([0.0, 3.0, 0.0]))
    assert result.eigenvalue == -5.0 and result.iterations == 1
    np.testing.assert_allclose(np.abs(result.eigenvector), [0.0, 1.0, 0.0])


def test_v0_is_not_modified_and_batch_fields_are_int64():
    v0 = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    copy = v0.copy()
    result = power_iteration(A, v0)
    np.testing.assert_array_equal(v0, copy)
    assert result.status.dtype == np.int64 and result.iterations.dtype == np.int64
    assert np.all(np.isfinite(result.residual_norm))
