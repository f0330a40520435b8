"""The public problem families keep the promises their documentation makes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from krylovadv.testing import (
    COMPLEX_DTYPES,
    EASY,
    HARD,
    HERMITIAN,
    MAX_COND,
    REAL_DTYPES,
    backward_error,
    build_system,
    linear_systems,
    max_cond,
    quadratics,
    residual_allowance,
    seeds,
    system_batches,
    true_residual,
)

ALL_DTYPES = REAL_DTYPES + COMPLEX_DTYPES


@given(p=linear_systems(EASY + HARD, dtypes=ALL_DTYPES, min_n=3, max_n=20))
def test_metadata_matches_the_matrix(p):
    A = p.A.astype(np.complex128)
    assert p.A.dtype == p.b.dtype == np.dtype(p.dtype) and p.A.shape == (p.n, p.n)
    sv = np.linalg.svd(A, compute_uv=False)
    # rank: the singular values past it are rounding of the stored dtype, not more.
    eps = float(np.finfo(p.dtype).eps)  # pytest.approx takes Python numbers only
    assert np.all(sv[p.rank :] <= 10 * p.n * eps * sv[0])
    assert sv[p.rank - 1] > 10 * p.n * eps * sv[0]
    # cond is computed before rounding: rounding moves it by at most ~ cond * n eps.
    assert sv[0] / sv[p.rank - 1] == pytest.approx(p.cond, rel=max(1e-6, 10 * p.n * eps * p.cond))
    # min_residual is what least squares reaches; consistent systems reach 0.
    x = np.linalg.lstsq(A, p.b.astype(np.complex128), rcond=None)[0]
    floor = float(
        residual_allowance(p.A, x, p.b, np.float64) * 1e3 + 10 * p.n * eps * np.linalg.norm(p.b)
    )
    assert true_residual(p.A, x, p.b) == pytest.approx(p.min_residual, abs=floor)
    assert p.consistent == (p.min_residual == 0.0)


@pytest.mark.parametrize("family", ["ill_conditioned", "ill_conditioned_spd", "nearly_singular"])
@pytest.mark.parametrize(("dtype", "cond"), [(np.float64, 1e12), (np.float32, 1e5)])
def test_requested_condition_number_is_built(family, dtype, cond):
    p = build_system(family, 10, 0, dtype, cond=cond)
    # The SVD that measures it is backward stable: sigma_min carries an absolute error
    # ~ n eps sigma_max, i.e. a relative error ~ n eps cond (in float64).
    assert p.cond == pytest.approx(cond, rel=10 * 10 * np.finfo(np.float64).eps * cond + 1e-9)
    assert max_cond(dtype) == cond == MAX_COND["double" if dtype == np.float64 else "single"]


@given(n=st.integers(2, 20), seed=seeds, dtype=st.sampled_from(ALL_DTYPES))
def test_drawn_condition_numbers_stay_below_the_dtype_limit(n, seed, dtype):
    for family in ("ill_conditioned", "ill_conditioned_spd", "nearly_singular"):
        p = build_system(family, n, seed, dtype)
        assert 1.0 <= p.cond <= max_cond(dtype) * (1 + 1e-6)


@given(n=st.integers(4, 20), seed=seeds, dtype=st.sampled_from(REAL_DTYPES))
def test_badly_scaled_spans_the_documented_range(n, seed, dtype):
    p = build_system("badly_scaled", n, seed, dtype)
    rows = np.linalg.norm(p.A.astype(np.float64), axis=1)
    cols = np.linalg.norm(p.A.astype(np.float64), axis=0)
    decades = 6.0 if dtype == np.float64 else 2.0
    # Scale factors within 10^(+-decades) of an O(1) matrix (entries ~ 2.5..4 + noise).
    spread = max(rows.max() / rows.min(), cols.max() / cols.min())
    assert spread <= 10 ** (2 * decades) * 10
    assert spread >= 10  # genuinely badly scaled for n >= 4 (not 1e+-0)


@given(n=st.integers(2, 16), seed=seeds)
def test_jordan_minimal_polynomial_annihilates_b(n, seed):
    # deg(minimal polynomial) = krylov_degree: the Krylov vectors b, Ab, ..., A^d b are
    # dependent (their orthonormalised last direction vanishes to rounding); this is
    # also what test_hard_families checks through full GMRES.
    p = build_system("jordan", n, seed)
    d = p.krylov_degree
    assert 1 <= d <= n
    Q, _ = np.linalg.qr(np.column_stack([np.linalg.matrix_power(p.A, k) @ p.b for k in range(d)]))
    w = np.linalg.matrix_power(p.A, d) @ p.b
    w_perp = w - Q @ (Q.T @ w)
    # Rounding of A^d b is ~ d eps ||A||^d ||b||; its projection error is amplified by
    # the conditioning of the Krylov basis, so allow 1e-6 relative.
    assert np.linalg.norm(w_perp) <= 1e-6 * np.linalg.norm(w)


@given(q=quadratics(HERMITIAN, dtypes=ALL_DTYPES, max_n=12), seed=seeds)
def test_quadratic_gradient_and_hessian_are_exact(q, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(q.n).astype(q.dtype)
    v = rng.standard_normal(q.n)
    # f is quadratic: f(x + t v) = f(x) + t Re<grad, v> + t^2/2 v^T H v exactly.
    wide = q.__class__(
        **{**q.__dict__, "A": q.A.astype(np.complex128), "b": q.b.astype(np.complex128)}
    )
    xw = x.astype(np.complex128)
    for t in (0.5, -1.0):
        lhs = wide.value(xw + t * v) - wide.value(xw)
        rhs = t * np.real(np.vdot(wide.gradient(xw), v)) + t**2 / 2 * np.real(
            np.vdot(v, wide.hessian() @ v)
        )
        assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9 * (1 + abs(lhs)))
    np.testing.assert_array_equal(q.hessian(), q.A)  # Hermitian families: H = A
    np.testing.assert_allclose(q.gradient(x), q.affine(x), rtol=0, atol=0)


def test_gradient_of_a_nonsymmetric_quadratic_is_the_symmetric_part():
    q = build_system("nonsymmetric", 6, 1)
    x = np.arange(6.0)
    np.testing.assert_allclose(q.gradient(x), (q.A + q.A.T) / 2 @ x + q.b, rtol=1e-14)
    np.testing.assert_allclose(q.affine(x), q.A @ x + q.b, rtol=1e-14)


@given(batch=system_batches(HARD, dtypes=REAL_DTYPES))
def test_batches_share_size_and_dtype(batch):
    assert len({p.n for p in batch}) == 1 and len({p.dtype for p in batch}) == 1
    assert 2 <= len(batch) <= 5


def test_solution_solves_consistent_and_least_squares_systems():
    p = build_system("jordan", 8, 3)
    assert backward_error(p.A, p.solution(), p.b) <= 8 * np.finfo(np.float64).eps
    q = build_system("singular_inconsistent", 8, 3)
    assert true_residual(q.A, q.solution(), q.b) == pytest.approx(q.min_residual, rel=1e-12)


def test_bad_arguments_raise_naming_the_argument():
    with pytest.raises(ValueError, match="unknown family"):
        build_system("hilbert", 5, 0)
    with pytest.raises(TypeError, match="dtype"):
        build_system("spd", 5, 0, np.int64)
    with pytest.raises(ValueError, match="cond"):
        build_system("ill_conditioned", 5, 0, cond=0.5)
    with pytest.raises(ValueError, match="too small"):
        build_system("singular_inconsistent", 1, 0)


def test_same_seed_same_problem_and_seed_changes_it():
    a, b = build_system("grcar", 9, 4), build_system("grcar", 9, 4)
    np.testing.assert_array_equal(a.b, b.b)
    assert not np.array_equal(
        build_system("ill_conditioned", 9, 4).A, build_system("ill_conditioned", 9, 5).A
    )


def test_importing_krylovadv_testing_imports_neither_torch_nor_hypothesis():
    import subprocess
    import sys

    code = (
        "import sys, krylovadv.testing as t\n"
        "assert 'torch' not in sys.modules and 'hypothesis' not in sys.modules\n"
        "t.linear_systems  # first use of a strategy imports hypothesis\n"
        "assert 'hypothesis' in sys.modules and 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
