"""Verification tests for krylovadv.gmres (numpy and torch CPU)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg as sla
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    NONSINGULAR,
    build_quadratic,
    quadratic_batches,
    quadratics,
    seeds,
)

from krylovadv import (
    FunctionOperator,
    GMRESResult,
    SolverStatus,
    aslinearoperator,
    gmres,
)

#: Families where restarted GMRES converges in a few cycles (positive real or
#: few distinct eigenvalues): rounding cannot flip a stopping decision.
FAST_FAMILIES = ("nonsymmetric", "nonnormal", "clustered", "k_distinct")
#: Positive-real families: restarted GMRES provably makes progress every cycle.
POSITIVE_REAL = ("spd", "nonsymmetric", "nonnormal")
RTOL = {np.float64: 1e-10, np.float32: 1e-4}


def eps_of(dtype) -> float:
    return float(np.finfo(dtype).eps)


def residual64(A, b, x) -> float:
    """||b - A x|| evaluated in float64."""
    A, b, x = (np.asarray(a, dtype=np.float64) for a in (A, b, x))
    return float(np.linalg.norm(b - A @ x))


def rounding_slack(A, b, x) -> float:
    """A bound on the rounding error of evaluating b - A x in the working dtype."""
    n = A.shape[0]
    eps = eps_of(A.dtype)
    A64, x64 = A.astype(np.float64), np.asarray(x, dtype=np.float64)
    return (
        4
        * np.sqrt(n)
        * eps
        * (np.linalg.norm(A64, 2) * np.linalg.norm(x64) + np.linalg.norm(b.astype(np.float64)))
    )


def assert_residual_contract(A, b, result, rtol, atol=0.0):
    """A CONVERGED sample meets ||b - A x|| <= max(rtol ||b||, atol) on the true residual."""
    tol = max(rtol * float(np.linalg.norm(b.astype(np.float64))), atol)
    true = residual64(A, b, result.x)
    assert true <= tol + rounding_slack(A, b, result.x), (true, tol, result)


# ---------------------------------------------------------------------------
# Accuracy on nonsingular families
# ---------------------------------------------------------------------------


@given(q=quadratics(NONSINGULAR, dtypes=(np.float64, np.float32), max_n=30))
def test_full_gmres_solves_nonsingular_families(q):
    rtol = RTOL[q.dtype.type]
    result = gmres(q.A, q.b, rtol=rtol, restart=q.n)
    assert np.all(np.isfinite(result.x))
    assert result.x.dtype == q.dtype and result.x.shape == (q.n,)
    if result.status == SolverStatus.CONVERGED:
        assert result.converged
        assert_residual_contract(q.A, q.b, result, rtol)
    # The reported residual is the true one of the returned x.
    assert result.residual_norm == pytest.approx(
        residual64(q.A, q.b, result.x), abs=rounding_slack(q.A, q.b, result.x)
    )
    if q.cond * eps_of(q.dtype) <= rtol / 10:  # rtol is reachable in this dtype
        assert result.status == SolverStatus.CONVERGED, (result, q.family, q.cond)
        x_ref = np.linalg.solve(q.A.astype(np.float64), q.b.astype(np.float64))
        forward = np.linalg.norm(result.x - x_ref) / np.linalg.norm(x_ref)
        assert forward <= 2 * q.cond * (rtol + 10 * q.n * eps_of(q.dtype))


@given(q=quadratics(POSITIVE_REAL, dtypes=(np.float64, np.float32), max_n=40))
def test_restarted_gmres_converges_on_positive_real_families(q):
    rtol = RTOL[q.dtype.type]
    result = gmres(q.A, q.b, rtol=rtol)  # restart = min(20, n)
    if q.cond * eps_of(q.dtype) <= rtol / 10:
        assert result.status == SolverStatus.CONVERGED, (result, q.family, q.cond)
    if result.converged:
        assert_residual_contract(q.A, q.b, result, rtol)


@given(q=quadratics(NONSINGULAR, max_n=20), atol_exp=st.integers(-8, -1))
def test_atol_contract(q, atol_exp):
    atol = 10.0**atol_exp * np.linalg.norm(q.b)
    result = gmres(q.A, q.b, rtol=0.0, atol=atol, restart=q.n)
    assert result.status == SolverStatus.CONVERGED
    assert_residual_contract(q.A, q.b, result, 0.0, atol)


# ---------------------------------------------------------------------------
# Equivalence with scipy.sparse.linalg.gmres
# ---------------------------------------------------------------------------


@given(
    n=st.integers(10, 30),
    seed=seeds,
    family=st.sampled_from(("nonsymmetric", "nonnormal")),
    restart=st.integers(3, 6),
    maxiter=st.integers(1, 4),
    orthogonalization=st.sampled_from(("cgs2", "mgs")),
)
def test_iterates_match_scipy(n, seed, family, restart, maxiter, orthogonalization):
    q = build_quadratic(family, n, seed)
    ours = gmres(
        q.A,
        q.b,
        rtol=1e-14,
        restart=restart,
        maxiter=maxiter,
        orthogonalization=orthogonalization,
    )
    x_scipy, info = sla.gmres(q.A, q.b, rtol=1e-14, restart=restart, maxiter=maxiter)
    err = np.linalg.norm(ours.x - x_scipy) / np.linalg.norm(x_scipy)
    assert err <= 1e-10, (err, ours)
    assert ours.cycles == maxiter or ours.converged
    assert ours.converged == (info == 0)


@given(n=st.integers(10, 30), seed=seeds, family=st.sampled_from(FAST_FAMILIES))
def test_iteration_count_matches_scipy(n, seed, family):
    q = build_quadratic(family, n, seed)
    pr_norms = []
    _, info = sla.gmres(
        q.A, q.b, rtol=1e-8, restart=10, callback=pr_norms.append, callback_type="pr_norm"
    )
    ours = gmres(q.A, q.b, rtol=1e-8, restart=10)
    assert info == 0
    assert ours.status == SolverStatus.CONVERGED
    assert ours.info == 0
    assert ours.iterations == len(pr_norms)
    # And the scipy-style callback sees the same relative estimates.
    # (Without callback_type: scipy's legacy callback, with scipy's DeprecationWarning.)
    seen = []
    with pytest.warns(DeprecationWarning, match="callback_type"):
        gmres(q.A, q.b, rtol=1e-8, restart=10, callback=seen.append)
    np.testing.assert_allclose(seen, pr_norms, rtol=1e-6, atol=1e-12)


def test_preconditioner_reduces_iterations_and_matches_scipy():
    rng = np.random.default_rng(7)
    n = 30
    d = np.geomspace(1.0, 1e3, n)
    E = rng.standard_normal((n, n)) * (0.3 / np.sqrt(n)) / 2
    A = d[:, None] * (np.eye(n) + E)  # diagonally dominant rows, badly scaled
    b = rng.standard_normal(n)
    M = np.diag(1.0 / np.diag(A))  # Jacobi
    plain = gmres(A, b, rtol=1e-10, restart=10)
    pre = gmres(A, b, rtol=1e-10, restart=10, M=M)
    assert pre.status == SolverStatus.CONVERGED
    assert_residual_contract(A, b, pre, 1e-10)
    assert pre.iterations < plain.iterations
    # Same preconditioned iterates as scipy's left preconditioning.
    for restart, maxiter in ((4, 1), (4, 2), (6, 3)):
        ours = gmres(A, b, rtol=1e-14, restart=restart, maxiter=maxiter, M=M)
        x_scipy, _ = sla.gmres(A, b, rtol=1e-14, restart=restart, maxiter=maxiter, M=M)
        assert np.linalg.norm(ours.x - x_scipy) <= 1e-10 * np.linalg.norm(x_scipy)
    # And the same iteration count to convergence, M as a callable.
    count = []
    _, info = sla.gmres(
        A, b, rtol=1e-10, restart=10, M=M, callback=count.append, callback_type="pr_norm"
    )
    m_fun = aslinearoperator(lambda v: v / np.diag(A), shape=(n, n))
    ours = gmres(A, b, rtol=1e-10, restart=10, M=m_fun)
    assert info == 0 and ours.converged
    assert ours.iterations == len(count)


# ---------------------------------------------------------------------------
# Residual estimates, finite termination
# ---------------------------------------------------------------------------


@given(q=quadratics(NONSINGULAR, max_n=30))
def test_estimate_matches_true_residual_without_restart(q):
    result = gmres(q.A, q.b, rtol=1e-8, restart=q.n)
    assert result.status == SolverStatus.CONVERGED
    assert result.cycles == 1  # no restart happened
    assert len(result.residual_history) == result.iterations + 1
    assert result.residual_history[0] == pytest.approx(np.linalg.norm(q.b), rel=1e-12)
    estimate = result.residual_history[-1]
    true = residual64(q.A, q.b, result.x)
    floor = 10 * q.n * eps_of(q.dtype) * q.cond * np.linalg.norm(q.b)
    assert abs(estimate - true) <= 1e-2 * true + floor, (estimate, true)
    # The estimates of one cycle never increase (minimal residual over nested spaces).
    h = result.residual_history
    assert np.all(np.diff(h) <= 1e-12 * h[0])


@given(n=st.integers(2, 30), seed=seeds)
def test_k_distinct_eigenvalues_terminate_in_k_steps(n, seed):
    q = build_quadratic("k_distinct", n, seed)
    result = gmres(q.A, q.b, rtol=1e-10, restart=q.n)
    assert result.status == SolverStatus.CONVERGED
    assert result.iterations <= q.distinct + 1, (result, q.distinct)
    assert_residual_contract(q.A, q.b, result, 1e-10)


@given(n=st.integers(2, 40), seed=seeds)
def test_low_rank_consistent_system_converges_within_rank_steps(n, seed):
    q = build_quadratic("singular_consistent", n, seed)
    result = gmres(q.A, q.b, rtol=1e-10)
    assert result.status == SolverStatus.CONVERGED, result
    assert result.iterations <= q.rank + 1, (result, q.rank)
    assert_residual_contract(q.A, q.b, result, 1e-10)
    # Started from 0, the Krylov iterate lies in range(A): it is the min-norm solution.
    x_min = q.solution()
    assert np.linalg.norm(result.x - x_min) <= 1e-6 * np.linalg.norm(x_min)


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def assert_same_sample(batched: GMRESResult, single: GMRESResult, rtol=1e-12):
    assert batched.status == single.status
    assert batched.iterations == single.iterations
    assert batched.matvecs == single.matvecs
    assert batched.cycles == single.cycles
    assert batched.converged == single.converged
    scale = max(float(np.linalg.norm(single.x)), 1e-300)
    assert np.linalg.norm(np.asarray(batched.x) - np.asarray(single.x)) <= rtol * scale


@given(qs=quadratic_batches(NONSINGULAR, min_batch=3, max_batch=5, max_n=20), seed=seeds)
def test_batch_equals_loop(qs, seed):
    rng = np.random.default_rng(seed)
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    B, n = b.shape
    b[0] = 0.0  # zero right-hand side
    x0 = rng.standard_normal((B, n))
    x0[1] = np.linalg.solve(A[1], b[1])  # already the solution
    x0_copy = x0.copy()
    result = gmres(A, b, x0, rtol=1e-8)
    assert np.array_equal(x0, x0_copy)
    assert result.batch_size == B
    assert result.x.shape == (B, n)
    assert np.all(result.x[0] == 0.0)
    assert result.sample(0).status == SolverStatus.CONVERGED and result.sample(0).iterations == 0
    assert result.sample(1).status == SolverStatus.CONVERGED and result.sample(1).cycles <= 1
    for i in range(B):
        single = gmres(A[i], b[i], x0[i], rtol=1e-8)
        assert_same_sample(result.sample(i), single)
        # Equal up to the rounding of evaluating b - A x (batched and single
        # products round differently).
        slack = (
            10
            * n
            * np.finfo(np.float64).eps
            * (np.linalg.norm(A[i]) * np.linalg.norm(single.x) + np.linalg.norm(b[i]))
        )
        assert result.residual_norm[i] == pytest.approx(single.residual_norm, rel=1e-6, abs=slack)
        # matvecs = inner iterations + one true residual per cycle + one for a nonzero x0.
        x0_used = bool(np.any(x0[i] != 0)) and bool(np.any(b[i] != 0))
        assert result.matvecs[i] == result.iterations[i] + result.cycles[i] + x0_used


@given(q=quadratics(NONSINGULAR, max_n=20), seed=seeds, B=st.integers(2, 5))
def test_multiple_right_hand_sides_equal_loop(q, seed, B):
    b = np.random.default_rng(seed).standard_normal((B, q.n))
    result = gmres(q.A, b, rtol=1e-8)
    for i in range(B):
        assert_same_sample(result.sample(i), gmres(q.A, b[i], rtol=1e-8))


def test_zero_rhs_gives_exact_zero():
    rng = np.random.default_rng(0)
    A = build_quadratic("nonsymmetric", 8, 1).A
    x0 = rng.standard_normal(8)
    for start in (None, x0):
        result = gmres(A, np.zeros(8), start)
        assert result.status == SolverStatus.CONVERGED
        assert result.iterations == 0
        assert result.matvecs == 0
        assert np.all(result.x == 0.0)
        assert result.residual_norm == 0.0
    batch = gmres(np.stack([A, A]), np.zeros((2, 8)), np.stack([x0, x0]))
    assert np.all(batch.x == 0.0)
    assert list(batch.status) == [SolverStatus.CONVERGED] * 2
    assert list(batch.iterations) == [0, 0]
    t = gmres(torch.from_numpy(A), torch.zeros(8, dtype=torch.float64), torch.from_numpy(x0))
    assert bool(torch.all(t.x == 0)) and t.status == SolverStatus.CONVERGED


def test_inputs_are_never_mutated():
    q = build_quadratic("nonsymmetric", 12, 3)
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal(12)
    copies = [a.copy() for a in (q.A, q.b, x0)]
    result = gmres(q.A, q.b, x0, rtol=1e-10)
    assert result.converged
    for orig, copy in zip((q.A, q.b, x0), copies, strict=True):
        assert np.array_equal(orig, copy)
    assert not np.shares_memory(result.x, x0)
    # Batched numpy.
    xb = rng.standard_normal((3, 12))
    xb_copy = xb.copy()
    gmres(np.stack([q.A] * 3), np.stack([q.b] * 3), xb, rtol=1e-10)
    assert np.array_equal(xb, xb_copy)
    # torch.
    At, bt, xt = (torch.from_numpy(a.copy()) for a in (q.A, q.b, x0))
    xt_copy = xt.clone()
    result = gmres(At, bt, xt, rtol=1e-10)
    assert torch.equal(xt, xt_copy)
    assert result.x.data_ptr() != xt.data_ptr()


# ---------------------------------------------------------------------------
# Non-finite values, invalid input
# ---------------------------------------------------------------------------


def test_nan_from_single_callable_operator():
    q = build_quadratic("nonsymmetric", 10, 4)
    calls = []

    def matvec(v):
        calls.append(1)
        out = q.A @ v
        return out * np.nan if len(calls) >= 3 else out

    result = gmres(aslinearoperator(matvec, shape=(10, 10)), q.b, rtol=1e-12)
    assert result.status == SolverStatus.NON_FINITE
    assert not result.converged
    assert np.all(np.isfinite(result.x))


def test_nan_entry_in_one_batched_matrix():
    qs = [build_quadratic("nonsymmetric", 10, s) for s in range(4)]
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    A[2, 3, 4] = np.nan
    result = gmres(A, b, rtol=1e-10)
    assert result.status[2] == SolverStatus.NON_FINITE
    assert np.all(np.isfinite(result.x))
    for i in (0, 1, 3):
        assert result.status[i] == SolverStatus.CONVERGED
        assert_same_sample(result.sample(i), gmres(A[i], b[i], rtol=1e-10))


def test_inf_from_batched_callable_late_in_the_run():
    qs = [build_quadratic("nonnormal", 12, s) for s in range(3)]
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    per_sample_calls = np.zeros(3, dtype=int)

    def matvec(X, idx):
        idx = np.asarray(idx)
        per_sample_calls[idx] += 1
        out = np.einsum("kij,kj->ki", A[idx], X)
        out[(idx == 1) & (per_sample_calls[idx] >= 4)] = np.inf
        return out

    op = FunctionOperator(matvec, (12, 12), batch_size=3, vectorized=True, pass_indices=True)
    result = gmres(op, b, rtol=1e-10)
    assert list(result.status) == [
        SolverStatus.CONVERGED,
        SolverStatus.NON_FINITE,
        SolverStatus.CONVERGED,
    ]
    assert np.all(np.isfinite(result.x))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["b", "x0"])
def test_non_finite_b_or_x0_raises(bad, where):
    q = build_quadratic("spd", 5, 0)
    b, x0 = q.b.copy(), np.zeros(5)
    {"b": b, "x0": x0}[where][2] = bad
    with pytest.raises(ValueError, match=rf"^{where}\b"):
        gmres(q.A, b, x0)
    # Also in a batch, naming the argument.
    bb, xb = np.stack([q.b, q.b]), np.zeros((2, 5))
    {"b": bb, "x0": xb}[where][1, 0] = bad
    with pytest.raises(ValueError, match=rf"^{where}\b"):
        gmres(np.stack([q.A, q.A]), bb, xb)


def test_shape_mismatch_messages():
    A = np.eye(6)
    with pytest.raises(ValueError) as info:
        gmres(A, np.ones(4))
    assert "(6, 6)" in str(info.value) and "(4,)" in str(info.value)
    with pytest.raises(ValueError):
        gmres(np.stack([A] * 3), np.ones((2, 6)))
    with pytest.raises(ValueError):
        gmres(np.stack([A] * 3), np.ones((3, 5)))
    with pytest.raises(ValueError):
        gmres(A, np.ones(6), np.ones(5))
    with pytest.raises(ValueError):
        gmres(A, np.ones((2, 3, 6)))
    with pytest.raises(ValueError):
        gmres(A, np.ones(6), M=np.eye(5))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.float16])
def test_non_floating_dtypes_are_upcast_to_float64_as_scipy(dtype):
    A = np.array([[3, 1, 0], [0, 2, 0], [0, 1, 1]])  # nonsingular also as bool
    b = np.array([1, 0, 1])
    for A_, b_ in ((A.astype(dtype), b), (A, b.astype(dtype)), (A.astype(dtype), b.astype(dtype))):
        x, info = gmres(A_, b_, atol=1e-12)
        x_ref, info_ref = sla.gmres(A_, b_, atol=1e-12)
        assert x.dtype == x_ref.dtype == np.float64 and info == info_ref == 0
        np.testing.assert_allclose(x, x_ref, rtol=1e-10)


@pytest.mark.parametrize(
    ("a_dtype", "b_dtype", "expected"),
    [
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.float64, np.float32, np.float64),
        (np.complex64, np.float32, np.complex64),
        (np.float64, np.complex64, np.complex128),
        (np.int64, np.complex64, np.complex128),
    ],
)
def test_working_dtype_is_scipys_coercion(a_dtype, b_dtype, expected):
    A = (np.eye(4) * 3 + np.diag(np.ones(3), 1)).astype(a_dtype)
    b = np.arange(1, 5).astype(b_dtype)
    x, _ = gmres(A, b, rtol=1e-5)
    x_ref, _ = sla.gmres(A, b, rtol=1e-5)
    assert x.dtype == x_ref.dtype == expected


def test_x0_is_cast_to_the_working_dtype_but_never_loses_an_imaginary_part():
    ours = gmres(np.eye(3), np.ones(3), np.ones(3, dtype=np.float32))
    assert ours.x.dtype == np.float64 and ours.converged
    with pytest.raises(TypeError, match="x0 is complex"):
        gmres(np.eye(3), np.ones(3), np.ones(3, dtype=np.complex128))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rtol": -1.0},
        {"atol": np.nan},
        {"restart": 0},
        {"maxiter": 0},
        {"orthogonalization": "householder"},
    ],
)
def test_invalid_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        gmres(np.eye(3), np.ones(3), **kwargs)


@pytest.mark.parametrize("orthogonalization", ["cgs2", "mgs"])
@pytest.mark.parametrize("b", [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, -2.0, 3.0]])
def test_singular_inconsistent_system_does_not_claim_convergence(b, orthogonalization):
    A = np.diag([1.0, 1.0, 0.0])
    b = np.asarray(b)
    result = gmres(A, b, orthogonalization=orthogonalization)
    assert result.status in (SolverStatus.BREAKDOWN, SolverStatus.STAGNATION), result
    assert not result.converged
    assert np.all(np.isfinite(result.x))
    # Minimal residual: GMRES never returns an iterate worse than its start x0 = 0,
    # and here the best attainable residual is |b_3|.
    true = residual64(A, b, result.x)
    assert true <= np.linalg.norm(b) * (1 + 1e-8), (true, result.x)
    assert true >= abs(b[2]) * (1 - 1e-12)


@given(n=st.integers(3, 30), seed=seeds)
def test_low_rank_inconsistent_system(n, seed):
    q = build_quadratic("singular_consistent", n, seed)
    b = q.b + np.random.default_rng(seed).standard_normal(n)  # leaves the range
    result = gmres(q.A, b)
    assert result.status in (SolverStatus.BREAKDOWN, SolverStatus.STAGNATION), result
    assert np.all(np.isfinite(result.x))
    true = residual64(q.A, b, result.x)
    assert true <= np.linalg.norm(b) * (1 + 1e-8), (true, np.linalg.norm(b))


@pytest.mark.parametrize("n, restart", [(30, 5), (30, None), (16, 8), (16, None)])
def test_float32_unreachable_tolerance_stagnates(n, restart):
    rng = np.random.default_rng(11)
    q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = ((q * np.geomspace(1.0, 1e2, n)) @ q.T).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    result = gmres(A, b, rtol=1e-9, restart=restart)
    assert not result.converged
    assert result.status == SolverStatus.STAGNATION, (result, result.cycles)
    assert np.all(np.isfinite(result.x)) and result.x.dtype == np.float32
    # It still got as close as float32 allows.
    assert residual64(A, b, result.x) <= 1e-4 * np.linalg.norm(b)
    capped = gmres(A, b, rtol=1e-9, restart=restart, maxiter=2)
    assert capped.status == SolverStatus.MAX_ITERATIONS
    assert capped.cycles == 2
    assert np.all(np.isfinite(capped.x))


# ---------------------------------------------------------------------------
# Callbacks and scipy-style use
# ---------------------------------------------------------------------------


def test_pr_norm_callback_single():
    q = build_quadratic("nonsymmetric", 15, 5)
    seen = []
    result = gmres(q.A, q.b, rtol=1e-10, callback=seen.append, callback_type="pr_norm")
    assert result.converged
    assert len(seen) == result.iterations
    assert all(isinstance(v, float) for v in seen)
    np.testing.assert_allclose(seen, result.residual_history[1:] / np.linalg.norm(q.b), rtol=1e-12)


def test_pr_norm_callback_batch_receives_arrays():
    qs = [build_quadratic("k_distinct", 12, s) for s in (1, 2, 3)]
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    seen = []
    result = gmres(
        A,
        b,
        rtol=1e-10,
        callback=lambda r: seen.append(np.array(r, copy=True)),
        callback_type="pr_norm",
    )
    assert np.all(result.converged)
    assert all(isinstance(v, np.ndarray) and v.shape == (3,) for v in seen)
    # Every sample reports exactly once per own inner iteration, NaN when idle.
    assert np.array_equal(np.sum(np.isfinite(np.stack(seen)), axis=0), result.iterations)


def test_callback_returning_true_stops():
    q = build_quadratic("spd", 20, 6)
    result = gmres(q.A, q.b, rtol=1e-12, callback=lambda r: True, callback_type="pr_norm")
    assert result.status == SolverStatus.CALLBACK
    assert not result.converged
    assert result.iterations == 1
    assert np.all(np.isfinite(result.x))
    # A per-sample mask stops only the masked samples.
    A, b = np.stack([q.A, q.A]), np.stack([q.b, -q.b])
    result = gmres(
        A, b, rtol=1e-10, callback=lambda r: np.array([True, False]), callback_type="pr_norm"
    )
    assert result.status[0] == SolverStatus.CALLBACK
    assert result.status[1] == SolverStatus.CONVERGED


def test_x_callback_receives_iterates():
    q = build_quadratic("spd", 20, 8)
    seen = []
    result = gmres(
        q.A,
        q.b,
        rtol=1e-10,
        restart=5,
        callback=lambda x: seen.append(np.array(x, copy=True)),
        callback_type="x",
    )
    assert result.converged
    assert len(seen) == result.cycles
    assert all(v.shape == (20,) for v in seen)
    np.testing.assert_array_equal(seen[-1], result.x)
    stopped = gmres(q.A, q.b, rtol=1e-10, restart=5, callback=lambda x: True, callback_type="x")
    assert stopped.status == SolverStatus.CALLBACK
    assert stopped.cycles == 1


@pytest.mark.parametrize("maxiter", [1, 3, 7])
def test_legacy_callback_counts_inner_iterations_as_scipy(maxiter):
    """callback_type="legacy" (scipy's default): maxiter counts inner iterations."""
    q = build_quadratic("nonsymmetric", 20, 3)
    ours_seen, scipy_seen = [], []
    ours = gmres(
        q.A,
        q.b,
        rtol=1e-12,
        restart=5,
        maxiter=maxiter,
        callback=ours_seen.append,
        callback_type="legacy",
    )
    x_ref, info_ref = sla.gmres(
        q.A,
        q.b,
        rtol=1e-12,
        restart=5,
        maxiter=maxiter,
        callback=scipy_seen.append,
        callback_type="legacy",
    )
    assert ours.iterations == len(scipy_seen) == maxiter
    np.testing.assert_allclose(ours_seen, scipy_seen, rtol=1e-8)
    assert ours.info == info_ref == maxiter
    assert ours.status == SolverStatus.MAX_ITERATIONS
    np.testing.assert_allclose(ours.x, x_ref, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="callback_type"):
        gmres(q.A, q.b, callback=print, callback_type="residual")


def test_scipy_style_unpacking():
    A = np.array([[3.0, 2.0, 0.0], [1.0, -1.0, 0.0], [0.0, 5.0, 1.0]])
    b = np.array([2.0, 4.0, -1.0])
    x, info = gmres(A, b, atol=1e-10)
    assert info == 0
    assert np.allclose(A @ x, b)
    x_scipy, info_scipy = sla.gmres(A, b, atol=1e-10)
    assert info_scipy == 0
    np.testing.assert_allclose(x, x_scipy, rtol=1e-8)
    # Not converged: info is maxiter, as scipy's.
    q = build_quadratic("spd", 30, 9)
    x, info = gmres(q.A, q.b, rtol=1e-12, restart=2, maxiter=1)
    assert info == 1 == sla.gmres(q.A, q.b, rtol=1e-12, restart=2, maxiter=1)[1]
    result = gmres(q.A, q.b, rtol=1e-12, restart=2, maxiter=3)
    assert result[0] is result.x and result[1] == result.info == 3 and len(result) == 2


# ---------------------------------------------------------------------------
# Backends and operator types
# ---------------------------------------------------------------------------


@given(q=quadratics(NONSINGULAR, max_n=20))
def test_torch_float64_matches_numpy(q):
    ref = gmres(q.A, q.b, rtol=1e-10, restart=q.n)
    out = gmres(torch.from_numpy(q.A), torch.from_numpy(q.b), rtol=1e-10, restart=q.n)
    assert isinstance(out.x, torch.Tensor)
    assert out.x.dtype == torch.float64 and out.x.device.type == "cpu"
    assert out.status == ref.status and out.iterations == ref.iterations
    x = out.x.numpy()
    assert np.linalg.norm(x - ref.x) <= 1e-12 * np.linalg.norm(ref.x)


def test_torch_batch_and_float32():
    qs = [build_quadratic("nonsymmetric", 10, s) for s in range(3)]
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    ref = gmres(A, b, rtol=1e-10)
    out = gmres(torch.from_numpy(A), torch.from_numpy(b), rtol=1e-10)
    assert isinstance(out.x, torch.Tensor) and out.x.shape == (3, 10)
    assert np.array_equal(out.status, ref.status)
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=1e-12, atol=1e-12)
    out32 = gmres(torch.from_numpy(A).float(), torch.from_numpy(b).float(), rtol=1e-4)
    assert out32.x.dtype == torch.float32
    assert np.all(out32.converged)
    for i in range(3):
        assert residual64(A[i], b[i], out32.x[i].numpy()) <= 1e-4 * np.linalg.norm(b[i]) * 1.01


