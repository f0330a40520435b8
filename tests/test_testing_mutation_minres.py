"""Tests that kill the mutants mutmut left alive in krylovadv/minres.py.

Each test pins one behaviour that a surviving mutant changed (see docs/dev/mutation.rst):
scipy's defaults (``shift=0``, ``rtol=1e-5``, ``atol=0``, ``maxiter=5 n``,
``check=False``), exact product, iteration and restart counts, the first history entry
(:math:`\\bar\\phi_0 = \\|r_0\\|_M`), breakdown on null and inconsistent systems, the
per-sample handling of non-finite products, residual replacement, the callback's reach,
and the messages of the symmetry and preconditioner checks with their thresholds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from strategies import solve_with_and_without_a_meta_default_device

from krylovadv import SolverStatus, aslinearoperator, minres

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


def early_error(matrices: np.ndarray, first: int = 3, rel: float = 1e-6):
    """A batched operator whose first ``first`` products per sample err by ``rel ||v||``.

    The recursion carries that early error for ever; the true residual (a later, exact
    product) does not see it, so the estimate passes the target before the truth does.
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


def test_defaults_are_scipys():
    # rtol=1e-5 relative and atol=0 (||b|| = 1e3 makes atol = 1 stop much earlier);
    # shift=0 and check=False: steps plus one confirming product, nothing else.
    A, b = spd(20, 1e3, 0)
    b = 1e3 * b
    default = minres(A, b)
    explicit = minres(A, b, shift=0.0, rtol=1e-5, atol=0.0, check=False)
    assert default.status == SolverStatus.CONVERGED
    assert default.iterations == explicit.iterations > 1
    assert default.matvecs == default.iterations + 1
    assert default.residual_norm <= 1e-5 * np.linalg.norm(b)
    np.testing.assert_allclose(default.x, explicit.x, rtol=0, atol=0)
    assert minres(A, b, rtol=1e-5, atol=1.0).iterations < default.iterations
    # check=True costs the two products of the symmetry test.
    assert minres(A, b, check=True).matvecs == default.matvecs + 2


def test_default_maxiter_is_five_n():
    A, b = spd(30, 1e4, 1)
    result = minres(A, b, rtol=0.0)
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert result.iterations == 150 and result.info == 150
    assert result.matvecs == 151  # steps plus the true residual of the returned x
    assert result.restarts == 0
    assert np.isclose(result.residual_norm, np.linalg.norm(b - A @ result.x), rtol=1e-6)
    short = minres(A, b, rtol=0.0, maxiter=7)
    assert (short.status, short.iterations, short.matvecs) == (SolverStatus.MAX_ITERATIONS, 7, 8)
    assert len(short.residual_history) == 8


def test_unknown_keyword_and_bad_shift_messages():
    with pytest.raises(TypeError, match=r"^minres\(\) got an unexpected keyword argument 'x'\.$"):
        minres(np.eye(2), np.ones(2), x=1)
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match=rf"^shift must be finite; got {bad}\.$"):
            minres(np.eye(2), np.ones(2), shift=bad)


def test_shift_of_exactly_one_is_applied():
    A, b = spd(6, 10.0, 2)
    A = A + 3.0 * np.eye(6)  # A - I stays positive definite
    result = minres(A, b, shift=1.0, rtol=1e-12)
    assert result.status == SolverStatus.CONVERGED
    np.testing.assert_allclose(result.x, np.linalg.solve(A - np.eye(6), b), rtol=1e-9)


def test_x0_and_first_history_entries():
    # Sample 0 starts at its solution (r_0 meets the target: no step, one product);
    # sample 1 runs with a Jacobi preconditioner, so its first estimate is ||b||_M.
    A0, b0 = spd(4, 10.0, 3)
    A1, b1 = spd(4, 10.0, 4)
    x_star = np.linalg.solve(A0, b0)
    A = np.stack([A0, A1])
    b = np.stack([b0, b1])
    x0 = np.stack([x_star, np.zeros(4)])
    Minv = np.stack([np.diag(1.0 / np.diag(A0)), np.diag(1.0 / np.diag(A1))])
    result = minres(A, b, x0, rtol=1e-8, M=Minv)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CONVERGED]
    assert result.iterations[0] == 0 and result.matvecs[0] == 1
    np.testing.assert_array_equal(result.x[0], x_star)
    r0 = np.linalg.norm(b0 - A0 @ x_star)
    assert r0 > 0  # the premise of the next line
    assert result.residual_history[0][0] == pytest.approx(float(r0), rel=1e-12, abs=0.0)
    assert result.residual_history[1][0] == pytest.approx(
        float(np.sqrt(b1 @ Minv[1] @ b1)), rel=1e-12, abs=0.0
    )
    assert abs(result.residual_history[1][0] - np.linalg.norm(b1)) > 1e-3


