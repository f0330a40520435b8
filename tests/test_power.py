"""Verification tests for krylovadv.power_iteration."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

from krylovadv import SolverStatus, aslinearoperator, power_iteration


def gapped_symmetric(seed: int, n: int, ratio: float, sign: float = 1.0):
    """Symmetric A with dominant eigenvalue lam1 and |lam_i / lam1| <= ratio otherwise."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lam1 = sign * rng.uniform(0.5, 10.0)
    rest = rng.uniform(-ratio, ratio, n - 1) * abs(lam1)
    rest[0] = ratio * abs(lam1) * rng.choice([-1.0, 1.0])  # the gap is exactly `ratio`
    eigenvalues = np.concatenate([[lam1], rest])
    A = (Q * eigenvalues) @ Q.T
    return (A + A.T) / 2, eigenvalues, Q[:, 0]


def eigen_residual(A, lam, d) -> float:
    A, d = np.asarray(A, dtype=np.float64), np.asarray(d, dtype=np.float64)
    return float(np.linalg.norm(A @ d - lam * d))


@given(
    n=st.integers(2, 30),
    seed=seeds,
    ratio=st.floats(0.05, 0.8),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_dominant_eigenpair_matches_eigh_and_eigsh(n, seed, ratio, sign):
    A, eigenvalues, q1 = gapped_symmetric(seed, n, ratio, sign)
    tol = 1e-8
    result = power_iteration(A, tol=tol, seed=seed)
    assert result.status == SolverStatus.CONVERGED and result.converged
    lam = result.eigenvalue
    d = result.eigenvector
    # Eigen-residual contract, recomputed.
    assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-14)
    assert eigen_residual(A, lam, d) <= tol * abs(lam) + 1e-14 * abs(lam)
    assert result.residual_norm == pytest.approx(eigen_residual(A, lam, d), rel=1e-6, abs=1e-15)
    # Against LAPACK and ARPACK.
    w = np.linalg.eigh(A)[0]
    lam_ref = w[np.argmax(np.abs(w))]
    assert lam_ref == pytest.approx(eigenvalues[0], rel=1e-12)
    lam_arpack = sla.eigsh(A, k=1, which="LM", return_eigenvectors=False)[0]
    assert abs(lam - lam_ref) <= tol * abs(lam_ref)
    assert abs(lam - lam_arpack) <= tol * abs(lam_ref) + 1e-12 * abs(lam_ref)
    assert np.sign(lam) == sign
    # Eigenvector: sin(angle) <= residual / gap (Davis-Kahan).
    gap = (1 - ratio) * abs(eigenvalues[0])
    sin_angle = np.sqrt(max(0.0, 1 - float(np.dot(d, q1)) ** 2))
    assert sin_angle <= 1.01 * tol * abs(lam) / gap + 1e-7
    # History: one Rayleigh quotient per product.
    assert len(result.eigenvalue_history) == result.iterations
    assert result.eigenvalue_history[-1] == lam


def test_negative_dominant_eigenvalue():
    result = power_iteration(np.diag([1.0, -5.0, 2.0]), seed=0, tol=1e-10)
    assert result.status == SolverStatus.CONVERGED
    assert result.eigenvalue == pytest.approx(-5.0, rel=1e-10)
    assert abs(result.eigenvector[1]) == pytest.approx(1.0, rel=1e-10)


@given(n=st.integers(2, 20), B=st.integers(2, 4), seed=seeds)
def test_batch_equals_loop(n, B, seed):
    mats = [gapped_symmetric(seed + i, n, 0.7, (-1.0) ** i)[0] for i in range(B)]
    A = np.stack(mats)
    v0 = np.random.default_rng(seed).standard_normal((B, n))
    batch = power_iteration(A, v0, tol=1e-9)
    assert batch.batch_size == B and batch.eigenvector.shape == (B, n)
    for i in range(B):
        single = power_iteration(A[i], v0[i], tol=1e-9)
        assert batch.sample(i).status == single.status == SolverStatus.CONVERGED
        assert batch.sample(i).iterations == single.iterations
        assert batch.sample(i).eigenvalue == pytest.approx(single.eigenvalue, rel=1e-12)
        np.testing.assert_allclose(batch.sample(i).eigenvector, single.eigenvector, atol=1e-10)


def test_batch_with_shared_operator_and_random_starts():
    A = gapped_symmetric(3, 10, 0.5)[0]
    result = power_iteration(A, seed=1, batch_size=3, tol=1e-9)
    assert result.eigenvector.shape == (3, 10)
    assert np.all(result.converged)
    np.testing.assert_allclose(result.eigenvalue, result.eigenvalue[0], rtol=1e-8)
    assert len(result.eigenvalue_history) == 3


