"""Conjugate gradients: the true-residual contract, scipy agreement, negative curvature."""

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

from krylovadv import SolverStatus, cg


def _counting(A: np.ndarray) -> tuple[spla.LinearOperator, list[int]]:
    count = [0]

    def matvec(v):
        count[0] += 1
        return A @ v

    return spla.LinearOperator(A.shape, matvec=matvec, dtype=A.dtype), count


def _true_residual(A, x, b):
    return np.linalg.norm(b.astype(np.float64) - A.astype(np.float64) @ x.astype(np.float64))


@given(quadratics(("spd",), max_n=40))
def test_cg_meets_the_true_residual_contract_and_agrees_with_scipy(q):
    rtol = 1e-8
    result = cg(q.A, q.b, rtol=rtol, maxiter=20 * q.n)
    assert result.status == SolverStatus.CONVERGED
    tol = rtol * np.linalg.norm(q.b)
    assert result.residual_norm <= tol
    # residual_norm is the true residual of the returned x (recomputed here).
    assert np.isclose(result.residual_norm, _true_residual(q.A, result.x, q.b), rtol=1e-6, atol=0)
    op, count = _counting(q.A)
    x_ref, info = spla.cg(op, q.b, rtol=rtol, maxiter=20 * q.n)
    assert info == 0
    np.testing.assert_allclose(result.x, x_ref, atol=1e3 * q.cond * tol / np.linalg.norm(q.A, 2))
    # Same recurrence: the same number of products up to the final true-residual check.
    assert abs(result.matvecs - count[0]) <= 2


@given(quadratic_batches(families=("spd", "indefinite"), max_n=15), seeds)
def test_batch_equals_loop(qs, seed):
    rng = np.random.default_rng(seed)
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    x0 = rng.standard_normal(b.shape)
    x0_copy = x0.copy()
    assert_batch_equals_loop(cg, A, b, x0, qs, rtol=1e-8)
    assert np.array_equal(x0, x0_copy)


@given(st.integers(2, 30), seeds)
def test_indefinite_matrix_reports_negative_curvature_direction(n, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = rng.uniform(0.5, 2.0, n)
    eig[0] = -rng.uniform(0.5, 2.0)  # one negative eigenvalue, in every Krylov space
    A = (q * eig) @ q.T
    A = (A + A.T) / 2
    b = rng.standard_normal(n)
    result = cg(A, b, rtol=1e-12, maxiter=10 * n)
    if result.status == SolverStatus.CONVERGED:
        # CG can pass an indefinite system without meeting d^T A d <= 0 (a valid
        # outcome); then the solution must be right.
        np.testing.assert_allclose(A @ result.x, b, atol=1e-8 * np.linalg.norm(b) * n)
        return
    assert result.status == SolverStatus.NEGATIVE_CURVATURE
    d = result.curvature_direction
    eps = np.finfo(np.float64).eps
    assert np.linalg.norm(d) > 0
    assert d @ A @ d <= eps * np.linalg.norm(d) * np.linalg.norm(A @ d) * 10
    assert np.isclose(result.curvature, d @ A @ d / (d @ d), rtol=1e-8, atol=1e-12)
    # The reported residual is the true residual of the returned iterate.
    assert np.isclose(result.residual_norm, _true_residual(A, result.x, b), rtol=1e-8)


def test_negative_curvature_is_per_sample_in_a_batch():
    A = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([1.0, -2.0, 3.0])])
    b = np.ones((2, 3))
    result = cg(A, b, rtol=1e-10)
    assert result.sample(0).status == SolverStatus.CONVERGED
    assert result.sample(1).status == SolverStatus.NEGATIVE_CURVATURE
    assert np.all(result.curvature_direction[0] == 0) and np.isnan(result.curvature[0])
    d = result.curvature_direction[1]
    assert d @ A[1] @ d < 0


@given(st.integers(3, 25), seeds)
def test_singular_consistent_psd_gives_the_minimum_norm_solution(n, seed):
    q = build_quadratic("singular_consistent", n, seed)
    result = cg(q.A, q.b, rtol=1e-12, atol=1e-14 * np.linalg.norm(q.b), maxiter=10 * n)
    assert result.status == SolverStatus.CONVERGED
    x_min = np.linalg.pinv(q.A) @ q.b
    np.testing.assert_allclose(result.x, x_min, atol=1e-6 * np.linalg.norm(x_min) * q.cond)