def test_exact_zero_residual_meets_a_zero_tolerance():
    result = minres(np.diag([2.0, 3.0]), np.array([1.0, 0.0]), rtol=0.0)
    assert result.status == SolverStatus.CONVERGED
    assert result.iterations == 1 and result.matvecs == 2
    np.testing.assert_array_equal(result.x, [0.5, 0.0])
    assert result.residual_norm == 0.0


def test_null_space_rhs_breaks_down_at_once():
    # b = e_2 in the null space of diag(1, 0): A v_1 = 0, the space is invariant and x = 0
    # is already the least-squares solution; no update, one confirming product.
    result = minres(np.diag([1.0, 0.0]), np.array([0.0, 1.0]))
    assert result.status == SolverStatus.BREAKDOWN
    assert result.iterations == 1 and result.matvecs == 2 and result.restarts == 0
    np.testing.assert_array_equal(result.x, [0.0, 0.0])
    assert result.residual_norm == 1.0
    np.testing.assert_array_equal(result.residual_history, [1.0, 1.0])


def test_inconsistent_system_restarts_once_then_breaks_down():
    # K(A, b) for A = diag(1, 2, 0), b = (1, 1, 1) has dimension 3: the breakdown at step 3
    # improved on ||b|| = sqrt 3 (true residual 1), so MINRES restarts from r = e_3 once;
    # A e_3 = 0 then breaks down at once without progress: BREAKDOWN after 4 steps and
    # 2 checks, at the least-squares distance 1.
    A = np.diag([1.0, 2.0, 0.0])
    result = minres(A, np.ones(3), rtol=1e-10)
    assert result.status == SolverStatus.BREAKDOWN
    assert (result.iterations, result.matvecs, result.restarts) == (4, 6, 1)
    assert result.residual_norm == pytest.approx(1.0, rel=1e-12, abs=0.0)
    np.testing.assert_allclose(result.x[:2], [1.0, 0.5], rtol=1e-12)


def inconsistent_system() -> tuple[np.ndarray, np.ndarray, float]:
    """A singular symmetric A (two zero eigenvalues), b with null components, and the
    least-squares distance of b to the range of A."""
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    A = (q * np.array([0.0, 0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0])) @ q.T
    A = (A + A.T) / 2
    b = q @ np.ones(8)  # components along the null space: inconsistent
    return A, b, float(np.linalg.norm(b - A @ (np.linalg.pinv(A) @ b)))


# Over 24 orders of magnitude of ||A|| / ||b||: the thresholds scale with ||A|| (not with
# beta_1 = ||r_0||), and a restart from the least-squares iterate (whose residual lies in
# the null space, where the new cycle's T_k is tiny) keeps the earlier cycles' ||T_k||.
@pytest.mark.parametrize("scale", [1e-12, 1e-6, 1.0, 1e3, 1e6, 1e12])
def test_scaled_inconsistent_system_breaks_down_at_the_least_squares_distance(scale):
    A, b, best = inconsistent_system()
    result = minres(scale * A, b, rtol=1e-10, maxiter=80)
    assert result.status == SolverStatus.BREAKDOWN
    assert result.residual_norm == pytest.approx(best, rel=1e-6, abs=0.0)
    assert result.iterations <= 20


