"""Tests that kill the mutants mutmut left alive in krylovadv/lanczos.py.

Exact answers come from ``numpy.linalg.eigh``/diagonal matrices; the counts
(products, restart cycles, breakdowns) follow from the algorithm's definition:
one product per Lanczos step, ``ncv`` steps in the first cycle, ``ncv - keep``
after each thick restart with ``keep = k + (ncv - k) // 2``.
"""

from __future__ import annotations

import numpy as np
import pytest

from krylovadv import SolverStatus, aslinearoperator, eigsh

EPS = float(np.finfo(np.float64).eps)
DIAG5 = np.diag([1.0, 2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((5,), {}, r"^k must satisfy 1 <= k < n = 5; got k=5\.$"),
        ((0,), {}, r"^k must satisfy 1 <= k < n = 5; got k=0\.$"),
        ((2,), {"ncv": 2}, r"^ncv must satisfy k < ncv <= n \(2 < ncv <= 5\); got 2\.$"),
        ((2,), {"ncv": 6}, r"^ncv must satisfy k < ncv <= n \(2 < ncv <= 5\); got 6\.$"),
        ((2,), {"which": "BE"}, r"^which must be 'LA', 'SA' or 'LM'; got 'BE'\.$"),
        ((2,), {"maxiter": 0}, r"^maxiter must be >= 1; got 0\.$"),
        ((2,), {"tol": -1e-3}, r"^tol must be finite and >= 0; got -0\.001\.$"),
        ((2,), {"tol": np.nan}, r"^tol must be finite and >= 0; got nan\.$"),
        ((2,), {"tol": np.inf}, r"^tol must be finite and >= 0; got inf\.$"),
    ],
)
def test_bad_arguments_are_named_with_their_bounds(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        eigsh(DIAG5, *args, **kwargs)


def test_the_extreme_valid_arguments_are_accepted():
    # k = 1 and k = n - 1, ncv = k + 1 and ncv = n, maxiter = 1, tol = 0: all valid.
    for k, ncv in ((1, 2), (4, 5), (1, 5)):
        result = eigsh(DIAG5, k, ncv=ncv, maxiter=1, tol=0.0, rng=0, which="LA")
        assert result.eigenvalues.shape == (k,)
        assert result.iterations == 1


def test_default_basis_size_is_scipys():
    # ncv = min(n, max(2k + 1, 20)): one cycle of maxiter=1 costs exactly ncv products.
    A = np.diag(np.arange(1.0, 101.0))
    for k, ncv in ((3, 20), (12, 25)):
        result = eigsh(A, k, which="SA", maxiter=1, rng=0)
        assert result.status == SolverStatus.MAX_ITERATIONS
        assert result.matvecs == ncv and result.iterations == 1
        assert np.all(np.isfinite(result.eigenvalues)) and np.all(result.residual_norm > 0)


def test_default_maxiter_and_restart_bookkeeping():
    # A cyclic permutation is not symmetric: its Ritz pairs never converge, so the
    # default budget 10 n of cycles runs out.  Cycle 1 costs ncv = 3 products, every
    # later cycle ncv - keep = 3 - 2 = 1 (keep = k + (ncv - k) // 2 = 2).
    n = 6
    P = np.roll(np.eye(n), 1, axis=0)
    result = eigsh(P, 1, ncv=3, rng=0)
    assert result.status == SolverStatus.MAX_ITERATIONS and not result.converged
    assert result.iterations == 10 * n
    assert result.matvecs == 3 + (10 * n - 1) * 1
    assert len(result.eigenvalue_history) == result.matvecs


def test_a_full_basis_makes_every_ritz_pair_exact():
    # ncv = n: after n steps the basis spans R^n and the Ritz values are the eigenvalues.
    result = eigsh(DIAG5, 3, rng=0)
    assert result.status == SolverStatus.CONVERGED
    assert result.matvecs == 5 and result.iterations == 1
    np.testing.assert_allclose(result.eigenvalues, [3.0, 4.0, 5.0], rtol=4 * EPS)
    history = result.eigenvalue_history
    assert history.shape == (5, 3)
    # While the basis holds fewer than k vectors the missing values are NaN (at the end).
    assert np.isfinite(history[0, 0]) and np.isnan(history[0, 1:]).all()
    assert np.isfinite(history[1, :2]).all() and np.isnan(history[1, 2])
    assert np.isfinite(history[2:]).all()
    # Each row is sorted ascending, and the last is the answer.
    assert np.all(np.diff(history[2:], axis=1) >= 0)
    np.testing.assert_allclose(history[-1], [3.0, 4.0, 5.0], rtol=4 * EPS)


def test_result_reads_as_scipys_answer():
    result = eigsh(DIAG5, 3, rng=0)
    assert len(result) == 2
    assert result[0] is result.eigenvalues and result[1] is result.eigenvectors
    assert result[np.int64(0)] is result.eigenvalues
    w, v = result
    assert w is result.eigenvalues and v.shape == (5, 3)
    with pytest.raises(TypeError, match=r"^EigshResult indexes like scipy's \(w, v\) pair"):
        result["w"]
    values = eigsh(DIAG5, 3, rng=0, return_eigenvectors=False)
    assert values.eigenvectors is None
    assert len(values) == 3 and values[2] == values.eigenvalues[2]
    assert list(values) == list(values.eigenvalues)
    as32 = np.asarray(values, dtype=np.float32)
    assert as32.dtype == np.float32 and as32.shape == (3,)
    assert repr(values) == "EigshResult(status=CONVERGED, eigenvalues=[3. 4. 5.], matvecs=5)"


def test_batched_results_and_shared_operator_batches():
    single = eigsh(DIAG5, 2, which="LA", rng=3)
    batch = eigsh(DIAG5, 2, which="LA", rng=3, batch_size=3, return_eigenvectors=False)
    # One draw shared by every sample (so a batch equals a loop): identical rows.
    assert batch.eigenvalues.shape == (3, 2) and batch.batch_size == 3
    for i in range(3):
        np.testing.assert_array_equal(batch.eigenvalues[i], single.eigenvalues)
        one = batch.sample(i)
        assert one.eigenvectors is None and not one.batched
        assert one.matvecs == single.matvecs and one.status == single.status
    assert repr(batch) == "EigshResult(batch=3, status={'CONVERGED': 3}, matvecs=[5, 5, 5])"
    with_vectors = eigsh(np.stack([DIAG5, 2 * DIAG5]), 2, which="LA", rng=3)
    assert with_vectors.eigenvectors.shape == (2, 5, 2)
    np.testing.assert_allclose(with_vectors.sample(1).eigenvalues, [8.0, 10.0], rtol=4 * EPS)
    assert with_vectors.sample(1).eigenvectors.shape == (5, 2)


def test_the_seed_decides_the_start():
    A = np.diag(np.arange(1.0, 41.0))
    a = eigsh(A, 2, which="LA", rng=7, ncv=6)
    b = eigsh(A, 2, which="LA", rng=7, ncv=6)
    c = eigsh(A, 2, which="LA", rng=8, ncv=6)
    np.testing.assert_array_equal(a.eigenvalue_history, b.eigenvalue_history)
    assert a.eigenvalue_history[0, 0] != c.eigenvalue_history[0, 0]


def test_non_finite_sample_stops_alone():
    n = 10
    A = np.diag(np.arange(1.0, n + 1))

    def products(X, idx):
        idx = np.asarray(idx)
        Y = X @ A
        Y[idx == 1] = np.nan  # sample 1's operator is broken
        return Y

    op = aslinearoperator(products, shape=(n, n), batch_size=2, vectorized=True, pass_indices=True)
    result = eigsh(op, 2, which="LA", v0=np.ones((2, n)), ncv=6, rng=0)
    np.testing.assert_array_equal(result.status, [SolverStatus.CONVERGED, SolverStatus.NON_FINITE])
    np.testing.assert_array_equal(result.converged, [True, False])
    assert result.matvecs[1] == 1 and result.iterations[1] == 1
    assert np.isnan(result.eigenvalues[1]).all() and np.isinf(result.residual_norm[1]).all()
    np.testing.assert_allclose(result.eigenvalues[0], [9.0, 10.0], rtol=1e-12)
    assert result.eigenvalue_history[1].shape == (0,)
    assert result.sample(1).status == SolverStatus.NON_FINITE


def test_complex_hermitian_operator():
    rng = np.random.default_rng(5)
    n = 30
    M = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    H = (M + M.conj().T) / 2
    exact = np.linalg.eigvalsh(H)
    for which, wanted in (("LA", exact[-3:]), ("SA", exact[:3])):
        result = eigsh(H, 3, which=which, rng=0, ncv=12)
        assert result.status == SolverStatus.CONVERGED
        assert result.eigenvalues.dtype == np.float64
        np.testing.assert_allclose(result.eigenvalues, wanted, atol=1e-10 * np.abs(exact).max())
        V = result.eigenvectors
        assert V.dtype == np.complex128
        np.testing.assert_allclose(V.conj().T @ V, np.eye(3), atol=1e-10)
        true = np.linalg.norm(H @ V - V * result.eigenvalues, axis=0)
        np.testing.assert_allclose(result.residual_norm, true, atol=1e-10)


def test_one_breakdown_is_counted_once_and_the_basis_stays_orthonormal():
    # v0 in a 3-dimensional invariant subspace of a diagonal A: exactly one breakdown,
    # after 3 steps; the fresh vector must be orthogonal to the basis so that the
    # eigenvectors found after it are orthonormal and their residuals true.
    n = 12
    eig = np.linspace(1.0, 10.0, n)
    A = np.diag(eig)
    v0 = np.zeros(n)
    v0[[0, 1, n - 1]] = [0.6, 0.7, 0.8]
    result = eigsh(A, 5, which="LA", v0=v0, rng=0)
    assert result.status == SolverStatus.CONVERGED
    assert result.invariant_subspaces == 1
    np.testing.assert_allclose(result.eigenvalues, eig[-5:], atol=1e-12)
    V = result.eigenvectors
    np.testing.assert_allclose(V.T @ V, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(
        result.residual_norm, np.linalg.norm(A @ V - V * result.eigenvalues, axis=0), atol=1e-12
    )
