"""Tests that kill the mutants mutmut left alive in krylovadv/cg.py.

Each test pins one behaviour that a surviving mutant changed (see docs/dev/mutation.rst):
scipy's defaults (``rtol=1e-5``, ``atol=0``, ``maxiter=10 n``), the exact product and
iteration counts, the zero-curvature test and its threshold
:math:`d^T A d \\le \\varepsilon\\|d\\|\\|Ad\\|`, the per-sample handling of
non-finite products, residual replacement, the callback's reach, the working precision,
and the preconditioner's error message.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from krylovadv import SolverStatus, aslinearoperator, cg

EPS = float(np.finfo(np.float64).eps)


def spd(n: int, cond: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric positive definite matrix with eigenvalues geomspace(1, cond) and a rhs."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q * np.geomspace(1.0, cond, n)) @ q.T
    return (A + A.T) / 2, rng.standard_normal(n)


def batched(matrices: np.ndarray, seen: list | None = None):
    """A batched operator over the stack ``matrices`` that records the samples it sees."""

    def matvec(X, idx):
        idx = np.arange(len(matrices)) if idx is None else np.asarray(idx)
        if seen is not None:
            seen.append(idx.tolist())
        return np.einsum("kij,kj->ki", matrices[idx], X)

    n = matrices.shape[1]
    return aslinearoperator(
        matvec, shape=(n, n), batch_size=len(matrices), vectorized=True, pass_indices=True
    )


def test_default_tolerances_are_scipys():
    # rtol=1e-5 relative and atol=0: ||b|| = 1e3 * ||b0|| makes an absolute atol of 1 stop
    # far earlier than the relative target 1e-2.
    A, b = spd(20, 1e3, 0)
    b = 1e3 * b
    default = cg(A, b)
    explicit = cg(A, b, rtol=1e-5, atol=0.0)
    assert default.status == SolverStatus.CONVERGED
    assert default.iterations == explicit.iterations > 1
    assert default.residual_norm <= 1e-5 * np.linalg.norm(b)
    assert cg(A, b, rtol=1e-5, atol=1.0).iterations < default.iterations


def test_default_maxiter_is_ten_n_and_counts_every_product():
    # rtol = atol = 0 is never met by a nonzero residual: CG runs out of steps.
    A, b = spd(5, 10.0, 1)
    result = cg(A, b, rtol=0.0)
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert result.iterations == 50 and result.info == 50
    # 50 steps, plus one product for the true residual of the returned x.
    assert result.matvecs == 51
    assert np.isclose(result.residual_norm, np.linalg.norm(b - A @ result.x), rtol=1e-6)
    short = cg(A, b, rtol=0.0, maxiter=7)
    assert short.status == SolverStatus.MAX_ITERATIONS
    assert short.iterations == 7 and short.matvecs == 8
    # The history starts at ||r_0|| = ||b|| and has one recursive norm per step.
    assert short.residual_history[0] == pytest.approx(float(np.linalg.norm(b)), rel=1e-15, abs=0.0)
    assert len(short.residual_history) == 8


def test_converged_sample_costs_one_check_product():
    A, b = spd(12, 1e2, 2)
    result = cg(A, b, rtol=1e-10)
    assert result.status == SolverStatus.CONVERGED
    # Steps, plus the one true-residual check that confirmed convergence.
    assert result.matvecs == result.iterations + 1


def test_x0_is_used():
    A, b = spd(6, 10.0, 3)
    x_star = np.linalg.solve(A, b)
    result = cg(A, b, x_star, rtol=1e-8)
    assert result.status == SolverStatus.CONVERGED
    # r_0 = b - A x0 already meets the target: no step, one product for r_0.
    assert result.iterations == 0 and result.matvecs == 1
    np.testing.assert_array_equal(result.x, x_star)


def test_unknown_keyword_names_cg():
    with pytest.raises(TypeError, match=r"^cg\(\) got an unexpected keyword argument 'restart'\.$"):
        cg(np.eye(2), np.ones(2), restart=5)


def test_exact_zero_residual_meets_a_zero_tolerance():
    # One step solves a diagonal system with b = e_1 exactly: r_1 = 0 <= tol = 0.
    result = cg(np.diag([2.0, 3.0]), np.array([1.0, 0.0]), rtol=0.0)
    assert result.status == SolverStatus.CONVERGED
    assert result.iterations == 1 and result.matvecs == 2
    np.testing.assert_array_equal(result.x, [0.5, 0.0])
    assert result.residual_norm == 0.0


def test_null_direction_has_zero_curvature():
    # A = diag(1, 0), b = e_2 (inconsistent): d = b has A d = 0, so d^T A d = 0 <= 0.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cg(np.diag([1.0, 0.0]), np.array([0.0, 1.0]))
    assert result.status == SolverStatus.NEGATIVE_CURVATURE
    assert result.iterations == 1 and result.matvecs == 1
    np.testing.assert_array_equal(result.x, [0.0, 0.0])  # the iterate before d
    np.testing.assert_array_equal(result.curvature_direction, [0.0, 1.0])
    assert result.curvature == 0.0
    assert result.residual_norm == 1.0
    np.testing.assert_array_equal(result.residual_history, [1.0])


@pytest.mark.parametrize(("s", "t"), [(4.0, 4.0), (0.25, 8.0)])
def test_curvature_threshold_is_eps_times_both_norms(s, t):
    # A = s diag(1, -(1 - delta)), b = t (1, 1): the first direction d = b has
    # d^T A d = s t^2 delta exactly (powers of two), ||d|| = t sqrt 2 and
    # ||A d|| ~ s t sqrt 2, so the threshold eps ||d|| ||Ad|| is ~ 2 s t^2 eps.
    below = cg(s * np.diag([1.0, -(1.0 - 1.5 * EPS)]), t * np.ones(2), maxiter=1)
    assert below.status == SolverStatus.NEGATIVE_CURVATURE
    assert below.iterations == 1
    np.testing.assert_array_equal(below.x, [0.0, 0.0])
    np.testing.assert_array_equal(below.curvature_direction, [t, t])
    # d^T A d / ||d||^2 = s t^2 (1.5 eps) / (2 t^2).
    assert below.curvature == pytest.approx(0.75 * s * EPS, rel=1e-12, abs=0.0)
    above = cg(s * np.diag([1.0, -(1.0 - 3.0 * EPS)]), t * np.ones(2), maxiter=1)
    assert above.status == SolverStatus.MAX_ITERATIONS
    assert np.isnan(above.curvature)
    assert np.all(above.x != 0)


def test_semidefinite_preconditioner_is_not_an_error_and_warns_nothing():
    # M r = 0 gives r^T M r = 0 (not < 0: M is only semidefinite) and d = 0: no search
    # direction, a breakdown (not negative curvature: 0 <= eps * 0 * 0 says nothing of A).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cg(np.eye(2), np.array([0.0, 1.0]), M=np.diag([1.0, 0.0]))
    assert result.status == SolverStatus.BREAKDOWN
    np.testing.assert_array_equal(result.x, [0.0, 0.0])
    assert np.isnan(result.curvature)


def test_tiny_direction_curvature_warns_nothing():
    # ||d||^2 underflows to 0 while d^T A d does not: the curvature division is silenced.
    A = np.diag([-1e300, 1.0])
    b = np.array([1e-170, 1e-170])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cg(A, b)
    assert result.status == SolverStatus.NEGATIVE_CURVATURE
    assert result.curvature < 0


def test_overflowing_curvature_is_non_finite_and_keeps_x():
    # d^T A d = 2e320 overflows while ||A d|| does not.
    b = np.array([1e160, 1e160])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow itself
        result = cg(np.eye(2), b)
    assert result.status == SolverStatus.NON_FINITE
    assert result.iterations == 1 and result.matvecs == 1
    np.testing.assert_array_equal(result.x, [0.0, 0.0])
    assert result.residual_norm == pytest.approx(np.sqrt(2.0) * 1e160, rel=1e-15, abs=0.0)
    assert np.isnan(result.curvature)


def test_nan_after_a_step_is_per_sample_and_reports_the_last_residual():
    A = np.stack([spd(6, 10.0, 4)[0], spd(6, 10.0, 5)[0]])
    b = np.stack([spd(6, 10.0, 4)[1], spd(6, 10.0, 5)[1]])
    calls = [0]

    def matvec(X, idx):
        calls[0] += 1
        idx = np.arange(2) if idx is None else np.asarray(idx)
        out = np.einsum("kij,kj->ki", A[idx], X)
        if calls[0] == 2:
            out[idx == 1] = np.nan  # sample 1's second product
        return out

    op = aslinearoperator(matvec, shape=(6, 6), batch_size=2, vectorized=True, pass_indices=True)
    result = cg(op, b, rtol=1e-10)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.NON_FINITE]
    assert result.iterations.tolist()[1] == 2
    # Sample 1 keeps x_1 and reports its (recursive) residual norm, which is the true one
    # up to rounding; sample 0 solves its system as if alone.
    x1 = result.x[1]
    assert np.all(np.isfinite(x1)) and np.any(x1 != 0)
    assert np.isclose(result.residual_norm[1], np.linalg.norm(b[1] - A[1] @ x1), rtol=1e-10)
    alone = cg(A[0], b[0], rtol=1e-10)
    assert result.iterations[0] == alone.iterations
    np.testing.assert_allclose(result.x[0], alone.x, rtol=1e-12, atol=1e-14)


def test_three_samples_finishing_at_different_steps_equal_three_solves():
    # Sample 0 converges at step 1, sample 1 meets negative curvature at step 2, sample 2
    # runs on: the later steps have two active samples out of three, and a per-sample
    # preconditioner, so every index path (compaction) is taken.
    n = 5
    A2, b2 = spd(n, 50.0, 6)
    A = np.stack([np.diag(np.arange(1.0, n + 1)), np.diag([1.0, -3.0, 2.0, 4.0, 5.0]), A2])
    b = np.stack([np.eye(n)[0], np.ones(n), b2])
    M = np.stack([np.eye(n), np.eye(n), np.diag(1.0 / np.diag(A2))])
    seen_a, seen_m = [], []
    result = cg(batched(A, seen_a), b, rtol=1e-10, M=batched(M, seen_m))
    assert result.status.tolist() == [
        SolverStatus.CONVERGED,
        SolverStatus.NEGATIVE_CURVATURE,
        SolverStatus.CONVERGED,
    ]
    for i in range(3):
        alone = cg(A[i], b[i], rtol=1e-10, M=M[i])
        one = result.sample(i)
        assert (one.status, one.iterations, one.matvecs) == (
            alone.status,
            alone.iterations,
            alone.matvecs,
        )
        np.testing.assert_allclose(one.x, alone.x, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(one.curvature_direction, alone.curvature_direction, rtol=1e-12)
    np.testing.assert_array_equal(result.x[0], np.eye(n)[0])
    # Products with A and with M only for unfinished samples; each A product is counted.
    assert sum(len(s) for s in seen_a) == int(result.matvecs.sum())
    assert seen_m[0] == [0, 1, 2] and [2] in seen_m
    assert all(0 not in s for s in seen_m[2:])


def early_error(matrices: np.ndarray, first: int = 3, rel: float = 1e-6):
    """A batched operator whose first ``first`` products per sample err by ``rel ||v||``.

    The recursive residual carries that early error for ever, while the true residual
    (a later, exact product) does not see it: the recursion passes the target first.
    """
    count = np.zeros(len(matrices), dtype=int)
    n = matrices.shape[1]
    u = np.ones(n) / np.sqrt(n)

    def matvec(X, idx):
        idx = np.arange(len(matrices)) if idx is None else np.asarray(idx)
        out = np.einsum("kij,kj->ki", matrices[idx], X)
        for k, i in enumerate(idx.tolist()):
            if count[i] < first:
                out[k] += rel * np.linalg.norm(X[k]) * u
            count[i] += 1
        return out

    return aslinearoperator(
        matvec, shape=(n, n), batch_size=len(matrices), vectorized=True, pass_indices=True
    )


def test_residual_replacement_restarts_from_the_true_residual():
    # The recursive residual meets rtol = 1e-10 while the true one is ~1e-6: CG restarts
    # from b - A x (one more product) and converges; restarting from the recursive
    # residual instead would never see the 1e-6 and stagnate.
    A, b = spd(8, 100.0, 0)
    result = cg(early_error(A[None]), b[None], rtol=1e-10, maxiter=500)
    assert result.status.tolist() == [SolverStatus.CONVERGED]
    assert result.matvecs[0] == result.iterations[0] + 2  # two true-residual checks
    assert np.linalg.norm(b - A @ result.x[0]) <= 1e-10 * np.linalg.norm(b)
    # In a batch with per-sample preconditioners (identity, so the iterates are plain
    # CG's) each sample restarts alone, while the other one is running or finished.
    stack = np.stack([np.diag(np.arange(1.0, 9.0)), A])
    rhs = np.stack([np.eye(8)[0], b])
    identity = np.stack([np.eye(8), np.eye(8)])
    batch = cg(early_error(stack), rhs, rtol=1e-10, maxiter=500, M=batched(identity))
    assert batch.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CONVERGED]
    assert batch.iterations[0] != batch.iterations[1]
    for i in range(2):
        alone = cg(early_error(stack[i : i + 1]), rhs[i : i + 1], rtol=1e-10, maxiter=500)
        assert (batch.iterations[i], batch.matvecs[i]) == (alone.iterations[0], alone.matvecs[0])
        assert batch.matvecs[i] == batch.iterations[i] + 2
        np.testing.assert_allclose(batch.x[i], alone.x[0], rtol=1e-12, atol=1e-12)


def test_stagnation_after_replacements_without_progress():
    # cond 1e10 with rtol 1e-12 is below what float64 reaches: replacements stop helping.
    A, b = spd(10, 1e10, 7)
    result = cg(A, b, rtol=1e-12, maxiter=5000)
    assert result.status == SolverStatus.STAGNATION
    assert np.isclose(result.residual_norm, np.linalg.norm(b - A @ result.x), rtol=1e-6)
    assert result.matvecs >= result.iterations + 4  # at least STAGNATION_RESTARTS + 1 checks


def test_callback_cannot_override_convergence_and_sees_the_problem_shape():
    seen = []
    # b = e_1 on a diagonal matrix converges at step 1; the callback answers True then.
    single = cg(
        np.diag([2.0, 3.0]), np.array([1.0, 0.0]), callback=lambda xk: seen.append(xk.shape) or True
    )
    assert single.status == SolverStatus.CONVERGED
    assert seen == [(2,)]
    A = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([1.0, 5.0, 9.0])])
    shapes = []

    def stop_second(xk):
        shapes.append(xk.shape)
        return np.array([False, True])

    batch = cg(A, np.ones((2, 3)), rtol=1e-12, callback=stop_second)
    assert shapes[0] == (2, 3)
    assert batch.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CALLBACK]
    assert batch.iterations[1] == 1
    # A stopped sample's residual norm is recomputed: one more product.
    assert batch.matvecs[1] == 2
    assert np.isclose(batch.residual_norm[1], np.linalg.norm(1.0 - A[1] @ batch.x[1]), rtol=1e-12)


def reference_cg_float32(A: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Textbook CG on float32 vectors; scalars from float64 dots, rounded to float32."""
    x = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rz = np.einsum("ij,ij->i", r, r).astype(np.float64)
    for _ in range(steps):
        Ad = d @ A.T
        dAd = np.einsum("ij,ij->i", d, Ad).astype(np.float64)
        alpha = np.asarray(rz / dAd, dtype=np.float32)[:, None]
        x = x + alpha * d
        r = r - alpha * Ad
        rz_new = np.einsum("ij,ij->i", r, r).astype(np.float64)
        beta = np.asarray(rz_new / rz, dtype=np.float32)[:, None]
        d = r + beta * d
        rz = rz_new
    return x


