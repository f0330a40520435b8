"""Complex Hermitian systems in cg, minres and eigsh, against numpy.linalg and scipy.

Families: Hermitian positive definite (cg), Hermitian indefinite (minres, eigsh),
:math:`A = Q \\Lambda Q^H` with a random unitary :math:`Q` and real :math:`\\Lambda`.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from krylovadv import SolverStatus, cg, eigsh, minres

seeds = st.integers(0, 2**31 - 1)


def hermitian(n: int, seed: int, family: str, dtype=np.complex128) -> np.ndarray:
    """A complex Hermitian matrix of ``family`` "hpd" (spectrum in [1, 10]) or "indefinite"."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    lam = rng.uniform(1.0, 10.0, n)
    if family == "indefinite":
        lam *= rng.choice([-1.0, 1.0], n)
        lam[:2] = [-3.0, 4.0]  # both signs, whatever the draw
    A = (Q * lam) @ Q.conj().T
    return ((A + A.conj().T) / 2).astype(dtype)


def complex_vector(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 25), seeds)
def test_cg_solves_hermitian_positive_definite(n, seed):
    A = hermitian(n, seed, "hpd")
    b = complex_vector(np.random.default_rng(seed), n)
    x, info = cg(A, b, rtol=1e-10)
    assert info == 0 and x.dtype == np.complex128
    exact = np.linalg.solve(A, b)
    # ||x - x*|| <= cond(A) ||b - Ax|| / ||A|| and cond <= 10.
    np.testing.assert_allclose(x, exact, atol=1e-8 * np.linalg.norm(exact))
    x_ref, info_ref = sla.cg(A, b, rtol=1e-10)
    assert info_ref == 0
    np.testing.assert_allclose(x, x_ref, atol=1e-8 * np.linalg.norm(exact))


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 25), seeds)
def test_minres_solves_hermitian_indefinite(n, seed):
    A = hermitian(n, seed, "indefinite")
    b = complex_vector(np.random.default_rng(seed), n)
    result = minres(A, b, rtol=1e-10, check=True)
    assert result.status == SolverStatus.CONVERGED
    exact = np.linalg.solve(A, b)
    np.testing.assert_allclose(result.x, exact, atol=1e-8 * np.linalg.norm(exact))
    assert result.residual_norm == pytest.approx(np.linalg.norm(b - A @ result.x), rel=1e-6)


@settings(max_examples=10, deadline=None)
@given(st.integers(8, 30), seeds, st.sampled_from(["LA", "SA", "LM"]))
def test_eigsh_hermitian_indefinite_matches_eigh(n, seed, which):
    A = hermitian(n, seed, "indefinite")
    k = 3
    w, v = eigsh(A, k, which=which, ncv=min(n, 7), rng=seed)  # small ncv: thick restarts
    exact = np.linalg.eigvalsh(A)
    key = {"LA": -exact, "SA": exact, "LM": -np.abs(exact)}[which]
    wanted = np.sort(exact[np.argsort(key, kind="stable")[:k]])
    np.testing.assert_allclose(w, wanted, atol=1e-9 * np.abs(exact).max())
    assert np.isrealobj(w) and v.dtype == np.complex128
    np.testing.assert_allclose(A @ v, v * w, atol=1e-7 * np.abs(exact).max())
    np.testing.assert_allclose(v.conj().T @ v, np.eye(k), atol=1e-10)


def test_eigsh_hermitian_matches_scipy():
    A = hermitian(40, 7, "indefinite")
    v0 = complex_vector(np.random.default_rng(1), 40)
    ours = eigsh(A, 4, which="LM", v0=v0, return_eigenvectors=False)
    ref = sla.eigsh(A, 4, which="LM", v0=v0, return_eigenvectors=False)
    np.testing.assert_allclose(np.asarray(ours), np.sort(ref), rtol=1e-10)


