"""SOAE(solver="minres"): the same Newton direction as GMRES for a symmetric Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from krylovadv import SolverStatus
from krylovadv.torch.attacks import SOAE

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_minres_and_gmres_give_the_same_iterate_at_every_krylov_dimension(softplus_problem, m):
    # Smooth network: H is symmetric indefinite and full rank, so neither solver stops
    # before m steps; both return the minimal-residual iterate over K_m(H, r_0).
    p = softplus_problem
    common = dict(eps=0.1, steps=1, tau=1e-14, max_krylov_dim=m, fallback="none")
    by_gmres = SOAE(p.model, solver="gmres", **common).solve(p.x, p.y)
    by_minres = SOAE(p.model, solver="minres", **common).solve(p.x, p.y)
    assert np.all(by_gmres.krylov_dim == m) and np.all(by_minres.krylov_dim == m)
    assert np.all(by_minres.krylov.status == SolverStatus.MAX_ITERATIONS)
    # Agreement to 1e-9 relative in float64 (both are backward stable for these small m).
    delta_g = by_gmres.delta.reshape(p.x.shape[0], -1)
    delta_m = by_minres.delta.reshape(p.x.shape[0], -1)
    scale = torch.linalg.vector_norm(delta_g, dim=1, keepdim=True)
    assert float(((delta_m - delta_g).abs() / scale).max()) < 1e-9
    np.testing.assert_allclose(by_minres.residual, by_gmres.residual, rtol=1e-8)
    np.testing.assert_array_equal(by_minres.hvps, by_gmres.hvps)


def test_minres_converges_on_the_rank_deficient_relu_hessian(relu_problem):
    p = relu_problem
    common = dict(eps=0.1, steps=1, tau=1e-10, max_krylov_dim=30, fallback="none")
    by_gmres = SOAE(p.model, solver="gmres", **common).solve(p.x, p.y)
    by_minres = SOAE(p.model, solver="minres", **common).solve(p.x, p.y)
    assert np.all(by_minres.krylov.converged)
    # PSD of rank <= K - 1 = 3: at most K steps (+1 for rounding).
    assert np.all(by_minres.krylov_dim <= 5)
    torch.testing.assert_close(by_minres.delta, by_gmres.delta, rtol=1e-7, atol=1e-9)


def test_attack_runs_and_records_the_solver(relu_problem):
    p = relu_problem
    attack = SOAE(p.model, eps=0.1, steps=2, solver="minres")
    assert "solver='minres'" in repr(attack)
    result = attack.run(p.x.clamp(0, 1), p.y)
    assert result.diagnostics["krylov_dim"].shape == (2, p.x.shape[0])
    with pytest.raises(ValueError, match="solver must be one of 'gmres', 'minres'"):
        SOAE(p.model, eps=0.1, solver="cg")


def test_gauss_newton_products_give_the_exact_direction_on_a_relu_network(relu_problem):
    p = relu_problem
    common = dict(eps=0.1, steps=1, tau=1e-10, max_krylov_dim=30, solver="minres")
    exact = SOAE(p.model, hvp="exact", **common).solve(p.x, p.y)
    gauss_newton = SOAE(p.model, hvp="gauss-newton", **common).solve(p.x, p.y)
    torch.testing.assert_close(gauss_newton.delta, exact.delta, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(gauss_newton.krylov_dim, exact.krylov_dim)
