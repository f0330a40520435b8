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
    with pytest.raises(
        TypeError,
        match=r"^EigshResult indexes like scipy's \(w, v\) pair \(or w\); got 'w'\. "
        r"Use result\.sample\(i\) for sample i of a batch\.$",
    ):
        result["w"]
    values = eigsh(DIAG5, 3, rng=0, return_eigenvectors=False)
    assert values.eigenvectors is None
    assert len(values) == 3 and values[2] == values.eigenvalues[2]
    assert list(values) == list(values.eigenvalues)
    as32 = np.asarray(values, dtype=np.float32)
    assert as32.dtype == np.float32 and as32.shape == (3,)
    assert repr(values) == "EigshResult(status=CONVERGED, eigenvalues=[3. 4. 5.], matvecs=5)"
    # Four decimals, as numpy prints with precision=4.
    thirds = eigsh(DIAG5 / 3.0, 3, rng=0, return_eigenvectors=False)
    assert repr(thirds) == (
        "EigshResult(status=CONVERGED, eigenvalues=[1.     1.3333 1.6667], matvecs=5)"
    )


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


# --- second pass: defaults, tolerances, breakdown thresholds ------------------------


def test_defaults_are_scipys():
    # k = 6 largest-magnitude pairs with eigenvectors, to machine precision (tol = 0).
    eig = np.concatenate([-np.arange(30.0, 0.0, -1.0), np.arange(1.0, 25.0)])
    A = np.diag(eig)
    result = eigsh(A, rng=0)
    assert result.eigenvalues.shape == (6,) and result.eigenvectors.shape == (54, 6)
    np.testing.assert_allclose(result.eigenvalues, [-30, -29, -28, -27, -26, -25], rtol=1e-12)
    assert np.all(result.residual_norm <= 16 * EPS * 30.0)


def test_a_user_tolerance_stops_earlier_and_holds():
    q = np.diag(np.linspace(1.0, 100.0, 200))
    tight = eigsh(q, 2, which="LA", ncv=8, rng=1)
    loose = eigsh(q, 2, which="LA", ncv=8, rng=1, tol=1e-3)
    rough = eigsh(q, 2, which="LA", ncv=8, rng=1, tol=1.0)
    assert tight.converged and loose.converged and rough.converged
    assert rough.matvecs < loose.matvecs < tight.matvecs
    assert np.all(loose.residual_norm <= 1e-3 * np.abs(loose.eigenvalues))
    assert np.all(tight.residual_norm <= 16 * EPS * 100.0)


@pytest.mark.parametrize("tol", [0.0, 1e-6])
def test_scaling_a_by_a_power_of_two_changes_nothing_but_the_scale(tol):
    # Every test in eigsh is relative (tol |theta|, 16 eps ||T||, 16 sqrt(j) eps ||A v||):
    # 2^e A runs the same steps and returns 2^e times the answer.
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    A = (Q * np.linspace(-3.0, 7.0, 60)) @ Q.T
    A = (A + A.T) / 2
    base = eigsh(A, 3, which="LA", ncv=10, tol=tol, rng=0)
    assert base.converged and base.iterations > 1  # thick restarts happened
    for e in (-20, 20):
        scaled = eigsh(2.0**e * A, 3, which="LA", ncv=10, tol=tol, rng=0)
        assert scaled.matvecs == base.matvecs and scaled.iterations == base.iterations
        np.testing.assert_allclose(scaled.eigenvalues, 2.0**e * base.eigenvalues, rtol=1e-13)


def test_the_zero_operator_breaks_down_at_every_step():
    # A ReLU network's input Hessian is exactly zero: every Lanczos step breaks down
    # (A v = 0), and 0 is the exact answer with residual 0.
    result = eigsh(np.zeros((30, 30)), 2, ncv=6, rng=0)
    assert result.status == SolverStatus.CONVERGED
    assert result.matvecs == 2 and result.invariant_subspaces == 2
    np.testing.assert_array_equal(result.eigenvalues, [0.0, 0.0])
    np.testing.assert_array_equal(result.residual_norm, [0.0, 0.0])


def test_a_start_in_the_null_space_is_a_breakdown_at_the_first_step():
    A = np.diag(np.r_[0.0, np.arange(1.0, 12.0)])
    v0 = np.zeros(12)
    v0[0] = 1.0  # A v0 = 0
    result = eigsh(A, 2, which="LA", v0=v0, rng=0)
    assert result.status == SolverStatus.CONVERGED and result.invariant_subspaces == 1
    np.testing.assert_allclose(result.eigenvalues, [10.0, 11.0], rtol=1e-13)


