"""Curvature diagnostics: top-k eigenvalues per sample by Lanczos (krylovadv.eigsh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from krylovadv import eigsh, power_iteration
from krylovadv.torch import InputHessian
from krylovadv.torch.curvature import curvature_diagnostics

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("which", ["LM", "LA", "SA"])
def test_top_k_eigenvalues_match_dense_linear_algebra(softplus_problem, which):
    p = softplus_problem
    out = curvature_diagnostics(p.model, p.x, p.y, k=3, which=which, eig_tol=1e-10, eta=None)
    dense = np.asarray(InputHessian(p.model, p.x, p.y).to_dense())
    assert out["top_eigenvalues"].shape == (p.x.shape[0], 3)
    assert out["top_converged"].all()
    for b in range(p.x.shape[0]):
        eig = np.linalg.eigvalsh(dense[b])
        key = {"LM": -np.abs(eig), "LA": -eig, "SA": eig}[which]
        expected = eig[np.argsort(key)[:3]]
        scale = np.abs(eig).max()
        np.testing.assert_allclose(out["top_eigenvalues"][b], expected, atol=1e-8 * scale)
        assert out["top_eigenvalue"][b] == out["top_eigenvalues"][b, 0]


def test_lanczos_needs_fewer_products_than_power_iteration(softplus_problem):
    p = softplus_problem
    H = InputHessian(p.model, p.x, p.y)
    start = torch.randn(p.x.shape[0], p.d, generator=torch.Generator().manual_seed(0))
    start = start.to(torch.float64)
    power = power_iteration(H, v0=start, tol=1e-6, maxiter=5000)
    lanczos = eigsh(H, 1, which="LM", v0=start, tol=1e-6)
    assert power.converged.all() and lanczos.converged.all()
    np.testing.assert_allclose(lanczos.eigenvalues[:, 0], power.eigenvalue, rtol=1e-5)
    assert lanczos.matvecs.sum() < power.iterations.sum()


def test_rank_deficient_relu_hessian_ends_on_an_invariant_subspace(relu_problem):
    p = relu_problem
    out = curvature_diagnostics(p.model, p.x, p.y, k=2, which="LA", eig_tol=1e-10, eta=None)
    # rank <= K - 1 = 3: the Krylov space is invariant after at most K + 1 products.
    assert out["top_converged"].all()
    assert np.all(out["eig_matvecs"] <= 6)
    with pytest.raises(ValueError, match="k must satisfy"):
        curvature_diagnostics(p.model, p.x, p.y, k=p.d)