@given(q=quadratics(NONSINGULAR, max_n=15))
def test_operator_types_give_the_dense_answer(q):
    n = q.n
    ref = gmres(q.A, q.b, rtol=1e-10, restart=n)
    for A in (
        scipy.sparse.csr_array(q.A),
        scipy.sparse.csr_matrix(q.A),
        sla.aslinearoperator(q.A),
        aslinearoperator(lambda v: q.A @ v, shape=(n, n)),
        aslinearoperator(lambda V: V @ q.A.T, shape=(n, n), vectorized=True),
    ):
        out = gmres(A, q.b, rtol=1e-10, restart=n)
        assert out.status == ref.status
        assert np.linalg.norm(out.x - ref.x) <= 1e-10 * np.linalg.norm(ref.x)


@given(qs=quadratic_batches(NONSINGULAR, max_n=15, min_batch=2, max_batch=4))
def test_batched_callable_operator_gives_the_dense_answer(qs):
    A = np.stack([q.A for q in qs])
    b = np.stack([q.b for q in qs])
    B, n = b.shape
    ref = gmres(A, b, rtol=1e-10, restart=n)
    with_indices = aslinearoperator(
        lambda X, idx: np.einsum("kij,kj->ki", A[np.asarray(idx)], X),
        shape=(n, n),
        batch_size=B,
        vectorized=True,
        pass_indices=True,
    )
    full_batch = aslinearoperator(
        lambda X: np.einsum("kij,kj->ki", A, X), shape=(n, n), batch_size=B, vectorized=True
    )
    per_vector = aslinearoperator(
        lambda v, i: A[i] @ v, shape=(n, n), batch_size=B, pass_indices=True
    )
    for op in (with_indices, full_batch, per_vector):
        out = gmres(op, b, rtol=1e-10, restart=n)
        assert np.array_equal(out.status, ref.status)
        assert np.array_equal(out.iterations, ref.iterations)
        np.testing.assert_allclose(out.x, ref.x, rtol=1e-10, atol=1e-10 * np.abs(ref.x).max())


