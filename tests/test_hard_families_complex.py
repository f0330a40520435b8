"""Complex variants of the hard families through krylovadv.gmres.

Written for the complex support of the core (another branch): until it is
merged, gmres rejects complex input with a TypeError and these tests fail.
Tolerances as in tests/test_hard_families.py: the double-precision residual,
with the rounding of a working-precision residual allowed.
"""

from __future__ import annotations

import numpy as np
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