def test_nan_after_a_step_is_per_sample_and_keeps_the_last_iterate():
    A0, b0 = spd(6, 10.0, 6)
    A1, b1 = spd(6, 10.0, 7)
    A = np.stack([A0, A1])
    b = np.stack([b0, b1])
    calls = [0]

    def matvec(X, idx):
        calls[0] += 1
        idx = np.arange(2) if idx is None else np.asarray(idx)
        out = np.einsum("kij,kj->ki", A[idx], X)
        if calls[0] == 2:
            out[idx == 1] = np.nan  # sample 1's second product
        return out

    op = aslinearoperator(matvec, shape=(6, 6), batch_size=2, vectorized=True, pass_indices=True)
    result = minres(op, b, rtol=1e-10)
    assert result.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.NON_FINITE]
    assert result.iterations[1] == 2 and result.matvecs[1] == 2
    x1 = result.x[1]
    assert np.all(np.isfinite(x1)) and np.any(x1 != 0)
    # The residual estimate of x_1 (no true-residual product after NaN) is its residual.
    assert np.isclose(result.residual_norm[1], np.linalg.norm(b1 - A1 @ x1), rtol=1e-10)
    alone = minres(A0, b0, rtol=1e-10)
    assert (result.iterations[0], result.matvecs[0]) == (alone.iterations, alone.matvecs)
    np.testing.assert_allclose(result.x[0], alone.x, rtol=1e-12, atol=1e-14)


def test_three_samples_finishing_at_different_steps_equal_three_solves():
    n = 5
    A2, b2 = spd(n, 50.0, 8)
    A = np.stack([np.diag(np.arange(1.0, n + 1)), np.diag([1.0, -3.0, 2.0, -4.0, 5.0]), A2])
    b = np.stack([np.eye(n)[0], np.ones(n), b2])
    M = np.stack([np.eye(n), np.diag([1.0, 0.5, 2.0, 1.0, 0.25]), np.diag(1.0 / np.diag(A2))])
    seen_a, seen_m = [], []
    result = minres(batched(A, seen_a), b, rtol=1e-10, M=batched(M, seen_m))
    assert result.converged.all()
    # Sample 0 is done after one step: the later steps have two active samples of three.
    assert result.iterations[0] == 1 and result.iterations[1:].min() > 1
    for i in range(3):
        alone = minres(A[i], b[i], rtol=1e-10, M=M[i])
        one = result.sample(i)
        assert (one.status, one.iterations, one.matvecs) == (
            alone.status,
            alone.iterations,
            alone.matvecs,
        )
        np.testing.assert_allclose(one.x, alone.x, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(A[i] @ one.x, b[i], atol=1e-9)
    np.testing.assert_array_equal(result.x[0], np.eye(n)[0])
    assert sum(len(s) for s in seen_a) == int(result.matvecs.sum())
    assert seen_m[0] == [0, 1, 2]
    assert all(0 not in s for s in seen_m[2:])


def test_residual_replacement_restarts_from_the_true_residual():
    # The estimate meets rtol = 1e-10 while the true residual is ~1e-6: MINRES restarts
    # from b - A x once and converges; restarting from anything else would not.
    A, b = spd(8, 100.0, 0)
    result = minres(early_error(A[None]), b[None], rtol=1e-10, maxiter=500)
    assert result.status.tolist() == [SolverStatus.CONVERGED]
    assert result.restarts.tolist() == [1]
    assert result.matvecs[0] == result.iterations[0] + 2
    assert np.linalg.norm(b - A @ result.x[0]) <= 1e-10 * np.linalg.norm(b)
    # In a batch each sample restarts alone, with its own preconditioner.
    stack = np.stack([np.diag(np.arange(1.0, 9.0)), A])
    rhs = np.stack([np.eye(8)[0], b])
    identity = np.stack([np.eye(8), np.eye(8)])
    batch = minres(early_error(stack), rhs, rtol=1e-10, maxiter=500, M=batched(identity))
    assert batch.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CONVERGED]
    assert batch.iterations[0] != batch.iterations[1]
    for i in range(2):
        alone = minres(early_error(stack[i : i + 1]), rhs[i : i + 1], rtol=1e-10, maxiter=500)
        assert (batch.iterations[i], batch.matvecs[i], batch.restarts[i]) == (
            alone.iterations[0],
            alone.matvecs[0],
            alone.restarts[0],
        )
        np.testing.assert_allclose(batch.x[i], alone.x[0], rtol=1e-10, atol=1e-12)


