"""Tests that kill the mutants mutmut left alive in krylovadv/arnoldi.py.

Each test names the behaviour a surviving mutant changed (see docs/dev/mutation.rst):
Hermitian coefficients for complex bases, the DGKS reorthogonalization criterion of
CGS2 (strict, scale-free, and a second pass that *adds* its correction), the
breakdown test of ``direction_lost`` (its formula and its optional scale), Ritz
values of short and empty factorizations and their order, ``expand`` keeping the
dtype, and active-set compaction when a sample of a batch breaks down.
"""

from __future__ import annotations

import array_api_compat.numpy as xp
import numpy as np
import pytest
from strategies import recording_operator

from krylovadv import aslinearoperator
from krylovadv._backend import batched_norm
from krylovadv.arnoldi import (
    _DGKS,
    ArnoldiFactorization,
    arnoldi,
    direction_lost,
    orthogonalize,
)

EPS = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


def orthonormal_rows(rng, n, k):
    """``k`` orthonormal rows of length ``n`` (a random float64 orthonormal basis)."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return Q.T.copy()


# --- orthogonalize: complex coefficients --------------------------------------------------


@pytest.mark.parametrize("method", ["cgs2", "mgs"])
def test_complex_arnoldi_has_hermitian_coefficients(method):
    # h_ij = <A v_j, v_i> = v_i^H A v_j: with the plain (unconjugated) product the
    # relation A V = V H fails by O(||A||), not by rounding.
    rng = np.random.default_rng(3)
    n, k = 10, 6
    A = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    v0 = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    fact = arnoldi(A, v0, k, orthogonalization=method)
    V, H = fact.V, fact.H
    assert V.dtype == np.complex128 and H.dtype == np.complex128
    norm_a = np.linalg.norm(A, 2)
    np.testing.assert_allclose(A @ V[:, :k], V @ H, rtol=0, atol=100 * EPS * norm_a)
    np.testing.assert_allclose(V.conj().T @ V, np.eye(k + 1), rtol=0, atol=100 * EPS)
    # The coefficients are the projections V^H A V (upper part of H).
    np.testing.assert_allclose(
        np.triu(H[:k, :k]), np.triu(V[:, :k].conj().T @ A @ V[:, :k]), atol=100 * EPS * norm_a
    )


# --- orthogonalize: the DGKS criterion of CGS2 -------------------------------------------


def test_cgs2_coefficients_are_exact_projections_for_long_float32_vectors():
    # The second classical pass corrects the coefficients too: h = h1 + V(w - V^T h1)
    # is the projection V w up to the final rounding of the float32 result, at most
    # half an ulp of |h_i| <= ||w|| (the correction's own error is second order: w
    # lies in span(V) up to 1e-6).  One pass, or a correction subtracted instead of
    # added, is off by about an ulp of ||w|| for n = 3e5 (the summation error of the
    # long dot products).
    rng = np.random.default_rng(0)
    n = 300_000
    worst = 0.0
    for _ in range(5):
        V64 = orthonormal_rows(rng, n, 4)
        w64 = rng.standard_normal(4) @ V64 + 1e-6 * rng.standard_normal(n)
        V, w = V64.astype(np.float32)[None], w64.astype(np.float32)[None]
        h, _, _, _ = orthogonalize(xp, V, 3, w, "cgs2")
        assert h.dtype == np.float32
        exact = V[0].astype(np.float64) @ w[0].astype(np.float64)
        worst = max(worst, np.abs(h[0] - exact).max() / (EPS32 * np.linalg.norm(w64)))
    assert worst <= 0.5, worst


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_cgs2_reorthogonalizes_at_every_scale(scale):
    # w = scale (v_1 + 1e-10 u): one classical pass leaves a remainder whose rounding
    # error is ~1e-6 of its size; the DGKS test (||h|| > ||w||/sqrt 2, scale-free)
    # must ask for the second pass whatever ||w|| is, so that the result is
    # orthogonal to V to working precision.
    rng = np.random.default_rng(1)
    n = 50
    V = orthonormal_rows(rng, n, 3)
    u = rng.standard_normal(n)
    u -= V.T @ (V @ u)
    u /= np.linalg.norm(u)
    w = scale * (V[0] + 1e-10 * u)
    h, w_out, before, after = orthogonalize(xp, V[None], 2, w[None], "cgs2")
    cosine = np.abs(V @ w_out[0]) / np.linalg.norm(w_out[0])
    assert cosine.max() <= 10 * EPS, cosine
    np.testing.assert_allclose(after[0], scale * 1e-10, rtol=1e-6)
    np.testing.assert_allclose(before[0], np.linalg.norm(w), rtol=4 * EPS)
    np.testing.assert_allclose(h[0], V @ w, rtol=0, atol=4 * EPS * scale)


def test_dgks_test_is_strict_at_equality():
    # "A second pass whenever the first removed *more* than 1 - 1/sqrt 2 of ||w||":
    # where ||h|| equals ||w||/sqrt 2 exactly in floating point, CGS2 returns the
    # one-pass result unchanged (a second pass would add its rounding-level correction).
    rng = np.random.default_rng(0)
    V = orthonormal_rows(rng, 6, 2)[None]
    seen_equality = False
    for _ in range(200):
        c = rng.standard_normal(2)
        c /= np.linalg.norm(c)
        u = rng.standard_normal(6)
        u -= V[0].T @ (V[0] @ u)
        u /= np.linalg.norm(u)
        w = (c @ V[0] + u)[None]  # ||h|| = ||w|| / sqrt 2 up to rounding
        h1 = (V @ w[:, :, None])[:, :, 0]
        w1 = w - (h1[:, None, :] @ V)[:, 0, :]
        correction = (V @ w1[:, :, None])[:, :, 0]
        if batched_norm(xp, h1)[0] != _DGKS * batched_norm(xp, w)[0] or not correction.any():
            continue
        seen_equality = True
        h, w_out, _, _ = orthogonalize(xp, V, 1, w, "cgs2")
        np.testing.assert_array_equal(h, h1)
        np.testing.assert_array_equal(w_out, w1)
    assert seen_equality  # the draw above hits the boundary within 200 tries


def test_orthogonalize_names_the_valid_methods():
    V = np.eye(3)[None, :1]
    message = r"^orthogonalization must be 'mgs' or 'cgs2'; got 'qr'\.$"
    with pytest.raises(ValueError, match=message):
        orthogonalize(xp, V, 0, np.ones((1, 3)), "qr")


# --- direction_lost: the breakdown test ---------------------------------------------------


def test_direction_lost_without_scale_measures_against_norm_before():
    # ||w_after|| <= 16 sqrt(j+1) eps ||w_before||, scale omitted.
    before = np.array([1.0, 1.0, 2.0])
    after = np.array([16 * EPS, 17 * EPS, 32 * EPS])
    np.testing.assert_array_equal(direction_lost(before, after, EPS, 0), [True, False, True])


def test_direction_lost_threshold_is_16_sqrt_j_plus_1_eps_inclusive():
    before = np.ones(4)
    # j = 0: the threshold 16 eps is inclusive; 16.5 eps is above it.
    after = np.array([16 * EPS, 16.5 * EPS, 15 * EPS, 20 * EPS])
    np.testing.assert_array_equal(direction_lost(before, after, EPS, 0), [True, False, True, False])
    # j = 3: 16 sqrt(4) eps = 32 eps.
    after = np.array([32 * EPS, 33 * EPS, 31 * EPS, 40 * EPS])
    np.testing.assert_array_equal(direction_lost(before, after, EPS, 3), [True, False, True, False])


def test_direction_lost_scale_raises_the_reference():
    # The reference is max(||w_before||, alpha): a remainder of 1e-14 is noise for an
    # operator of norm 1e3 even when A v_{j+1} itself is small; a scale below
    # ||w_before|| changes nothing.
    before = np.array([1.0, 1.0])
    after = np.array([1e-14, 1e-14])
    np.testing.assert_array_equal(direction_lost(before, after, EPS, 0), [False, False])
    np.testing.assert_array_equal(
        direction_lost(before, after, EPS, 0, np.array([1e3, 1e-3])), [True, False]
    )


# --- ritz_values ---------------------------------------------------------------------------


def test_ritz_value_of_a_one_step_breakdown_is_the_eigenvalue():
    # An eigenvector start: the space is invariant after one step, H_1 = [lambda].
    A = np.diag([2.0, -3.0, 5.0])
    fact = arnoldi(A, np.array([0.0, 4.0, 0.0]), 3)
    assert fact.breakdown and fact.size == 1 and fact.matvecs == 1
    np.testing.assert_array_equal(fact.ritz_values(), [-3.0])


@pytest.mark.parametrize(
    ("dtype", "complex_dtype"), [(np.float64, np.complex128), (np.float32, np.complex64)]
)
def test_ritz_values_are_complex_even_when_every_one_is_real(dtype, complex_dtype):
    fact = arnoldi(np.diag([1.0, 2.0, 3.0]).astype(dtype), np.ones(3, dtype=dtype), 3)
    ritz = fact.ritz_values()
    assert ritz.dtype == complex_dtype
    np.testing.assert_allclose(ritz, [3.0, 2.0, 1.0], rtol=1e-5)


def test_a_zero_step_factorization_has_no_ritz_values_and_expands():
    # A factorization holding only v_1 (k = 0), built by hand: no Ritz values (an
    # empty complex array), and expanding it is the same as running arnoldi.
    A = np.diag([1.0, 2.0, 3.0, 4.0])
    v0 = np.array([1.0, 1.0, 1.0, 1.0])
    start = ArnoldiFactorization(
        operator=aslinearoperator(A),
        basis=(v0 / 2.0)[None, None, :],
        hessenberg=np.zeros((1, 1, 0)),
        sizes=np.zeros(1, dtype=np.int64),
        breakdowns=np.zeros(1, dtype=bool),
        matvec_counts=np.zeros(1, dtype=np.int64),
        operator_norm=np.zeros(1),
        orthogonalization="cgs2",
        single=True,
    )
    ritz = start.ritz_values()
    assert ritz.dtype == np.complex128 and ritz.shape == (0,)
    start.expand(3)
    direct = arnoldi(A, v0, 3)
    assert start.size == direct.size == 3 and start.matvecs == 3
    np.testing.assert_allclose(start.H, direct.H, rtol=0, atol=1e-14)


def test_ritz_values_keep_conjugate_pairs_in_lapack_order():
    # Sorted by decreasing magnitude with a stable sort: the two members of a
    # conjugate pair (equal magnitude) stay as LAPACK returns them, positive
    # imaginary part first; an unstable sort swaps some pairs.
    swapped = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        n = 24
        A = rng.standard_normal((n, n))
        ritz = arnoldi(A, rng.standard_normal(n), n).ritz_values()
        assert np.all(np.diff(np.abs(ritz)) <= 0)
        for i in np.flatnonzero(ritz.imag > 0):
            # The partner of a + bi is the next value, a - bi.
            swapped += ritz[i + 1] != np.conj(ritz[i])
    assert swapped == 0


# --- expand -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_expand_keeps_the_dtype(dtype):
    rng = np.random.default_rng(5)
    n = 8
    A = rng.standard_normal((n, n)).astype(dtype)
    v0 = rng.standard_normal(n).astype(dtype)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((n, n))
        v0 = v0 + 1j * rng.standard_normal(n)
    grown = arnoldi(A, v0, 2).expand(3)
    direct = arnoldi(A, v0, 5)
    assert grown.V.dtype == dtype and grown.H.dtype == dtype
    tol = 10 * np.finfo(dtype).eps * np.linalg.norm(A, 2)
    np.testing.assert_allclose(grown.H, direct.H, rtol=0, atol=tol)
    np.testing.assert_allclose(grown.V, direct.V, rtol=0, atol=10 * np.finfo(dtype).eps * n)


def test_expand_rejects_non_positive_steps_naming_steps():
    fact = arnoldi(np.eye(3) + np.diag([1.0, 2.0], 1), np.ones(3), 1)
    with pytest.raises(ValueError, match=r"^steps must be >= 1; got 0\.$"):
        fact.expand(0)


# --- batches: only active samples reach the operator --------------------------------------


def test_a_broken_down_sample_leaves_the_operator_batch():
    # Sample 0 has an invariant 2-dimensional Krylov space; from step 3 on only
    # sample 1 is passed to the operator, with its index.
    rng = np.random.default_rng(2)
    A = np.stack([np.diag([1.0, 2.0, 3.0, 4.0, 5.0]), rng.standard_normal((5, 5))])
    op, seen = recording_operator(A)
    v0 = np.array([[1.0, 1.0, 0.0, 0.0, 0.0], rng.standard_normal(5)])
    fact = arnoldi(op, v0, 4)
    assert fact.breakdown.tolist() == [True, False]
    assert fact.matvecs.tolist() == [2, 4]
    # "size", "matvecs": arrays of int for a batch (as documented); "breakdown" of bool.
    assert fact.matvecs.dtype == np.int64 and fact.size.dtype == np.int64
    assert fact.breakdown.dtype == np.bool_
    assert seen == [[0, 1], [0, 1], [1], [1]]
    assert op.num_products == 6


# --- arnoldi(): input checks name the argument --------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((np.ones(4), 2), {"orthogonalization": "qr"}, ValueError, r"^orthogonalization must be "),
        ((np.ones(4), 0), {}, ValueError, r"^k must be a positive integer; got 0\.$"),
        ((np.ones(4), 2.0), {}, ValueError, r"^k must be a positive integer; got 2\.0\.$"),
        ((np.ones(5), 2), {}, ValueError, r"^A has shape \(4, 4\) but v0 has shape \(5,\)\.$"),
        ((np.ones((2, 2, 4)), 2), {}, ValueError, r"^v0 must have shape \(n,\) or \(B, n\)"),
        ((np.array([1.0, np.inf, 0, 0]), 2), {}, ValueError, r"^v0 contains NaN or Inf\.$"),
        ((np.zeros(4), 2), {}, ValueError, r"^v0 must be nonzero for every sample\.$"),
        ((np.ones(4, dtype=np.int64), 2), {}, TypeError, r"^v0 has dtype int64; krylovadv "),
    ],
)
def test_arnoldi_input_errors_name_the_argument(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        arnoldi(np.diag([1.0, 2.0, 3.0, 4.0]), *args, **kwargs)


def test_batch_size_mismatch_names_both_counts():
    A = np.stack([np.eye(4), 2 * np.eye(4)])
    message = r"^A holds 2 operators but v0 has 3 rows \(shape \(3, 4\)\)\.$"
    with pytest.raises(ValueError, match=message):
        arnoldi(A, np.ones((3, 4)), 2)


def test_numpy_integer_k_and_a_unit_start_vector():
    # k may be a numpy integer; a start vector of norm 1 is v_1 itself.
    A = np.diag([1.0, 2.0, 3.0, 4.0]) + np.diag([1.0, 1.0, 1.0], 1)
    v0 = np.array([0.6, 0.0, 0.8, 0.0])
    fact = arnoldi(A, v0, np.int64(3))
    assert fact.k == 3 and fact.size == 3 and fact.matvecs == 3
    np.testing.assert_allclose(fact.V[:, 0], v0, rtol=0, atol=EPS)
    np.testing.assert_allclose(A @ fact.V[:, :3], fact.V @ fact.H, rtol=0, atol=10 * EPS)


def test_real_start_on_a_complex_operator_gives_a_complex_basis():
    # The start vector is promoted to the operator's complex dtype (same precision),
    # so the factorization equals the one from the complex-typed start.
    rng = np.random.default_rng(4)
    A = rng.standard_normal((6, 6)) + 1j * rng.standard_normal((6, 6))
    v0 = rng.standard_normal(6)
    fact = arnoldi(A, v0, 4)
    assert fact.V.dtype == np.complex128 and fact.H.dtype == np.complex128
    same = arnoldi(A, v0.astype(np.complex128), 4)
    np.testing.assert_array_equal(fact.H, same.H)
    np.testing.assert_array_equal(fact.V, same.V)
