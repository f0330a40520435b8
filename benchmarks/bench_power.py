"""Dominant eigenpair: krylovadv.power_iteration against scipy's eigsh(k=1, which="LM").

Both start from the same vector and stop at a relative tolerance of 1e-6
(power iteration on the eigen-residual ``||A d - lambda d|| <= tol |lambda|``,
ARPACK on its Ritz estimate).  The matrices are symmetric with a planted
spectral gap (``|lambda_2 / lambda_1|`` about 2/3 for the Laplacians, 1/2 for
the dense matrix), the setting in which power iteration is a sensible choice.
The ``track_*`` benchmarks report the products with ``A`` each method used and
the eigen-residual and eigenvalue error it reached: ARPACK's Lanczos process
typically reaches far smaller errors for a similar number of products.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
import scipy.sparse.linalg as sla

import krylovadv

from .problems import dense_symmetric_gapped, gapped_laplacian
from .timing import Comparison, interleaved_min

TOL = 1e-6
MAXITER = 1000

_BUILDERS = {
    "lap_1e4": lambda: gapped_laplacian(100),
    "lap_1e5": lambda: gapped_laplacian(316),
    "dense_500": lambda: dense_symmetric_gapped(500),
}
_NAMES = {
    "lap_1e4": "2-D Laplacian + spike, n=10000 (sparse)",
    "lap_1e5": "2-D Laplacian + spike, n=99856 (sparse)",
    "dense_500": "dense symmetric, planted gap, n=500",
}
PROBLEM_KEYS = tuple(_BUILDERS)
REPEATS = 5


@functools.cache
def get_problem(key: str):
    """The (cached) matrix ``key`` and a fixed start vector."""
    A = _BUILDERS[key]()
    v0 = np.random.default_rng(1).standard_normal(A.shape[0])
    return A, v0


@functools.cache
def exact_eigenvalue(key: str) -> float:
    """Dominant eigenvalue to working precision (ARPACK with ``tol=0``)."""
    A, v0 = get_problem(key)
    return float(sla.eigsh(A, k=1, which="LM", tol=0, v0=v0)[0][0])


def solve_power(A, v0) -> krylovadv.PowerIterationResult:
    """krylovadv.power_iteration with the comparison settings."""
    return krylovadv.power_iteration(A, v0, tol=TOL, maxiter=MAXITER)


def solve_eigsh(A, v0) -> tuple[float, np.ndarray]:
    """scipy eigsh(k=1, which="LM") with the same tolerance and start."""
    w, V = sla.eigsh(A, k=1, which="LM", tol=TOL, v0=v0)
    return float(w[0]), V[:, 0]


def solve_eigsh_counted(A, v0) -> tuple[float, np.ndarray, int]:
    """As :func:`solve_eigsh`, also counting the products with ``A``."""
    count = 0

    def matvec(v):
        nonlocal count
        count += 1
        return A @ v

    op = sla.LinearOperator(A.shape, matvec=matvec, dtype=np.float64)
    lam, vec = solve_eigsh(op, v0)
    return lam, vec, count


def eigen_residual(A, lam: float, vec: np.ndarray) -> float:
    """Relative eigen-residual ``||A v - lambda v|| / (|lambda| ||v||)``."""
    vec = np.asarray(vec, dtype=np.float64)
    return float(np.linalg.norm(A @ vec - lam * vec) / (abs(lam) * np.linalg.norm(vec)))


def measure_times(key: str, repeats: int = REPEATS) -> dict[str, float]:
    """Seconds per solve of each method, interleaved, min of ``repeats``."""
    A, v0 = get_problem(key)
    return interleaved_min(
        {"power": lambda: solve_power(A, v0), "eigsh": lambda: solve_eigsh(A, v0)},
        repeats=repeats,
    )


def measure_power(key: str) -> Comparison:
    """Times, products with ``A`` and eigen-residuals of both methods on ``key``."""
    A, v0 = get_problem(key)
    times = measure_times(key)
    res = solve_power(A, v0)
    lam, vec, count = solve_eigsh_counted(A, v0)
    return Comparison(
        name=f"dominant eigenpair, {_NAMES[key]}, tol={TOL:g}",
        reference="scipy eigsh k=1 LM",
        time_krylovadv=times["power"],
        time_reference=times["eigsh"],
        work_krylovadv=int(res.iterations),
        work_reference=count,
        error_krylovadv=eigen_residual(A, res.eigenvalue, res.eigenvector),
        error_reference=eigen_residual(A, lam, vec),
        error_name="relative eigen-residual",
    )


class PowerVsEigsh:
    """Solve times, products, eigen-residuals and eigenvalue errors per problem."""

    params: ClassVar[list] = list(PROBLEM_KEYS)
    param_names: ClassVar[list[str]] = ["problem"]
    timeout = 180

    def setup(self, key):
        self.A, self.v0 = get_problem(key)

    def time_power_iteration(self, key):
        solve_power(self.A, self.v0)

    def time_eigsh(self, key):
        solve_eigsh(self.A, self.v0)

    def track_ratio_vs_eigsh(self, key):
        times = measure_times(key)
        return times["power"] / times["eigsh"]

    track_ratio_vs_eigsh.unit = "ratio"

    def track_matvecs_power_iteration(self, key):
        return int(solve_power(self.A, self.v0).iterations)

    track_matvecs_power_iteration.unit = "matvecs"

    def track_matvecs_eigsh(self, key):
        return solve_eigsh_counted(self.A, self.v0)[2]

    track_matvecs_eigsh.unit = "matvecs"

    def track_eigen_residual_power_iteration(self, key):
        res = solve_power(self.A, self.v0)
        return eigen_residual(self.A, res.eigenvalue, res.eigenvector)

    track_eigen_residual_power_iteration.unit = "relative residual"

    def track_eigen_residual_eigsh(self, key):
        return eigen_residual(self.A, *solve_eigsh(self.A, self.v0))

    track_eigen_residual_eigsh.unit = "relative residual"

    def track_eigenvalue_error_power_iteration(self, key):
        lam = solve_power(self.A, self.v0).eigenvalue
        return abs(lam - exact_eigenvalue(key)) / abs(exact_eigenvalue(key))

    track_eigenvalue_error_power_iteration.unit = "relative error"

    def track_eigenvalue_error_eigsh(self, key):
        lam = solve_eigsh(self.A, self.v0)[0]
        return abs(lam - exact_eigenvalue(key)) / abs(exact_eigenvalue(key))

    track_eigenvalue_error_eigsh.unit = "relative error"
