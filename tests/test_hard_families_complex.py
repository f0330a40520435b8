"""Complex variants of the hard families through krylovadv.gmres.

Tolerances as in tests/test_hard_families.py: the double-precision residual,
with the rounding of a working-precision residual allowed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from krylovadv import SolverStatus, gmres
from krylovadv.testing import (
    COMPLEX_DTYPES,
    HARD,
    backward_error,
    linear_systems,
    residual_allowance,
    true_residual,
)
from krylovadv.testing.metrics import eps_of

CONSISTENT_HARD = tuple(f for f in HARD if f != "singular_inconsistent")


@given(p=linear_systems(HARD, dtypes=COMPLEX_DTYPES, max_n=25))
def test_complex_converged_flag_is_honest(p):
    result = gmres(p.A, p.b)
    assert result.x.dtype == p.dtype and np.all(np.isfinite(result.x))
    true = true_residual(p.A, result.x, p.b)
    if result.converged:
        tol = 1e-5 * np.linalg.norm(p.b.astype(np.complex128))
        assert true <= tol + residual_allowance(p.A, result.x, p.b), (p.family, true, tol)
    if not p.consistent:
        assert not result.converged
        assert true >= p.min_residual - residual_allowance(p.A, result.x, p.b)


@given(p=linear_systems(CONSISTENT_HARD, dtypes=COMPLEX_DTYPES, max_n=25))
def test_complex_full_gmres_is_backward_stable(p):
    result = gmres(p.A, p.b, rtol=0.0, restart=p.n)
    assert result.status in (SolverStatus.STAGNATION, SolverStatus.CONVERGED), result
    assert backward_error(p.A, result.x, p.b) <= p.n * eps_of(p.dtype), (p.family, p.cond)


def test_complex_hermitian_matches_numpy():
    rng = np.random.default_rng(0)
    n = 12
    M = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    A = M @ M.conj().T + n * np.eye(n)
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    result = gmres(A, b, rtol=1e-12, restart=n)
    assert result.status == SolverStatus.CONVERGED
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-9)


@pytest.mark.parametrize(("dtype", "seed"), [(np.complex128, 0), (np.complex64, 1)])
def test_complex_hermitian_singular_breaks_down_at_the_least_squares_residual(dtype, seed):
    # A = U diag(2, 2, 2, 0, 0) U^H (Hermitian, so N(A) = N(A^H)): the first cycle
    # reaches the least-squares residual ||P_N b|| (Brown & Walker 1997), after which
    # the least-squares problem is singular and nothing improves: BREAKDOWN.
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((5, 5)) + 1j * rng.standard_normal((5, 5))
    u = np.linalg.qr(z)[0]
    A = ((u * np.array([2.0, 2.0, 2.0, 0.0, 0.0])) @ u.conj().T).astype(dtype)
    coeffs = np.array([1.0 + 1j, -2.0, 0.5j, 3.0, -1.0 - 1j])
    b = (u @ coeffs).astype(dtype)
    result = gmres(A, b)
    least = np.linalg.norm(coeffs[3:])
    assert true_residual(A, result.x, b) == pytest.approx(least, rel=60 * eps_of(dtype))
    assert result.status == SolverStatus.BREAKDOWN, result
