"""Tests that kill the mutants mutmut left alive in krylovadv/givens.py.

Each test names the behaviour a surviving mutant changed (see docs/dev/mutation.rst):
the state after ``reset`` equals a fresh factorization's, the ``singular`` flag is
set exactly when the smallest singular value of R falls below the rank threshold
(relative to that sample's own scale), samples of a batch never share a scale, and
the sign convention of ``givens_rotation`` at ``a = 0``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from array_api_compat import array_namespace

from krylovadv.givens import GivensQR, givens_rotation

EPS = float(np.finfo(np.float64).eps)


def factor(columns, beta, eps=EPS, qr=None):
    """Feed Hessenberg columns (list of (B, j+2) arrays) into a GivensQR; return it."""
    B = len(beta)
    qr = GivensQR(B, len(columns), eps=eps) if qr is None else qr
    qr.reset(np.asarray(beta, dtype=np.float64))
    for h in columns:
        qr.add_column(np.asarray(h, dtype=np.float64))
    return qr


def hessenberg_columns(H):
    """Columns of a (B, m+1, m) Hessenberg batch, as add_column takes them."""
    return [H[:, : j + 2, j] for j in range(H.shape[2])]


def test_rotation_at_a_zero_has_positive_r_and_c_zero():
    # The sign of r follows a, and a = 0 counts as nonnegative: r = |b| > 0.
    c, s, r = givens_rotation(np, np.array([0.0, 0.0]), np.array([3.0, -2.0]))
    np.testing.assert_array_equal(r, [3.0, 2.0])
    np.testing.assert_array_equal(c, [0.0, 0.0])
    np.testing.assert_array_equal(s, [1.0, -1.0])


def test_fresh_state_is_empty_and_takes_max_columns_columns():
    qr = GivensQR(3, 4)
    np.testing.assert_array_equal(qr.residual, np.zeros(3))
    np.testing.assert_array_equal(qr.beta, np.zeros(3))
    assert qr.singular.dtype == np.bool_ and not qr.singular.any()
    # A fresh factorization is usable as is (beta = 0) for exactly max_columns columns.
    for j in range(4):
        qr.add_column(np.ones((3, j + 2)))
    with pytest.raises(RuntimeError, match=r"^GivensQR is full; reset it \(restart\) first\.$"):
        qr.add_column(np.ones((3, 6)))


def test_reset_clears_every_field():
    rng = np.random.default_rng(0)
    H = np.triu(rng.standard_normal((2, 5, 4)), -1)
    H[1, :, 3] = H[1, :, 0]  # sample 1 singular, so the flag is set before the reset
    qr = factor(hessenberg_columns(H), [1.0, 2.0])
    qr.solve()
    assert qr.singular.any()
    qr.reset(np.array([3.0, -0.5]))
    for name in ("R", "cosines", "sines"):
        np.testing.assert_array_equal(getattr(qr, name), 0.0, err_msg=name)
    assert not qr.used.any() and qr.used.dtype == np.bool_
    assert not qr.singular.any()
    np.testing.assert_array_equal(qr.beta, [3.0, -0.5])
    np.testing.assert_array_equal(qr.residual, [3.0, 0.5])


def test_a_sample_with_an_all_zero_column_keeps_its_residual_in_a_batch():
    qr = GivensQR(2, 2)
    qr.reset(np.array([2.0, 5.0]))
    res = qr.add_column(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert res[1] == 5.0  # sample 1 sat this column out
    assert res[0] == pytest.approx(np.sqrt(2.0))  # |beta s| for a 45 degree rotation


def test_cosines_and_sines_are_the_rotations_applied():
    rng = np.random.default_rng(1)
    H = np.triu(rng.standard_normal((1, 4, 3)), -1)
    qr = factor(hessenberg_columns(H), [1.0])
    np.testing.assert_allclose(qr.cosines**2 + qr.sines**2, 1.0, rtol=1e-15)
    assert np.all(qr.cosines >= 0)


def test_singular_flag_marks_exactly_the_singular_hessenberg():
    # Column 2 lies in the span of columns 0 and 1 exactly (h_{3,2} = 0 and the top
    # rows dependent): the last pivot is zero; the earlier ones are not.
    H = np.zeros((1, 4, 3))
    H[0, :2, 0] = [2.0, 1.0]
    H[0, :3, 1] = [1.0, 3.0, 1.0]
    H[0, :3, 2] = H[0, :3, 0] + H[0, :3, 1]
    H[0, 2, 2] = 1.0  # then column 2 = column 0 + column 1 exactly
    qr = factor(hessenberg_columns(H), [1.0])
    gamma = qr.solve()
    assert qr.singular.tolist() == [True]
    assert gamma[0, 2] == 0.0  # the zero pivot's step is dropped, not divided by noise
    # A nonsingular Hessenberg matrix is not flagged.
    ok = factor(hessenberg_columns(np.triu(np.ones((1, 4, 3)), -1) + np.eye(4, 3)), [1.0])
    ok.solve()
    assert ok.singular.tolist() == [False]


@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e12])
def test_singularity_is_judged_relative_to_the_samples_own_scale(scale):
    rng = np.random.default_rng(2)
    H = np.triu(rng.standard_normal((1, 4, 3)), -1)
    H[0, :, 2] = H[0, :, 0] - 2 * H[0, :, 1]  # exactly dependent last column
    base = factor(hessenberg_columns(H), [1.0])
    base.solve()
    scaled = factor(hessenberg_columns(scale * H), [1.0])
    gamma = scaled.solve()
    assert scaled.singular.tolist() == base.singular.tolist() == [True]
    assert np.all(np.isfinite(gamma)) and np.abs(gamma).max() < 1e3 / scale


@pytest.mark.parametrize(("factor_", "singular"), [(3.5, False), (2.5, True)])
def test_rank_threshold_is_k_plus_one_eps_times_the_scale(factor_, singular):
    # R = diag(t, 1): sigma_min(R_2) = t against the threshold (k+1) eps max||h_j||
    # = 3 eps for k = 2 columns.  The first column alone is well conditioned
    # (sigma = t = its own scale), so rank 1 is kept either way and gamma_0 = 1/t.
    t = factor_ * EPS
    H = np.zeros((1, 3, 2))
    H[0, 0, 0] = t
    H[0, :3, 1] = [0.0, 1.0, 0.0]
    qr = factor(hessenberg_columns(H), [1.0])
    gamma = qr.solve()
    assert qr.singular.tolist() == [singular]
    assert qr.rank.tolist() == [1 if singular else 2]
    assert gamma[0, 0] == pytest.approx(1.0 / t, rel=1e-12)


def test_batch_samples_have_their_own_scale():
    rng = np.random.default_rng(3)
    H = np.triu(rng.standard_normal((1, 5, 4)), -1)
    batch = np.concatenate([1e15 * H, H])
    gamma_batch = factor(hessenberg_columns(batch), [1.0, 1.0]).solve()
    gamma_solo = factor(hessenberg_columns(H), [1.0]).solve()
    np.testing.assert_allclose(gamma_batch[1], gamma_solo[0], rtol=1e-12)


def test_singular_flag_survives_a_later_good_pivot():
    # Back substitution runs k = j-1 .. 0: a zero pivot at the last column must stay
    # flagged after the good pivots of earlier columns.
    H = np.zeros((1, 3, 2))
    H[0, :2, 0] = [1.0, 1.0]
    H[0, :3, 1] = [1.0, 1.0, 0.0]  # = column 0: singular, h_{3,2} = 0
    qr = factor(hessenberg_columns(H), [1.0])
    qr.solve()
    assert qr.singular.tolist() == [True]


# ---------------------------------------------------------------------------
# Second round (the module grew a one-sample path, the R^{-1} rank screen,
# scaled norms and complex support).  Most batched-path survivors were there
# because the tests above use one sample: each check below runs on B = 1 (the
# scalar path) and on a batch (the masked path).
# ---------------------------------------------------------------------------
from scipy.linalg import lapack  # noqa: E402 (kept with the tests that use it)

from krylovadv.givens import _rotation  # noqa: E402


def lartg(a, b):
    """LAPACK's zlartg/dlartg: the independent reference for one rotation."""
    if isinstance(a, complex) or isinstance(b, complex):
        c, s, r = lapack.zlartg(complex(a), complex(b))
    else:
        c, s, r = lapack.dlartg(float(a), float(b))
    return float(np.real(c)), s, r