def _coupled(n, a, j, delta):
    """Symmetric tridiagonal matrix whose Lanczos run from e_1 leaves exactly delta at step j."""
    M = np.diag(2.0 + 0.1 * np.arange(n))
    M[0, 0] = a
    for i in range(n - 1):
        M[i, i + 1] = M[i + 1, i] = 1.0
    M[j, j + 1] = M[j + 1, j] = delta
    return M


@pytest.mark.parametrize(
    ("j", "ratio", "breaks"),
    [(0, 0.8, True), (0, 1.2, False), (1, 2**-0.5, True), (1, 1.6 / 2**0.5, False)],
)
def test_breakdown_threshold_is_16_sqrt_j_eps_times_the_largest_product(j, ratio, breaks):
    # From v_1 = e_1, step j leaves w = delta e_{j+2} after orthogonalization (exactly):
    # a breakdown iff delta <= 16 sqrt(j + 1) eps max_i ||A v_i||.
    n = 8
    e1 = np.eye(n)[0]
    probe = _coupled(n, 1024.0, j, 0.0)
    scale = max(np.linalg.norm(probe @ np.eye(n)[i]) for i in range(j + 1))
    delta = ratio * 16.0 * np.sqrt(j + 1) * EPS * scale
    A = _coupled(n, 1024.0, j, delta)
    result = eigsh(A, 1, which="LA", v0=e1, rng=0)
    assert result.status == SolverStatus.CONVERGED
    assert result.invariant_subspaces == (1 if breaks else 0)
    np.testing.assert_allclose(result.eigenvalues, np.linalg.eigvalsh(A)[-1:], rtol=1e-13)


def test_a_breakdown_at_step_n_minus_one_is_still_counted():
    # v0 spans a 4-dimensional invariant subspace of R^5: the breakdown comes one step
    # before the basis would be complete, and the largest eigenvalue is inside it.
    v0 = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    result = eigsh(DIAG5, 1, which="LA", v0=v0, rng=0)
    assert result.status == SolverStatus.CONVERGED
    assert result.invariant_subspaces == 1 and result.matvecs == 4
    np.testing.assert_allclose(result.eigenvalues, [5.0], rtol=1e-14)


def test_a_complete_basis_is_no_breakdown():
    result = eigsh(DIAG5, 3, rng=0)
    assert result.matvecs == 5 and result.invariant_subspaces == 0


def test_the_fresh_vector_after_a_breakdown_comes_from_the_seed():
    # After the breakdown at step 3 the next basis vector is the generator's first draw
    # (v0 is given, so nothing was drawn before), made orthogonal to the basis.
    n, seed = 12, 11
    A = np.diag(np.linspace(1.0, 10.0, n))
    seen = []

    def product(X):
        seen.append(np.array(X[0]))
        return X @ A

    op = aslinearoperator(product, shape=(n, n), vectorized=True)
    v0 = np.zeros(n)
    v0[[0, 1, n - 1]] = [0.6, 0.7, 0.8]
    result = eigsh(op, 5, which="LA", v0=v0, rng=seed)
    assert result.invariant_subspaces == 1
    V = np.stack(seen[:3])
    np.testing.assert_allclose(V @ V.T, np.eye(3), atol=1e-14)
    fresh = np.random.default_rng(seed).standard_normal(n)
    for _ in range(2):
        fresh = fresh - V.T @ (V @ fresh)
    np.testing.assert_allclose(seen[3], fresh / np.linalg.norm(fresh), atol=1e-14)


def test_breakdown_in_torch_float32():
    torch = pytest.importorskip("torch")
    n = 12
    A = torch.diag(torch.linspace(1.0, 10.0, n))
    v0 = torch.zeros(n)
    v0[[0, 1, n - 1]] = torch.tensor([0.6, 0.7, 0.8])
    result = eigsh(A, 5, which="LA", v0=v0, rng=0)
    assert result.status == SolverStatus.CONVERGED and result.invariant_subspaces == 1
    V = result.eigenvectors
    assert isinstance(V, torch.Tensor) and V.dtype == torch.float32
    np.testing.assert_allclose(result.eigenvalues, np.linspace(1.0, 10.0, n)[-5:], rtol=1e-5)
    np.testing.assert_allclose((V.T @ V).numpy(), np.eye(5), atol=1e-5)
    # With thick restarts (ncv < n) the kept Ritz vectors stay in float32 too.
    restarted = eigsh(torch.diag(torch.linspace(1.0, 10.0, 40)), 2, which="LA", ncv=6, rng=0)
    assert restarted.status == SolverStatus.CONVERGED and restarted.iterations > 1
    assert restarted.eigenvectors.dtype == torch.float32
    np.testing.assert_allclose(restarted.eigenvalues, np.linspace(1.0, 10.0, 40)[-2:], rtol=1e-5)


