"""Tests that kill the mutants mutmut left alive in krylovadv/power.py."""

from __future__ import annotations

import warnings

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


def test_residual_exactly_at_the_tolerance_converges():
    # A = [[1, t], [t, 1]], d = e_1: A d = (1, t), lambda = 1 and ||A d - d|| = t exactly
    # (t a power of two): the test ||A d - lambda d|| <= tol |lambda| holds with equality.
    t = 2.0**-20
    result = power_iteration(np.array([[1.0, t], [t, 1.0]]), np.array([1.0, 0.0]), tol=t)
    assert result.status == SolverStatus.CONVERGED and result.iterations == 1
    assert result.eigenvalue == 1.0 and result.residual_norm == t


def test_unit_product_norm_is_not_a_null_product():
    # ||A d|| = 1 for A = I: an eigenpair (1, d), not a start in the null space.
    result = power_iteration(np.eye(3), np.array([0.6, 0.8, 0.0]))
    assert result.status == SolverStatus.CONVERGED and result.iterations == 1
    assert result.eigenvalue == pytest.approx(1.0, rel=1e-15, abs=0.0)


def test_small_spectrum_iterates_stay_unit_vectors():
    # ||A d|| < 1 at every step: the iterates must still be normalised by ||A d||.
    A = np.diag([0.5, 0.25, 0.1])
    result = power_iteration(A, np.ones(3), tol=1e-10)
    assert result.status == SolverStatus.CONVERGED and result.converged
    assert result.eigenvalue == pytest.approx(0.5, rel=1e-9, abs=0.0)
    # One Rayleigh quotient per product; the last one is the reported eigenvalue.
    assert len(result.eigenvalue_history) == result.iterations
    assert result.eigenvalue_history[-1] == result.eigenvalue
    assert np.linalg.norm(result.eigenvector) == pytest.approx(1.0, rel=1e-12, abs=0.0)


def test_null_start_beside_running_samples_warns_nothing_and_keeps_dtypes():
    # Sample 0 starts in the null space (A d = 0: BREAKDOWN at once), sample 1 converges
    # after a few steps, sample 2 later: no division by ||A d|| = 0, float64 eigenvectors.
    A = np.diag([3.0, 1.0, 0.0])
    v0 = np.array([[0.0, 0.0, 1.0], [1.0, 0.1, 0.0], [1.0, 1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = power_iteration(A, v0, tol=1e-10)
    assert result.status.tolist() == [
        SolverStatus.BREAKDOWN,
        SolverStatus.CONVERGED,
        SolverStatus.CONVERGED,
    ]
    assert result.iterations[0] == 1 and result.iterations[1] < result.iterations[2]
    assert result.eigenvector.dtype == np.float64
    np.testing.assert_array_equal(result.eigenvector[0], [0.0, 0.0, 1.0])
    for i in (1, 2):
        alone = power_iteration(A, v0[i], tol=1e-10)
        assert result.iterations[i] == alone.iterations
        np.testing.assert_allclose(result.eigenvector[i], alone.eigenvector, rtol=1e-12)
        assert result.eigenvalue_history[i].tolist() == alone.eigenvalue_history.tolist()


def test_complex_dominant_eigenvalue_is_complex():
    # d^H A d keeps its imaginary part: the dominant eigenvalue of diag(2i, 1, 0.5) is 2i.
    A = np.diag([2.0j, 1.0, 0.5])
    result = power_iteration(A, np.ones(3, dtype=np.complex128), tol=1e-10)
    assert result.status == SolverStatus.CONVERGED
    assert np.iscomplexobj(result.eigenvalue)
    assert result.eigenvalue == pytest.approx(2.0j, rel=1e-9, abs=0.0)


def test_complex_operator_with_real_starts_in_a_batch():
    # Real start vectors become complex iterates for a complex operator, also for the
    # samples that keep running after another one has converged (their rows are written
    # back into the shared array of iterates).
    A = np.stack([np.diag([2.0j, 1.0, 0.5]), np.diag([3.0j, 2.9, 0.1])])
    result = power_iteration(A, np.ones((2, 3)), tol=1e-8)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CONVERGED]
    assert result.iterations[0] < result.iterations[1]
    assert result.eigenvector.dtype == np.complex128
    np.testing.assert_allclose(result.eigenvalue, [2.0j, 3.0j], rtol=1e-7)


def test_torch_batch_equals_numpy_batch():
    torch = pytest.importorskip("torch")
    A = np.stack([np.diag([3.0, 1.0, 0.0]), np.diag([-2.0, 1.9, 0.5])])
    v0 = np.array([[1.0, 0.1, 0.0], [1.0, 1.0, 1.0]])
    ref = power_iteration(A, v0, tol=1e-10)
    out = power_iteration(torch.from_numpy(A), torch.from_numpy(v0), tol=1e-10)
    assert isinstance(out.eigenvector, torch.Tensor)
    assert out.status.tolist() == ref.status.tolist()
    assert out.iterations.tolist() == ref.iterations.tolist()
    np.testing.assert_allclose(out.eigenvalue, ref.eigenvalue, rtol=1e-12)
    np.testing.assert_allclose(out.residual_norm, ref.residual_norm, rtol=1e-6, atol=1e-12)


def test_seeded_random_starts_are_reproducible_and_batch_size_counts_them():
    # Three random starts on one shared operator: the same seed gives the same iterates.
    A3 = np.diag([4.0, 2.0, 1.0])
    first = power_iteration(A3, seed=7, batch_size=3, tol=1e-8)
    again = power_iteration(A3, seed=7, batch_size=3, tol=1e-8)
    assert first.batch_size == 3 and first.eigenvector.shape == (3, 3)
    for h1, h2 in zip(first.eigenvalue_history, again.eigenvalue_history, strict=True):
        np.testing.assert_array_equal(h1, h2)
    np.testing.assert_allclose(first.eigenvalue, [4.0, 4.0, 4.0], rtol=1e-7)