def test_complex_rotation_with_mixed_dtypes_matches_zlartg():
    # One complex argument makes the rotation complex: s = sign(a) conj(b) / rho.
    cases = [(2.0, 1.0 + 3.0j), (1.0j, 2.0), (-1.0 + 1.0j, 0.5j), (0.0, 2.0 + 1.0j), (1.0j, 1.0)]
    for a, b in cases:
        ref = lartg(complex(a), complex(b))
        for aa, bb in ((a, b), (complex(a), b), (a, complex(b))):
            got = givens_rotation(np, np.array([aa]), np.array([bb]))
            for x, y in zip(got, ref, strict=True):
                np.testing.assert_allclose(x[0], y, rtol=1e-15, atol=1e-15, err_msg=f"{aa},{bb}")
            # The scalar twin gives the same rotation for Python scalars.
            for x, y in zip(_rotation(aa, bb), ref, strict=True):
                np.testing.assert_allclose(x, y, rtol=1e-15, atol=1e-15, err_msg=f"{aa},{bb}")


def test_complex_rotation_at_a_zero_is_finite_and_quiet():
    # a = 0: sign(a) = 1, so r = |b| and s = conj(b)/|b|; no 0/0 on the way.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c, s, r = givens_rotation(np, np.array([0j, 1j, 0j]), np.array([3 + 4j, 1.0, 0j]))
        cs, ss, rs = _rotation(0j, 3 + 4j)
    np.testing.assert_allclose(c, [0.0, np.sqrt(0.5), 1.0], rtol=1e-15)
    np.testing.assert_allclose(s, [(3 - 4j) / 5, 1j * np.sqrt(0.5), 0.0], rtol=1e-15)
    np.testing.assert_allclose(r, [5.0, 1j * np.sqrt(2.0), 0.0], rtol=1e-15)
    assert (cs, ss, rs) == (0.0, (3 - 4j) / 5, 5.0 + 0j)


