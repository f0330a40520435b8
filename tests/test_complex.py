"""Complex arithmetic through the core: Givens, Arnoldi, GMRES, power iteration.

Reference answers come from LAPACK (scipy's ``zlartg``), ``numpy.linalg`` and
``scipy.sparse.linalg.gmres``; the families include hard ones: ill-conditioned,
strongly non-normal, defective (a Jordan block) and Hermitian indefinite.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.linalg as sla
import torch
from hypothesis import given
from hypothesis import strategies as st

from krylovadv import GivensQR, SolverStatus, arnoldi, givens_rotation, gmres, power_iteration

COMPLEX_FAMILIES = ("random", "hermitian_indefinite", "ill_conditioned", "nonnormal", "defective")


def complex_system(family: str, n: int, seed: int, dtype=np.complex128):
    """A complex test matrix of ``family``, a right-hand side, and its 2-norm condition."""
    rng = np.random.default_rng(seed)

    def gaussian(*shape):
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)

    Q, _ = np.linalg.qr(gaussian(n, n))
    if family == "random":
        A = np.eye(n) * 3 + gaussian(n, n) / np.sqrt(n)
    elif family == "hermitian_indefinite":
        d = np.linspace(1.0, 4.0, n) * np.where(np.arange(n) % 2, -1, 1)
        A = (Q * d) @ Q.conj().T
    elif family == "ill_conditioned":
        d = np.geomspace(1.0, 1e8, n) * np.exp(2j * np.pi * rng.random(n))
        A = (Q * d) @ Q.conj().T  # normal, condition 1e8
    elif family == "nonnormal":
        # Eigenvalues on a disc away from 0, a large strictly upper part.
        T = np.triu(gaussian(n, n), 1) * 2.0 + np.diag(2.0 + np.exp(2j * np.pi * rng.random(n)))
        A = Q @ T @ Q.conj().T
    elif family == "defective":
        # One Jordan block for the eigenvalue 1 + 1j: not diagonalizable.
        J = np.eye(n) * (1 + 1j) + np.diag(np.full(n - 1, 0.5), 1)
        A = Q @ J @ Q.conj().T
    else:
        raise ValueError(family)
    b = gaussian(n)
    return A.astype(dtype), b.astype(dtype), np.linalg.cond(A)


# ---------------------------------------------------------------------------
# Givens rotations and the recursive QR
# ---------------------------------------------------------------------------

complex_entries = st.builds(
    complex,
    st.floats(-1e6, 1e6, allow_subnormal=True),
    st.floats(-1e6, 1e6, allow_subnormal=True),
)


@given(a=complex_entries, b=complex_entries)
def test_complex_rotation_matches_lapack_zlartg(a, b):
    c, s, r = givens_rotation(np, np.array([a]), np.array([b]))
    lartg = scipy.linalg.get_lapack_funcs("lartg", dtype=np.complex128)
    c_ref, s_ref, r_ref = lartg(a, b)
    scale = max(abs(a), abs(b), np.finfo(float).tiny)
    assert c[0] == pytest.approx(float(np.real(c_ref)), abs=1e-14)
    assert abs(s[0] - s_ref) <= 1e-14
    assert abs(r[0] - r_ref) <= 1e-14 * scale
    # The rotation is unitary and zeroes b.
    assert c[0] ** 2 + abs(s[0]) ** 2 == pytest.approx(1.0, abs=1e-14)
    assert abs(-np.conj(s[0]) * a + c[0] * b) <= 1e-14 * scale


@given(seed=st.integers(0, 2**16), m=st.integers(1, 8))
def test_complex_givens_qr_solves_the_least_squares_problem(seed, m):
    rng = np.random.default_rng(seed)
    H = np.triu(rng.standard_normal((m + 1, m)) + 1j * rng.standard_normal((m + 1, m)), -1)
    beta = 1.7
    qr = GivensQR(1, m, dtype=np.complex128)
    qr.reset(np.array([beta]))
    for j in range(m):
        estimate = qr.add_column(H[None, : j + 2, j])
    gamma = qr.solve()[0]
    rhs = np.zeros(m + 1, dtype=complex)
    rhs[0] = beta
    ref, *_ = np.linalg.lstsq(H, rhs, rcond=None)
    np.testing.assert_allclose(gamma, ref, rtol=1e-8, atol=1e-10)
    assert estimate[0] == pytest.approx(np.linalg.norm(rhs - H @ ref), rel=1e-8, abs=1e-12)


# ---------------------------------------------------------------------------
# Arnoldi
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", COMPLEX_FAMILIES)
def test_complex_arnoldi_relation_and_unitary_basis(family):
    A, b, _ = complex_system(family, 12, seed=4)
    fact = arnoldi(A, b, 8)
    V, H = fact.V, fact.H
    np.testing.assert_allclose(A @ V[:, :8], V @ H, atol=1e-10 * np.linalg.norm(A, 2))
    np.testing.assert_allclose(V.conj().T @ V, np.eye(9), atol=1e-12)


def test_complex_arnoldi_of_a_real_start_on_a_complex_operator_is_complex():
    A, _, _ = complex_system("random", 6, seed=1)
    fact = arnoldi(A, np.ones(6), 6)
    assert fact.V.dtype == np.complex128
    np.testing.assert_allclose(
        np.sort_complex(fact.ritz_values()), np.sort_complex(np.linalg.eigvals(A)), atol=1e-8
    )


# ---------------------------------------------------------------------------
# GMRES
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", COMPLEX_FAMILIES)
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_gmres_meets_the_true_residual_contract(family, dtype):
    n = 16
    A, b, cond = complex_system(family, n, seed=7, dtype=dtype)
    eps = np.finfo(dtype).eps
    rtol = 1e-10 if dtype == np.complex128 else 1e-4
    result = gmres(A, b, rtol=rtol, restart=n, maxiter=4)
    assert result.x.dtype == dtype
    A64, b64 = A.astype(np.complex128), b.astype(np.complex128)
    true = np.linalg.norm(b64 - A64 @ result.x.astype(np.complex128))
    slack = 4 * np.sqrt(n) * eps * (np.linalg.norm(A64, 2) * np.linalg.norm(result.x) + 1)
    assert result.residual_norm == pytest.approx(true, abs=slack)
    if cond * eps <= rtol / 10:  # reachable in this precision
        assert result.status == SolverStatus.CONVERGED, (family, result)
        assert true <= rtol * np.linalg.norm(b64) + slack
        x_ref = np.linalg.solve(A64, b64)
        assert np.linalg.norm(result.x - x_ref) <= 2 * cond * (
            rtol + 10 * n * eps
        ) * np.linalg.norm(x_ref)
    else:
        assert result.status != SolverStatus.CONVERGED or true <= rtol * np.linalg.norm(b64) + slack


@given(
    seed=st.integers(0, 2**16),
    family=st.sampled_from(("random", "nonnormal", "defective")),
    restart=st.integers(2, 6),
    maxiter=st.integers(1, 3),
)
def test_complex_iterates_match_scipy(seed, family, restart, maxiter):
    A, b, _ = complex_system(family, 14, seed)
    ours = gmres(A, b, rtol=1e-13, restart=restart, maxiter=maxiter, orthogonalization="mgs")
    x_ref, info = sla.gmres(A, b, rtol=1e-13, restart=restart, maxiter=maxiter)
    assert np.linalg.norm(ours.x - x_ref) <= 1e-9 * np.linalg.norm(x_ref)
    assert ours.converged == (info == 0)


def test_complex_batch_equals_loop_and_torch_matches_numpy():
    # Families where rtol is reachable, so that rounding cannot flip a decision.
    families = ("random", "hermitian_indefinite", "nonnormal", "defective")
    systems = [complex_system(f, 10, seed=s)[:2] for s, f in enumerate(families)]
    A = np.stack([a for a, _ in systems])
    b = np.stack([v for _, v in systems])
    batch = gmres(A, b, rtol=1e-10, restart=10)
    for i in range(len(systems)):
        single = gmres(A[i], b[i], rtol=1e-10, restart=10)
        assert batch.sample(i).status == single.status
        assert batch.sample(i).iterations == single.iterations
        np.testing.assert_allclose(batch.x[i], single.x, rtol=1e-10, atol=1e-12)
    for dtype, rtol in ((torch.complex128, 1e-10), (torch.complex64, 1e-4)):
        out = gmres(torch.from_numpy(A).to(dtype), torch.from_numpy(b).to(dtype), rtol=rtol)
        assert out.x.dtype == dtype and np.all(out.converged)
        ref = np.linalg.solve(A, b[..., None])[..., 0]
        np.testing.assert_allclose(out.x.numpy(), ref, rtol=0, atol=50 * rtol * np.abs(ref).max())


def test_real_system_with_complex_rhs_solves_in_complex():
    A = np.diag([1.0, 2.0, 4.0])
    b = np.array([1.0, 2j, 4.0 + 4j])
    x, info = gmres(A, b, rtol=1e-12)
    assert info == 0 and x.dtype == np.complex128
    np.testing.assert_allclose(x, [1.0, 1j, 1.0 + 1j], rtol=1e-12)


def test_complex64_unreachable_tolerance_stagnates_with_float32_eps():
    A, b, _ = complex_system("ill_conditioned", 12, seed=3, dtype=np.complex64)
    result = gmres(A, b, rtol=1e-12, restart=12, maxiter=50)
    assert result.status in (SolverStatus.STAGNATION, SolverStatus.BREAKDOWN)
    assert result.cycles < 50


# ---------------------------------------------------------------------------
# Power iteration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_power_iteration_finds_the_dominant_eigenpair(dtype):
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((10, 10)) + 1j * rng.standard_normal((10, 10)))
    eigenvalues = np.concatenate([[4.0 * np.exp(0.7j)], np.linspace(0.2, 2.0, 9) * 1j])
    A = ((Q * eigenvalues) @ Q.conj().T).astype(dtype)  # normal, dominant eigenvalue complex
    v0 = (rng.standard_normal(10) + 1j * rng.standard_normal(10)).astype(dtype)
    tol = 1e-10 if dtype == np.complex128 else 1e-4
    result = power_iteration(A, v0, tol=tol, maxiter=500)
    assert result.converged
    assert abs(result.eigenvalue - eigenvalues[0]) <= 10 * tol * 4.0
    d = result.eigenvector
    np.testing.assert_allclose(A @ d, result.eigenvalue * d, atol=20 * tol * 4.0)
    # Hermitian: the Rayleigh quotient is real up to rounding and matches eigvalsh.
    H = ((Q * np.linspace(-5.0, 3.0, 10)) @ Q.conj().T).astype(dtype)
    result = power_iteration(H, v0, tol=tol, maxiter=2000)
    assert result.eigenvalue.real == pytest.approx(-5.0, rel=10 * tol)
    assert abs(result.eigenvalue.imag) <= 10 * tol * 5.0


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64])
def test_complex_torch_arnoldi_and_power_match_numpy(dtype):
    A, b, _ = complex_system("random", 8, seed=9)
    At, bt = torch.from_numpy(A).to(dtype), torch.from_numpy(b).to(dtype)
    fact = arnoldi(At, bt, 5)
    tol = 1e-12 if dtype == torch.complex128 else 1e-5
    V, H = fact.V, fact.H
    assert V.dtype == dtype
    torch.testing.assert_close(At @ V[:, :5], V @ H, atol=tol * 10, rtol=0)
    ref = arnoldi(A, b, 5)
    np.testing.assert_allclose(H.numpy(), ref.H, atol=tol * 100)
    power = power_iteration(At, bt, tol=1e-4 if dtype == torch.complex64 else 1e-9, maxiter=2000)
    power_ref = power_iteration(A, b, tol=1e-9, maxiter=2000)
    assert power.converged and power_ref.converged
    assert abs(power.eigenvalue - power_ref.eigenvalue) <= 1e-3 * abs(power_ref.eigenvalue)