def test_callback_cannot_override_convergence_and_sees_the_problem_shape():
    seen = []
    single = minres(
        np.diag([2.0, 3.0]), np.array([1.0, 0.0]), callback=lambda xk: seen.append(xk.shape) or True
    )
    assert single.status == SolverStatus.CONVERGED
    assert seen == [(2,)]
    A = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([1.0, 5.0, 9.0])])
    shapes = []

    def stop_second(xk):
        shapes.append(xk.shape)
        return np.array([False, True])

    batch = minres(A, np.ones((2, 3)), rtol=1e-12, callback=stop_second)
    assert shapes[0] == (2, 3)
    assert batch.status.tolist() == [SolverStatus.CONVERGED, SolverStatus.CALLBACK]
    assert batch.iterations[1] == 1 and batch.matvecs[1] == 2


def test_indefinite_preconditioner_message_names_the_sample():
    message = (
        r"^the preconditioner M gave r\^T M r < 0 for sample\(s\) \[1\]: "
        r"M must be symmetric positive definite for minres\.$"
    )
    A = np.stack([np.eye(3), np.eye(3)])
    with pytest.raises(ValueError, match=message):
        minres(A, np.ones((2, 3)), M=np.stack([np.eye(3), -np.eye(3)]))
    # b^T M b = 1 > 0, but the next Lanczos vector has y^T M y < 0.
    A2 = np.stack([np.eye(2), np.array([[2.0, 1.0], [1.0, 2.0]])])
    M2 = np.stack([np.eye(2), np.diag([1.0, -1.0])])
    with pytest.raises(ValueError, match=message):
        minres(A2, np.array([[1.0, 1.0], [1.0, 0.0]]), M=M2, rtol=1e-12)


def test_symmetry_check_threshold_and_messages():
    # eps^(2/3) ~ 4e-11 relative: an asymmetry of 1e-13 is rounding, 1e-8 is not.
    rng = np.random.default_rng(9)
    S, _ = spd(6, 10.0, 9)
    K = rng.standard_normal((6, 6))
    K = (K - K.T) / np.linalg.norm(K - K.T, 2)
    b = np.ones((2, 6))
    ok = minres(np.stack([S, S + 1e-13 * K]), b, check=True, rtol=1e-10)
    assert ok.converged.all()
    with pytest.raises(
        ValueError,
        match=(
            r"^A is not symmetric \(Hermitian\) for sample\(s\) \[1\] "
            r"\(v\^H A u != conj\(u\^H A v\) on random vectors\); minres needs a symmetric "
            r"or Hermitian operator \(use gmres for a general one\)\.$"
        ),
    ):
        minres(np.stack([S, S + 1e-8 * K]), b, check=True)
    with pytest.raises(
        ValueError, match=r"^M is not symmetric \(Hermitian\) for sample\(s\) \[0\]"
    ):
        minres(S, b[0], M=np.eye(6) + 1e-3 * K, check=True)
    # A zero operator is symmetric (0 = 0, no division by a zero scale).
    zero = minres(np.zeros((3, 3)), np.ones(3), check=True)
    assert zero.status == SolverStatus.BREAKDOWN


def test_symmetry_check_on_complex_data_is_the_hermitian_test():
    rng = np.random.default_rng(10)
    G = rng.standard_normal((5, 5)) + 1j * rng.standard_normal((5, 5))
    H = G + G.conj().T + 12 * np.eye(5)  # Hermitian positive definite
    b = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    result = minres(H, b, check=True, rtol=1e-10)
    assert result.converged and result.x.dtype == np.complex128
    np.testing.assert_allclose(H @ result.x, b, atol=1e-9 * np.linalg.norm(b))
    with pytest.raises(ValueError, match="not symmetric"):
        minres(G + G.T, b, check=True)  # complex symmetric, not Hermitian


def documented_check_vectors(B: int, n: int, complex_data: bool):
    # The draw that minres's docstring documents for check=True.
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((2, B, n))
    if complex_data:
        u = u + 1j * rng.standard_normal((B, n))
        v = v + 1j * rng.standard_normal((B, n))
    return u, v