def test_real_rotation_sign_on_the_masked_path():
    # A zero pair in the batch sends every pair through the guarded branch; there
    # too a = 0 and 0 < a < 1 count as positive (dlartg's sign convention).
    a = np.array([0.0, 0.5, -0.5, 0.0])
    b = np.array([3.0, 1.0, 1.0, 0.0])
    got = givens_rotation(np, a, b)
    for i in range(4):
        for x, y in zip(got, lartg(a[i], b[i]), strict=True):
            assert x[i] == pytest.approx(y, rel=1e-15, abs=0.0)
    assert _rotation(0.0, 3.0) == (0.0, 1.0, 3.0)


@pytest.mark.parametrize("zero_pair", [False, True])
def test_rotation_keeps_float32(zero_pair):
    # "s and r of the inputs' dtype", on both branches.
    a = np.array([1.0, -2.0, 0.0 if zero_pair else 3.0], dtype=np.float32)
    b = np.array([3.0, 4.0, 0.0 if zero_pair else 1.0], dtype=np.float32)
    c, s, r = givens_rotation(np, a, b)
    assert c.dtype == s.dtype == r.dtype == np.float32


def test_rotation_of_torch_tensors_without_zero_pairs_stays_torch():
    a = torch.tensor([3.0, -4.0], dtype=torch.float64)
    b = torch.tensor([4.0, 3.0], dtype=torch.float64)
    c, s, r = givens_rotation(array_namespace(a), a, b)
    assert all(isinstance(x, torch.Tensor) for x in (c, s, r))
    torch.testing.assert_close(r, torch.tensor([5.0, -5.0], dtype=torch.float64))


def test_scalar_rotation_of_a_zero_pair_is_the_identity():
    assert _rotation(0.0, 0.0) == (1.0, 0.0, 0.0)
    c, s, r = _rotation(0j, 0j)
    assert (c, s, r) == (1.0, 0j, 0j)


def test_constructor_errors_and_dtypes():
    with pytest.raises(
        TypeError, match=r"^GivensQR works in float64 or complex128; got float32\.$"
    ):
        GivensQR(1, 2, dtype=np.float32)
    qr = GivensQR(2, 3, dtype=np.complex128)
    assert qr.beta.dtype == np.complex128 and qr.rank.dtype == np.int64
    assert qr.solve().dtype == np.complex128
    qr.reset([1, 2])  # integers in, the factorization's dtype stored
    assert qr.beta.dtype == np.complex128
    real = GivensQR(1, 2)
    real.reset([3])
    assert real.beta.dtype == np.float64 and real.rank.dtype == np.int64