def test_unconverged_pairs_are_the_wanted_ritz_pairs_with_true_residuals():
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    A = (Q * np.linspace(1.0, 50.0, 100)) @ Q.T
    A = (A + A.T) / 2
    for which in ("SA", "LA"):
        result = eigsh(A, 3, which=which, ncv=8, maxiter=1, rng=0)
        assert result.status == SolverStatus.MAX_ITERATIONS
        # The answer is the last step's wanted Ritz values, ascending ...
        np.testing.assert_array_equal(result.eigenvalues, result.eigenvalue_history[-1])
        # ... and on the correct side of the spectrum (Cauchy interlacing).
        if which == "SA":
            assert result.eigenvalues[0] < 10.0
        else:
            assert result.eigenvalues[-1] > 40.0
        V = result.eigenvectors
        true = np.linalg.norm(A @ V - V * result.eigenvalues, axis=0)
        np.testing.assert_allclose(result.residual_norm, true, rtol=1e-8)
        assert np.all(true > 1e-6)


def test_non_finite_products_raise_no_warnings():
    import warnings

    n = 10
    A = np.diag(np.arange(1.0, n + 1))

    def products(X, idx):
        Y = X @ A
        Y[np.asarray(idx) == 1] = np.inf  # sample 1 overflows
        return Y

    op = aslinearoperator(products, shape=(n, n), batch_size=2, vectorized=True, pass_indices=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported as a status, not as a warning
        result = eigsh(op, 2, which="LA", v0=np.ones((2, n)), ncv=6, rng=0)
    np.testing.assert_array_equal(result.status, [SolverStatus.CONVERGED, SolverStatus.NON_FINITE])
    np.testing.assert_array_equal(result.invariant_subspaces, [0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zero = eigsh(np.zeros((8, 8)), 2, ncv=4, rng=0)  # breakdowns: no division by zero
    assert zero.converged


def test_a_shared_operator_sees_row_numbers_not_sample_numbers():
    # Samples finish at different steps; the shared operator is still called as shared.
    n = 20
    A = np.diag(np.arange(1.0, n + 1))
    seen = []

    def product(X, idx):
        seen.append(np.asarray(idx).tolist())
        return X @ A

    op = aslinearoperator(product, shape=(n, n), vectorized=True, pass_indices=True)
    v0 = np.ones((2, n))
    v0[0, :-3] = 0.0  # sample 0 starts in a 3-dimensional invariant subspace
    result = eigsh(op, 2, which="LA", v0=v0, ncv=8, rng=0)
    assert result.converged.all() and result.matvecs[0] < result.matvecs[1]
    assert all(s == list(range(len(s))) for s in seen)
    assert [0] in seen  # one row left: row 0, though it is sample 1


def test_the_basis_dtype_joins_the_operators_and_the_starts():
    # scipy's rule: the working dtype holds both A's and v0's dtype.
    A = np.diag(np.arange(1.0, 9.0))
    v32 = np.ones(8, dtype=np.float32)
    untyped = aslinearoperator(lambda v: A @ v, shape=(8, 8))  # dtype unknown: v0 decides
    assert eigsh(untyped, 2, which="LA", v0=v32).eigenvectors.dtype == np.float32
    mixed = eigsh(A.astype(np.float32), 2, which="LA", v0=np.ones(8))
    assert mixed.eigenvectors.dtype == np.float64
    complex_start = eigsh(A, 2, which="LA", v0=np.ones(8) * (1 + 1j))
    assert complex_start.eigenvectors.dtype == np.complex128
    np.testing.assert_allclose(complex_start.eigenvalues, [7.0, 8.0], rtol=1e-13)


def test_ties_in_magnitude_are_broken_by_position_not_by_the_sort_algorithm():
    # LM with +-lambda tied: the pick must not depend on numpy's sorting algorithm
    # (its default quicksort is SIMD-accelerated and machine-dependent, and unstable);
    # a stable sort keeps the ascending order of eigh: -lambda before +lambda.
    from krylovadv.lanczos import _select

    theta = np.concatenate([-np.arange(10.0, 0.0, -1.0), np.arange(1.0, 11.0)])[None, :]
    pick = _select(theta, "LM", 6)
    np.testing.assert_array_equal(theta[0, pick[0]], [-10.0, 10.0, -9.0, 9.0, -8.0, 8.0])
    np.testing.assert_array_equal(_select(theta, "LA", 2)[0], [19, 18])
    np.testing.assert_array_equal(_select(theta, "SA", 2)[0], [0, 1])


def test_counts_are_integers():
    result = eigsh(np.diag(np.arange(1.0, 41.0)), 2, which="LA", ncv=6, rng=0)
    assert result.iterations > 1  # restarted
    for count in (result.iterations, result.matvecs, result.invariant_subspaces):
        assert type(count) is int
    batch = eigsh(np.diag(np.arange(1.0, 41.0)), 2, which="LA", ncv=6, rng=0, batch_size=2)
    for counts in (batch.iterations, batch.matvecs, batch.invariant_subspaces, batch.status):
        assert counts.dtype == np.int64


def test_an_integer_start_is_cast_as_scipy_does():
    A = np.diag(np.arange(1.0, 9.0))
    result = eigsh(A, 2, which="LA", v0=np.ones(8, dtype=np.int64))
    assert result.eigenvectors.dtype == np.float64
    np.testing.assert_allclose(result.eigenvalues, [7.0, 8.0], rtol=1e-14)


def test_complex_operator_with_a_real_start_runs_clean():
    import warnings

    rng = np.random.default_rng(5)
    M = rng.standard_normal((30, 30)) + 1j * rng.standard_normal((30, 30))
    H = (M + M.conj().T) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: nothing complex is made real
        result = eigsh(H, 3, which="LA", v0=np.ones(30), ncv=12, rng=0)
    assert result.status == SolverStatus.CONVERGED
    assert result.eigenvectors.dtype == np.complex128
    np.testing.assert_allclose(result.eigenvalues, np.linalg.eigvalsh(H)[-3:], atol=1e-12)


def test_huge_but_finite_products_raise_no_warnings():
    import warnings

    A = 1e200 * np.diag(np.arange(1.0, 31.0))  # squares of the entries overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = eigsh(A, 2, which="LA", ncv=8, rng=0)
    assert result.status == SolverStatus.CONVERGED
    np.testing.assert_allclose(result.eigenvalues, [29e200, 30e200], rtol=1e-12)


def test_a_product_whose_norm_overflows_is_non_finite():
    # A v0 has finite entries but ||A v0|| > max float: reported, not continued.
    n = 6
    A = np.diag(np.arange(1.0, n + 1))
    A[0, 1] = A[1, 0] = A[0, 2] = A[2, 0] = 1.5e308
    result = eigsh(A, 1, which="LA", v0=np.eye(n)[0], rng=0)
    assert result.status == SolverStatus.NON_FINITE
    assert result.matvecs == 1 and result.invariant_subspaces == 0


@pytest.mark.parametrize("seed", [0, 5])
def test_a_fresh_vector_shorter_than_one_is_still_normalized(seed):
    # v0 in span(e1, e2) of diag(1, 2, 3, 4) and k = 3: a breakdown after 2 steps, then a
    # fresh vector in span(e3, e4); for these seeds its length there is below 1.
    A = np.diag([1.0, 2.0, 3.0, 4.0])
    draw = np.random.default_rng(seed).standard_normal(4)
    assert np.linalg.norm(draw[2:]) < 1.0
    result = eigsh(A, 3, which="LA", v0=np.array([1.0, 1.0, 0.0, 0.0]), rng=seed)
    assert result.invariant_subspaces == 1
    np.testing.assert_allclose(result.eigenvalues, [2.0, 3.0, 4.0], rtol=1e-14)
    V = result.eigenvectors
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-14)


def test_thick_restart_keeps_the_wanted_end_of_the_spectrum():
    # The largest-magnitude eigenvalues are negative, the wanted (LA) ones positive:
    # a restart that kept the largest-magnitude Ritz vectors would never converge.
    eig = np.concatenate([-np.linspace(50.0, 100.0, 100), np.linspace(1.0, 10.0, 100)])
    result = eigsh(np.diag(eig), 2, which="LA", ncv=10, rng=0)
    assert result.status == SolverStatus.CONVERGED and result.iterations > 1
    np.testing.assert_allclose(result.eigenvalues, eig[-2:], rtol=1e-12)