@pytest.mark.parametrize("complex_data", [False, True])
def test_symmetry_check_uses_the_documented_seeded_vectors(complex_data):
    # A - A^H = 2K with K = a c^H - c a^H chosen so that v^H K u = 0 for the documented test
    # vectors u, v: the check cannot see this (large) asymmetry.  With any other draw of u
    # or of v, v'^H K u' is O(1) and the check raises.  v^H K u = alpha conj(u^H c) -
    # beta v^H c (alpha = v^H a, beta = a^H u); c = c_0 + t d with u^H d = 0 makes it
    # affine in t.
    B, n = 2, 6
    u, v = documented_check_vectors(B, n, complex_data)
    rng = np.random.default_rng(11)
    dtype = np.complex128 if complex_data else np.float64

    def draw(*shape):
        z = rng.standard_normal(shape)
        return z + 1j * rng.standard_normal(shape) if complex_data else z

    A = np.empty((B, n, n), dtype=dtype)
    for i in range(B):
        a, c0, d = draw(n), draw(n), draw(n)
        d = d - u[i] * (np.vdot(u[i], d) / np.vdot(u[i], u[i]))  # u^H d = 0
        alpha, beta = np.vdot(v[i], a), np.vdot(a, u[i])
        t = (alpha * np.conj(np.vdot(u[i], c0)) - beta * np.vdot(v[i], c0)) / (
            beta * np.vdot(v[i], d)
        )
        c = c0 + t * d
        K = np.outer(a, c.conj()) - np.outer(c, a.conj())
        G = draw(n, n)
        A[i] = (G + G.conj().T) / 2 + 10.0 * np.eye(n) + K
        assert np.linalg.norm(A[i] - A[i].conj().T) > 1.0  # far from Hermitian
        assert abs(np.vdot(v[i], K @ u[i])) < 1e-13
        # Other test vectors see it (for complex data also the conjugates of u or v).
        other = np.random.default_rng(1).standard_normal(n)
        pairs = [(other, v[i]), (u[i], other)]
        if complex_data:
            pairs += [(u[i].conj(), v[i]), (u[i], v[i].conj())]
        for u2, v2 in pairs:
            assert abs(np.vdot(v2, K @ u2)) > 1e-3
    b = np.ones((B, n), dtype=dtype)
    unchecked = minres(A, b, maxiter=2)
    checked = minres(A, b, maxiter=2, check=True)  # reproducible: passes every time
    np.testing.assert_array_equal(checked.x, unchecked.x)
    assert checked.matvecs.tolist() == [m + 2 for m in unchecked.matvecs.tolist()]
    # A generic asymmetry of the same size is caught.
    G = rng.standard_normal((B, n, n)) + (
        1j * rng.standard_normal((B, n, n)) if complex_data else 0
    )
    A = A + (G - np.conj(np.swapaxes(G, 1, 2))) / 2
    with pytest.raises(ValueError, match="is not symmetric"):
        minres(A, b, maxiter=2, check=True)


@pytest.mark.parametrize("alfa", [1.0, 3.0])
@pytest.mark.parametrize(("factor", "restarts"), [(1.0, 1), (1.2, 0)])
def test_breakdown_threshold_is_inclusive_and_scales_with_t_k(alfa, factor, restarts):
    # b = alfa e_1 on A = [[alfa, c], [c, 1]]: the first Lanczos step has alpha_1 = alfa,
    # beta_1 = alfa (it normalises v_1 and is no entry of T_1) and beta_2 = c exactly, and
    # ||T_1||_F^2 = alpha_1^2 + c^2 rounds to alfa^2.  With c = 16 sqrt(1) eps ||T_1||_F
    # (factor 1) the breakdown test beta_2 <= 16 sqrt(k) eps ||T_k||_F holds with
    # equality: the true residual is checked (it misses rtol = 0, with progress) and the
    # sample restarts once; 1.2 times the threshold is no breakdown.  (Were beta_1
    # counted, the threshold would be sqrt(2) times larger and factor 1.2 would break.)
    c = factor * 16 * EPS * alfa
    A = np.array([[alfa, c], [c, 1.0]])
    result = minres(A, np.array([alfa, 0.0]), rtol=0.0, maxiter=1)
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert result.restarts == restarts
    assert result.matvecs == 2


