"""Tests that kill the mutants mutmut left alive in krylovadv/gmres.py.

Each test names the behaviour a surviving mutant changed (see docs/dev/mutation.rst):
the end-of-cycle decision of each sample (converged, callback, iteration budget,
GMRES breakdown, stagnation after exactly ``STAGNATION_CYCLES`` cycles without
progress), taken for that sample alone in a batch, with the breakdown and
stagnation thresholds relative to the sample's own ``||b||`` and residual; and the
steps of a cycle (docs/dev/mutation-reports/gmres.md): the true-residual acceptance, non-finite
operator or preconditioner output per sample, batched preconditioners and callbacks on the
compacted rows, the breakdown threshold's ``||A||`` estimate, the initial residual.
And gmres() itself (docs/dev/mutation-reports/gmres.md, "Whole module"): its argument
errors, scipy's defaults and inner tolerance, the first Krylov vector in float32 against
scipy's, the ``"x"`` callback of a batch, ``indices=None`` for shared operators, and every
array on the input's device whatever torch's default device.

The singular systems are ``diag(1, 0)``-like: ``b``'s second component lies
outside the range of ``A``, so the least-squares residual is known exactly.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from strategies import solve_with_and_without_a_meta_default_device

import krylovadv
from krylovadv import LinearOperator, SolverStatus, gmres
from krylovadv.gmres import STAGNATION_CYCLES

SINGULAR = np.diag([1.0, 0.0])


# --- GMRES breakdown and stagnation on singular systems ------------------------------------


def test_inconsistent_system_breaks_down_in_the_first_cycle_without_progress():
    # b = (1, 1): the first cycle reduces ||r|| from sqrt 2 to 1 (progress, no verdict
    # yet); the second brings none while the Hessenberg matrix is singular: BREAKDOWN.
    result = gmres(SINGULAR, np.array([1.0, 1.0]), rtol=1e-14)
    assert result.status == SolverStatus.BREAKDOWN
    assert result.cycles == 2
    assert result.residual_norm == pytest.approx(1.0, rel=1e-15)


def test_breakdown_waits_for_a_cycle_without_progress_at_any_scale_of_b():
    # ||b|| ~ 100: the first cycle's progress (100 -> 1) is judged relative to the
    # residual before the cycle, not in absolute terms: the verdict comes in cycle 2.
    result = gmres(SINGULAR, np.array([100.0, 1.0]), rtol=1e-14)
    assert result.status == SolverStatus.BREAKDOWN
    assert result.cycles == 2 and result.iterations == 4
    assert result.residual_norm == pytest.approx(1.0, rel=1e-15)


def test_breakdown_of_a_tiny_right_hand_side():
    # ||b|| = 1.4e-6: a residual of 1e-6 is far above sqrt(eps) ||b|| = 2e-14, so the
    # system is inconsistent (BREAKDOWN), not at its attainable accuracy.
    result = gmres(SINGULAR, np.array([1e-6, 1e-6]), rtol=1e-14)
    assert result.status == SolverStatus.BREAKDOWN
    assert result.cycles == 2
    assert result.residual_norm == pytest.approx(1e-6, rel=1e-15)


def test_stagnation_after_exactly_three_cycles_without_progress():
    # b = (1, 1e-10): cycle 1 reaches the least-squares residual 1e-10, below
    # sqrt(eps) ||b|| (an accuracy limit, not a breakdown); each later cycle leaves
    # it unchanged, and the third such cycle in a row declares STAGNATION.
    assert STAGNATION_CYCLES == 3
    result = gmres(SINGULAR, np.array([1.0, 1e-10]), rtol=1e-14)
    assert result.status == SolverStatus.STAGNATION
    assert result.cycles == 1 + STAGNATION_CYCLES
    assert result.residual_norm == pytest.approx(1e-10, rel=1e-12)


def test_residual_of_exactly_sqrt_eps_norm_b_is_an_accuracy_limit_not_a_breakdown():
    # BREAKDOWN needs ||r|| > sqrt(eps) ||b|| (strictly): with b = (1, 2^-26), ||b|| = 1
    # and the least-squares residual is exactly sqrt(eps) = 2^-26, so the cycles without
    # progress end in STAGNATION.
    q = 2.0**-26
    assert q == np.sqrt(np.finfo(np.float64).eps)
    result = gmres(SINGULAR, np.array([1.0, q]), rtol=1e-15)
    assert result.residual_norm == q
    assert result.status == SolverStatus.STAGNATION
    assert result.cycles == 1 + STAGNATION_CYCLES


def test_a_cycle_gaining_exactly_the_stall_margin_counts_as_no_progress():
    # "No progress" is ||r|| >= (1 - sqrt eps) ||r_before|| (inclusive).  With
    # ||b|| = 1 + 2^-26 + 2^-52 exactly and the least-squares residual 1, the first
    # cycle's gain is exactly that margin: BREAKDOWN in cycle 1, not 2.
    target = 1.0 + 2.0**-26 + 2.0**-52
    assert (1.0 - np.sqrt(np.finfo(np.float64).eps)) * target == 1.0
    p0 = np.sqrt(target**2 - 1.0)
    p = next(
        p for p in p0 * (1.0 + 1e-12 * np.arange(-3000, 3000)) if np.linalg.norm([p, 1.0]) == target
    )
    result = gmres(SINGULAR, np.array([p, 1.0]), rtol=1e-15)
    assert result.residual_norm == 1.0
    assert result.status == SolverStatus.BREAKDOWN
    assert result.cycles == 1


# --- each sample's decision is its own in a batch ------------------------------------------


def test_breakdown_of_the_last_sample_leaves_the_others_converged():
    # Sample 0 converges in its first cycle; sample 1 (inconsistent) breaks down in
    # its second.  The decision for sample 1 must not overwrite sample 0's status.
    A = np.stack([np.diag([1.0, 2.0]), SINGULAR])
    b = np.array([[1.0, 1.0], [1.0, 1.0]])
    result = gmres(A, b, rtol=1e-12)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.BREAKDOWN]
    assert result.converged.tolist() == [True, False]
    assert result.cycles.tolist() == [1, 2]


def test_callback_stop_of_the_last_sample_leaves_the_others_converged():
    rng = np.random.default_rng(0)
    A = np.eye(6) * 4 + rng.standard_normal((6, 6))
    b = np.stack([rng.standard_normal(6), rng.standard_normal(6)])
    result = gmres(
        np.stack([A, A]),
        b,
        rtol=1e-10,
        callback=lambda r: np.array([False, True]),
        callback_type="pr_norm",
    )
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CALLBACK]
    assert result.iterations[1] == 1


def test_legacy_iteration_budget_of_the_last_sample_leaves_the_others_converged():
    # callback_type="legacy": maxiter counts inner iterations.  Sample 0 (the
    # identity) converges after one; sample 1 needs more than the budget of 3.
    rng = np.random.default_rng(1)
    hard = np.eye(8) * 3 + rng.standard_normal((8, 8))
    A = np.stack([np.eye(8), hard])
    b = rng.standard_normal((2, 8))
    result = gmres(
        A, b, rtol=1e-12, restart=2, maxiter=3, callback=lambda r: None, callback_type="legacy"
    )
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.MAX_ITERATIONS]
    assert result.iterations.tolist() == [1, 3]


def test_stagnation_of_the_last_sample_leaves_the_others_converged():
    A = np.stack([np.diag([1.0, 2.0]), SINGULAR])
    b = np.array([[1.0, 1.0], [1.0, 1e-10]])
    result = gmres(A, b, rtol=1e-14)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.STAGNATION]
    assert result.cycles.tolist() == [1, 1 + STAGNATION_CYCLES]


def test_cycle_budget_of_the_last_sample_leaves_the_others_converged():
    # restart=1, maxiter=1: the identity converges in its one step, diag(1, 2) cannot.
    A = np.stack([np.eye(2), np.diag([1.0, 2.0])])
    b = np.ones((2, 2))
    result = gmres(A, b, rtol=1e-12, restart=1, maxiter=1)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.MAX_ITERATIONS]
    assert result.cycles.tolist() == [1, 1] and result.iterations.tolist() == [1, 1]


# --- the adaptive inner tolerance (scipy gh-8400) ------------------------------------------


@pytest.mark.parametrize("seed", [0, 3])
def test_adaptive_inner_tolerance_matches_scipy_when_the_estimate_is_optimistic(seed):
    # M = diag(s) with s = 1 on two components and s in [1e-3, 1e-2] on four, where b
    # is ~1e-6: the preconditioned estimate passes the inner tolerance while the true
    # residual (a few times tol) does not, so the next cycles run with the tightened
    # factor (x 0.25 after an optimistic cycle, x 1.5 up to 1 otherwise) - scipy's
    # rule.  Inner iteration counts equal scipy's, callback for callback.
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.ones(2), rng.uniform(1e-3, 1e-2, 4)])
    b = np.concatenate(
        [rng.standard_normal(2), rng.uniform(1, 3, 4) * 1e-6 * rng.choice([-1, 1], 4)]
    )
    A, M = np.eye(6), np.diag(s)
    ours_seen, scipy_seen = [], []
    kwargs = {"rtol": 1e-6, "restart": 6, "maxiter": 20, "M": M, "callback_type": "pr_norm"}
    ours = gmres(A, b, callback=ours_seen.append, **kwargs)
    x_ref, info = sla.gmres(A, b, callback=scipy_seen.append, **kwargs)
    assert info == 0 and ours.status == SolverStatus.CONVERGED
    assert ours.cycles > 2  # an optimistic cycle happened (more than one restart)
    assert ours.iterations == len(ours_seen) == len(scipy_seen)
    # (The Krylov basis of diag(s) with clustered s is ill-conditioned: scipy's MGS and
    # our CGS2 estimates agree to ~1e-10 of ||b||, far below the tolerance 1e-6.)
    np.testing.assert_allclose(ours_seen, scipy_seen, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.x, x_ref, rtol=0, atol=1e-10 * np.linalg.norm(x_ref))


@pytest.mark.parametrize("seed", [24, 39])
def test_inner_tolerance_relaxes_after_a_cycle_that_used_its_whole_restart(seed):
    # As above with a short restart and a slightly non-normal A: some cycles end on
    # the restart length (the factor grows by 1.5, capped at 1) between optimistic
    # ones (the factor shrinks by 4); the inner iteration counts equal scipy's.
    rng = np.random.default_rng(seed)
    k = rng.integers(4, 8)
    s = np.concatenate([np.ones(2), rng.uniform(1e-3, 1e-1, k)])
    n = len(s)
    A = np.eye(n) + 0.05 * np.triu(rng.standard_normal((n, n)), 1)
    b = np.concatenate(
        [rng.standard_normal(2), rng.uniform(1, 3, k) * 1e-6 * rng.choice([-1, 1], k)]
    )
    restart = int(rng.integers(2, n))
    ours_seen, scipy_seen = [], []
    kwargs = {"rtol": 1e-6, "restart": restart, "maxiter": 30, "M": np.diag(s)}
    ours = gmres(A, b, callback=ours_seen.append, callback_type="pr_norm", **kwargs)
    x_ref, info = sla.gmres(A, b, callback=scipy_seen.append, callback_type="pr_norm", **kwargs)
    assert info == 0 and ours.status == SolverStatus.CONVERGED
    assert ours.iterations == len(ours_seen) == len(scipy_seen)
    np.testing.assert_allclose(ours_seen, scipy_seen, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.x, x_ref, rtol=0, atol=1e-10 * np.linalg.norm(x_ref))


# --- the one-system fast path decides as the batched path ---------------------------------


@pytest.mark.parametrize(("c", "cycles"), [(16.0, 2), (23.0, 1)])
def test_single_system_breakdown_threshold_equals_the_batched_one(c, cycles):
    # A e1 = e2, A e2 = e1 + c eps e3: at step 2 the new direction has norm c eps
    # against ||A v|| = 1.  The breakdown test is ||w|| <= 16 sqrt(j+1) eps max(...)
    # with j + 1 = 2, i.e. 22.6 eps: c = 16 breaks down (the first cycle ends after two
    # steps, the e3 direction is found in a second cycle), c = 23 does not (one cycle
    # of three steps).  A single system takes a scalar fast path; a batch of two
    # copies takes the masked one (direction_lost); both must decide alike.
    A = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, c * np.finfo(np.float64).eps, 1.0]])
    b = np.array([1.0, 0.0, 0.0])
    single = gmres(A, b, rtol=0.0)
    batch = gmres(np.stack([A, A]), np.stack([b, b]), rtol=0.0)
    assert single.status == SolverStatus.CONVERGED
    assert single.cycles == cycles and single.iterations == 3
    for field in ("status", "iterations", "cycles", "matvecs"):
        assert getattr(batch, field).tolist() == [getattr(single, field)] * 2, field
    np.testing.assert_allclose(batch.x[0], single.x, rtol=0, atol=1e-15)


def test_rank_deficient_least_squares_ends_the_cycle_without_an_arnoldi_breakdown():
    # A e1 = 0.01 (e1 + e2), A e2 = e1 + e2 + 100 eps e3: H_2 = [[.01, 1], [.01, 1]] is
    # singular while h_32 = 100 eps is well above the Arnoldi breakdown threshold, so
    # only the Givens QR's rank test (sigma_min(H_bar_2) ~ eps) sees the GMRES
    # breakdown, and it alone must end the cycle.  A is singular and e1 is not in its
    # range span{(1, 1, 0), (0, 0, 1)}: the least residual is 1/sqrt 2.  The scalar
    # one-system path and the batched path decide alike.
    eps = np.finfo(np.float64).eps
    A = np.array([[0.01, 1.0, 0.0], [0.01, 1.0, 0.0], [0.0, 100 * eps, 1.0]])
    b = np.array([1.0, 0.0, 0.0])
    single = gmres(A, b, rtol=1e-12)
    batch = gmres(np.stack([A, A]), np.stack([b, b]), rtol=1e-12)
    assert single.status == SolverStatus.BREAKDOWN
    assert single.residual_norm == pytest.approx(np.sqrt(0.5), rel=1e-12)
    for field in ("status", "iterations", "cycles", "matvecs"):
        assert getattr(batch, field).tolist() == [getattr(single, field)] * 2, field


def test_complex_single_system_keeps_complex_hessenberg_columns():
    # One complex system takes the scalar fast path; its Hessenberg column must stay
    # complex (a real column would drop Im h_ij and the solve would fail to converge).
    rng = np.random.default_rng(7)
    n = 8
    A = 3 * np.eye(n) + (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / 3
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    result = gmres(A, b, rtol=1e-12, restart=n)
    assert result.x.dtype == np.complex128
    assert result.status == SolverStatus.CONVERGED
    assert result.cycles == 1 and result.iterations <= n
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=0, atol=1e-10)


def test_inner_iteration_stops_when_the_estimate_equals_the_inner_tolerance():
    # As scipy's "presid <= ptol": with rtol set to exactly the first step's relative
    # estimate (read from a pr_norm callback; ||b|| = 1, so ptol = rtol), the cycle ends
    # after that step, and the true residual then meets the same tolerance.
    A = np.array([[1.0, 0.0, 0.0], [0.3, 2.0, 0.0], [0.0, 0.5, 3.0]])
    b = np.array([1.0, 0.0, 0.0])
    seen = []
    gmres(A, b, rtol=1e-14, callback=seen.append, callback_type="pr_norm")
    result = gmres(A, b, rtol=seen[0])
    assert result.status == SolverStatus.CONVERGED
    assert result.iterations == 1 and result.cycles == 1
    np.testing.assert_array_equal(result.residual_history, [1.0, seen[0]])


# --- the true-residual test: acceptance of a cycle's iterate -------------------------------


def test_cycle_whose_true_residual_equals_the_previous_one_is_accepted():
    # GMRES never increases the residual in exact arithmetic, so a cycle is rejected
    # only when ||b - Ax_new|| > ||r_before|| (strictly).  With A = I, b = (3, 4) and the
    # left preconditioner M below, M b = (50, 0): v_1 = e_1, M A v_1 = (3, 4), and the
    # one-step least-squares solution is gamma = 50 * 3 / 25 = 6, so x_1 = (6, 0) and
    # r_1 = (-3, 4): the preconditioned residual fell (50 -> 40), the true one stayed
    # exactly 5 = ||b||.  That iterate is kept (x = (6, 0), not x_0 = 0).
    M = np.array([[3.0, 10.25], [4.0, -3.0]])
    b = np.array([3.0, 4.0])
    result = gmres(np.eye(2), b, M=M, restart=1, maxiter=1, rtol=1e-14)
    np.testing.assert_array_equal(result.x, [6.0, 0.0])
    assert result.residual_norm == 5.0 == np.linalg.norm(b)
    assert result.status == SolverStatus.MAX_ITERATIONS
    np.testing.assert_array_equal(result.residual_history, [50.0, 40.0])


# --- the Arnoldi step: non-finite operator output --------------------------------------------


def test_non_finite_operator_output_is_reported_per_sample_without_a_numpy_warning():
    # A = diag(inf, 1) gives w = (inf, 0): orthogonalizing it computes inf - inf.  That
    # sample stops with NON_FINITE (its iterate stays x_0 = 0) as a status, not as a
    # RuntimeWarning from numpy; its neighbour in the batch converges as if alone.
    A = np.stack([np.diag([np.inf, 1.0]), np.diag([1.0, 2.0])])
    b = np.ones((2, 2))
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = gmres(A, b, rtol=1e-12)
    assert result.status.tolist() == [SolverStatus.NON_FINITE, SolverStatus.CONVERGED]
    np.testing.assert_array_equal(result.x[0], [0.0, 0.0])
    np.testing.assert_allclose(result.x[1], [1.0, 0.5], rtol=1e-15)
    assert result.iterations.tolist() == [1, 2]
    # The stopped sample leaves the cycle: no true-residual product for it (sample 1:
    # two Arnoldi products and one for b - Ax).
    assert result.matvecs.tolist() == [1, 3]


def test_non_finite_sample_does_not_stop_a_neighbour_that_needs_more_cycles():
    # As above with restart = 1: sample 1 needs several cycles, after sample 0 stopped
    # with NON_FINITE in the first; sample 1 runs on exactly as alone (batch = loop).
    A = np.stack([np.diag([np.inf, 1.0]), np.diag([1.0, 2.0])])
    b = np.ones((2, 2))
    batch = gmres(A, b, rtol=1e-8, restart=1, maxiter=100)
    alone = gmres(A[1], b[1], rtol=1e-8, restart=1, maxiter=100)
    assert batch.status.tolist() == [SolverStatus.NON_FINITE, SolverStatus.CONVERGED]
    assert alone.cycles > 2
    for field in ("status", "iterations", "cycles", "matvecs"):
        assert getattr(batch, field)[1] == getattr(alone, field), field
    np.testing.assert_array_equal(batch.x[1], alone.x)


def test_operator_output_near_overflow_is_reported_per_sample_without_a_numpy_warning():
    # A = c [[1, 1], [1, 1]] with c = 1.06e308: w = A v_1 = (1.5e308, 1.5e308) is finite
    # but its coefficient h_11 = v_1 . w = 2.1e308 overflows inside the Arnoldi step.
    # The sample stops with NON_FINITE, without a numpy overflow warning.
    A = np.stack([np.full((2, 2), 1.06e308), np.diag([1.0, 2.0])])
    b = np.ones((2, 2))
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = gmres(A, b, rtol=1e-12)
    assert result.status.tolist() == [SolverStatus.NON_FINITE, SolverStatus.CONVERGED]
    np.testing.assert_array_equal(result.x[0], [0.0, 0.0])
    np.testing.assert_allclose(result.x[1], [1.0, 0.5], rtol=1e-15)


def test_batched_preconditioner_sees_only_the_samples_still_iterating():
    # Sample 0 (A = I) converges after one step; sample 1 iterates on alone, so its
    # preconditioner M_1 (not M_0) must be applied to the compacted rows.  Batch = loop.
    rng = np.random.default_rng(5)
    n = 6
    A = np.stack([np.eye(n), 4 * np.eye(n) + rng.standard_normal((n, n))])
    M = np.stack([np.eye(n), np.diag(rng.uniform(0.5, 2.0, n))])
    b = rng.standard_normal((2, n))
    batch = gmres(A, b, M=M, rtol=1e-10, restart=2)
    assert batch.cycles[1] > 1  # later cycles start with sample 1 alone
    for i in range(2):
        alone = gmres(A[i], b[i], M=M[i], rtol=1e-10, restart=2)
        assert batch.status[i] == alone.status == SolverStatus.CONVERGED
        assert batch.iterations[i] == alone.iterations
        assert batch.matvecs[i] == alone.matvecs
        np.testing.assert_allclose(batch.x[i], alone.x, rtol=0, atol=1e-12)
    assert batch.iterations.tolist()[0] == 1 and batch.iterations[1] > 1


def test_complex_batch_keeps_complex_hessenberg_columns():
    # As the one-system test above, on the batched path (two systems).
    rng = np.random.default_rng(8)
    n = 6
    A = 3 * np.eye(n) + (rng.standard_normal((2, n, n)) + 1j * rng.standard_normal((2, n, n))) / 3
    b = rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))
    result = gmres(A, b, rtol=1e-12, restart=n)
    assert result.x.dtype == np.complex128
    assert result.status.tolist() == [SolverStatus.CONVERGED] * 2
    assert result.cycles.tolist() == [1, 1]
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b[..., None])[..., 0], atol=1e-10)


def test_single_system_with_an_overflowing_arnoldi_vector_is_non_finite():
    # One system (the scalar fast path): A v_1 = (1.5e308, -1.5e308) is orthogonal to
    # v_1 = (1, 1)/sqrt 2, so h_11 = 0 is finite while ||A v_1|| = 2.1e308 overflows.
    # Any non-finite norm stops the sample (NON_FINITE, x = x_0), as in a batch.
    A = 1.06e308 * np.array([[1.0, 1.0], [-1.0, -1.0]])
    b = np.ones(2)
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        single = gmres(A, b, rtol=1e-12)
        batch = gmres(np.stack([A, A]), np.stack([b, b]), rtol=1e-12)
    assert single.status == SolverStatus.NON_FINITE
    assert single.iterations == 1 and single.matvecs == 1
    np.testing.assert_array_equal(single.x, [0.0, 0.0])
    assert batch.status.tolist() == [SolverStatus.NON_FINITE] * 2


# --- the start of a cycle: beta = ||M r|| ----------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_preconditioned_residual_stops_only_that_sample(bad):
    # M_0 = diag(bad, 1): beta_0 = ||M_0 r_0|| is not finite at the first cycle's start.
    # Sample 0 stops with NON_FINITE before any step (x = x_0, no product), without a
    # numpy warning; sample 1 solves diag(1, 2) x = 1 as alone; sample 2 (b = 0, done
    # before the first cycle) stays out of it: no cycle, no product.
    A = np.stack([np.eye(2), np.diag([1.0, 2.0]), np.eye(2)])
    M = np.stack([np.diag([bad, 1.0]), np.eye(2), np.eye(2)])
    b = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = gmres(A, b, M=M, rtol=1e-12)
    done = SolverStatus.CONVERGED
    assert result.status.tolist() == [SolverStatus.NON_FINITE, done, done]
    assert result.cycles.tolist() == [1, 1, 0]
    assert result.iterations.tolist() == [0, 2, 0] and result.matvecs.tolist() == [0, 3, 0]
    np.testing.assert_array_equal(result.x[[0, 2]], np.zeros((2, 2)))
    np.testing.assert_allclose(result.x[1], [1.0, 0.5], rtol=1e-15)
    np.testing.assert_array_equal(result.residual_history[0], [np.sqrt(2.0)])
    alone = gmres(A[1], b[1], rtol=1e-12)
    np.testing.assert_array_equal(result.residual_history[1], alone.residual_history)


def test_zero_preconditioned_residual_takes_no_step():
    # M = diag(1, 0) and r_0 = b = (0, 1): M r_0 = 0, so beta = 0 and there is no v_1:
    # the cycle takes no Arnoldi step (no product), only the true-residual check, and
    # after STAGNATION_CYCLES such cycles the sample stagnates at ||r|| = 1.
    result = gmres(np.eye(2), np.array([0.0, 1.0]), M=np.diag([1.0, 0.0]), rtol=1e-12)
    assert result.status == SolverStatus.STAGNATION
    assert result.iterations == 0
    assert result.cycles == result.matvecs == STAGNATION_CYCLES
    assert result.residual_norm == 1.0
    np.testing.assert_array_equal(result.x, [0.0, 0.0])
    np.testing.assert_array_equal(result.residual_history, [0.0] * STAGNATION_CYCLES)
    # In a batch, next to a sample that steps: the idle sample's least-squares problem
    # gets no column (an all-zero column would read as a singular H: BREAKDOWN).
    A = np.stack([np.eye(2), np.diag([1.0, 2.0])])
    M = np.stack([np.diag([1.0, 0.0]), np.eye(2)])
    batch = gmres(A, np.array([[0.0, 1.0], [1.0, 1.0]]), M=M, rtol=1e-12)
    assert batch.status.tolist() == [SolverStatus.STAGNATION, SolverStatus.CONVERGED]
    assert batch.cycles.tolist() == [STAGNATION_CYCLES, 1]
    assert batch.iterations.tolist() == [0, 2]


@pytest.mark.parametrize(("c", "cycles"), [(100.0, 2), (3000.0, 1)])
def test_breakdown_is_judged_against_the_operator_norm_estimate_in_a_batch(c, cycles):
    # A e1 = 100 e2, A e2 = 0.01 e1 + c eps e3: at step 2 ||A v_2|| = 0.01 but the
    # running estimate of ||A|| is 100, so the threshold is 16 sqrt(2) eps * 100 =
    # 2263 eps, not 0.23 eps: c = 100 is a breakdown (the e3 direction comes in a second
    # cycle), c = 3000 is not.  Batched and one-system paths use the same estimate.
    A = np.array([[0.0, 0.01, 0.0], [100.0, 0.0, 0.0], [0.0, c * np.finfo(np.float64).eps, 1.0]])
    b = np.array([1.0, 0.0, 0.0])
    single = gmres(A, b, rtol=0.0)
    batch = gmres(np.stack([A, A]), np.stack([b, b]), rtol=0.0)
    assert single.status == SolverStatus.CONVERGED
    assert single.cycles == cycles and single.iterations == 3
    for field in ("status", "iterations", "cycles", "matvecs"):
        assert getattr(batch, field).tolist() == [getattr(single, field)] * 2, field
    np.testing.assert_allclose(batch.x[0], np.linalg.solve(A, b), rtol=0, atol=1e-15)
    # A neighbour whose first step is not finite must not erase the estimate ||A v_1||.
    mixed = gmres(np.stack([np.diag([np.inf, 1.0, 1.0]), A]), np.stack([np.ones(3), b]), rtol=0.0)
    assert mixed.status.tolist() == [SolverStatus.NON_FINITE, SolverStatus.CONVERGED]
    assert mixed.cycles[1] == cycles and mixed.iterations[1] == 3


def test_non_finite_arnoldi_vector_is_dropped_without_a_numpy_warning():
    # diag(inf, 1, 1) v_1 keeps an infinite entry after orthogonalization next to a
    # neighbour that steps on: the sample stops with NON_FINITE, and its v_2 is zeroed
    # (inf * 0) without a numpy warning.
    A = np.array([[0.0, 0.01, 0.0], [100.0, 0.0, 0.0], [0.0, 1e-6, 1.0]])
    b = np.array([1.0, 0.0, 0.0])
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = gmres(np.stack([np.diag([np.inf, 1.0, 1.0]), A]), np.stack([np.ones(3), b]))
    assert result.status.tolist() == [SolverStatus.NON_FINITE, SolverStatus.CONVERGED]
    np.testing.assert_allclose(result.x[1], np.linalg.solve(A, b), rtol=1e-10)


def test_float32_batch_equals_the_one_system_path_bit_for_bit():
    # The scalar one-system path and the batched path scale v_{j+2} = w / h_{j+2,j+1}
    # by the same float32 number: their float32 iterates agree to the last bit.
    rng = np.random.default_rng(3)
    n = 12
    A = (4 * np.eye(n) + rng.standard_normal((n, n))).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    single = gmres(A, b, rtol=1e-4, restart=5)
    batch = gmres(np.stack([A, A]), np.stack([b, b]), rtol=1e-4, restart=5)
    assert single.x.dtype == batch.x.dtype == np.float32
    assert single.status == SolverStatus.CONVERGED and single.cycles > 1
    assert batch.iterations.tolist() == [single.iterations] * 2
    np.testing.assert_array_equal(batch.x[0], single.x)
    np.testing.assert_array_equal(batch.residual_history[1], single.residual_history)


# --- the Givens update in a batch: the pr_norm callback and the inner tolerance ------------


def test_batched_pr_norm_callback_sees_each_samples_own_relative_estimate():
    # Sample 0: ||b|| = 7, its callback values are ||r~_j|| / ||b|| as for the system
    # alone.  Sample 1 asks to stop at its first step: CALLBACK, and it stays requested
    # while sample 0 steps on.  Sample 2 has b = 0 (done before the first cycle): NaN
    # (not 0/0 with a numpy warning, not None) wherever a sample did not step.
    rng = np.random.default_rng(11)
    n = 6
    A0 = 4 * np.eye(n) + rng.standard_normal((n, n))
    b0 = rng.standard_normal(n)
    b0 *= 7.0 / np.linalg.norm(b0)
    A = np.stack([A0, A0, np.eye(n)])
    b = np.stack([b0, b0, np.zeros(n)])
    seen = []

    def callback(rel):
        seen.append(np.array(rel, copy=True))
        return np.array([False, True, False])

    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = gmres(A, b, rtol=1e-10, callback=callback, callback_type="pr_norm")
    alone_seen = []
    alone = gmres(A0, b0, rtol=1e-10, callback=alone_seen.append, callback_type="pr_norm")
    done = SolverStatus.CONVERGED
    assert result.status.tolist() == [done, SolverStatus.CALLBACK, done]
    assert result.cycles.tolist() == [alone.cycles, 1, 0]
    assert result.iterations.tolist() == [alone.iterations, 1, 0]
    rel = np.stack(seen)
    assert rel.dtype == np.float64 and rel.shape == (alone.iterations, 3)
    np.testing.assert_allclose(rel[:, 0], alone_seen, rtol=1e-10)
    assert rel[0, 1] == rel[0, 0]  # the same system at its first step
    # One cycle: the history is beta, then ||r~_j|| per step; the callback gets them / ||b||.
    assert alone.cycles == 1
    np.testing.assert_allclose(rel[:, 0] * 7.0, result.residual_history[0][1:], rtol=1e-14)
    assert np.isnan(rel[1:, 1]).all() and np.isnan(rel[:, 2]).all()


def test_batched_inner_iteration_stops_when_the_estimate_equals_the_inner_tolerance():
    # The batched twin of the one-system test above: "presid <= ptol", inclusive.
    A = np.array([[1.0, 0.0, 0.0], [0.3, 2.0, 0.0], [0.0, 0.5, 3.0]])
    b = np.array([1.0, 0.0, 0.0])
    seen = []
    gmres(A, b, rtol=1e-14, callback=seen.append, callback_type="pr_norm")
    result = gmres(np.stack([A, A]), np.stack([b, b]), rtol=seen[0])
    assert result.status.tolist() == [SolverStatus.CONVERGED] * 2
    assert result.iterations.tolist() == [1, 1] and result.cycles.tolist() == [1, 1]


# --- r_0 = b - A x_0 ---------------------------------------------------------------------------


def test_initial_residual_only_for_nonzero_x0_and_non_finite_per_sample():
    # x_0 is nonzero for samples 0 and 2 only: A x_0 is computed for those (one
    # product each, with their own operators); A_0 x_0 is not finite, so sample 0
    # stops with NON_FINITE before any cycle (x = x_0), without a numpy warning;
    # samples 1 and 2 solve as alone.
    A = np.stack([np.diag([np.inf, 1.0, 1.0]), np.diag([1.0, 2.0, 3.0]), np.diag([2.0, 3.0, 4.0])])
    b = np.ones((3, 3))
    x0 = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = gmres(A, b, x0=x0, rtol=1e-12)
    assert result.status[0] == SolverStatus.NON_FINITE
    assert result.matvecs[0] == 1 and result.iterations[0] == 0 and result.cycles[0] == 0
    np.testing.assert_array_equal(result.x[0], x0[0])
    for i in (1, 2):
        alone = gmres(A[i], b[i], x0=x0[i], rtol=1e-12)
        assert result.status[i] == alone.status == SolverStatus.CONVERGED
        for field in ("iterations", "cycles", "matvecs"):
            assert getattr(result, field)[i] == getattr(alone, field), field
        np.testing.assert_allclose(result.x[i], 1.0 / np.diag(A[i]), rtol=1e-14)
    assert result.matvecs.tolist() == [1, 4, 5]  # no product for x_0 = 0 (sample 1)


def test_initial_residual_exactly_at_the_tolerance_has_converged():
    # ||b - A x_0|| = 0.5 = rtol ||b||: the tolerance test is "<=" on the true residual
    # (as at the end of a cycle), so x_0 is returned after its one product, no cycle.
    b = np.array([1.0, 0.0])
    x0 = np.array([0.5, 0.0])
    result = gmres(np.eye(2), b, x0=x0, rtol=0.5)
    assert result.status == SolverStatus.CONVERGED
    assert result.cycles == result.iterations == 0 and result.matvecs == 1
    np.testing.assert_array_equal(result.x, x0)
    # Without a cycle the history is the one true residual norm.
    assert result.residual_history.dtype == np.float64
    np.testing.assert_array_equal(result.residual_history, [0.5])


# --- the first basis vector v_1 = M r / beta in the working dtype ------------------------------


def test_first_krylov_vector_in_float32_equals_scipys_bit_for_bit():
    # The first vector the operator sees (x_0 = 0) is v_1 = r_0 / beta.  For b = (2, 3, 6),
    # beta = 7 exactly in any arithmetic, and scipy scales by the float32 number 1/beta:
    # two of the three entries differ in the last bit from r_0 times the float64 1/7.
    # Both solvers must hand the operator the same float32 vector.
    A = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 4.0]], dtype=np.float32)
    b = np.array([2.0, 3.0, 6.0], dtype=np.float32)

    def recording(seen):
        def matvec(v):
            seen.append(np.array(v, dtype=np.float32).reshape(-1))
            return A @ np.asarray(v).reshape(-1)

        return sla.LinearOperator((3, 3), matvec=matvec, dtype=np.float32)

    ours, theirs = [], []
    result = gmres(recording(ours), b, rtol=1e-5)
    sla.gmres(recording(theirs), b, rtol=1e-5)
    assert result.x.dtype == np.float32
    assert ours[0].dtype == theirs[0].dtype == np.float32
    in_float64 = (b.astype(np.float64) / 7.0).astype(np.float32)
    assert (theirs[0] != in_float64).sum() == 2  # the case is sensitive to the rounding
    np.testing.assert_array_equal(ours[0], theirs[0])
    # The batched path (two right-hand sides of one operator) scales alike.
    ours_batch = []
    gmres(recording(ours_batch), np.stack([b, b]), rtol=1e-5)
    np.testing.assert_array_equal(ours_batch[0], theirs[0])


# --- gmres(): arguments, defaults and messages as scipy's ------------------------------------


def test_unknown_keywords_are_rejected_naming_gmres_and_the_argument():
    A, b = np.eye(2), np.ones(2)
    with pytest.raises(TypeError, match=r"^gmres\(\) got an unexpected keyword argument 'foo'\.$"):
        gmres(A, b, foo=1)
    with pytest.raises(TypeError, match=r"^gmres\(\) got an unexpected keyword argument 'tol': "):
        gmres(A, b, tol=1e-5)


def test_invalid_restart_and_orthogonalization_are_named_in_the_error():
    A, b = np.eye(2), np.ones(2)
    with pytest.raises(ValueError, match=r"^restart must be >= 1; got 0\.$"):
        gmres(A, b, restart=0)
    with pytest.raises(
        ValueError, match=r"^orthogonalization must be 'mgs' or 'cgs2'; got 'qr'\.$"
    ):
        gmres(A, b, orthogonalization="qr")


def test_default_restart_is_twenty_inner_iterations_as_scipy():
    # n = 30 > 20: one cycle (maxiter=1) of a system that needs more than 20 steps takes
    # exactly scipy's default restart, 20 steps, callback for callback.
    rng = np.random.default_rng(0)
    n = 30
    A = np.diag(np.linspace(1.0, 100.0, n))
    b = rng.standard_normal(n)
    ours, theirs = [], []
    kwargs = {"rtol": 1e-14, "maxiter": 1, "callback_type": "pr_norm"}
    result = gmres(A, b, callback=ours.append, **kwargs)
    _, info = sla.gmres(A, b, callback=theirs.append, **kwargs)
    assert info == 1 and result.status == SolverStatus.MAX_ITERATIONS
    assert result.iterations == len(ours) == len(theirs) == 20
    assert result.cycles == 1


def test_default_maxiter_is_ten_n_cycles_as_scipy():
    # GMRES(1) on diag(1, 1e4) gains a factor ~(1 - 2e-4) per cycle: steady progress
    # (no stagnation), far from rtol = 1e-14 after scipy's default 10 n = 20 cycles.
    A, b = np.diag([1.0, 1e4]), np.ones(2)
    result = gmres(A, b, rtol=1e-14, restart=1)
    _, info = sla.gmres(A, b, rtol=1e-14, restart=1)
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert info == result.cycles == result.iterations == 20
    assert result[1] == info  # scipy's info on failure: maxiter


def test_callback_without_callback_type_warns_at_the_callers_line():
    # scipy's DeprecationWarning, attributed to the caller (stacklevel 2: never a line
    # inside krylovadv, where the user could not act on it), with the text naming the
    # legacy meaning and the choices.
    with pytest.warns(DeprecationWarning) as record:
        gmres(np.eye(2), np.ones(2), callback=lambda r: None)
    assert len(record) == 1
    package = Path(krylovadv.__file__).resolve().parent
    assert package not in Path(record[0].filename).resolve().parents
    assert str(record[0].message) == (
        "krylovadv.gmres called without specifying `callback_type`: the callback keeps "
        "scipy's legacy meaning (called with the relative residual estimate after every "
        "inner iteration, and maxiter counting inner iterations). Pass "
        "callback_type='pr_norm', 'x' or 'legacy' to choose."
    )


@pytest.mark.parametrize("c", [1e-3, 1e3])
def test_inner_tolerance_scales_with_the_preconditioned_right_hand_side(c, recwarn):
    # M = c I: the inner iteration tests ||M r~|| against ||M b|| min(1, tol / ||b||)
    # (scipy gh-8400), so a scaled preconditioner changes nothing: the same steps as
    # scipy's, callback for callback (against ||b|| instead, c = 1e-3 would stop every
    # cycle early and c = 1e3 late).
    rng = np.random.default_rng(1)
    n = 24
    A = 4 * np.eye(n) + rng.standard_normal((n, n)) / np.sqrt(n)
    b = rng.standard_normal(n)
    ours, theirs = [], []
    # restart = n: the first cycle ends on the inner tolerance, not on its length.
    kwargs = {"rtol": 1e-8, "restart": n, "M": c * np.eye(n), "callback_type": "pr_norm"}
    result = gmres(A, b, callback=ours.append, **kwargs)
    _, info = sla.gmres(A, b, callback=theirs.append, **kwargs)
    assert info == 0 and result.status == SolverStatus.CONVERGED
    assert len(ours) == len(theirs) == result.iterations
    assert result.cycles == 1 and result.iterations < n  # ended on the inner tolerance
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-14)


def test_absolute_tolerance_above_norm_b_caps_the_inner_tolerance_at_norm_mb():
    # atol = 2 ||b|| and a far x_0: the inner tolerance is ||M b|| min(1, atol / ||b||) =
    # ||b||, not 2 ||b||; the inner steps equal scipy's.
    rng = np.random.default_rng(2)
    n = 8
    A = 4 * np.eye(n) + rng.standard_normal((n, n))
    b = rng.standard_normal(n)
    x0 = 10 * rng.standard_normal(n)
    ours, theirs = [], []
    kwargs = {"x0": x0, "rtol": 0.0, "atol": 2 * np.linalg.norm(b), "callback_type": "pr_norm"}
    result = gmres(A, b, callback=ours.append, **kwargs)
    _, info = sla.gmres(A, b, callback=theirs.append, **kwargs)
    assert info == 0 and result.status == SolverStatus.CONVERGED
    assert len(ours) == len(theirs) == result.iterations
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)


def test_zero_right_hand_side_with_an_absolute_tolerance_warns_nothing():
    # ||b|| = 0 with atol > 0: the ratio tol / ||b|| of the inner tolerance is atol / 0,
    # computed for the whole batch and unused for that sample; numpy must not warn.
    A = np.stack([np.eye(2), np.diag([1.0, 2.0])])
    b = np.array([[0.0, 0.0], [1.0, 1.0]])
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = gmres(A, b, atol=1e-12, rtol=0.0)
        single = gmres(np.eye(2), np.zeros(2), atol=1e-12)
    assert result.status.tolist() == [SolverStatus.CONVERGED] * 2
    assert single.status == SolverStatus.CONVERGED and single.matvecs == 0
    np.testing.assert_array_equal(result.x[0], [0.0, 0.0])


# --- callbacks and operators of a batch --------------------------------------------------------


def test_batched_x_callback_gets_every_samples_iterate():
    # callback_type="x" on a batch: the callback receives the (B, n) iterate after every
    # cycle (a single system gets its (n,) vector), and may stop single samples.
    rng = np.random.default_rng(4)
    n = 6
    A = 4 * np.eye(n) + rng.standard_normal((2, n, n))
    b = rng.standard_normal((2, n))
    seen = []

    def callback(x):
        seen.append(np.array(x, copy=True))
        return np.array([False, True])

    result = gmres(A, b, rtol=1e-10, restart=2, callback=callback, callback_type="x")
    assert seen[0].shape == (2, n)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CALLBACK]
    assert result.cycles[1] == 1
    np.testing.assert_array_equal(seen[-1][0], result.x[0])
    np.testing.assert_array_equal(seen[0][1], result.x[1])
    alone = []
    gmres(
        A[0],
        b[0],
        rtol=1e-10,
        restart=2,
        callback=lambda x: alone.append(x.copy()),
        callback_type="x",
    )
    assert alone[0].shape == (n,)
    np.testing.assert_allclose(np.stack(alone), np.stack(seen)[:, 0], rtol=0, atol=1e-14)


class _RecordingShared(LinearOperator):
    """A shared (unbatched) operator that records the ``indices`` it is called with."""

    def __init__(self, matrix):
        super().__init__(matrix.shape)
        self.matrix = matrix
        self.seen = []

    def _matvec(self, x, indices):
        self.seen.append(indices)
        return x @ self.matrix.T


def test_shared_operator_is_called_without_sample_indices():
    # A shared operator (batch_size None) is one matrix for every row: the solver passes
    # indices=None ("the rows are just k vectors"), also after samples left the active set.
    A = np.diag([1.0, 2.0, 3.0])
    b = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # sample 0 converges after one step
    op, M = _RecordingShared(A), _RecordingShared(np.diag([1.0, 0.5, 0.25]))
    result = gmres(op, b, M=M, rtol=1e-12)
    # M A = diag(1, 1, 0.75) has two distinct eigenvalues: two steps for sample 1.
    assert result.iterations.tolist() == [1, 2]
    # A: step 1 (both rows), step 2 (row 1 alone), b - A x (both rows); M: M b, the
    # cycle's start and the two steps.
    assert len(op.seen) == 3 and len(M.seen) == 4
    assert all(i is None for i in op.seen + M.seen)
    np.testing.assert_allclose(result.x, b / np.diag(A), rtol=1e-12)


def test_solve_stays_on_the_inputs_device_under_another_torch_default_device():
    # torch.device("meta") as the default device (as a user's torch.set_default_device):
    # every array the solver creates must follow b's device (CPU here), so the results
    # equal those of the same solves without the context.  Covers a single system (the
    # scalar fast path), a batch with a zero right-hand side, a nonzero x_0, a batched
    # preconditioner and samples leaving the active set.
    import torch

    rng = np.random.default_rng(6)
    n = 5
    A = torch.from_numpy(4 * np.eye(n) + rng.standard_normal((3, n, n)))
    M = torch.from_numpy(np.stack([np.diag(rng.uniform(0.5, 2.0, n)) for _ in range(3)]))
    b = torch.from_numpy(rng.standard_normal((3, n)))
    b[2] = 0.0
    x0 = torch.from_numpy(rng.standard_normal((3, n)))
    x0[1] = 0.0
    calls = [
        lambda: gmres(A[0], b[0], x0=x0[0], rtol=1e-10, restart=2),
        lambda: gmres(A, b, x0=x0, M=M, rtol=1e-10, restart=2),
    ]
    expected = solve_with_and_without_a_meta_default_device(calls)
    # Sample 2 (b = 0) never joins the active set: the batch runs on compacted rows.
    assert expected[1].iterations[2] == 0 and expected[1].iterations[0] > 0


@pytest.mark.parametrize(
    ("dtype", "shift", "rtol"),
    [
        (np.float64, -1030, 1e-9),
        (np.float32, -128, 1e-3),
        (np.complex128, -1030, 1e-9),
        (np.complex64, -128, 1e-3),
    ],
)
def test_a_subnormal_beta_starts_its_cycle_without_overflow(dtype, shift, rtol):
    # beta = ||M r|| below the working precision's smallest normal number (2^-1022 in
    # float64, 2^-126 in float32): 1/beta overflows there (for complex data also a
    # division by beta: numpy divides through the reciprocal).  b_1 is 2^shift b_0
    # exactly (small integers), so x_1 = 2^shift A^{-1} b_0: the subnormal sample must
    # converge like the normal one beside it, in a batch and alone, with no numpy warning.
    # (Before the fix, complex128 ended NON_FINITE with "overflow encountered in divide".)
    A = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=dtype)
    b0 = np.array([1.0, 2.0, 2.0], dtype=dtype)  # ||b_0|| = 3
    if np.dtype(dtype).kind == "c":
        b0 = b0 * np.array([1, 1j, -1j], dtype=dtype)
    real = np.float32 if dtype in (np.float32, np.complex64) else np.float64
    b = np.stack([b0, b0 * real(2.0**shift)])
    assert 3.0 * 2.0**shift < np.finfo(dtype).tiny  # ||b_1||, exactly
    assert np.array_equal(np.ldexp(b[1].real.astype(np.float64), -shift), b0.real)
    assert np.array_equal(np.ldexp(b[1].imag.astype(np.float64), -shift), b0.imag)
    wide = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
    reference = np.linalg.solve(A.astype(wide), b0.astype(wide))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = gmres(np.stack([A, A]), b, rtol=rtol, restart=2)
        alone = gmres(A, b[1], rtol=rtol, restart=2)
    assert batch.status.tolist() == [SolverStatus.CONVERGED] * 2
    assert alone.status == SolverStatus.CONVERGED
    np.testing.assert_allclose(batch.x[0], reference, rtol=10 * rtol)
    x1 = batch.x[1].astype(wide)
    np.testing.assert_allclose(
        np.ldexp(x1.real, -shift) + 1j * np.ldexp(x1.imag, -shift), reference, rtol=10 * rtol
    )
    np.testing.assert_array_equal(alone.x, batch.x[1])
    assert batch.iterations[1] == alone.iterations


def test_a_subnormal_torch_rhs_stays_on_its_device_under_another_default_device():
    # The lift of a subnormal beta (start_cycle) is an array the solver creates: under a
    # torch.device("meta") default it must still follow b's device (CPU).  b_1 = 2^-1030 b_0
    # exactly, so x_1 = 2^-1030 A^{-1} b_0: the results must equal the solves without the
    # context, and the subnormal sample must converge to the scaled solution.
    import torch

    A = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    b0 = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)
    b = torch.stack([b0, b0 * 2.0**-1030])
    calls = [
        lambda: gmres(A, b[1], rtol=1e-9, restart=2),
        lambda: gmres(torch.stack([A, A]), b, rtol=1e-9, restart=2),
    ]
    expected = solve_with_and_without_a_meta_default_device(calls)
    reference = np.linalg.solve(A.numpy(), b0.numpy())
    np.testing.assert_allclose(np.ldexp(expected[0].x.numpy(), 1030), reference, rtol=1e-8)
    assert expected[0].status == SolverStatus.CONVERGED and expected[0].iterations > 0


def test_cycle_ending_with_the_estimate_equal_to_the_inner_tolerance_tightens_it():
    # scipy's gh-8400 rule at the end of a cycle: "presid <= ptol" (estimate met the inner
    # tolerance) but the true residual did not meet tol -> the estimate was optimistic, the
    # factor drops to 0.25 (from 1), and the next cycle's inner tolerance is
    # ptol_2 = beta_2 min(0.25, tol / ||r_1||).  ||b|| = ||M b|| = 1 with M = diag(1, 1/2, ...)
    # and rtol = the first step's relative estimate (read from a pr_norm callback), so the
    # first cycle ends after one step with presid == ptol exactly, while ||r_1|| > ||M r_1||.
    rng = np.random.default_rng(2)
    n = 6
    A = 3 * np.eye(n) + rng.standard_normal((n, n))
    b = np.zeros(n)
    b[0] = 1.0
    M = np.diag([1.0] + [0.5] * (n - 1))
    seen = []
    gmres(A, b, M=M, rtol=1e-14, restart=n, callback=seen.append, callback_type="pr_norm")
    rtol = seen[0]
    first = gmres(A, b, M=M, rtol=rtol, restart=n, maxiter=1)
    np.testing.assert_array_equal(first.residual_history, [1.0, rtol])  # one step, presid == ptol
    r1 = np.linalg.norm(b - A @ first.x)
    assert r1 > rtol  # the true residual is above tol = rtol ||b||
    result = gmres(A, b, M=M, rtol=rtol, restart=n)
    history = np.asarray(result.residual_history)
    np.testing.assert_array_equal(history[:2], [1.0, rtol])
    beta2, estimates = history[2], history[3:]
    np.testing.assert_allclose(beta2, np.linalg.norm(M @ (b - A @ first.x)), rtol=1e-12)
    ptol2 = beta2 * min(0.25, rtol / r1)
    # The second cycle's inner iteration stops at its first estimate <= ptol_2.
    assert np.all(estimates[:-1] > ptol2) and estimates[-1] <= ptol2
    assert result.status == SolverStatus.CONVERGED
    assert result.iterations == 1 + len(estimates) and result.cycles == 2


@pytest.mark.parametrize(("seed", "restart", "rtol"), [(8, 3, 1e-2), (19, 3, 1e-4), (213, 2, 1e-2)])
def test_inner_tolerance_factor_is_capped_at_one_as_scipy(seed, restart, rtol):
    # scipy's gh-8400 factor relaxes as min(1, 1.5 f) after a cycle that used its whole
    # restart: capped at 1, so a later optimistic cycle tightens it to exactly 0.25 (not
    # 0.375 from an uncapped 1.5).  On these left-preconditioned problems (found by a scan)
    # that sequence occurs and changes a later cycle's inner iteration count: the counts
    # must equal scipy's (its pr_norm callback runs once per inner iteration).
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 9))
    A = np.eye(n) * rng.uniform(1.5, 4) + rng.standard_normal((n, n))
    b = rng.standard_normal(n)
    M = np.diag(rng.uniform(0.05, 1.0, n))
    steps = []
    x_ref, info = sla.gmres(
        A, b, M=M, rtol=rtol, restart=restart, maxiter=30, callback=steps.append,
        callback_type="pr_norm",
    )  # fmt: skip
    assert info == 0
    result = gmres(A, b, M=M, rtol=rtol, restart=restart, maxiter=30)
    assert result.status == SolverStatus.CONVERGED
    assert result.iterations == len(steps)
    np.testing.assert_allclose(result.x, x_ref, rtol=1e-8, atol=1e-12)


def test_improvement_by_exactly_the_stall_margin_is_no_progress():
    # Progress needs ||r|| < (1 - sqrt(eps)) * best strictly.  b = (b_1, 1 - 2^-26) with
    # ||b|| = 1 (exactly, in float64) and A = I, M = diag(1, 0): the first cycle solves the
    # first component (x = (b_1, 0)) and leaves ||r|| = 1 - 2^-26 = (1 - sqrt(eps)) ||b||
    # exactly; then M r = 0 and nothing changes.  So every one of the STAGNATION_CYCLES
    # cycles counts as stalled, including the first: STAGNATION after exactly that many.
    b = np.array([np.sqrt(2.0**-25 - 2.0**-52), 1.0 - 2.0**-26])
    assert np.linalg.norm(b) == 1.0 and np.sqrt(np.finfo(np.float64).eps) == 2.0**-26
    result = gmres(np.eye(2), b, M=np.diag([1.0, 0.0]), restart=1, rtol=1e-14)
    assert result.residual_norm == 1.0 - 2.0**-26
    np.testing.assert_allclose(result.x, [b[0], 0.0], rtol=1e-15, atol=0)
    assert result.status == SolverStatus.STAGNATION
    assert result.cycles == STAGNATION_CYCLES and result.iterations == 1
