"""MINRES: true-residual contract, scipy agreement, minimum-norm and least-squares solutions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    assert_batch_equals_loop,
    build_quadratic,
    quadratic_batches,
    quadratics,
    recording_operator,
    seeds,
)

from krylovadv import SolverStatus, minres

SYMMETRIC_NONSINGULAR = ("spd", "indefinite", "clustered", "k_distinct")


def scipy_matvecs_to_reach(A: np.ndarray, b: np.ndarray, tol: float, **kwargs) -> int | None:
    """Products scipy's minres needs until its iterate's *true* residual is <= tol."""
    count, hit = [0], [None]

    def matvec(v):
        count[0] += 1
        return A @ v

    def callback(xk):
        if hit[0] is None and np.linalg.norm(b - A @ xk) <= tol:
            hit[0] = count[0]

    op = spla.LinearOperator(A.shape, matvec=matvec, dtype=A.dtype)
    spla.minres(op, b, rtol=1e-15, maxiter=20 * A.shape[0], callback=callback, **kwargs)
    return hit[0]


@given(quadratics(SYMMETRIC_NONSINGULAR, max_n=40))
def test_minres_meets_the_contract_and_matches_scipy_products(q):
    rtol = 1e-8
    result = minres(q.A, q.b, rtol=rtol, maxiter=20 * q.n)
    tol = rtol * np.linalg.norm(q.b)
    assert result.status == SolverStatus.CONVERGED
    assert result.residual_norm <= tol
    true = np.linalg.norm(q.b - q.A @ result.x)
    assert np.isclose(result.residual_norm, true, rtol=1e-6)
    np.testing.assert_allclose(result.x, q.solution(), atol=10 * q.cond * tol / np.abs(q.A).max())
    # Same Krylov iterates as scipy: products to reach the same true residual agree
    # within 2 (ours include one product for the final true-residual check).
    reference = scipy_matvecs_to_reach(q.A, q.b, tol)
    assert reference is not None
    assert abs(result.matvecs - reference) <= 2


@given(st.integers(3, 30), seeds)
def test_singular_consistent_system_gives_the_pseudoinverse_solution(n, seed):
    # An explicit rank-deficient PSD matrix (the exact ReLU input Hessian's structure).
    q = build_quadratic("singular_consistent", n, seed)
    result = minres(q.A, q.b, rtol=1e-12, maxiter=10 * n)
    assert result.status == SolverStatus.CONVERGED
    x_min = np.linalg.pinv(q.A) @ q.b
    np.testing.assert_allclose(result.x, x_min, atol=1e-8 * np.linalg.norm(x_min) * q.cond)
    # x lies in the range of A: no component along the null space.
    _, _, vt = np.linalg.svd(q.A)
    null = vt[q.rank :]
    assert np.linalg.norm(null @ result.x) <= 1e-8 * np.linalg.norm(result.x) * q.cond


@given(st.integers(4, 30), seeds)
def test_singular_inconsistent_system_stops_with_a_least_squares_solution(n, seed):
    q = build_quadratic("singular_consistent", n, seed)
    rng = np.random.default_rng(seed)
    _, _, vt = np.linalg.svd(q.A)
    b = q.b + vt[-1] * (1.0 + rng.uniform())  # a component outside the range
    result = minres(q.A, b, rtol=1e-10, maxiter=10 * n)
    assert result.status == SolverStatus.BREAKDOWN
    assert np.all(np.isfinite(result.x))
    r = b - q.A @ result.x
    # Least squares: the residual is orthogonal to the range (A r ~ 0) and its norm is
    # the distance of b to the range.
    assert np.linalg.norm(q.A @ r) <= 1e-6 * np.linalg.norm(q.A, 2) * np.linalg.norm(r)
    best = np.linalg.norm(b - q.A @ (np.linalg.pinv(q.A) @ b))
    assert np.isclose(result.residual_norm, best, rtol=1e-6)


@given(quadratic_batches(families=SYMMETRIC_NONSINGULAR, max_n=15), seeds)
def test_batch_equals_loop(qs, seed):
    rng = np.random.default_rng(seed)
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    x0 = rng.standard_normal(b.shape)
    x0[0] = 0.0
    assert_batch_equals_loop(minres, A, b, x0, qs, rtol=1e-8)


def test_only_unfinished_samples_reach_the_operator():
    A = np.stack([np.diag([1.0, 2.0, 3.0, 4.0]), np.diag(np.linspace(-3, 5, 4))])
    op, seen = recording_operator(A)
    b = np.stack([np.array([1.0, 0.0, 0.0, 0.0]), np.ones(4)])  # sample 0: one step
    result = minres(op, b, rtol=1e-10)
    assert result.converged.all()
    assert result.iterations[0] < result.iterations[1]
    assert [1] in seen  # sample 1 alone once sample 0 was done


@given(quadratics(("spd", "indefinite"), max_n=25), st.floats(-3.0, 3.0))
def test_shift_follows_scipy(q, shift):
    eig = np.linalg.eigvalsh(q.A)
    if np.min(np.abs(eig - shift)) < 1e-2 * np.max(np.abs(eig - shift)):
        return  # (A - shift I) nearly singular: not this test's subject
    result = minres(q.A, q.b, shift=shift, rtol=1e-10, maxiter=20 * q.n)
    assert result.converged
    x_ref = np.linalg.solve(q.A - shift * np.eye(q.n), q.b)
    np.testing.assert_allclose(result.x, x_ref, rtol=0, atol=1e-6 * np.linalg.norm(x_ref))


@given(quadratics(SYMMETRIC_NONSINGULAR, dtypes=(np.float32,)))
def test_float32_torch(q):
    torch = pytest.importorskip("torch")
    A, b = torch.from_numpy(q.A), torch.from_numpy(q.b)
    result = minres(A, b, rtol=1e-3, maxiter=50 * q.n)
    assert result.x.dtype == torch.float32
    assert result.status in (SolverStatus.CONVERGED, SolverStatus.STAGNATION)
    true = float(torch.linalg.vector_norm(b - A @ result.x))
    assert np.isclose(result.residual_norm, true, rtol=1e-3)
    if result.converged:
        assert true <= 1e-3 * float(torch.linalg.vector_norm(b)) * (1 + 1e-5)


def test_preconditioner_and_check():
    q = build_quadratic("indefinite", 30, 5)
    D = np.diag(np.linspace(1, 50, 30))
    A = D @ q.A @ D
    M = np.diag(1.0 / np.abs(np.diag(A)))
    result = minres(A, q.b, rtol=1e-8, M=M, maxiter=3000, check=True)
    assert result.converged
    np.testing.assert_allclose(A @ result.x, q.b, atol=1.01e-8 * np.linalg.norm(q.b))
    with pytest.raises(ValueError, match="not symmetric"):
        minres(np.triu(np.ones((5, 5))), np.ones(5), check=True)


def test_unpacking_and_errors():
    A = np.diag([2.0, -1.0, 0.0])
    x, info = minres(A, np.array([2.0, 1.0, 0.0]), rtol=1e-12)
    assert info == 0
    np.testing.assert_allclose(x, [1.0, -1.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="shift"):
        minres(A, np.ones(3), shift=np.inf)
    with pytest.raises(ValueError, match="maxiter"):
        minres(A, np.ones(3), maxiter=-1)


def test_memory_does_not_grow_with_the_number_of_steps():
    # Short recurrences: the peak memory of 100 MINRES steps is that of 10, while GMRES
    # stores its basis (measured by tracemalloc, which sees numpy's buffers).
    import tracemalloc

    from krylovadv import aslinearoperator, gmres

    n = 20_000
    diagonal = np.geomspace(1.0, 1e4, n)
    A = aslinearoperator(lambda X: X * diagonal, shape=(n, n), vectorized=True)
    b = np.random.default_rng(0).standard_normal(n)

    def peak(run):
        tracemalloc.start()
        tracemalloc.reset_peak()
        run()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    minres_10 = peak(lambda: minres(A, b, rtol=0.0, maxiter=10))
    minres_100 = peak(lambda: minres(A, b, rtol=0.0, maxiter=100))
    gmres_100 = peak(lambda: gmres(A, b, rtol=0.0, restart=100, maxiter=1))
    vector = 8 * n
    assert minres_100 <= minres_10 + 2 * vector
    assert minres_100 <= 25 * vector
    assert gmres_100 >= 101 * vector