def test_overflowing_lanczos_norm_is_non_finite_and_keeps_x():
    # A e_1 = (0, 1e160): alpha_1 = 0 is finite but beta_2^2 = 1e320 overflows.
    A = np.array([[0.0, 1e160], [1e160, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = minres(A, np.array([1.0, 0.0]))
    assert result.status == SolverStatus.NON_FINITE
    assert result.iterations == 1 and result.matvecs == 1
    np.testing.assert_array_equal(result.x, [0.0, 0.0])


def test_scalar_preconditioner_changes_nothing():
    # M = c I scales every M-norm by sqrt(c), and the tolerance on the estimate with it:
    # the iterates, the counts and the answer are those without M (||b|| < 1 on purpose).
    A, b = spd(10, 100.0, 11)
    b = 0.01 * b
    plain = minres(A, b, rtol=1e-10)
    scaled = minres(A, b, rtol=1e-10, M=100.0 * np.eye(10))
    assert (scaled.status, scaled.iterations) == (plain.status, plain.iterations)
    assert scaled.matvecs == plain.matvecs
    np.testing.assert_allclose(scaled.x, plain.x, rtol=1e-10, atol=1e-14)
    # (the estimates agree up to rounding amplified by the near-exact final steps)
    np.testing.assert_allclose(
        scaled.residual_history,
        10.0 * plain.residual_history,
        rtol=1e-10,
        atol=1e-7 * scaled.residual_history[0],
    )


def test_float32_inconsistent_system_breaks_down_with_float32_thresholds():
    A, b, best = inconsistent_system()
    result = minres(A.astype(np.float32), b.astype(np.float32), rtol=1e-5, maxiter=80)
    assert result.x.dtype == np.float32
    assert result.status == SolverStatus.BREAKDOWN
    assert result.residual_norm == pytest.approx(best, rel=1e-4, abs=0.0)
    assert result.iterations <= 20


def test_simultaneous_restarts_and_breakdowns_in_a_batch_of_three():
    # Samples 1 and 2 are the same system with the same early operator error: they
    # restart at the same step while sample 0 is in another phase; then a batch where
    # one sample breaks down (no pivot) while another runs and a third is done.
    A, b = spd(8, 100.0, 0)
    stack = np.stack([np.diag(np.arange(1.0, 9.0)), A, A])
    rhs = np.stack([np.eye(8)[0], b, b])
    batch = minres(early_error(stack), rhs, rtol=1e-10, maxiter=500)
    alone = minres(early_error(stack[1:2]), rhs[1:2], rtol=1e-10, maxiter=500)
    assert batch.status.tolist() == [SolverStatus.CONVERGED] * 3
    assert batch.restarts.dtype == np.int64 and batch.iterations.dtype == np.int64
    for i in (1, 2):
        assert (batch.iterations[i], batch.restarts[i]) == (alone.iterations[0], 1)
        np.testing.assert_allclose(batch.x[i], alone.x[0], rtol=1e-10, atol=1e-12)
    A3 = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([1.0, 2.0, 0.0]), spd(3, 100.0, 12)[0]])
    b3 = np.stack([np.eye(3)[0], np.ones(3), spd(3, 100.0, 12)[1]])
    mixed = minres(A3, b3, rtol=1e-12)
    assert mixed.status.tolist() == [
        SolverStatus.CONVERGED,
        SolverStatus.BREAKDOWN,
        SolverStatus.CONVERGED,
    ]
    for i in range(3):
        one = minres(A3[i], b3[i], rtol=1e-12)
        assert (mixed.iterations[i], mixed.matvecs[i]) == (one.iterations, one.matvecs)
        np.testing.assert_allclose(mixed.x[i], one.x, rtol=1e-10, atol=1e-12)


def test_torch_batch_with_preconditioner_and_check_equals_numpy():
    torch = pytest.importorskip("torch")
    A3 = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([1.0, 2.0, 0.0]), spd(3, 100.0, 12)[0]])
    b3 = np.stack([np.eye(3)[0], np.ones(3), spd(3, 100.0, 12)[1]])
    M3 = np.stack([np.eye(3), np.eye(3), np.diag(1.0 / np.diag(A3[2]))])
    ref = minres(A3, b3, rtol=1e-12, M=M3, check=True)
    out = minres(
        torch.from_numpy(A3), torch.from_numpy(b3), rtol=1e-12, M=torch.from_numpy(M3), check=True
    )
    assert isinstance(out.x, torch.Tensor) and out.x.dtype == torch.float64
    assert out.status.tolist() == ref.status.tolist()
    assert out.iterations.tolist() == ref.iterations.tolist()
    assert out.matvecs.tolist() == ref.matvecs.tolist()
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=1e-10, atol=1e-12)


