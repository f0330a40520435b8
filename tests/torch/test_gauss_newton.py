"""InputHessian(method="gauss-newton"): J^T S J v, exact for piecewise-linear networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import krylovadv
from krylovadv.torch import InputHessian

pytestmark = pytest.mark.usefixtures("single_thread")


def directions(batch, d, seed=0, dtype=torch.float64):
    return torch.randn(batch, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def explicit_gauss_newton(problem) -> torch.Tensor:
    """J^T (diag p - p p^T) J per sample from the dense logit Jacobian, (B, d, d)."""
    blocks = []
    for i in range(problem.x.shape[0]):
        xi = problem.x[i : i + 1]
        J = torch.autograd.functional.jacobian(lambda t: problem.model(t)[0], xi)
        J = J.reshape(-1, problem.d)  # (K, d)
        p = torch.softmax(problem.model(xi)[0], dim=-1).detach()
        S = torch.diag(p) - torch.outer(p, p)
        blocks.append(J.T @ S @ J)
    return torch.stack(blocks)


def test_equals_double_backward_on_a_relu_network(relu_problem):
    p = relu_problem
    v = directions(p.x.shape[0], p.d)
    exact = InputHessian(p.model, p.x, p.y).matvec(v)
    gauss_newton = InputHessian(p.model, p.x, p.y, method="gauss-newton")
    gn = gauss_newton.matvec(v)
    scale = float(exact.abs().max())
    assert scale > 0
    torch.testing.assert_close(gn, exact, rtol=0, atol=1e-10 * scale)
    torch.testing.assert_close(gauss_newton.gradient, InputHessian(p.model, p.x, p.y).gradient)


def test_equals_the_explicit_formula_and_differs_from_h_on_a_softplus_network(softplus_problem):
    p = softplus_problem
    G = InputHessian(p.model, p.x, p.y, method="gauss-newton")
    dense = G.to_dense(like=p.x.reshape(p.x.shape[0], -1))
    torch.testing.assert_close(dense, explicit_gauss_newton(p), rtol=1e-10, atol=1e-12)
    H = InputHessian(p.model, p.x, p.y).to_dense(like=p.x.reshape(p.x.shape[0], -1))
    gap = torch.linalg.matrix_norm(dense - H) / torch.linalg.matrix_norm(H)
    # Smooth activations: the dropped term sum_k dl/dz_k Hess(z_k) is not small.
    assert torch.all(gap > 1e-3)
    # ... and G is positive semi-definite where H is indefinite.
    assert torch.linalg.eigvalsh(dense).min() >= -1e-12 * float(dense.abs().max())
    assert torch.linalg.eigvalsh(H).min() < 0


def test_compaction_evaluates_active_samples_only(softplus_problem):
    p = softplus_problem
    G = InputHessian(p.model, p.x, p.y, method="gauss-newton")
    v = directions(2, p.d, seed=1)
    idx = torch.tensor([1, 4])
    sub = G.matvec(v, idx)
    full_v = torch.zeros(p.x.shape[0], p.d, dtype=v.dtype)
    full_v[idx] = v
    torch.testing.assert_close(sub, G.matvec(full_v)[idx], rtol=1e-12, atol=1e-14)
    assert G.rows_built == p.x.shape[0] + 2  # a subset graph for the 2 active samples


def test_solvers_take_it_and_minres_finds_the_minimum_norm_step(relu_problem):
    p = relu_problem
    G = InputHessian(p.model, p.x, p.y, method="gauss-newton")
    result = krylovadv.minres(G, G.gradient, rtol=1e-10)
    assert result.converged.all()
    dense = np.asarray(G.to_dense())
    g = G.gradient.numpy()
    for b in range(p.x.shape[0]):
        x_min = np.linalg.pinv(dense[b], rcond=1e-10, hermitian=True) @ g[b]
        np.testing.assert_allclose(
            result.x[b].numpy(), x_min, rtol=0, atol=1e-6 * np.abs(x_min).max()
        )


@pytest.mark.parametrize("loss", ["cw", lambda logits, y: logits.sum(dim=1)])
def test_losses_without_a_known_logit_hessian_raise(relu_problem, loss):
    p = relu_problem
    with pytest.raises(ValueError, match="gauss-newton"):
        InputHessian(p.model, p.x, p.y, method="gauss-newton", loss=loss)
