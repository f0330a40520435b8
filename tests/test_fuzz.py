"""Fuzzing: every family through every solver, counting silent failures.

With the default ``ci`` profile each property runs 25 examples; ``nox -s fuzz``
runs the ``fuzz`` profile (2,500 examples per property, 17,500 problems over seven properties)
and closes with ``fuzz: N problems (...), S silent failures``.  Add a solver by
adding an entry to :data:`SOLVERS`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from krylovadv import cg, eigsh, gmres, minres, power_iteration
from krylovadv.testing import EASY, HARD, HERMITIAN, linear_systems, residual_allowance
from krylovadv.testing import true_residual as residual
from krylovadv.testing.fuzz import TALLY

REAL = (np.float64, np.float32)


def _solve_check(solve: Callable, p, rtol: float) -> tuple[bool, bool]:
    """Run a scipy-convention solver; a claimed convergence must meet rtol ||b||."""
    result = solve(p.A, p.b, rtol=rtol)
    if not result.converged:
        return False, False
    tol = rtol * np.linalg.norm(p.b.astype(np.float64))
    return True, residual(p.A, result.x, p.b) > tol + residual_allowance(p.A, result.x, p.b)


def run_gmres(p, rtol: float) -> tuple[bool, bool]:
    """Return (claimed success, silent failure) of krylovadv.gmres on ``p``."""
    return _solve_check(gmres, p, rtol)


def run_cg(p, rtol: float) -> tuple[bool, bool]:
    """Return (claimed success, silent failure) of krylovadv.cg on a PSD ``p``."""
    return _solve_check(cg, p, rtol)


def run_minres(p, rtol: float) -> tuple[bool, bool]:
    """Return (claimed success, silent failure) of krylovadv.minres on a symmetric ``p``."""
    return _solve_check(minres, p, rtol)


def run_eigsh(p, rtol: float) -> tuple[bool, bool]:
    """Return (claimed success, silent failure) of krylovadv.eigsh (k = 1, "LA").

    A converged Ritz pair (theta, y) with residual ||A y - theta y|| = r lies
    within r of an eigenvalue of the symmetric A (Bauer-Fike), and for the
    largest algebraic one within r of max eig(A) when it is the top Ritz value:
    checked against numpy.linalg.eigvalsh with the rounding of the product.
    """
    result = eigsh(p.A, k=1, which="LA", tol=rtol, rng=p.seed % 2**31)
    if not np.all(result.converged):
        return False, False
    A = p.A.astype(np.float64)
    theta = float(np.asarray(result.eigenvalues).ravel()[0])
    y = np.asarray(result.eigenvectors, dtype=np.float64).reshape(p.n, -1)[:, 0]
    y = y / np.linalg.norm(y)
    eps = np.finfo(p.dtype).eps
    slack = 4 * (p.n + 1) * eps * np.linalg.norm(np.abs(A) @ np.abs(y))
    resid = np.linalg.norm(A @ y - theta * y)
    eigenvalues = np.linalg.eigvalsh(A)
    claimed = max(rtol * max(abs(theta), np.abs(eigenvalues).max()), resid) + slack
    wrong = np.min(np.abs(eigenvalues - theta)) > claimed * (1 + 1e-12)
    return True, bool(wrong)


def run_power(p, rtol: float) -> tuple[bool, bool]:
    """Return (claimed success, silent failure) of power_iteration on Hermitian ``p``.

    The documented contract is the eigen-residual ||Ad - lam d|| <= tol |lam|:
    lam must lie within it of the spectrum (Bauer-Fike, Hermitian).  A residual
    test cannot tell which eigenvector d is near, so dominance is required only
    where power iteration guarantees it: a start with |<v1, d0>| >= 1/2 along the
    dominant eigenvector and a relative gap >= 10 tol.  Then the start's residual
    is above the tolerance and the iteration only grows the v1 component.
    """
    A = p.A.astype(np.float64)
    v0 = np.random.default_rng(p.seed).standard_normal(p.n)
    v0 /= np.linalg.norm(v0)
    result = power_iteration(p.A, v0=v0.astype(p.dtype), tol=rtol, maxiter=200)
    if not result.converged:
        return False, False
    d = np.asarray(result.eigenvector, dtype=np.float64)
    lam = float(result.eigenvalue)
    eps = np.finfo(p.dtype).eps
    slack = (p.n + 1) * eps * np.linalg.norm(np.abs(A) @ np.abs(d)) * 4
    resid = np.linalg.norm(A @ d - lam * d)
    eigenvalues, vectors = np.linalg.eigh(A)
    bound = rtol * abs(lam) + slack
    wrong = np.min(np.abs(eigenvalues - lam)) > bound * (1 + 1e-12) + slack
    magnitudes = np.sort(np.abs(eigenvalues))[::-1]
    top = magnitudes[0]
    dominant = np.abs(eigenvalues) == top
    separated = magnitudes.size > 1 and (top - magnitudes[1]) >= 10 * rtol * top
    aligned = np.linalg.norm(vectors[:, dominant].T @ v0) >= 0.5
    if separated and aligned:
        wrong |= np.min(np.abs(eigenvalues[dominant] - lam)) > bound * (1 + 1e-12) + slack
    return True, bool(resid > bound or wrong)


#: name -> (runner, families, dtypes)
SOLVERS: dict[str, tuple[Callable, tuple[str, ...], tuple]] = {
    "gmres": (run_gmres, EASY + HARD, REAL),
    "power_iteration": (run_power, tuple(f for f in HERMITIAN if f != "k_distinct"), REAL),
    "cg": (run_cg, ("spd", "clustered", "ill_conditioned_spd", "singular_consistent"), REAL),
    "minres": (run_minres, HERMITIAN, REAL),
    "eigsh": (run_eigsh, HERMITIAN, REAL),
}


def _fuzz(name: str, p, rtol: float) -> None:
    runner = SOLVERS[name][0]
    _, silent = runner(p, rtol)
    TALLY.record(name, silent=silent)
    assert not silent, (name, p.family, p.n, p.dtype, p.seed, p.cond)


@given(p=linear_systems(SOLVERS["gmres"][1], dtypes=REAL, max_n=30), rtol_exp=st.integers(-10, -3))
def test_fuzz_gmres(p, rtol_exp):
    _fuzz("gmres", p, 10.0**rtol_exp)


@given(p=linear_systems(SOLVERS["gmres"][1], dtypes=REAL, min_n=2, max_n=12))
def test_fuzz_gmres_small(p):
    _fuzz("gmres", p, 1e-5)


@given(p=linear_systems(SOLVERS["power_iteration"][1], dtypes=REAL, max_n=20))
def test_fuzz_power_iteration(p):
    _fuzz("power_iteration", p, 1e-4)


@given(p=linear_systems(HARD, dtypes=REAL, max_n=30))
def test_fuzz_gmres_hard(p):
    _fuzz("gmres", p, 1e-5)


@given(p=linear_systems(SOLVERS["cg"][1], dtypes=REAL, max_n=30), rtol_exp=st.integers(-8, -3))
def test_fuzz_cg(p, rtol_exp):
    _fuzz("cg", p, 10.0**rtol_exp)


@given(p=linear_systems(SOLVERS["minres"][1], dtypes=REAL, max_n=30), rtol_exp=st.integers(-8, -3))
def test_fuzz_minres(p, rtol_exp):
    _fuzz("minres", p, 10.0**rtol_exp)


@given(p=linear_systems(SOLVERS["eigsh"][1], dtypes=REAL, min_n=2, max_n=30))
def test_fuzz_eigsh(p):
    _fuzz("eigsh", p, 1e-6)