def test_estimate_exactly_at_an_absolute_tolerance_is_a_candidate():
    # atol = the 3rd residual estimate exactly: the test phibar_k <= atol holds with
    # equality at step 3, the true residual confirms it (one product), CONVERGED there.
    A, b = spd(10, 100.0, 13)
    estimates = minres(A, b, rtol=0.0, maxiter=4).residual_history
    result = minres(A, b, rtol=0.0, atol=float(estimates[3]), maxiter=50)
    assert result.status == SolverStatus.CONVERGED
    assert (result.iterations, result.matvecs, result.restarts) == (3, 4, 0)


def test_power_of_two_scaling_of_the_system_changes_nothing():
    # (s A) x = s b has the same solution and, for s a power of two, the same rounding:
    # every threshold of MINRES scales with ||T_k||, so the run is the same bitwise.
    A, b = spd(10, 100.0, 13)
    ref = minres(A, b, rtol=1e-10)
    for s in (2.0**-30, 2.0**30):
        scaled = minres(s * A, s * b, rtol=1e-10)
        assert (scaled.status, scaled.iterations, scaled.matvecs) == (
            ref.status,
            ref.iterations,
            ref.matvecs,
        )
        np.testing.assert_array_equal(scaled.x, ref.x)


def test_every_true_residual_check_ends_the_sample_or_restarts_it():
    # cond 1e10 with rtol 1e-14 is below what float64 reaches: MINRES restarts twice
    # from the true residual, then the space is invariant without progress (BREAKDOWN).
    A, b = spd(10, 1e10, 7)
    result = minres(A, b, rtol=1e-14, maxiter=5000)
    assert result.status == SolverStatus.BREAKDOWN
    assert result.restarts == 2
    assert result.matvecs == result.iterations + result.restarts + 1


def test_symmetry_check_scale_is_the_product_of_norms():
    # n = 100: ||A u|| ||v|| ~ n ||A|| while |v^T K u| ~ sqrt(n) ||K||.  An asymmetry of
    # 1e-11 ||A|| gives |v^T A u - u^T A v| ~ 2e-9, several times below the threshold
    # eps^(2/3) ||Au|| ||v|| ~ 1.5e-8 (accepted) and ten times above eps^(2/3) ||Au|| / ||v||.
    rng = np.random.default_rng(14)
    S, b = spd(100, 10.0, 14)
    K = rng.standard_normal((100, 100))
    K = (K - K.T) / np.linalg.norm(K - K.T, 2)
    result = minres(S + 1e-11 * np.linalg.norm(S, 2) * K, b, check=True, rtol=1e-8)
    assert result.converged


def test_float32_operator_only_sees_float32_vectors():
    # The Lanczos vectors stay in the working precision: every product, the symmetry
    # check's included, gets float32 input (a float64 coefficient would promote them).
    A, b = spd(8, 10.0, 15)
    A32 = A.astype(np.float32)
    seen = set()

    def matvec(X):
        seen.add(X.dtype)
        return X @ A32.T

    op = aslinearoperator(matvec, shape=(8, 8), dtype=np.float32, vectorized=True)
    result = minres(op, b.astype(np.float32), rtol=1e-4, check=True)
    assert result.converged and result.x.dtype == np.float32
    assert seen == {np.dtype(np.float32)}


@pytest.mark.parametrize(("factor", "restarts"), [(1.0, 1), (1.05, 0)])
def test_breakdown_threshold_at_step_two_has_sqrt_k_and_the_whole_t_k(factor, restarts):
    # A tridiagonal A with b = e_1 is its own Lanczos matrix: alpha = (1, 2), beta_2 = 1,
    # beta_3 = c, and ||T_2||_F^2 accumulates (1 + 1) + (4 + 1 + c^2) = 7 (beta_1 = 1
    # normalises v_1 and is not counted).  With c = 16 sqrt(2) eps sqrt(7) the test
    # beta_3 <= 16 sqrt(k) eps ||T_k||_F holds with equality at k = 2 (one true-residual
    # check, missed at rtol = 0: one restart); 1.05 times that is no breakdown.
    c = factor * (16.0 * np.sqrt(2.0)) * EPS * np.sqrt(7.0)
    A = np.array([[1.0, 1.0, 0.0], [1.0, 2.0, c], [0.0, c, 1.0]])
    result = minres(A, np.array([1.0, 0.0, 0.0]), rtol=0.0, maxiter=2)
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert (result.iterations, result.restarts, result.matvecs) == (2, restarts, 3)


