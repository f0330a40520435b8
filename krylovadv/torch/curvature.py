r"""Per-sample curvature of the loss around each input: top eigenvalues, Krylov dimension, FD gap.

The top eigenvalues come from :func:`krylovadv.eigsh` (thick-restart Lanczos),
not power iteration: for the ``k`` extreme eigenvalues of a symmetric Hessian
Lanczos needs far fewer products (power iteration converges linearly with ratio
:math:`|\lambda_2/\lambda_1|` and finds one eigenvalue; Lanczos converges with
the Chebyshev rate and finds ``k``), and on an exact ReLU Hessian of rank
:math:`\le K - 1` it stops after at most :math:`K` products with the exact
spectrum (an invariant Krylov space).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..gmres import gmres
from ..lanczos import eigsh
from .hessian import InputHessian

__all__ = ["curvature_diagnostics"]


def curvature_diagnostics(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int = 1,
    which: str = "LM",
    tau: float = 1e-3,
    max_krylov_dim: int = 50,
    eig_tol: float = 1e-3,
    ncv: int | None = None,
    eig_maxiter: int = 100,
    eta: float | None = 1e-5,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    r"""Per-sample curvature of the loss around each input.

    For each sample :math:`b`, with :math:`H_b = \nabla_x^2 \ell_b` and
    :math:`g_b = \nabla_x \ell_b` (exact products,
    :class:`~krylovadv.torch.hessian.InputHessian`):

    - ``top_eigenvalues`` ``(B, k)``: the ``k`` extreme eigenvalues of
      :math:`H_b` for ``which`` (``"LM"``: largest magnitude, ``"LA"``: largest,
      ``"SA"``: smallest), best first, by :func:`krylovadv.eigsh` to a relative
      eigen-residual ``eig_tol``; ``top_eigenvalue`` is the first of them,
      ``top_converged`` and ``eig_matvecs`` (products spent) come with them;
    - ``krylov_dim``: the Krylov dimension :math:`m` at which GMRES on
      :math:`H_b\delta = g_b` reaches :math:`\|\tilde r\|/\beta < \tau` (Qian et
      al.'s stopping rule, Algorithm 1 line 12, from :math:`\delta^{(0)} = 0`),
      capped at ``max_krylov_dim``, and ``krylov_converged``;
    - ``fd_gap``: :math:`\|H^{\mathrm{FD}}_b g_b - H_b g_b\| / \|H_b g_b\|`, the
      relative error of the forward-difference product at the papers' step
      :math:`\eta` (``eta=None``: the dtype-aware default step).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (eval mode; samples must not be coupled).
    x, y : torch.Tensor
        Inputs in [0, 1] and labels.
    k : int
        Number of eigenvalues per sample, ``1 <= k < d``.
    which : {"LM", "LA", "SA"}
        Which end of the spectrum.
    tau : float
        GMRES relative tolerance :math:`\tau`.
    max_krylov_dim : int
        Cap on :math:`m`.
    eig_tol, ncv, eig_maxiter : float, int or None, int
        :func:`krylovadv.eigsh`'s ``tol``, ``ncv`` and ``maxiter`` (restarts).
    eta : float or None
        Finite-difference step for ``fd_gap``: the papers' :math:`\eta = 10^{-5}`
        by default (``None``: the dtype-aware default step).  Expect large gaps
        on clean MNIST digits: exact-zero backgrounds put max-pool ties on the
        segment, where the gradient jumps, and confidently classified digits have
        tiny :math:`\|H g\|`.
    seed : int
        Seed of the Lanczos start vectors.

    Returns
    -------
    dict of str to numpy.ndarray
        One array of length ``B`` (``(B, k)`` for ``top_eigenvalues``) per diagnostic.
    """
    H = InputHessian(model, x, y)
    g = H.gradient
    batch, d = g.shape
    if not 1 <= int(k) < d:
        raise ValueError(f"k must satisfy 1 <= k < d = {d}; got k={k}.")
    start = torch.randn(batch, d, generator=torch.Generator().manual_seed(seed))
    top = eigsh(
        H,
        int(k),
        which=which,  # type: ignore[arg-type]
        v0=start.to(g.device, g.dtype),
        tol=eig_tol,
        ncv=ncv,
        maxiter=eig_maxiter,
        return_eigenvectors=False,
        rng=seed,
    )
    values = np.asarray(top.eigenvalues, dtype=float).reshape(batch, int(k))
    key = {"LM": -np.abs(values), "LA": -values, "SA": values}[which]
    best_first = np.take_along_axis(values, np.argsort(key, axis=1, kind="stable"), axis=1)
    solve = gmres(H, g, rtol=tau, restart=max_krylov_dim, maxiter=1)
    exact = H.matvec(g)
    fd = InputHessian(model, x, y, method="fd-forward", eta=eta).matvec(g)
    scale = torch.linalg.vector_norm(exact, dim=1).clamp_min(torch.finfo(exact.dtype).tiny)
    gap = torch.linalg.vector_norm(fd - exact, dim=1) / scale
    return {
        "top_eigenvalue": best_first[:, 0].copy(),
        "top_eigenvalues": best_first,
        "top_converged": np.asarray(top.converged).reshape(batch),
        "eig_matvecs": np.asarray(top.matvecs).reshape(batch),
        "krylov_dim": np.asarray(solve.iterations),
        "krylov_converged": np.asarray([h[-1] < tau * h[0] for h in solve.residual_history]),
        "fd_gap": gap.detach().cpu().double().numpy(),
    }
