"""Verification tests for krylovadv.givens (plane rotations and the recursive QR)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from array_api_compat import array_namespace
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

from krylovadv import GivensQR, givens_rotation

finite = st.floats(
    min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False, width=64
)


@given(a=st.lists(finite, min_size=1, max_size=8), data=st.data())
def test_rotation_zeroes_b(a, data):
    b = data.draw(st.lists(finite, min_size=len(a), max_size=len(a)))
    a, b = np.array(a), np.array(b)
    c, s, r = givens_rotation(np, a, b)
    assert np.all(np.isfinite(c)) and np.all(np.isfinite(s)) and np.all(np.isfinite(r))
    np.testing.assert_allclose(c**2 + s**2, 1.0, rtol=4e-16 * 4)
    assert np.all(c >= 0)
    scale = np.maximum(np.abs(a), np.abs(b))
    # (c s; -s c)(a; b) = (r; 0), evaluated without overflow by scaling.
    safe = np.where(scale > 0, scale, 1.0)
    an, bn = a / safe, b / safe
    assert np.all(np.abs(-s * an + c * bn) <= 4e-16 * 4)
    np.testing.assert_allclose(c * an + s * bn, r / safe, rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(np.abs(r), np.hypot(a, b), rtol=1e-15)


def test_rotation_zero_case_is_identity():
    c, s, r = givens_rotation(np, np.zeros(3), np.zeros(3))
    assert np.array_equal(c, np.ones(3)) and np.array_equal(s, np.zeros(3))
    assert np.array_equal(r, np.zeros(3))
    # Mixed zero cases and huge/tiny values.
    a = np.array([0.0, 3.0, 0.0, -1e-300, 1e300])
    b = np.array([2.0, 0.0, -5.0, 1e-300, 1e300])
    c, s, r = givens_rotation(np, a, b)
    assert np.all(np.isfinite(np.stack([c, s, r])))
    assert np.allclose(c**2 + s**2, 1.0)
    np.testing.assert_allclose(np.abs(r), [2.0, 3.0, 5.0, np.sqrt(2) * 1e-300, np.sqrt(2) * 1e300])


def test_rotation_of_subnormal_entries_is_orthogonal():
    # LAPACK's lartg scales its inputs so that c^2 + s^2 = 1 holds for every finite
    # pair, subnormal ones included.
    tiny = np.array([5e-324, 1e-320, 1e-310, -3e-315])
    for a, b in ((tiny, tiny), (tiny, 2 * tiny), (-tiny, tiny[::-1])):
        c, s, _ = givens_rotation(np, a, b)
        np.testing.assert_allclose(c**2 + s**2, 1.0, rtol=1e-15)
        # The rotation of a pair does not depend on its scale.
        c_ref, s_ref, _ = givens_rotation(np, a * 2.0**1000, b * 2.0**1000)
        np.testing.assert_allclose(c, c_ref, rtol=1e-15)
        np.testing.assert_allclose(s, s_ref, rtol=1e-15)


def test_rotation_in_torch():
    a = torch.tensor([0.0, 3.0, -4.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 4.0, 3.0, -2.0], dtype=torch.float64)
    c, s, r = givens_rotation(array_namespace(a), a, b)
    assert isinstance(c, torch.Tensor)
    assert torch.allclose(c**2 + s**2, torch.ones(4, dtype=torch.float64))
    assert torch.allclose(-s * a + c * b, torch.zeros(4, dtype=torch.float64))
    assert c[0] == 1 and s[0] == 0 and r[0] == 0


def random_hessenberg(rng, B, m, zero_columns=()):
    H = rng.standard_normal((B, m + 1, m))
    H = np.triu(H, -1)  # upper Hessenberg (per sample)
    for j in zero_columns:
        H[:, :, j] = 0.0
    beta = rng.uniform(0.1, 10.0, B)
    return H, beta


def lstsq_reference(H, beta, j):
    """min_y ||beta e_1 - H[:j+2, :j+1] y|| per sample: (solution, residual)."""
    sols, res = [], []
    for Hb, bb in zip(H, beta, strict=True):
        M = Hb[: j + 2, : j + 1]
        rhs = np.zeros(j + 2)
        rhs[0] = bb
        y = np.linalg.lstsq(M, rhs, rcond=None)[0]
        sols.append(y)
        res.append(np.linalg.norm(rhs - M @ y))
    return np.array(sols), np.array(res)


@given(seed=seeds, B=st.integers(1, 4), m=st.integers(1, 15))
def test_incremental_qr_matches_lstsq(seed, B, m):
    rng = np.random.default_rng(seed)
    H, beta = random_hessenberg(rng, B, m)
    qr = GivensQR(B, m)
    qr.reset(beta)
    for j in range(m):
        estimate = qr.add_column(H[:, : j + 2, j])
        y_ref, res_ref = lstsq_reference(H, beta, j)
        np.testing.assert_allclose(estimate, res_ref, rtol=1e-9, atol=1e-12 * beta.max())
        gamma = qr.solve()
        assert gamma.shape == (B, m)
        assert np.all(gamma[:, j + 1 :] == 0)
        np.testing.assert_allclose(
            gamma[:, : j + 1], y_ref, rtol=1e-8, atol=1e-10 * np.abs(y_ref).max()
        )
    # A random Hessenberg matrix has no zero pivot.
    assert np.all(qr.R[:, np.arange(m), np.arange(m)] != 0)


@given(seed=seeds, m=st.integers(2, 10))
def test_estimates_are_monotone(seed, m):
    rng = np.random.default_rng(seed)
    H, beta = random_hessenberg(rng, 2, m)
    qr = GivensQR(2, m)
    qr.reset(beta)
    previous = beta.copy()
    for j in range(m):
        estimate = qr.add_column(H[:, : j + 2, j])
        assert np.all(estimate <= previous * (1 + 1e-14))
        previous = estimate


@given(seed=seeds, m=st.integers(2, 10), data=st.data())
def test_zero_column_gives_finite_gamma(seed, m, data):
    j0 = data.draw(st.integers(0, m - 1))
    rng = np.random.default_rng(seed)
    H, beta = random_hessenberg(rng, 2, m, zero_columns=(j0,))
    qr = GivensQR(2, m)
    qr.reset(beta)
    for j in range(m):
        estimate = qr.add_column(H[:, : j + 2, j])
        assert np.all(np.isfinite(estimate))
    gamma = qr.solve()
    assert np.all(np.isfinite(gamma))
    assert np.all(gamma[:, j0] == 0)


@given(seed=seeds, m=st.integers(2, 10), data=st.data())
def test_trailing_zero_columns_mean_no_step(seed, m, data):
    # A sample that sits out the rest of a cycle passes all-zero columns: its
    # solution and estimate stay those of its last real column.
    last = data.draw(st.integers(0, m - 2))
    rng = np.random.default_rng(seed)
    H, beta = random_hessenberg(rng, 1, m, zero_columns=range(last + 1, m))
    qr = GivensQR(1, m)
    qr.reset(beta)
    for j in range(m):
        estimate = qr.add_column(H[:, : j + 2, j])
    y_ref, res_ref = lstsq_reference(H, beta, last)
    gamma = qr.solve()
    np.testing.assert_allclose(gamma[:, : last + 1], y_ref, rtol=1e-8, atol=1e-12)
    assert np.all(gamma[:, last + 1 :] == 0)
    # add_column returns the least-squares residual norm: appending a zero column
    # leaves the problem, hence its residual, unchanged.
    np.testing.assert_allclose(estimate, res_ref, rtol=1e-9)


def test_zero_beta_sample_sits_out():
    H = np.zeros((2, 3, 2))
    H[1] = [[1.0, 2.0], [3.0, 4.0], [0.0, 5.0]]
    qr = GivensQR(2, 2)
    qr.reset(np.array([0.0, 1.0]))
    for j in range(2):
        est = qr.add_column(H[:, : j + 2, j])
    assert est[0] == 0.0
    gamma = qr.solve()
    assert np.array_equal(gamma[0], [0.0, 0.0])
    assert np.all(np.isfinite(gamma[1]))


def test_full_qr_raises_when_overfilled():
    qr = GivensQR(1, 1)
    qr.reset(np.ones(1))
    qr.add_column(np.array([[1.0, 1.0]]))
    with pytest.raises(RuntimeError):
        qr.add_column(np.array([[1.0, 1.0, 1.0]]))


# ---------------------------------------------------------------------------
# Rank: a GMRES breakdown is a numerically singular least-squares problem.
# ---------------------------------------------------------------------------
EPS = float(np.finfo(np.float64).eps)


def first_singular_step(H, scale=0.0):
    """Reference: the first k with sigma_min(H_bar_k) <= (k+1) eps max(scale, max||h_j||)."""
    for k in range(1, H.shape[1] + 1):
        alpha = max(scale, np.linalg.norm(H[: k + 1, :k], axis=0).max())
        if np.linalg.svd(H[: k + 1, :k], compute_uv=False)[-1] <= (k + 1) * EPS * alpha:
            return k
    return None


def test_singularity_that_the_diagonal_hides_is_detected():
    # Upper triangular, unit diagonal, -1 above it (zero subdiagonal, so R = H): every
    # pivot is 1 but sigma_min halves with each column, below the threshold near k = 46.
    m = 50
    H = np.zeros((1, m + 1, m))
    H[0, :m, :] = np.eye(m) - np.triu(np.ones((m, m)), 1)
    k = first_singular_step(H[0])
    assert k is not None and 30 < k < m
    qr = GivensQR(1, m)
    qr.reset(np.array([1.0]))
    estimates = [qr.add_column(H[:, : j + 2, j])[0] for j in range(m)]
    assert qr.singular.tolist() == [True] and qr.rank.tolist() == [k - 1]
    # From the singular step on, the estimate stays that of the last sound step.
    assert estimates[k - 1 :] == [estimates[k - 2]] * (m - k + 1)
    # Step k-1's iterate: R_{k-1} gamma = e_1 (Q = I here), i.e. gamma = e_1, exactly.
    gamma = qr.solve()
    np.testing.assert_array_equal(gamma[0, : k - 1], np.eye(k - 1)[0])
    assert np.all(gamma[0, k - 1 :] == 0)


def test_outside_scale_judges_a_noise_only_column():
    # A column of rounding size is a sound pivot against its own size, a singular
    # one against the ||A|| estimate passed from earlier cycles.
    h = np.array([[1e-17, 0.0]])
    alone = GivensQR(1, 1)
    alone.reset(np.array([1.0]))
    alone.add_column(h)
    assert alone.singular.tolist() == [False] and alone.rank.tolist() == [1]
    judged = GivensQR(1, 1)
    judged.reset(np.array([1.0]))
    estimate = judged.add_column(h, scale=np.array([3.0]))
    assert judged.singular.tolist() == [True] and judged.rank.tolist() == [0]
    assert estimate.tolist() == [1.0]  # no step: the residual is beta's
    assert judged.solve().tolist() == [[0.0]]


def test_an_active_all_zero_column_is_singular_and_a_sat_out_one_is_not():
    qr = GivensQR(2, 3)
    qr.reset(np.array([2.0, 5.0]))
    estimate = qr.add_column(np.zeros((2, 2)), active=np.array([True, False]))
    # Sample 0 took A v_1 = 0: breakdown; sample 1 sat the step out.
    assert qr.singular.tolist() == [True, False]
    assert estimate.tolist() == [2.0, 5.0]
    assert qr.used[:, 0].tolist() == [True, False]
    with pytest.raises(ValueError, match="sat out a column"):
        qr.add_column(np.ones((2, 3)), active=np.array([True, True]))
    with pytest.raises(ValueError, match=r"active must have shape \(2,\)"):
        qr.add_column(np.ones((2, 3)), active=np.array([True]))


@given(seed=seeds, m=st.integers(2, 12), data=st.data())
def test_singular_sample_ignores_later_columns_and_keeps_its_iterate(seed, m, data):
    # A column dependent on the earlier ones (h_{k+1,k} = 0) freezes the sample: later
    # columns change neither its estimate nor its solution, which are step k-1's.
    k = data.draw(st.integers(1, m - 1))
    rng = np.random.default_rng(seed)
    H, beta = random_hessenberg(rng, 1, m)
    H[0, :, k] = H[0, :, :k] @ rng.standard_normal(k)
    assert first_singular_step(H[0]) == k + 1
    qr = GivensQR(1, m)
    qr.reset(beta)
    estimates = [qr.add_column(H[:, : j + 2, j])[0] for j in range(m)]
    y_ref, res_ref = lstsq_reference(H, beta, k - 1)
    assert qr.singular.tolist() == [True] and qr.rank.tolist() == [k]
    np.testing.assert_allclose(estimates[k:], res_ref[0], rtol=1e-9)
    gamma = qr.solve()
    np.testing.assert_allclose(gamma[0, :k], y_ref[0], rtol=1e-8, atol=1e-10)
    assert np.all(gamma[0, k:] == 0)


@given(seed=seeds, m=st.integers(1, 12), complex_=st.booleans())
def test_one_sample_path_equals_the_batched_path(seed, m, complex_):
    # GivensQR takes a scalar path for a batch of one; it must compute what the
    # batched path computes for the same sample (bit for bit in real arithmetic).
    rng = np.random.default_rng(seed)
    H, beta = random_hessenberg(rng, 1, m)
    dtype = np.complex128 if complex_ else np.float64
    if complex_:
        H = H + 1j * np.triu(rng.standard_normal(H.shape), -1)
    one, two = GivensQR(1, m, dtype=dtype), GivensQR(2, m, dtype=dtype)
    one.reset(beta)
    two.reset(np.concatenate([beta, 2 * beta]))
    for j in range(m):
        e1 = one.add_column(H[:, : j + 2, j])
        e2 = two.add_column(np.concatenate([H[:, : j + 2, j]] * 2))
        if complex_:
            np.testing.assert_allclose(e1[0], e2[0], rtol=1e-13)
        else:
            assert e1[0] == e2[0]
    tol = {"rtol": 1e-13, "atol": 1e-15} if complex_ else {"rtol": 0, "atol": 0}
    np.testing.assert_allclose(one.R[0], two.R[0], **tol)
    np.testing.assert_allclose(one.Q[0], two.Q[0], **tol)
    np.testing.assert_allclose(one.solve()[0], two.solve()[0], **tol)
    assert one.rank[0] == two.rank[0] and one.singular[0] == two.singular[0]


def _factor(H: np.ndarray, beta: float, B: int) -> GivensQR:
    """Feed the columns of the Hessenberg ``H`` ((m+1) x m) to a ``B``-sample factorization."""
    m = H.shape[1]
    qr = GivensQR(B, m)
    qr.reset(np.full(B, beta))
    for j in range(m):
        qr.add_column(np.tile(H[: j + 2, j], (B, 1)))
    return qr


@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize("exponent", [-310, -300, -200, -160, 160, 200, 300])
def test_factorization_is_scale_invariant_without_warnings(B, exponent):
    # GMRES's small problem is homogeneous: scaling H and beta by t scales the residual
    # and R by t and leaves gamma, the rank and the singular flags unchanged.  Entries
    # above ~1e154 overflowed the squared column norm, below ~1e-154 the squared 1/r;
    # that must neither warn nor change a decision (the SVD fallback decides there).
    rng = np.random.default_rng(3)
    H = np.triu(rng.standard_normal((6, 5)), -1)
    # A column in the span of the first two makes H_bar rank-deficient from column 3 on.
    H[:, 2] = H[:, 0] - 2.0 * H[:, 1]
    reference = _factor(H, 1.0, B)
    assert reference.singular.all() and (reference.rank == 2).all()
    scale = 10.0**exponent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = _factor(H * scale, scale, B)
        gamma = scaled.solve()
    # Subnormal entries (below 2.2e-308) keep only about 13 digits at 1e-310.
    rtol = 1e-6 if scale < 1e-300 else 1e-12
    assert np.array_equal(scaled.rank, reference.rank)
    assert np.array_equal(scaled.singular, reference.singular)
    np.testing.assert_allclose(scaled.residual / scale, reference.residual, rtol=rtol)
    np.testing.assert_allclose(scaled.scale / scale, reference.scale, rtol=rtol)
    np.testing.assert_allclose(gamma, reference.solve(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize("exponent", [-300, 300])
def test_full_rank_factorization_at_extreme_scales_matches_lstsq(B, exponent):
    rng = np.random.default_rng(4)
    H = np.triu(rng.standard_normal((6, 5)), -1)
    scale = 10.0**exponent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qr = _factor(H * scale, scale, B)
    rhs = np.zeros(6)
    rhs[0] = 1.0
    gamma, *_ = np.linalg.lstsq(H, rhs, rcond=None)
    assert not qr.singular.any() and (qr.rank == 5).all()
    np.testing.assert_allclose(qr.solve()[0], gamma, rtol=1e-10)
    np.testing.assert_allclose(qr.residual / scale, np.linalg.norm(H @ gamma - rhs), rtol=1e-10)
