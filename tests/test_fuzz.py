"""Fuzzing: every family through every solver, counting silent failures.

With the default ``ci`` profile each property runs 25 examples; ``nox -s fuzz``
runs the ``fuzz`` profile (2,500 examples per property, over 10,000 problems)
and closes with ``fuzz: N problems (...), S silent failures``.  Add a solver by
adding an entry to :data:`SOLVERS`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from krylovadv import gmres, power_iteration
from krylovadv.testing import EASY, HARD, HERMITIAN, linear_systems, residual_allowance
from krylovadv.testing import true_residual as residual
from krylovadv.testing.fuzz import TALLY

REAL = (np.float64, np.float32)


def run_gmres(p, rtol: float) -> tuple[bool, bool]:
    """Return (claimed success, silent failure) of krylovadv.gmres on ``p``."""
    result = gmres(p.A, p.b, rtol=rtol)
    if not result.converged:
        return False, False
    tol = rtol * np.linalg.norm(p.b.astype(np.float64))
    return True, residual(p.A, result.x, p.b) > tol + residual_allowance(p.A, result.x, p.b)


def run_power(p, rtol: float) -> tuple[bool, bool]:
    """Return (claimed success, silent failure) of power_iteration on Hermitian ``p``."""
    result = power_iteration(p.A, tol=rtol, seed=p.seed % 2**31, maxiter=200)
    if not result.converged:
        return False, False
    A = p.A.astype(np.float64)
    d = np.asarray(result.eigenvector, dtype=np.float64)
    lam = float(result.eigenvalue)
    eps = np.finfo(p.dtype).eps
    # Claimed: ||Ad - lam d|| <= tol |lam| (plus rounding of that product).
    slack = (p.n + 1) * eps * np.linalg.norm(np.abs(A) @ np.abs(d)) * 4
    resid = np.linalg.norm(A @ d - lam * d)
    # lam must be within that residual of a true eigenvalue (Bauer-Fike, Hermitian).
    eigenvalues = np.linalg.eigvalsh(A)
    bound = rtol * abs(lam) + slack
    wrong = np.min(np.abs(eigenvalues - lam)) > bound * (1 + 1e-12) + slack
    # Where the dominant magnitude is separated (relative gap >= 10 tol), the answer
    # must be a dominant eigenvalue; inside a cluster the residual cannot tell them apart.
    magnitudes = np.sort(np.abs(eigenvalues))[::-1]
    top = magnitudes[0]
    if magnitudes.size > 1 and (top - magnitudes[1]) >= 10 * rtol * top:
        dominant = eigenvalues[np.abs(eigenvalues) == top]
        wrong |= np.min(np.abs(dominant - lam)) > bound * (1 + 1e-12) + slack
    return True, bool(resid > bound or wrong)


#: name -> (runner, families, dtypes)
SOLVERS: dict[str, tuple[Callable, tuple[str, ...], tuple]] = {
    "gmres": (run_gmres, EASY + HARD, REAL),
    "power_iteration": (run_power, tuple(f for f in HERMITIAN if f != "k_distinct"), REAL),
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
