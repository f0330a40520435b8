"""Verification tests for krylovadv.arnoldi."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import build_quadratic, seeds

from krylovadv import arnoldi, aslinearoperator

#: Families without small invariant subspaces for a random start vector.
GENERIC = ("spd", "indefinite", "nonsymmetric", "nonnormal", "clustered")
METHODS = ("mgs", "cgs2")


def to64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.numpy()
    return np.asarray(a, dtype=np.float64)


@st.composite
def arnoldi_cases(draw, dtypes=(np.float64, np.float32)):
    family = draw(st.sampled_from(GENERIC))
    dtype = draw(st.sampled_from(dtypes))
    n = draw(st.integers(3, 30))
    q = build_quadratic(family, n, draw(seeds), dtype)
    k = draw(st.integers(1, n - 1))
    v0 = np.random.default_rng(q.seed + 1).standard_normal(n).astype(dtype)
    return q, k, v0


@pytest.mark.parametrize("method", METHODS)
@given(case=arnoldi_cases(), use_torch=st.booleans())
def test_arnoldi_relation(case, use_torch, method):
    q, k, v0 = case
    A, v = (torch.from_numpy(q.A), torch.from_numpy(v0)) if use_torch else (q.A, v0)
    fact = arnoldi(A, v, k, orthogonalization=method)
    assert isinstance(fact.V, torch.Tensor) == use_torch
    assert fact.V.dtype == A.dtype and fact.H.dtype == A.dtype
    assert tuple(fact.V.shape) == (q.n, k + 1) and tuple(fact.H.shape) == (k + 1, k)
    assert fact.size == k and not fact.breakdown
    assert fact.matvecs == k
    V, H, A64 = to64(fact.V), to64(fact.H), to64(q.A)
    eps = np.finfo(q.dtype).eps
    gap = np.linalg.norm(A64 @ V[:, :k] - V @ H, 2)
    assert gap <= 10 * q.n * eps * np.linalg.norm(A64, 2), gap
    # v_1 is the normalised start vector.
    np.testing.assert_allclose(V[:, 0], to64(v0) / np.linalg.norm(to64(v0)), atol=10 * eps)
    # Upper Hessenberg: exactly zero below the first subdiagonal.
    assert np.all(np.tril(H, -2) == 0)


@given(case=arnoldi_cases())
def test_arnoldi_basis_is_orthonormal(case):
    # The documented contract of "cgs2": V_{k+1}^T V_{k+1} = I up to rounding
    # (MGS has its own, condition-dependent bound, tested below).
    q, k, v0 = case
    fact = arnoldi(q.A, v0, k, orthogonalization="cgs2")
    V = to64(fact.V)
    loss = np.linalg.norm(V.T @ V - np.eye(k + 1), 2)
    assert loss <= 10 * q.n * np.finfo(q.dtype).eps, (loss, q.family, q.n, k)


@given(case=arnoldi_cases())
def test_default_orthogonalization_basis_is_orthonormal(case):
    q, k, v0 = case
    fact = arnoldi(q.A, v0, k)  # what a user gets without choosing
    V = to64(fact.V)
    loss = np.linalg.norm(V.T @ V - np.eye(k + 1), 2)
    assert loss <= 10 * q.n * np.finfo(q.dtype).eps, (loss, q.family, q.n, k)


@given(case=arnoldi_cases())
def test_mgs_loss_of_orthogonality_is_within_the_mgs_bound(case):
    # Modified Gram-Schmidt loses orthogonality in proportion to the condition
    # number of [v_1 ||A||, A V_k] (Bjorck; Paige, Rozloznik & Strakos).
    q, k, v0 = case
    fact = arnoldi(q.A, v0, k, orthogonalization="mgs")
    V, A64 = to64(fact.V), to64(q.A)
    loss = np.linalg.norm(V.T @ V - np.eye(k + 1), 2)
    kappa = np.linalg.cond(np.column_stack([V[:, 0] * np.linalg.norm(A64, 2), A64 @ V[:, :k]]))
    assert loss <= 10 * q.n * np.finfo(q.dtype).eps * kappa


@pytest.mark.parametrize("method", METHODS)
@given(n=st.integers(6, 30), seed=seeds)
def test_breakdown_on_invariant_subspace(n, seed, method):
    rng = np.random.default_rng(seed)
    # A signed permutation keeps A = Q diag(lambda) Q^T exact in floating point, so the
    # span of three eigenvectors is exactly invariant for the stored A.  (With a
    # rounded orthogonal Q it is invariant only to ~eps*||A||/gap, which Krylov
    # steps amplify to 1e-13-ish: not a breakdown of the stored matrix.)
    Q = np.eye(n)[rng.permutation(n)] * rng.choice([-1.0, 1.0], n)
    eigenvalues = rng.permutation(np.linspace(-5.0, 5.0, n))  # distinct, gap >= 10/n
    A = (Q * eigenvalues) @ Q.T
    chosen = rng.choice(n, 3, replace=False)
    v0 = Q[:, chosen] @ rng.uniform(0.5, 2.0, 3)
    fact = arnoldi(A, v0, 6, orthogonalization=method)
    assert fact.breakdown
    assert fact.size == 3
    assert fact.matvecs == 3
    ritz = np.sort(fact.ritz_values().real)
    np.testing.assert_allclose(ritz, np.sort(eigenvalues[chosen]), atol=1e-10)
    # Columns past the invariant space are zero.
    assert np.all(to64(fact.V)[:, 3:] == 0)


@pytest.mark.parametrize("method", METHODS)
def test_breakdown_on_diagonal_matrix(method):
    A = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    v0 = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    fact = arnoldi(A, v0, 5, orthogonalization=method)
    assert fact.breakdown and fact.size == 3
    np.testing.assert_allclose(np.sort(fact.ritz_values().real), [1.0, 2.0, 3.0], atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_exact_invariant_subspace_in_float32_and_torch(method):
    # v0 = e_1 + e_2 of a diagonal matrix: A v_2 is exactly in span(v_1, v_2).
    A = np.diag([1.0, 4.0, 9.0, 16.0])
    v0 = np.array([1.0, 1.0, 0.0, 0.0])
    for a, v in (
        (A.astype(np.float32), v0.astype(np.float32)),
        (torch.from_numpy(A), torch.from_numpy(v0)),
        (A, v0),
    ):
        fact = arnoldi(a, v, 3, orthogonalization=method)
        assert fact.breakdown and fact.size == 2
        np.testing.assert_allclose(np.sort(fact.ritz_values().real), [1.0, 4.0], rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@given(case=arnoldi_cases(dtypes=(np.float64,)))
def test_expand_continues_the_factorization(case, method):
    q, k, v0 = case
    if k < 2:
        k = 2
    first = max(1, k // 2)
    grown = arnoldi(q.A, v0, first, orthogonalization=method).expand(k - first)
    direct = arnoldi(q.A, v0, k, orthogonalization=method)
    assert grown.k == direct.k == k
    assert grown.size == direct.size and grown.matvecs == direct.matvecs
    np.testing.assert_allclose(grown.V, direct.V, rtol=0, atol=1e-13)
    np.testing.assert_allclose(grown.H, direct.H, rtol=0, atol=1e-13 * np.abs(q.A).max())


def test_expand_three_then_two_equals_five():
    q = build_quadratic("nonsymmetric", 12, 3)
    v0 = np.arange(1.0, 13.0)
    for method in METHODS:
        grown = arnoldi(q.A, v0, 3, orthogonalization=method)
        assert grown.expand(2) is grown
        direct = arnoldi(q.A, v0, 5, orthogonalization=method)
        np.testing.assert_allclose(grown.V, direct.V, atol=1e-14)
        np.testing.assert_allclose(grown.H, direct.H, atol=1e-13)
    with pytest.raises(ValueError):
        grown.expand(0)


def test_expand_keeps_broken_down_samples():
    A = np.diag([1.0, 2.0, 3.0, 4.0])
    fact = arnoldi(A, np.array([1.0, 1.0, 0.0, 0.0]), 2, orthogonalization="cgs2")
    assert fact.breakdown and fact.size == 2
    fact.expand(2)
    assert fact.size == 2 and fact.matvecs == 2 and fact.k == 4


@pytest.mark.parametrize("method", METHODS)
@given(n=st.integers(3, 20), B=st.integers(2, 4), seed=seeds, data=st.data())
def test_batched_equals_loop(n, B, seed, data, method):
    families = [data.draw(st.sampled_from(GENERIC)) for _ in range(B)]
    qs = [build_quadratic(f, n, seed + i) for i, f in enumerate(families)]
    A = np.stack([q.A for q in qs])
    v0 = np.random.default_rng(seed).standard_normal((B, n))
    k = data.draw(st.integers(1, n - 1))
    batch = arnoldi(A, v0, k, orthogonalization=method)
    assert batch.V.shape == (B, n, k + 1) and batch.H.shape == (B, k + 1, k)
    for i in range(B):
        single = arnoldi(A[i], v0[i], k, orthogonalization=method)
        assert batch.size[i] == single.size
        assert batch.breakdown[i] == single.breakdown
        np.testing.assert_allclose(batch.V[i], single.V, atol=1e-12)
        np.testing.assert_allclose(batch.H[i], single.H, atol=1e-12 * np.abs(A[i]).max())


def test_batch_with_one_sample_breaking_down():
    A = np.stack([np.diag([1.0, 2.0, 3.0, 4.0]), build_quadratic("spd", 4, 0).A])
    v0 = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 2.0, 0.5]])
    fact = arnoldi(A, v0, 3, orthogonalization="cgs2")
    assert fact.breakdown.tolist() == [True, False]
    assert fact.size.tolist() == [2, 3]
    assert fact.matvecs.tolist() == [2, 3]
    ritz = fact.ritz_values()
    assert isinstance(ritz, list) and len(ritz) == 2
    np.testing.assert_allclose(np.sort(ritz[0].real), [1.0, 2.0], atol=1e-12)


def test_ritz_values_of_full_factorization_are_the_eigenvalues():
    q = build_quadratic("spd", 8, 4)
    fact = arnoldi(q.A, np.ones(8), 8, orthogonalization="cgs2")
    ritz = fact.ritz_values()
    assert np.all(np.diff(np.abs(ritz)) <= 0)  # sorted by decreasing magnitude
    np.testing.assert_allclose(np.sort(ritz.real), np.sort(q.eigenvalues), rtol=1e-8)


def test_invalid_input():
    A = np.eye(4)
    with pytest.raises(ValueError):
        arnoldi(A, np.zeros(4), 2)
    with pytest.raises(ValueError):
        arnoldi(np.stack([A, A]), np.array([[1.0, 0, 0, 0], [0.0, 0, 0, 0]]), 2)
    with pytest.raises(ValueError):
        arnoldi(A, np.array([1.0, np.nan, 0, 0]), 2)
    with pytest.raises(ValueError):
        arnoldi(A, np.ones(4), 0)
    with pytest.raises(ValueError):
        arnoldi(A, np.ones(5), 2)
    with pytest.raises(ValueError):
        arnoldi(A, np.ones(4), 2, orthogonalization="householder")
    with pytest.raises(TypeError):
        arnoldi(A, np.ones(4, dtype=np.int64), 2)


def test_non_finite_operator_raises_floating_point_error():
    op = aslinearoperator(lambda v: v * np.inf, shape=(4, 4))
    with pytest.raises(FloatingPointError):
        arnoldi(op, np.ones(4), 2)
