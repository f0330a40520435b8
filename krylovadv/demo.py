"""The solver demo run by ``krylovadv demo``.

Each function returns plain rows (dicts) so that the CLI only formats them; the
same functions serve the docs and the tests.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .gmres import gmres

__all__ = ["convection_diffusion", "low_rank_hessian_batch", "run_solver_demo"]


def convection_diffusion(m: int, peclet: float = 20.0) -> sp.csr_matrix:
    r"""Build the five-point matrix of :math:`-\Delta u + c\,\partial_x u` on the unit square.

    Parameters
    ----------
    m : int
        Interior grid points per side; the matrix is :math:`m^2 \times m^2`.
    peclet : float
        Convection coefficient :math:`c`; larger is less symmetric.

    Returns
    -------
    scipy.sparse.csr_matrix
        The non-symmetric system matrix (Dirichlet boundary conditions).
    """
    h = 1.0 / (m + 1)
    ones = np.ones(m)
    second = sp.diags([-ones[:-1], 2 * ones, -ones[:-1]], [-1, 0, 1]) / h**2
    first = sp.diags([-ones[:-1], ones[:-1]], [-1, 1]) * (peclet / (2 * h))
    eye = sp.identity(m)
    return (sp.kron(eye, second) + sp.kron(second, eye) + sp.kron(eye, first)).tocsr()


def low_rank_hessian_batch(
    batch: int, n: int, rank: int, *, seed: int = 0, dtype: Any = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    r"""Build a batch of consistent singular systems shaped like classifier input Hessians.

    Each :math:`H_b = J_b^T S_b J_b` is PSD of rank ``rank`` (:math:`K - 1` for a
    :math:`K`-class ReLU network) and :math:`g_b = J_b^T c_b` lies in its range,
    so :math:`H_b\delta = g_b` is consistent and GMRES ends after at most ``rank``
    steps.

    Parameters
    ----------
    batch, n, rank : int
        Number of systems, dimension, rank.
    seed : int
        Seed of the random factors.
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    H : numpy.ndarray, shape (batch, n, n)
    g : numpy.ndarray, shape (batch, n)
    """
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((batch, rank, n)) / np.sqrt(n)
    S = rng.uniform(0.1, 1.0, (batch, rank))
    H = np.einsum("bkn,bk,bkm->bnm", J, S, J)
    g = np.einsum("bkn,bk->bn", J, rng.standard_normal((batch, rank)))
    return H.astype(dtype), g.astype(dtype)


def _timed(function: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = function()
    return out, time.perf_counter() - start


def run_solver_demo(*, grid: int = 100, batch: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """Run the solver demo and return one row per experiment.

    1. GMRES(30) on a convection-diffusion problem with ``grid**2`` unknowns,
       krylovadv against scipy in the same process (time, products, true
       relative residual).
    2. A batch of ``batch`` rank-9 PSD systems of size 784 (MNIST-sized input
       Hessians) in float64 and float32: iterations per sample and the
       batch-versus-loop agreement.

    Parameters
    ----------
    grid : int
        Grid points per side of the convection-diffusion problem.
    batch : int
        Number of systems in the batched experiment.
    seed : int
        Seed of the random systems.

    Returns
    -------
    list of dict
        Rows with keys ``experiment``, ``solver``, ``time_s``, ``matvecs``,
        ``relative_residual`` and ``note``.
    """
    rows: list[dict[str, Any]] = []
    A = convection_diffusion(grid)
    b = np.ones(A.shape[0])
    b_norm = np.linalg.norm(b)
    ours, t_ours = _timed(lambda: gmres(A, b, rtol=1e-6, restart=30, maxiter=50))
    products = [0]

    def count(v: np.ndarray) -> np.ndarray:
        products[0] += 1
        return A @ v

    counted = spla.LinearOperator(A.shape, matvec=count, dtype=A.dtype)
    (x_ref, info), t_ref = _timed(lambda: spla.gmres(counted, b, rtol=1e-6, restart=30, maxiter=50))
    label = f"convection-diffusion n={A.shape[0]}"
    rows.append(
        {
            "experiment": label,
            "solver": "krylovadv.gmres",
            "time_s": t_ours,
            "matvecs": ours.matvecs,
            "relative_residual": ours.residual_norm / b_norm,
            "note": ours.status.name,
        }
    )
    rows.append(
        {
            "experiment": label,
            "solver": "scipy gmres",
            "time_s": t_ref,
            "matvecs": products[0],
            "relative_residual": float(np.linalg.norm(b - A @ x_ref) / b_norm),
            "note": "info=0" if info == 0 else f"info={info}",
        }
    )
    for dtype, rtol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        H, g = low_rank_hessian_batch(batch, 784, 9, seed=seed, dtype=dtype)
        result, t_batch = _timed(lambda H=H, g=g, rtol=rtol: gmres(H, g, rtol=rtol, restart=30))
        loop, t_loop = _timed(
            lambda H=H, g=g, rtol=rtol: [
                gmres(H[i], g[i], rtol=rtol, restart=30) for i in range(batch)
            ]
        )
        same = all(loop[i].iterations == result.iterations[i] for i in range(batch))
        relative = result.residual_norm / np.linalg.norm(g, axis=1)
        name = np.dtype(dtype).name
        rows.append(
            {
                "experiment": f"{batch} rank-9 PSD systems n=784 {name}",
                "solver": "krylovadv.gmres batched",
                "time_s": t_batch,
                "matvecs": int(result.matvecs.sum()),
                "relative_residual": float(relative.max()),
                "note": (
                    f"iterations {result.iterations.min()}-{result.iterations.max()}, "
                    f"{int(result.converged.sum())}/{batch} converged, "
                    f"loop {t_loop:.2f}s, batch==loop: {same}"
                ),
            }
        )
    return rows
