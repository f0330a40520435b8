"""Tests that kill the mutants mutmut left alive in krylovadv/givens.py.

Each test names the behaviour a surviving mutant changed (see docs/dev/mutation.rst):
the state after ``reset`` equals a fresh factorization's, the ``singular`` flag is
set exactly when the smallest singular value of R falls below the rank threshold
(relative to that sample's own scale), samples of a batch never share a scale, and
the sign convention of ``givens_rotation`` at ``a = 0``.
"""

from __future__ import annotations

import numpy as np
import pytest

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
