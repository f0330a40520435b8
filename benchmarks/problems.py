"""Test problems shared by the benchmarks and by ``report.py``.

Every builder is deterministic (seeded) so that krylovadv and the reference
(scipy) solve exactly the same system, and so that runs are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

#: GMRES settings used for every krylovadv-vs-scipy comparison.
RESTART = 30
RTOL = 1e-6

#: Grid sides for the convection-diffusion problems: n = m**2.
CD_M_1E4 = 100  # n = 10 000
CD_M_1E5 = 316  # n = 99 856


@dataclass
class LinearProblem:
    """A linear system ``A x = b`` with the fixed GMRES budget used to compare solvers."""

    name: str
    A: Any
    b: np.ndarray
    maxiter: int
    restart: int = RESTART
    rtol: float = RTOL

    @property
    def n(self) -> int:
        """Dimension of the system."""
        return int(self.b.shape[-1])


def convection_diffusion(m: int, *, peclet: float = 40.0) -> sp.csr_array:
    r"""5-point discretisation of :math:`-\Delta u + c\cdot\nabla u` on the unit square.

    Dirichlet boundary, ``m x m`` interior grid, mesh width ``h = 1/(m+1)``,
    central differences for the convection term with the constant wind
    :math:`c = \mathrm{peclet}\,(1, 1/2)`.  The matrix is scaled by :math:`h^2`
    (diagonal 4), which does not change GMRES iterates.  Non-symmetric; the
    cell Péclet number ``peclet*h/2`` stays below 1 for the grids used here,
    so the matrix is an M-matrix-like, well-posed but slowly converging
    problem for unpreconditioned GMRES.
    """
    h = 1.0 / (m + 1)
    cx, cy = peclet, 0.5 * peclet
    one = np.ones(m)
    second = sp.diags_array([-one[:-1], 2.0 * one, -one[:-1]], offsets=[-1, 0, 1])
    first = sp.diags_array([-one[:-1], one[:-1]], offsets=[-1, 1])  # u_{i+1} - u_{i-1}
    eye = sp.eye_array(m)
    lap = sp.kron(eye, second) + sp.kron(second, eye)
    conv = (h / 2.0) * (cx * sp.kron(eye, first) + cy * sp.kron(first, eye))
    return sp.csr_array(lap + conv)


def cd_problem(m: int, *, maxiter: int = 10, seed: int = 0) -> LinearProblem:
    """Convection-diffusion system on an ``m x m`` grid with a smooth-plus-noise rhs."""
    A = convection_diffusion(m)
    rng = np.random.default_rng(seed)
    g = np.linspace(0.0, 1.0, m + 2)[1:-1]
    X, Y = np.meshgrid(g, g, indexing="ij")
    h2 = 1.0 / (m + 1) ** 2
    b = (h2 * (np.sin(np.pi * X) * np.sin(2 * np.pi * Y) + 1.0)).ravel()
    b = b + 1e-3 * h2 * rng.standard_normal(m * m)
    return LinearProblem(f"convection-diffusion n={m * m}", A, b, maxiter)


def dense_nonsymmetric(n: int, *, seed: int = 0, center: float = 1.3) -> np.ndarray:
    """Random nonsymmetric ``center*I + G/sqrt(n)``: eigenvalues in the disk ``|z-center| <= 1``.

    Well conditioned (condition number below 20 for the sizes used here) and
    non-normal; GMRES(30) needs two restart cycles (40-50 iterations).
    """
    rng = np.random.default_rng(seed)
    return center * np.eye(n) + rng.standard_normal((n, n)) / np.sqrt(n)


def dense_problem(n: int, *, maxiter: int = 10, seed: int = 0) -> LinearProblem:
    """Dense random well-conditioned nonsymmetric system of size ``n``."""
    A = dense_nonsymmetric(n, seed=seed)
    b = np.random.default_rng(seed + 1).standard_normal(n)
    return LinearProblem(f"dense n={n}", A, b, maxiter)


def dense_batch(batch: int = 32, n: int = 100, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` independent dense systems: ``A`` of shape ``(B, n, n)``, ``b`` ``(B, n)``."""
    A = np.stack([dense_nonsymmetric(n, seed=seed + 10 + i) for i in range(batch)])
    b = np.random.default_rng(seed).standard_normal((batch, n))
    return A, b


def gapped_laplacian(m: int, *, spike: float = 8.0) -> sp.csr_array:
    """Symmetric 2-D Laplacian (5-point, diagonal 4) plus ``spike`` on one diagonal entry.

    The spike pulls one eigenvalue to about ``4 + spike`` (> 12 for the
    default), well above the rest of the spectrum (< 8), so the dominant
    eigenpair is simple with a ratio ``|lambda_2/lambda_1|`` of about 2/3.
    """
    one = np.ones(m)
    second = sp.diags_array([-one[:-1], 2.0 * one, -one[:-1]], offsets=[-1, 0, 1])
    eye = sp.eye_array(m)
    A = sp.lil_array(sp.kron(eye, second) + sp.kron(second, eye))
    centre = (m // 2) * m + m // 2
    A[centre, centre] += spike
    return sp.csr_array(A)


def dense_symmetric_gapped(n: int, *, seed: int = 0, top: float = 2.0) -> np.ndarray:
    """Dense symmetric ``Q diag(lambda) Q^T``: ``lambda_1 = top``, the others in ``[-1, 1]``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.uniform(-1.0, 1.0, n)
    lam[0] = top
    return (Q * lam) @ Q.T


class Quadratic:
    r"""``f(x) = 1/2 x^T Q x + c^T x`` with symmetric positive definite ``Q``.

    Its gradient ``Q x + c`` costs one dense matrix-vector product, and its
    Hessian is exactly ``Q``, so finite-difference HVPs can be checked.
    """

    def __init__(self, n: int, *, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        G = rng.standard_normal((n, n)) / np.sqrt(n)
        self.Q = G @ G.T + np.eye(n)
        self.c = rng.standard_normal(n)
        self.x = rng.standard_normal(n)
        self.v = rng.standard_normal(n)
        self.n = n

    def value(self, x: np.ndarray) -> float:
        """Function value."""
        return 0.5 * float(x @ (self.Q @ x)) + float(self.c @ x)

    def grad(self, x: np.ndarray) -> np.ndarray:
        """Gradient ``Q x + c`` (rows of a batch are independent)."""
        return x @ self.Q + self.c  # Q is symmetric; works for (n,) and (k, n)

    def hvp(self, v: np.ndarray) -> np.ndarray:
        """Exact Hessian-vector product ``Q v``."""
        return v @ self.Q