def _state(qr):
    return {k: v.copy() for k, v in vars(qr).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("B", [1, 3])
def test_reset_restores_the_fresh_state(B):
    rng = np.random.default_rng(5)
    fresh = GivensQR(B, 4)
    fresh.reset(np.ones(B))
    qr = GivensQR(B, 4)
    qr.reset(np.ones(B))
    H = np.triu(rng.standard_normal((B, 5, 4)), -1)
    H[:, :, 2] = 0.0  # a breakdown, so singular and inv_norm2 are set
    active = None if B == 1 else np.array([True, True, False])
    for j in range(4):
        qr.add_column(H[:, : j + 2, j], active=active)
    qr.reset(np.ones(B))
    before, after = _state(fresh), _state(qr)
    assert before.keys() == after.keys()
    for k in before:
        assert after[k].dtype == before[k].dtype, k
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert qr.columns == 0


def check_inverse(qr, pivots):
    """R_inv holds R^{-1} on each sample's sound prefix, zero elsewhere; inv_norm2 its ||.||_F^2."""
    for b, k in enumerate(pivots):
        ref = np.zeros_like(qr.R_inv[b])
        ref[:k, :k] = np.linalg.inv(qr.R[b, :k, :k]) if k else 0.0
        np.testing.assert_allclose(qr.R_inv[b], ref, rtol=1e-12, atol=1e-14, err_msg=str(b))
        norm2 = np.sum(np.abs(ref) ** 2)
        np.testing.assert_allclose(qr.inv_norm2[b], norm2, rtol=1e-12, err_msg=str(b))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_inverse_factor_and_its_norm_match_numpy(dtype):
    rng = np.random.default_rng(6)
    m = 4
    H = np.triu(rng.standard_normal((3, m + 1, m)), -1) * np.array([1.0, 3.0, 0.5])[:, None, None]
    if dtype is np.complex128:
        H = H + 1j * np.triu(rng.standard_normal(H.shape), -1)
    H[0, :2, 0] = [1.0, 0.0]  # r = 1 exactly for sample 0's first pivot
    H[2, :, 1] = 0.0  # sample 2 breaks down at column 1 (a zero pivot)
    H[1, :, 2:] = np.nan  # sample 1 sits out columns 2, 3: its entries must be ignored
    beta = np.array([1.0, 2.0, 3.0])
    batch = GivensQR(3, m, dtype=dtype)
    batch.reset(beta)
    singles = [GivensQR(1, m, dtype=dtype) for _ in range(3)]
    for b, one in enumerate(singles):
        one.reset(beta[b : b + 1])
    for j in range(m):
        active = np.array([True, j < 2, True])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            batch.add_column(H[:, : j + 2, j], active=active)
            for b, one in enumerate(singles):
                if active[b] and not one.singular[0]:
                    one.add_column(H[b : b + 1, : j + 2, j])
    check_inverse(batch, [4, 2, 1])
    for b, k in enumerate([4, 2, 1]):
        check_inverse(singles[b], [k])
        # The one-sample path computes what the batch computes for that sample.
        np.testing.assert_allclose(singles[b].R[0], batch.R[b], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(singles[b].Q[0], batch.Q[b], rtol=1e-13, atol=1e-15)
        taken = batch.used[b]  # the batch stores identity rotations for columns not taken
        np.testing.assert_array_equal(batch.cosines[b, ~taken], 1.0)
        np.testing.assert_array_equal(batch.sines[b, ~taken], 0.0)
        for name in ("cosines", "sines"):
            np.testing.assert_allclose(
                getattr(singles[b], name)[0, taken], getattr(batch, name)[b, taken], rtol=1e-13
            )
        np.testing.assert_allclose(singles[b].residual[0], batch.residual[b], rtol=1e-13)
        np.testing.assert_array_equal(singles[b].used[0, : [4, 2, 2][b]], True)
    assert batch.singular.tolist() == [False, False, True]
    assert batch.rank.tolist() == [4, 2, 1]
    assert batch.used.tolist() == [
        [True] * 4,
        [True, True, False, False],
        [True, True] + [False] * 2,
    ]
    # The sample that sat out kept its two-column factorization: lstsq of its own H.
    rhs = np.zeros(3, dtype=dtype)
    rhs[0] = 2.0
    y, *_ = np.linalg.lstsq(H[1, :3, :2], rhs, rcond=None)
    np.testing.assert_allclose(batch.solve()[1, :2], y, rtol=1e-12)
    np.testing.assert_allclose(
        batch.residual[1], np.linalg.norm(rhs - H[1, :3, :2] @ y), rtol=1e-12
    )
    # Column norms per sample, over the columns it took.
    norms = [np.linalg.norm(H[b, :, : [4, 2, 2][b]], axis=0).max() for b in range(3)]
    np.testing.assert_allclose(batch.scale, norms, rtol=1e-14)


def test_zero_column_on_the_one_sample_path_is_an_identity_rotation():
    qr = GivensQR(1, 2)
    qr.reset(np.array([1.0]))
    qr.add_column(np.zeros((1, 2)))
    assert (
        qr.cosines[0, 0] == 1.0 and qr.sines[0, 0] == 0.0 and qr.used[0].tolist() == [True, False]
    )
    assert qr.singular.tolist() == [True] and np.isfinite(qr.inv_norm2).all()


@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize("complex_", [False, True])
def test_solve_matches_lstsq_for_complex_and_real(B, complex_):
    rng = np.random.default_rng(7)
    m = 5
    H = np.triu(rng.standard_normal((B, m + 1, m)), -1)
    dtype = np.float64
    if complex_:
        H = H + 1j * np.triu(rng.standard_normal(H.shape), -1)
        dtype = np.complex128
    qr = GivensQR(B, m, dtype=dtype)
    qr.reset(np.arange(1.0, B + 1))
    for j in range(m):
        qr.add_column(H[:, : j + 2, j])
    gamma = qr.solve()
    assert gamma.dtype == dtype
    for b in range(B):
        rhs = np.zeros(m + 1, dtype=dtype)
        rhs[0] = b + 1.0
        y, *_ = np.linalg.lstsq(H[b], rhs, rcond=None)
        np.testing.assert_allclose(gamma[b], y, rtol=1e-11)
        np.testing.assert_allclose(qr.residual[b], np.linalg.norm(rhs - H[b] @ y), rtol=1e-11)


@pytest.mark.parametrize("B", [1, 2])
def test_the_norm_screen_spares_the_svd_when_clearly_nonsingular(B, monkeypatch):
    # ||R^{-1}||_F < 1/threshold proves sigma_min > threshold: no SVD is needed then;
    # a singular column must reach the SVD.
    calls = []
    svd = np.linalg.svd

    def counting(*args, **kwargs):
        calls.append(1)
        return svd(*args, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", counting)
    rng = np.random.default_rng(8)
    H = np.triu(rng.standard_normal((B, 6, 5)), -1) + 3 * np.eye(6, 5)
    qr = GivensQR(B, 5)
    qr.reset(np.ones(B))
    for j in range(5):
        qr.add_column(H[:, : j + 2, j])
    assert calls == [] and not qr.singular.any()
    H[:, :, 4] = H[:, :, 0] - H[:, :, 1]
    qr.reset(np.ones(B))
    for j in range(5):
        qr.add_column(H[:, : j + 2, j])
    assert len(calls) == B and qr.singular.all() and (qr.rank == 4).all()


@pytest.mark.parametrize("B", [1, 2])
def test_sigma_min_equal_to_the_threshold_is_singular(B):
    # One column (t, 0) with outside scale 1: sigma_min = t, threshold 2 eps * 1.
    # For t = 2 eps exactly (powers of two, so no rounding) numpy's rule (rank counts
    # sigma > tol) calls it singular; just above it is not.
    for t, singular in ((2 * EPS, True), (2 * EPS * (1 + 2 * EPS), False)):
        qr = GivensQR(B, 1)
        qr.reset(np.ones(B))
        qr.add_column(np.tile([t, 0.0], (B, 1)), scale=np.ones(B))
        assert qr.singular.tolist() == [singular] * B, t
        assert qr.rank.tolist() == [0 if singular else 1] * B


@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize(("factor_", "singular"), [(3.5, False), (2.5, True), (3.0, True)])
def test_rank_threshold_on_both_paths(B, factor_, singular):
    # As test_rank_threshold_is_k_plus_one_eps_times_the_scale, on the batched path too.
    t = factor_ * EPS
    qr = GivensQR(B, 2)
    qr.reset(np.ones(B))
    qr.add_column(np.tile([t, 0.0], (B, 1)))
    qr.add_column(np.tile([0.0, 1.0, 0.0], (B, 1)))
    assert qr.singular.tolist() == [singular] * B
    assert qr.rank.tolist() == [1 if singular else 2] * B


@pytest.mark.parametrize("B", [1, 2])
def test_outside_scale_on_both_paths(B):
    h = np.tile([1e-17, 0.0], (B, 1))
    qr = GivensQR(B, 1)
    qr.reset(np.ones(B))
    estimate = qr.add_column(h, scale=np.full(B, 3.0))
    assert qr.singular.tolist() == [True] * B and estimate.tolist() == [1.0] * B
    alone = GivensQR(B, 1)
    alone.reset(np.ones(B))
    alone.add_column(h, scale=np.full(B, 1e-17))
    assert alone.singular.tolist() == [False] * B


@pytest.mark.parametrize("B", [1, 2])
def test_a_sat_out_sample_cannot_come_back_through_active_none(B):
    # active=None means "every sample takes the column": a sample that sat out column 0 must
    # be refused just as with an explicit mask (it used to slip through: with B = 1 it took
    # column 1 into a factorization whose column 0 was never rotated).
    qr = GivensQR(B, 3)
    qr.reset(np.arange(1.0, B + 1))
    sits = np.zeros(B, dtype=bool)
    sits[-1] = True
    qr.add_column(np.ones((B, 2)), active=~sits)
    before = {k: np.copy(v) for k, v in vars(qr).items() if isinstance(v, np.ndarray)}
    with pytest.raises(ValueError, match=r"^a sample that sat out a column cannot take"):
        qr.add_column(np.ones((B, 3)))
    assert qr.columns == 1
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(qr, name), value, err_msg=name)


def test_active_masks_accept_integer_arrays_and_enforce_prefixes():
    qr = GivensQR(2, 3)
    qr.reset(np.ones(2))
    qr.add_column(np.ones((2, 2)), active=[1, 1])  # explicitly all active
    qr.add_column(np.ones((2, 3)), active=[1, 0])
    assert qr.used[:, :2].tolist() == [[True, True], [True, False]]
    message = (
        r"^a sample that sat out a column cannot take a later one \(its columns are a prefix\); "
        r"reset the factorization first\.$"
    )
    with pytest.raises(ValueError, match=message):
        qr.add_column(np.ones((2, 4)), active=[0, 1])
    one = GivensQR(1, 2)
    one.reset(np.ones(1))
    one.add_column(np.array([[3.0, 4.0]]), active=[True])
    assert one.residual.tolist() == [0.8]
    np.testing.assert_allclose(one.residual, [0.8], rtol=1e-15)


def correctly_rounded_norm(h):
    """The 2-norm of a real float64 vector, rounded to nearest: exact rational arithmetic.

    A candidate c from a 60-digit decimal square root is accepted only if the exact sum of
    squares lies strictly between the squares of the midpoints to c's float neighbours.
    """
    from decimal import Decimal, localcontext
    from fractions import Fraction

    squares = sum(Fraction(float(x)) ** 2 for x in h)
    with localcontext() as ctx:
        ctx.prec = 60
        c = float(Decimal(squares.numerator).sqrt() / Decimal(squares.denominator).sqrt())
    below = (Fraction(c) + Fraction(float(np.nextafter(c, 0.0)))) / 2
    above = (Fraction(c) + Fraction(float(np.nextafter(c, np.inf)))) / 2
    assert below**2 < squares < above**2
    return c


@pytest.mark.parametrize(
    "h",
    [
        # Norms in (1e-140, 1e140), where the one-sample path takes sqrt(h . h): for these
        # columns it is the correctly rounded norm, while the largest-entry-scaled formula
        # of _row_norms is one ulp low (0.4335502981805546 vs ...547).
        [-0.37377328417591954, -0.21968020641103547],
        [0.07933668909879106, -0.09417684436092834],
        # sqrt(h . h) is exactly 1e-140 / 1e140 (the switch bounds, excluded from the
        # sqrt(h . h) range) but one ulp off; the scaled formula used there is correct.
        [7.299991298333693e-141, 6.834480744303285e-141],
        [6.311916674274042e139, 7.756268941767124e139],
    ],
)
def test_one_sample_column_norm_is_the_correctly_rounded_norm(h):
    h = np.array(h)
    expected = correctly_rounded_norm(h)
    qr = GivensQR(1, 2)
    qr.reset(np.ones(1))
    qr.add_column(h[None, :])
    assert qr.scale[0] == expected