def test_compaction_only_multiplies_running_samples():
    A = np.stack([gapped_symmetric(s, 8, r)[0] for s, r in ((0, 0.1), (1, 0.8))])
    calls = []

    def matvec(X, idx):
        calls.append(np.asarray(idx).tolist())
        return np.einsum("kij,kj->ki", A[np.asarray(idx)], X)

    op = aslinearoperator(matvec, shape=(8, 8), batch_size=2, vectorized=True, pass_indices=True)
    result = power_iteration(op, np.ones((2, 8)), tol=1e-9)
    assert np.all(result.converged)
    assert result.iterations[0] < result.iterations[1]
    assert sum(0 in c for c in calls) == result.iterations[0]
    assert sum(1 in c for c in calls) == result.iterations[1]
    assert calls[-1] == [1]


def test_seed_reproducibility():
    A = gapped_symmetric(5, 15, 0.6)[0]
    first = power_iteration(A, seed=123)
    again = power_iteration(A, seed=123)
    assert first.eigenvalue == again.eigenvalue
    assert first.iterations == again.iterations
    assert np.array_equal(first.eigenvector, again.eigenvector)
    gen = power_iteration(A, seed=np.random.default_rng(123))
    assert gen.eigenvalue == first.eigenvalue
    other = power_iteration(A, seed=7)
    assert first.converged and other.converged
    assert other.eigenvalue == pytest.approx(first.eigenvalue, rel=1e-5)
    assert not np.array_equal(other.eigenvector, first.eigenvector)


def test_start_vector_in_null_space_breaks_down():
    result = power_iteration(np.diag([3.0, 1.0, 0.0]), np.array([0.0, 0.0, 2.0]))
    assert result.status == SolverStatus.BREAKDOWN
    assert not result.converged
    assert result.iterations == 1
    # Batched: only the null-space sample breaks down.
    A = np.stack([np.diag([3.0, 1.0, 0.0])] * 2)
    v0 = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    result = power_iteration(A, v0, tol=1e-9)
    assert result.status.tolist() == [SolverStatus.BREAKDOWN, SolverStatus.CONVERGED]
    assert result.eigenvalue[1] == pytest.approx(3.0, rel=1e-9)


def test_max_iterations():
    A = gapped_symmetric(2, 20, 0.8)[0]
    result = power_iteration(A, seed=0, tol=1e-12, maxiter=3)
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert not result.converged and result.iterations == 3
    assert np.all(np.isfinite(result.eigenvector))
    # +-lambda: the iteration oscillates and cannot converge.
    flip = power_iteration(np.diag([2.0, -2.0, 1.0]), np.ones(3), maxiter=50)
    assert flip.status == SolverStatus.MAX_ITERATIONS


def test_non_finite_operator():
    op = aslinearoperator(lambda v: v * np.nan, shape=(3, 3))
    result = power_iteration(op, np.ones(3))
    assert result.status == SolverStatus.NON_FINITE


def test_invalid_tolerances_and_inputs():
    A = np.diag([3.0, 1.0])
    with pytest.raises(ValueError):
        power_iteration(A, np.ones(2), tol=1e-17)  # below float64 eps
    with pytest.raises(ValueError):
        power_iteration(A.astype(np.float32), np.ones(2, dtype=np.float32), tol=1e-8)
    with pytest.raises(ValueError):
        power_iteration(A.astype(np.float32), tol=1e-8)  # random start takes A's dtype
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError):
            power_iteration(A, np.ones(2), tol=bad)
    with pytest.raises(ValueError):
        power_iteration(A, np.ones(2), maxiter=0)
    with pytest.raises(ValueError):
        power_iteration(A, np.zeros(2))
    with pytest.raises(ValueError):
        power_iteration(A, np.ones(3))
    with pytest.raises(ValueError):
        power_iteration(A, np.array([1.0, np.nan]))
    with pytest.raises(TypeError):
        power_iteration(A, np.ones(2, dtype=np.int64))


def test_torch_matches_numpy():
    A = gapped_symmetric(9, 12, 0.5, -1.0)[0]
    v0 = np.random.default_rng(0).standard_normal(12)
    ref = power_iteration(A, v0, tol=1e-10)
    out = power_iteration(torch.from_numpy(A), torch.from_numpy(v0), tol=1e-10)
    assert isinstance(out.eigenvector, torch.Tensor)
    assert out.eigenvector.dtype == torch.float64
    assert out.iterations == ref.iterations
    assert out.eigenvalue == pytest.approx(ref.eigenvalue, rel=1e-12)
    np.testing.assert_allclose(out.eigenvector.numpy(), ref.eigenvector, atol=1e-12)
    # The default random start follows a dense torch A.
    out = power_iteration(torch.from_numpy(A), seed=0, tol=1e-10)
    assert isinstance(out.eigenvector, torch.Tensor)
    assert out.eigenvalue == pytest.approx(ref.eigenvalue, rel=1e-9)
