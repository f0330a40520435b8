"""GMRES on the hard problem families of krylovadv.testing: the contract and exact statuses.

Tolerances are the dtype's, with the reason stated where used:

* a claimed convergence is checked on the residual recomputed in double
  precision, allowing the rounding of a residual computed in working precision,
  ``(n+1) eps (|| |A||x| || + ||b||)`` (:func:`krylovadv.testing.residual_allowance`);
* full GMRES is backward stable (Paige, Rozložník & Strakoš 2006), so with an
  unreachable tolerance its normwise backward error ends at ``O(n eps)``;
* every documented status (docs/contract.rst) is asserted exactly on a problem
  built to produce it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from krylovadv import FunctionOperator, SolverStatus, cg, gmres, minres
from krylovadv.testing import (
    HARD,
    backward_error,
    build_system,
    linear_systems,
    residual_allowance,
    seeds,
    true_residual,
)
from krylovadv.testing.metrics import eps_of

REAL = (np.float64, np.float32)
CONSISTENT_HARD = tuple(f for f in HARD if f != "singular_inconsistent")
DOCUMENTED = {int(s) for s in SolverStatus} - {int(SolverStatus.NOT_STARTED)}


def assert_honest(p, result, rtol, atol=0.0):
    """A CONVERGED status must hold on the double-precision residual (up to rounding)."""
    assert int(result.status) in DOCUMENTED, result
    assert bool(result.converged) == (result.status == SolverStatus.CONVERGED)
    assert result.x.dtype == p.dtype and np.all(np.isfinite(result.x)), result.x
    true = true_residual(p.A, result.x, p.b)
    if result.converged:
        tol = max(rtol * np.linalg.norm(p.b.astype(np.complex128)), atol)
        assert true <= tol + residual_allowance(p.A, result.x, p.b), (p.family, true, tol)
    # The reported residual is the true one, up to the same rounding.
    assert abs(result.residual_norm - true) <= residual_allowance(p.A, result.x, p.b, factor=2)


@given(p=linear_systems(HARD, dtypes=REAL, max_n=30))
def test_converged_flag_is_honest_on_every_hard_family(p):
    result = gmres(p.A, p.b)
    assert_honest(p, result, rtol=1e-5)
    if not p.consistent:
        assert not result.converged


@given(p=linear_systems(CONSISTENT_HARD, dtypes=REAL, max_n=30))
def test_full_gmres_is_backward_stable_when_the_tolerance_is_unreachable(p):
    # rtol = 0 asks for more than any dtype allows: the solver must stop by itself
    # (STAGNATION, or CONVERGED if the residual happens to round to exactly 0) at a
    # backward error of O(n eps); observed <= 0.11 n eps, bound n eps.
    result = gmres(p.A, p.b, rtol=0.0, restart=p.n)
    if result.status == SolverStatus.CONVERGED:
        assert result.residual_norm == 0.0
    else:
        assert result.status == SolverStatus.STAGNATION, (p.family, p.cond, result)
    assert backward_error(p.A, result.x, p.b) <= p.n * eps_of(p.dtype), (p.family, p.cond)


@given(p=linear_systems(CONSISTENT_HARD, dtypes=REAL, max_n=30))
def test_reachable_tolerance_is_reached(p):
    # Backward stability makes ||b - Ax|| ~ n eps ||A|| ||x*|| attainable; a tolerance
    # 10x above that must end CONVERGED (full GMRES: no restart stalls).
    x_star = p.solution()
    floor = p.n * eps_of(p.dtype) * np.linalg.norm(p.A.astype(np.complex128), 2)
    floor *= np.linalg.norm(x_star)
    rtol = 1e-5
    if 10 * floor <= rtol * np.linalg.norm(p.b.astype(np.complex128)):
        result = gmres(p.A, p.b, rtol=rtol, restart=p.n)
        assert result.status == SolverStatus.CONVERGED, (p.family, p.cond, result)
        assert_honest(p, result, rtol)


@given(p=linear_systems(("singular_inconsistent",), dtypes=REAL, min_n=3, max_n=30))
def test_singular_inconsistent_never_converges_and_respects_the_least_residual(p):
    result = gmres(p.A, p.b, restart=p.n)
    assert result.status in (SolverStatus.BREAKDOWN, SolverStatus.STAGNATION), result
    true = true_residual(p.A, result.x, p.b)
    # No x has a residual below min_residual (the null space is exact in floating
    # point), up to the rounding of the residual itself.
    assert true >= p.min_residual - residual_allowance(p.A, result.x, p.b), (true, p.min_residual)
    # GMRES never returns an iterate worse than its start x0 = 0.
    assert true <= np.linalg.norm(p.b.astype(np.float64)) + residual_allowance(p.A, result.x, p.b)


def test_range_symmetric_singular_system_reaches_the_least_squares_residual():
    p = build_system("singular_inconsistent", 20, 10)
    result = gmres(p.A, p.b, restart=p.n)
    true = true_residual(p.A, result.x, p.b)
    assert true <= p.min_residual * (1 + np.sqrt(eps_of(p.dtype))), (true, p.min_residual)


@given(n=st.integers(2, 30), seed=seeds)
def test_defective_matrix_converges_within_the_minimal_polynomial_degree(n, seed):
    # Full GMRES ends in at most deg(minimal polynomial) steps; for Jordan blocks that
    # is the sum of the largest block size per eigenvalue, less than n when defective.
    p = build_system("jordan", n, seed)
    result = gmres(p.A, p.b, rtol=1e-8, restart=n)
    assert result.status == SolverStatus.CONVERGED, result
    assert result.iterations <= p.krylov_degree, (result.iterations, p.krylov_degree)


# ---------------------------------------------------------------------------
# Each documented status on a problem built to produce it.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "seed"), [(np.float64, 0), (np.float32, 1)])
def test_breakdown_when_b_lies_in_the_null_space(dtype, seed):
    p = build_system("singular_inconsistent", 12, seed, dtype)
    null = np.all(p.A == 0, axis=0)  # the exact null space: zero columns (and rows)
    b = np.where(null, p.b, 0).astype(dtype)
    result = gmres(p.A, b)
    # A v_1 = 0: the Krylov space is invariant at once and no step makes progress.
    assert result.status == SolverStatus.BREAKDOWN, result
    assert result.cycles == 1 and result.iterations == 1
    np.testing.assert_array_equal(result.x, np.zeros_like(b))
    assert result.residual_norm == pytest.approx(np.linalg.norm(b.astype(np.float64)), rel=1e-6)


@given(n=st.integers(3, 12), seed=seeds, dtype=st.sampled_from(REAL))
def test_breakdown_on_a_hidden_nilpotent_jordan_block(n, seed, dtype):
    # A = Q J_n(0) Q^T, b = Q e_n: K(A, b) is invariant after n steps, the range of A
    # is span(Q e_1 .. Q e_{n-1}), orthogonal to b, so no step reduces ||b - Ax||:
    # a breakdown with no progress, the documented BREAKDOWN, in the first cycle.
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
    A = (q @ np.eye(n, k=1) @ q.T).astype(dtype)
    b = q[:, -1].astype(dtype)
    result = gmres(A, b)
    assert result.status == SolverStatus.BREAKDOWN, result
    assert result.cycles == 1 and not result.converged
    assert result.residual_norm == pytest.approx(1.0, rel=n * eps_of(dtype) * 10)


@pytest.mark.parametrize(("dtype", "seed"), [(np.float64, 0), (np.float32, 1)])
def test_breakdown_after_reaching_the_least_squares_residual(dtype, seed):
    # A = 3 I on a 4-dimensional range: the first cycle removes the range part of b
    # exactly (two steps), the residual left is the null part, and the next cycle can
    # only break down without progress.
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((6, 6)))[0]
    A = ((q * np.array([3.0, 3.0, 3.0, 3.0, 0.0, 0.0])) @ q.T).astype(dtype)
    b = (q @ np.array([1.0, -2.0, 0.5, 1.0, 2.0, -1.0])).astype(dtype)
    result = gmres(A, b)
    assert true_residual(A, result.x, b) == pytest.approx(np.sqrt(5.0), rel=60 * eps_of(dtype))
    assert result.status == SolverStatus.BREAKDOWN, result


@pytest.mark.parametrize(
    ("dtype", "cond", "rtol"), [(np.float64, 1e10, 1e-14), (np.float32, 1e4, 1e-8)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stagnation_when_rtol_is_below_kappa_eps(dtype, cond, rtol, seed):
    # cond * eps (1e-6 in double, 1e-3 in single) is far above rtol: unreachable.
    p = build_system("ill_conditioned", 20, seed, dtype, cond=cond)
    result = gmres(p.A, p.b, rtol=rtol)
    assert result.status == SolverStatus.STAGNATION, result
    assert result.cycles < 10 * p.n  # stopped by itself, long before maxiter
    assert_honest(p, result, rtol)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_max_iterations_on_convection_with_tiny_restart(seed):
    p = build_system("convection", 25, seed)
    result = gmres(p.A, p.b, rtol=1e-10, restart=2, maxiter=2)
    assert result.status == SolverStatus.MAX_ITERATIONS, result
    assert result.cycles == 2 and result.iterations == 4
    # Two cycles of a minimal-residual method made progress.
    assert result.residual_norm < np.linalg.norm(p.b)


def test_non_finite_from_an_overflowing_float32_operator():
    A = np.array([[3e38, 3e38], [0.0, 1.0]], dtype=np.float32)
    b = np.ones(2, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the point
        result = gmres(A, b)
    # A v_1 = (3e38 sqrt 2, 0.7) overflows float32 in the first product.
    assert result.status == SolverStatus.NON_FINITE, result
    np.testing.assert_array_equal(result.x, np.zeros(2, dtype=np.float32))


@pytest.mark.parametrize("poison_at", [3, 8])
def test_non_finite_keeps_the_last_finite_iterate(poison_at):
    p = build_system("grcar", 30, 0)
    calls = []

    def matvec(x):
        calls.append(1)
        y = p.A @ x
        return y * np.nan if len(calls) == poison_at else y

    result = gmres(FunctionOperator(matvec, (30, 30)), p.b, rtol=1e-12, restart=5)
    assert result.status == SolverStatus.NON_FINITE, result
    assert np.all(np.isfinite(result.x))
    # Poisoned in cycle 1 (x stays 0) or in cycle 2 (x is the end of cycle 1).
    if poison_at <= 6:
        np.testing.assert_array_equal(result.x, np.zeros(30))
    else:
        first = gmres(p.A, p.b, rtol=1e-12, restart=5, maxiter=1)
        np.testing.assert_allclose(result.x, first.x, rtol=1e-12, atol=0)


@pytest.mark.parametrize("family", ["grcar", "convection", "ill_conditioned"])
def test_callback_stops_exactly_where_asked(family):
    p = build_system(family, 20, 3, cond=1e8)
    seen = []

    def stop_at_third(rel):
        seen.append(rel)
        return len(seen) == 3

    result = gmres(p.A, p.b, rtol=1e-12, callback=stop_at_third, callback_type="pr_norm")
    assert result.status == SolverStatus.CALLBACK, result
    assert result.iterations == 3 and result.cycles == 1
    assert not result.converged
    per_cycle = gmres(p.A, p.b, rtol=1e-12, restart=4, callback=lambda x: True, callback_type="x")
    assert per_cycle.status == SolverStatus.CALLBACK and per_cycle.cycles == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # over/underflow is the point here
@pytest.mark.parametrize("solve", [cg, minres], ids=["cg", "minres"])
@pytest.mark.parametrize("exponent", [-200, -160, -150, 150, 160, 200])
def test_symmetric_solvers_never_claim_convergence_at_extreme_magnitudes(solve, exponent):
    """Ax = tb for t far from 1 (docs/contract.rst, "Extreme magnitudes"): cg and minres
    may stop early there, but CONVERGED must still mean a small true residual; in the
    documented safe range (|t| <= 1e150) both converge as at t = 1."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((10, 10))
    A = M @ M.T + 10.0 * np.eye(10)
    t = 10.0**exponent
    b = rng.standard_normal(10) * t
    result = solve(A, b, rtol=1e-10)
    # Measured on the rescaled problem: numpy's norm of a 1e-160 vector underflows.
    residual = np.linalg.norm(b / t - A @ (result.x / t)) / np.linalg.norm(b / t)
    if result.status == SolverStatus.CONVERGED:
        assert residual <= 1e-10 * (1 + 1e-6)
    else:
        assert not residual <= 1e-10
    if abs(exponent) <= 150:
        assert result.status == SolverStatus.CONVERGED