def test_torch_float32_batch_keeps_float32_state():
    # Samples finish at different steps, so the directions are written back by index
    # (torch's index_put needs the state's own dtype: float32 throughout).
    torch = pytest.importorskip("torch")
    A3 = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([1.0, -2.0, 4.0]), spd(3, 100.0, 12)[0]])
    b3 = np.stack([np.eye(3)[0], np.ones(3), spd(3, 100.0, 12)[1]])
    A32, b32 = torch.from_numpy(A3.astype(np.float32)), torch.from_numpy(b3.astype(np.float32))
    result = minres(A32, b32, rtol=1e-5)
    assert result.x.dtype == torch.float32
    assert result.converged.all() and result.iterations[0] < result.iterations.max()
    true = torch.linalg.vector_norm(b32 - torch.einsum("kij,kj->ki", A32, result.x), dim=1)
    assert np.all(true.numpy() <= 1e-5 * np.linalg.norm(b3, axis=1) * (1 + 1e-4))


def torch_operator(numpy_op):
    """The numpy operator ``numpy_op`` taking and returning CPU torch tensors."""
    import torch

    def matvec(X, idx):
        idx = None if idx is None else np.asarray(idx.cpu() if hasattr(idx, "cpu") else idx)
        return torch.from_numpy(np.asarray(numpy_op.matvec(X.cpu().numpy(), idx)))

    n = numpy_op.shape[0]
    return aslinearoperator(
        matvec, shape=(n, n), batch_size=numpy_op.batch_size, vectorized=True, pass_indices=True
    )


def test_solve_stays_on_the_inputs_device_under_another_torch_default_device():
    # torch.device("meta") as the default device (a user's torch.set_default_device):
    # every array minres creates must follow b's device (CPU here), so the results equal
    # those without the context, bit for bit.  Covers the symmetry check, x_0, a batched
    # preconditioner, residual replacement (restarts), samples leaving the active set,
    # a breakdown beside running samples, and a single system.
    import torch

    A, b = spd(8, 100.0, 0)
    stack = np.stack([np.diag(np.arange(1.0, 9.0)), A, A])
    rhs = torch.from_numpy(np.stack([np.eye(8)[0], b, b]))
    x0 = torch.zeros((3, 8), dtype=torch.float64)
    x0[2] = torch.from_numpy(np.linspace(-1.0, 1.0, 8))
    M = torch_operator(batched(np.stack([np.diag(np.linspace(0.5, 2.0, 8))] * 3)))
    A3 = np.stack([np.diag([1.0, 2.0, 3.0]), np.diag([1.0, 2.0, 0.0]), spd(3, 100.0, 12)[0]])
    b3 = torch.from_numpy(np.stack([np.eye(3)[0], np.ones(3), spd(3, 100.0, 12)[1]]))
    calls = [
        lambda: minres(torch_operator(early_error(stack)), rhs, rtol=1e-10, maxiter=500),
        lambda: minres(torch.from_numpy(stack), rhs, x0=x0, M=M, rtol=1e-10, check=True),
        lambda: minres(torch.from_numpy(A3), b3, rtol=1e-12),
        lambda: minres(torch.from_numpy(A), rhs[1], x0=x0[2], rtol=1e-10, check=True),
    ]
    fields = ("status", "iterations", "restarts")
    expected = solve_with_and_without_a_meta_default_device(calls, fields)
    # The paths were taken: restarts, different finishing steps, a breakdown.
    assert expected[0].restarts.tolist() == [1, 1, 1]
    assert expected[0].iterations[0] < expected[0].iterations[1]
    assert expected[2].status.tolist()[1] == SolverStatus.BREAKDOWN
