"""One sample's InputHessian as a scipy LinearOperator, against krylovadv and the dense Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from torch import nn

import krylovadv
from krylovadv.torch import InputHessian, per_sample_loss

pytestmark = pytest.mark.usefixtures("single_thread")

B, D, K = 3, 6, 4


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    # Smooth activations: the Hessians are full rank and indefinite (not J^T S J).
    model = nn.Sequential(nn.Linear(D, 10), nn.Tanh(), nn.Linear(10, K)).double().eval()
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([0, 1, 3])
    dense = []
    for i in range(B):

        def f(xi, i=i):
            return per_sample_loss(model(xi[None]), y[i : i + 1], "ce").sum()

        dense.append(torch.autograd.functional.hessian(f, x[i]).numpy())
    return model, x, y, np.stack(dense)


def test_scipy_eigsh_top_eigenvalue_matches_krylovadv_and_dense(problem):
    model, x, y, dense = problem
    H = InputHessian(model, x, y)
    ours = krylovadv.eigsh(H, 1, which="LA", rng=0)
    for i in range(B):
        op = H.to_scipy(sample=i)
        assert op.shape == (D, D) and op.dtype == np.float64
        top_scipy = sla.eigsh(op, k=1, which="LA", tol=1e-12, v0=np.ones(D))[0][0]
        top_dense = np.linalg.eigvalsh(dense[i])[-1]
        scale = np.abs(np.linalg.eigvalsh(dense[i])).max()
        assert abs(top_scipy - top_dense) <= 1e-9 * scale
        assert abs(ours.sample(i).eigenvalues[0] - top_dense) <= 1e-9 * scale
    # The samples differ, so the operator really exposes sample i (not sample 0).
    tops = [np.linalg.eigvalsh(dense[i])[-1] for i in range(B)]
    assert np.ptp(tops) > 1e-6 * max(abs(t) for t in tops)


def test_to_scipy_products_and_adjoint(problem):
    model, x, y, dense = problem
    H = InputHessian(model, x, y)
    V = np.random.default_rng(0).standard_normal((D, 2))
    for i in range(B):
        op = H.to_scipy(sample=i)
        np.testing.assert_allclose(op.matvec(V[:, 0]), dense[i] @ V[:, 0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(op.matmat(V), dense[i] @ V, rtol=1e-10, atol=1e-12)
        # Hermitian: scipy gets rmatvec (= matvec), so e.g. its lsqr / svds work.
        np.testing.assert_allclose(op.rmatvec(V[:, 1]), dense[i] @ V[:, 1], rtol=1e-10, atol=1e-12)
    # A scipy solve on one sample agrees with krylovadv's batched one.
    g = H.gradient.numpy()
    x_scipy, info = sla.minres(H.to_scipy(sample=1), g[1], rtol=1e-12)
    x_ours = krylovadv.minres(H, H.gradient, rtol=1e-12).sample(1).x.numpy()
    assert info == 0
    np.testing.assert_allclose(x_scipy, x_ours, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(x_ours, np.linalg.solve(dense[1], g[1]), rtol=1e-7)


def test_to_scipy_needs_a_sample_in_range(problem):
    model, x, y, _ = problem
    H = InputHessian(model, x, y)
    with pytest.raises(ValueError, match="sample=i"):
        H.to_scipy()
    with pytest.raises(IndexError, match="out of range"):
        H.to_scipy(sample=B)


def test_to_scipy_runs_in_the_gradients_dtype():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, K)).eval()  # float32
    x = torch.randn(2, D, generator=torch.Generator().manual_seed(2))
    H = InputHessian(model, x, torch.tensor([0, 1]))
    op = H.to_scipy(sample=0)
    assert op.dtype == np.float32
    before = H.num_hvps
    out = op.matvec(np.ones(D))
    assert out.dtype == np.float32 and H.num_hvps == before + 1
    np.testing.assert_allclose(
        out, H.matvec(torch.ones(1, D), torch.tensor([0]))[0].numpy(), rtol=1e-6
    )


def test_docstring_example_runs():
    """InputHessian's Examples (scipy's eigsh on ``H.to_scipy(sample=0)``) are executed."""
    import doctest

    from krylovadv.torch import hessian

    torch.manual_seed(0)
    failed, attempted = doctest.testmod(hessian, verbose=False)
    assert attempted > 0 and failed == 0