def test_batch_equals_loop_complex():
    A = np.stack([hermitian(12, s, "indefinite") for s in range(3)])
    b = complex_vector(np.random.default_rng(0), (3, 12))
    batch = minres(A, b, rtol=1e-10)
    eig = eigsh(A, 2, which="LA", rng=0)
    for i in range(3):
        one = minres(A[i], b[i], rtol=1e-10)
        assert one.iterations == batch.sample(i).iterations
        np.testing.assert_allclose(batch.sample(i).x, one.x, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(
            eig.sample(i).eigenvalues, eigsh(A[i], 2, which="LA", rng=0).eigenvalues, rtol=1e-12
        )


def test_complex64_thresholds_come_from_float32_eps():
    """complex64 reaches float32 accuracy and stops; the thresholds use float32's eps."""
    A = hermitian(20, 3, "hpd", np.complex64)
    b = complex_vector(np.random.default_rng(3), 20, np.complex64)
    exact = np.linalg.solve(A.astype(np.complex128), b.astype(np.complex128))
    for solver in (cg, minres):
        result = solver(A, b, rtol=1e-5)
        assert result.status == SolverStatus.CONVERGED and result.x.dtype == np.complex64
        np.testing.assert_allclose(result.x, exact, atol=1e-4 * np.linalg.norm(exact))
        # A tolerance far below float32's reach stops (stagnation or limit), never loops on.
        tight = solver(A, b, rtol=1e-12, maxiter=400)
        assert tight.status in (SolverStatus.STAGNATION, SolverStatus.MAX_ITERATIONS)
    w = eigsh(A, 2, which="LA", rng=0, return_eigenvectors=False)
    np.testing.assert_allclose(np.asarray(w), np.linalg.eigvalsh(A)[-2:], rtol=1e-5)


def test_torch_complex():
    A = hermitian(10, 5, "hpd")
    b = complex_vector(np.random.default_rng(5), 10)
    result = cg(torch.tensor(A), torch.tensor(b), rtol=1e-10)
    assert result.x.dtype == torch.complex128
    np.testing.assert_allclose(result.x.numpy(), np.linalg.solve(A, b), rtol=1e-8)
    w, v = eigsh(torch.tensor(A), 2, which="SA", rng=0)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(A)[:2], rtol=1e-10)
    assert v.dtype == torch.complex128


def test_minres_check_rejects_complex_symmetric():
    """A = A^T (complex symmetric, not Hermitian) is not a minres operator."""
    rng = np.random.default_rng(0)
    Z = complex_vector(rng, (6, 6))
    with pytest.raises(ValueError, match="Hermitian"):
        minres(Z + Z.T, np.ones(6, dtype=complex), check=True)


def test_real_b_with_complex_A_solves_in_complex():
    A = hermitian(6, 2, "hpd")
    b = np.arange(1.0, 7.0)
    x, info = cg(A, b, rtol=1e-12)
    assert info == 0 and x.dtype == np.complex128
    np.testing.assert_allclose(A @ x, b, atol=1e-10)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_eigsh_invariant_subspace_complex(backend):
    """Rank 3: the Krylov space is invariant after 3 steps; the fresh vector is orthogonal."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(complex_vector(rng, (30, 30)))
    lam = np.r_[[5.0, -3.0, 2.0], np.zeros(27)]
    A = (Q * lam) @ Q.conj().T
    A = (A + A.conj().T) / 2
    result = eigsh(torch.tensor(A) if backend == "torch" else A, 3, which="LM", rng=1)
    assert result.invariant_subspaces >= 1 and result.status == SolverStatus.CONVERGED
    np.testing.assert_allclose(result.eigenvalues, [-3.0, 2.0, 5.0], atol=1e-12)
    v = np.asarray(result.eigenvectors)
    np.testing.assert_allclose(A @ v, v * result.eigenvalues, atol=1e-11)


def test_minres_singular_hermitian_gives_minimum_norm_solution():
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(complex_vector(rng, (20, 20)))
    lam = np.r_[rng.uniform(1, 5, 6) * rng.choice([-1, 1], 6), np.zeros(14)]
    A = (Q * lam) @ Q.conj().T
    A = (A + A.conj().T) / 2
    b = A @ complex_vector(rng, 20)  # consistent
    x, info = minres(A, b, rtol=1e-12)
    assert info == 0
    np.testing.assert_allclose(x, np.linalg.pinv(A, hermitian=True) @ b, atol=1e-10)