def test_float32_works_in_float32():
    # The step lengths alpha and beta are rounded to the working precision before they
    # scale float32 vectors, as in a float32 implementation: bitwise the reference.
    A = np.array(
        [[4.0, 1.0, 0.5, 0.0], [1.0, 3.0, 0.25, 0.5], [0.5, 0.25, 5.0, 1.0], [0.0, 0.5, 1.0, 6.0]],
        dtype=np.float32,
    )
    rhs = [
        np.array([[0.3, -1.7, 2.9, 0.11]], dtype=np.float32),
        np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32),
    ]
    for b in rhs:
        result = cg(A, b, rtol=0.0, maxiter=3)
        assert result.x.dtype == np.float32
        np.testing.assert_array_equal(result.x, reference_cg_float32(A, b, 3))


def test_indefinite_preconditioner_message_names_the_sample():
    A = np.stack([np.eye(3), np.eye(3)])
    M = np.stack([np.eye(3), -np.eye(3)])
    message = (
        r"^the preconditioner M gave r\^T M r < 0 for sample\(s\) \[1\]: "
        r"M must be symmetric positive definite for cg and minres\.$"
    )
    with pytest.raises(ValueError, match=message):
        cg(A, np.ones((2, 3)), M=M)
    # r_0^T M r_0 = 1 > 0 but r_1^T M r_1 = -1/4: detected when the next direction is built.
    A2 = np.stack([np.eye(2), np.array([[2.0, 1.0], [1.0, 2.0]])])
    M2 = np.stack([np.eye(2), np.diag([1.0, -1.0])])
    b2 = np.array([[1.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=message):
        cg(A2, b2, M=M2, rtol=1e-12)


def test_torch_batch_equals_numpy_batch():
    # Every reduction goes through the array namespace of the data (torch here): the
    # same steps, statuses and products as numpy, and the iterates to rounding.
    torch = pytest.importorskip("torch")
    n = 5
    A2, b2 = spd(n, 50.0, 6)
    A = np.stack([np.diag(np.arange(1.0, n + 1)), np.diag([1.0, -3.0, 2.0, 4.0, 5.0]), A2])
    b = np.stack([np.eye(n)[0], np.ones(n), b2])
    M = np.stack([np.eye(n), np.eye(n), np.diag(1.0 / np.diag(A2))])
    ref = cg(A, b, rtol=1e-10, M=M)
    out = cg(torch.from_numpy(A), torch.from_numpy(b), rtol=1e-10, M=torch.from_numpy(M))
    assert isinstance(out.x, torch.Tensor) and out.x.dtype == torch.float64
    assert out.status.tolist() == ref.status.tolist()
    assert out.iterations.tolist() == ref.iterations.tolist()
    assert out.matvecs.tolist() == ref.matvecs.tolist()
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=1e-10, atol=1e-12)
    # (the converged residuals are rounding, 1e-14: compared to the tolerance scale)
    np.testing.assert_allclose(out.residual_norm, ref.residual_norm, rtol=1e-6, atol=1e-12)


def test_row_norms_do_not_underflow_to_zero_for_tiny_rows():
    from krylovadv._symmetric import row_norms

    rows = np.array([[1e-170, 1e-170], [0.0, 0.0], [3.0, 4.0]])  # squares of row 0 are 0.0
    np.testing.assert_allclose(row_norms(np, rows), [np.sqrt(2) * 1e-170, 0.0, 5.0], rtol=1e-15)


def test_negative_curvature_beyond_the_square_root_of_the_overflow_is_finite():
    # d = b = (1, 1): d^T A d = -1e300 + 1 and ||d|| ||A d|| needs ||A d|| = 1e300 (the
    # dot product's squares overflow to inf); the reported curvature is finite.
    result = cg(np.diag([-1e300, 1.0]), np.array([1.0, 1.0]))
    assert result.status == SolverStatus.NEGATIVE_CURVATURE
    assert np.isfinite(result.curvature) and result.curvature < 0


def test_singular_preconditioner_is_a_breakdown_not_negative_curvature():
    # M r_0 = 0 for r_0 = e_1: no search direction, so nothing about A's curvature is known.
    A, b = 2.0 * np.eye(2), np.array([[1.0, 0.0], [0.0, 1.0]])
    M = np.diag([0.0, 1.0])
    result = cg(np.stack([A, A]), b, M=M, rtol=1e-12)
    assert result.status.tolist() == [SolverStatus.BREAKDOWN, SolverStatus.CONVERGED]
    np.testing.assert_array_equal(result.x[0], [0.0, 0.0])
    assert np.isnan(result.curvature[0]) and result.residual_norm[0] == 1.0
    np.testing.assert_allclose(result.x[1], [0.0, 0.5])
