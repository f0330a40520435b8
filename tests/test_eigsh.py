"""Thick-restart Lanczos ``eigsh``: against numpy.linalg.eigh and scipy's ARPACK."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st
from strategies import SYMMETRIC, build_quadratic, quadratic_batches, seeds

from krylovadv import SolverStatus, eigsh


def _wanted(eig: np.ndarray, which: str, k: int) -> np.ndarray:
    order = {"LA": -eig, "SA": eig, "LM": -np.abs(eig)}[which]
    return np.sort(eig[np.argsort(order, kind="stable")[:k]])


@given(st.sampled_from(SYMMETRIC), st.integers(8, 40), seeds, st.sampled_from(["LA", "SA", "LM"]))
def test_eigenvalues_match_eigh_and_residuals_are_true(family, n, seed, which):
    q = build_quadratic(family, n, seed)
    eig = np.linalg.eigvalsh(q.A)
    k = min(3, n - 1)
    if which == "LM" and np.sort(np.abs(eig))[-k] == np.sort(np.abs(eig))[-k - 1]:
        # +lambda and -lambda tie for the k-th place: both answers are right.
        return
    result = eigsh(q.A, k, which=which, rng=seed, ncv=min(n, 20))
    assert result.status == SolverStatus.CONVERGED
    scale = np.abs(eig).max()
    distinct = np.unique(np.round(eig / scale, 9))
    if distinct.size < eig.size:
        # Repeated eigenvalues: one start vector's Krylov space holds one copy of each
        # (ARPACK's limitation too).  Every returned value is an eigenvalue, and the
        # extreme one is found.
        gaps = np.abs(result.eigenvalues[:, None] - eig[None, :]).min(axis=1)
        assert np.all(gaps <= 1e-9 * scale)
        extreme = -1 if which == "LA" else 0
        if which != "LM":
            assert np.isclose(result.eigenvalues[extreme], _wanted(eig, which, k)[extreme])
    else:
        np.testing.assert_allclose(result.eigenvalues, _wanted(eig, which, k), atol=1e-9 * scale)
    V = result.eigenvectors
    true = np.linalg.norm(q.A @ V - V * result.eigenvalues, axis=0)
    # The Krylov-Schur residual estimates are the true residuals (orthonormal basis).
    np.testing.assert_allclose(result.residual_norm, true, atol=1e-12 * scale)
    np.testing.assert_allclose(V.T @ V, np.eye(k), atol=1e-10)


@given(st.integers(12, 40), seeds)
def test_invariant_subspace_is_reported_and_continued_from_a_fresh_vector(n, seed):
    # A start vector in a 3-dimensional invariant subspace: the Lanczos process breaks
    # down after 3 steps (reported, never divided by) and must continue from a fresh
    # vector to find k = 5 eigenpairs.
    # (A diagonal matrix keeps the invariance exact in floating point.)
    rng = np.random.default_rng(seed)
    eig = np.linspace(1.0, 10.0, n)
    A = np.diag(eig)
    v0 = np.zeros(n)
    v0[[0, 1, n - 1]] = rng.uniform(0.5, 1.0, 3)
    result = eigsh(A, 5, which="LA", v0=v0, rng=seed)
    assert result.status == SolverStatus.CONVERGED
    assert result.invariant_subspaces >= 1
    np.testing.assert_allclose(result.eigenvalues, eig[-5:], atol=1e-10)


def test_clustered_top_eigenvalues_are_resolved():
    rng = np.random.default_rng(7)
    n = 200
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = np.concatenate([1.0 + 1e-7 * np.arange(4), np.linspace(0.0, 0.9, n - 4)])
    A = (q * eig) @ q.T
    A = (A + A.T) / 2
    result = eigsh(A, 4, which="LA", rng=1)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, eig[:4], atol=1e-12)


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
@pytest.mark.parametrize("family", ["spd", "indefinite", "clustered"])
def test_products_within_one_and_a_half_times_arpack(family, which):
    q = build_quadratic(family, 150, 11)
    v0 = np.random.default_rng(2).standard_normal(150)
    count = [0]

    def matvec(v):
        count[0] += 1
        return q.A @ v

    op = spla.LinearOperator(q.A.shape, matvec=matvec, dtype=np.float64)
    reference = spla.eigsh(op, 5, which=which, v0=v0, return_eigenvectors=False)
    result = eigsh(q.A, 5, which=which, v0=v0)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, np.sort(reference), atol=1e-8)
    assert result.matvecs <= 1.5 * count[0]


@given(quadratic_batches(families=SYMMETRIC, min_n=8, max_n=20), seeds)
def test_batch_equals_loop(qs, seed):
    A = np.stack([q.A for q in qs])
    v0 = np.random.default_rng(seed).standard_normal((len(qs), qs[0].n))
    batch = eigsh(A, 2, which="LA", v0=v0, rng=seed)
    for i in range(len(qs)):
        single = eigsh(A[i], 2, which="LA", v0=v0[i], rng=seed)
        assert single.status == batch.sample(i).status
        assert single.matvecs == batch.sample(i).matvecs
        scale = np.abs(A[i]).max()
        np.testing.assert_allclose(batch.eigenvalues[i], single.eigenvalues, atol=1e-10 * scale)


def test_float32_torch_and_scipy_unpacking():
    torch = pytest.importorskip("torch")
    q = build_quadratic("spd", 60, 4, dtype=np.float32)
    A = torch.from_numpy(q.A)
    w, v = eigsh(A, 3, which="LA", v0=torch.ones(60), tol=1e-5)
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.shape == (60, 3)
    exact = np.linalg.eigvalsh(q.A.astype(np.float64))[-3:]
    np.testing.assert_allclose(w, exact, rtol=1e-4)
    values_only = eigsh(A, 3, which="LA", v0=torch.ones(60), return_eigenvectors=False)
    np.testing.assert_allclose(np.asarray(values_only), w, rtol=1e-5)
    a, b, c = values_only  # iterates over eigenvalues, as scipy's array does
    assert a <= b <= c


def test_bad_arguments_name_themselves():
    A = np.eye(5)
    with pytest.raises(ValueError, match="k must"):
        eigsh(A, 5)
    with pytest.raises(ValueError, match="ncv"):
        eigsh(A, 2, ncv=2)
    with pytest.raises(ValueError, match="which"):
        eigsh(A, 2, which="BE")
    with pytest.raises(ValueError, match="nonzero"):
        eigsh(A, 2, v0=np.zeros(5))


def test_maxiter_reports_unconverged_best_pairs():
    q = build_quadratic("spd", 100, 1)
    result = eigsh(q.A, 3, which="SA", ncv=8, maxiter=1, rng=0)
    assert result.status == SolverStatus.MAX_ITERATIONS
    assert result.matvecs == 8 and np.all(np.isfinite(result.eigenvalues))


def test_only_unfinished_samples_reach_the_operator():
    from krylovadv import aslinearoperator

    n = 30
    A = np.stack([np.diag(np.arange(1.0, n + 1)), np.diag(np.geomspace(1.0, 1e3, n))])
    seen: list[list[int]] = []

    def matvec(X, idx):
        idx = np.asarray(idx)
        seen.append(idx.tolist())
        return np.einsum("kij,kj->ki", A[idx], X)

    op = aslinearoperator(matvec, shape=(n, n), batch_size=2, vectorized=True, pass_indices=True)
    v0 = np.zeros((2, n))
    v0[0, -3:] = 1.0  # sample 0 starts in a 3-dimensional invariant subspace
    v0[1] = 1.0
    result = eigsh(op, 2, which="LA", v0=v0, ncv=10, rng=0)
    assert result.converged.all()
    assert result.matvecs[0] < result.matvecs[1]
    assert [1] in seen
    assert sum(len(s) for s in seen) == int(result.matvecs.sum())