def test_active_set_compaction():
    n = 16
    qs = [build_quadratic("k_distinct", n, s) for s in range(60)]
    # Samples needing 1, 2, ..., 5 iterations (k distinct eigenvalues each).
    chosen = [next(q for q in qs if q.distinct == k) for k in (1, 2, 3, 4, 5)]
    A = np.stack([q.A for q in chosen])
    b = np.stack([q.b for q in chosen])
    B = len(chosen)
    calls: list[tuple[int, ...]] = []

    def matvec(X, idx):
        idx = np.asarray(idx)
        assert X.shape == (idx.size, n)
        calls.append(tuple(int(i) for i in idx))
        return np.einsum("kij,kj->ki", A[idx], X)

    op = FunctionOperator(matvec, (n, n), batch_size=B, vectorized=True, pass_indices=True)
    result = gmres(op, b, rtol=1e-10, restart=n)
    assert np.all(result.converged)
    assert result.cycles.tolist() == [1] * B
    # Inner iterations only see unconverged samples: the index sets shrink.
    inner, final = calls[:-1], calls[-1]
    assert inner[0] == tuple(range(B))
    for earlier, later in itertools.pairwise(inner):
        assert set(later) <= set(earlier)
    assert len(inner[-1]) < B
    assert set(final) == set(range(B))  # the true residual of every sample
    # Each sample was evaluated exactly as often as its matvec count says.
    counts = np.array([sum(s in c for c in calls) for s in range(B)])
    assert np.array_equal(counts, result.matvecs)
    assert np.array_equal(result.iterations, np.sort(result.iterations))
    dense = gmres(A, b, rtol=1e-10, restart=n)
    assert np.array_equal(dense.iterations, result.iterations)
    np.testing.assert_allclose(result.x, dense.x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("exponent", [-300, -160, 160, 300])
def test_gmres_is_scale_invariant_at_extreme_magnitudes(exponent):
    # Solving (tA) x = tb is the same problem; with |t| near the float64 range's ends the
    # Hessenberg entries' squares over/underflow, which must not warn or change the answer.
    rng = np.random.default_rng(5)
    A = rng.standard_normal((20, 20)) + 8.0 * np.eye(20)
    b = rng.standard_normal(20)
    reference = gmres(A, b, rtol=1e-10, restart=8)
    scale = 10.0**exponent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = gmres(A * scale, b * scale, rtol=1e-10, restart=8)
    assert scaled.info == reference.info == 0
    assert scaled.iterations == reference.iterations
    np.testing.assert_allclose(scaled.x, reference.x, rtol=1e-9)
    assert np.linalg.norm(A @ scaled.x - b) <= 1e-10 * np.linalg.norm(b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("exponent", [-1030, -300, -160, 160, 300])
def test_torch_gmres_is_scale_invariant_at_extreme_magnitudes(dtype, exponent):
    # torch's vector_norm does not rescale: [2^-1030, ...] once had norm 0, and GMRES
    # reported the nonzero b as solved at x = 0 (CONVERGED, 0 iterations).  Scaling b alone
    # (2^-1030 is subnormal) or A and b together must give the scaled answer, as on numpy.
    rng = np.random.default_rng(6)
    A = rng.standard_normal((12, 12)) + 6.0 * np.eye(12)
    b = rng.standard_normal(12)
    reference = gmres(A, b, rtol=1e-10, restart=6)
    scale = 2.0**exponent
    A_t, b_t = torch.from_numpy(A).to(dtype), torch.from_numpy(b).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if exponent < -1000:  # A * scale would be all subnormal: scale b only
            found = gmres(A_t, b_t * scale, rtol=1e-10, restart=6)
            expected = reference.x * scale
        else:
            found = gmres(A_t * scale, b_t * scale, rtol=1e-10, restart=6)
            expected = reference.x
    assert found.info == reference.info == 0
    assert found.iterations == reference.iterations > 0
    np.testing.assert_allclose(found.x.numpy(), expected, rtol=1e-8, atol=0)