@given(quadratics(("spd",), dtypes=(np.float32,)))
def test_float32_torch_meets_the_contract(q):
    torch = pytest.importorskip("torch")
    A, b = torch.from_numpy(q.A), torch.from_numpy(q.b)
    result = cg(A, b, rtol=1e-3, maxiter=50 * q.n)
    assert isinstance(result.x, torch.Tensor) and result.x.dtype == torch.float32
    if result.status == SolverStatus.CONVERGED:
        assert result.residual_norm <= 1e-3 * float(torch.linalg.vector_norm(b))
    else:  # float32 may not reach it on ill-conditioned members: say so, honestly
        assert result.status == SolverStatus.STAGNATION
    true = float(torch.linalg.vector_norm(b - A @ result.x))
    assert np.isclose(result.residual_norm, true, rtol=1e-3)


def test_jacobi_preconditioner_agrees_with_scipy():
    q = build_quadratic("spd", 40, 3)
    D = np.diag(np.diag(q.A) * np.linspace(1, 100, 40))
    A = D @ q.A @ D  # badly scaled, Jacobi helps
    M = np.diag(1.0 / np.diag(A))
    result = cg(A, q.b, rtol=1e-8, M=M, maxiter=2000)
    x_ref, info = spla.cg(A, q.b, rtol=1e-8, M=M, maxiter=2000)
    assert result.converged and info == 0
    np.testing.assert_allclose(A @ result.x, q.b, atol=1e-8 * np.linalg.norm(q.b) * 1.01)
    cond = np.linalg.cond(A)
    np.testing.assert_allclose(result.x, x_ref, atol=1e-7 * cond * np.linalg.norm(x_ref))
    assert abs(result.iterations - cg(A, q.b, rtol=1e-8, maxiter=2000).iterations) > 0


def test_scipy_unpacking_callback_and_zero_rhs():
    A = np.diag([1.0, 2.0, 3.0, 4.0])
    x, info = cg(A, np.ones(4), rtol=1e-10)
    assert info == 0
    np.testing.assert_allclose(x, 1.0 / np.diag(A))
    seen = []
    result = cg(A, np.ones(4), callback=lambda xk: seen.append(xk.copy()) or len(seen) >= 2)
    assert result.status == SolverStatus.CALLBACK and len(seen) == 2
    assert result.info == result.iterations == 2
    zero = cg(A, np.zeros(4), np.ones(4))
    assert zero.converged and np.all(zero.x == 0) and zero.matvecs == 0


def test_bad_input_names_the_argument():
    A = np.eye(3)
    with pytest.raises(ValueError, match="b has shape"):
        cg(A, np.ones(4))
    with pytest.raises(ValueError, match="maxiter"):
        cg(A, np.ones(3), maxiter=0)
    with pytest.raises(ValueError, match="NaN"):
        cg(A, np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="positive definite"):
        cg(np.diag([1.0, 2.0, 3.0]), np.ones(3), M=-np.eye(3))


def test_only_unfinished_samples_reach_the_operator():
    A = np.stack([np.diag([1.0, 2.0, 3.0, 4.0]), np.diag([1.0, 5.0, 9.0, 20.0])])
    op, seen = recording_operator(A)
    b = np.stack([np.array([1.0, 0.0, 0.0, 0.0]), np.ones(4)])  # sample 0: one step
    result = cg(op, b, rtol=1e-10)
    assert result.converged.all() and result.iterations[0] < result.iterations[1]
    assert [1] in seen and seen[0] == [0, 1]
    # Every product is counted for its own sample only.
    assert sum(len(s) for s in seen) == int(result.matvecs.sum())


@pytest.mark.parametrize("solver", ["cg", "minres", "gmres"])
def test_result_repr_is_the_short_summary(solver):
    # The three results share one __repr__ (krylovadv._results.SolveResult); a dataclass
    # subclass that forgot repr=False would print every array instead.
    import krylovadv

    solve = getattr(krylovadv, solver)
    A = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([2.0, 3.0, 4.0])])
    name = type(solve(A, np.ones((2, 3)))).__name__
    batch = solve(A, np.ones((2, 3)), rtol=1e-10)
    assert repr(batch) == f"{name}(batch=2, status={{'CONVERGED': 2}}, iterations=[3, 3])"
    single = batch.sample(0)
    assert repr(single) == (
        f"{name}(status=CONVERGED, iterations=3, residual_norm={single.residual_norm:.3e})"
    )
