"""Operators both ways with scipy: scipy's matvec shapes, adjoints, and to_scipy()."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg as sla
import torch

from krylovadv import (
    DenseOperator,
    FiniteDifferenceHVP,
    FunctionOperator,
    IdentityOperator,
    ScipyOperator,
    ShiftedOperator,
    aslinearoperator,
    gmres,
    to_scipy_operator,
)


def _matrix(n=5, seed=0, complex_=False):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    if complex_:
        A = A + 1j * rng.standard_normal((n, n))
    return A


def _operators(A):
    """The same matrix A behind every kind of krylovadv operator (with an adjoint)."""
    n = A.shape[0]
    return {
        "dense": DenseOperator(A),
        "scipy-sparse": ScipyOperator(scipy.sparse.csr_array(A)),
        "scipy-linop": ScipyOperator(sla.aslinearoperator(A)),
        "function": FunctionOperator(
            lambda v: A @ v, (n, n), dtype=A.dtype, rmatvec=lambda v: A.conj().T @ v
        ),
        "shifted": ShiftedOperator(DenseOperator(A - 2.0 * np.eye(n)), 2.0),
    }


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("kind", ["dense", "scipy-sparse", "scipy-linop", "function", "shifted"])
def test_matvec_rmatvec_matmat_take_scipys_shapes(kind, complex_):
    A = _matrix(5, 1, complex_)
    op = _operators(A)[kind]
    reference = sla.aslinearoperator(A)
    rng = np.random.default_rng(2)
    v = rng.standard_normal(5) + (1j * rng.standard_normal(5) if complex_ else 0)
    V = rng.standard_normal((5, 3)) + (1j * rng.standard_normal((5, 3)) if complex_ else 0)
    for ours, theirs, arg in (
        (op.matvec, reference.matvec, v),
        (op.matvec, reference.matvec, v[:, None]),
        (op.rmatvec, reference.rmatvec, v),
        (op.rmatvec, reference.rmatvec, v[:, None]),
        (op.matmat, reference.matmat, V),
        (op.rmatmat, reference.rmatmat, V),
    ):
        out = ours(arg)
        expected = theirs(arg)
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("kind", ["dense", "scipy-sparse", "scipy-linop", "function", "shifted"])
def test_to_scipy_round_trip_equals_the_matrix(kind, complex_):
    A = _matrix(6, 3, complex_)
    op = _operators(A)[kind]
    lin = op.to_scipy()
    assert isinstance(lin, sla.LinearOperator) and lin.shape == (6, 6)
    np.testing.assert_allclose(lin @ np.eye(6), A, atol=1e-12)
    np.testing.assert_allclose(lin.H @ np.eye(6), A.conj().T, atol=1e-12)
    # And back: aslinearoperator keeps accepting scipy's operators.
    again = aslinearoperator(lin)
    np.testing.assert_allclose(again.to_dense(like=np.eye(6, dtype=A.dtype)), A, atol=1e-12)


def test_scipy_solvers_and_eigensolvers_run_on_krylovadv_operators():
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    H = (Q * np.linspace(-1.0, 7.0, 20)) @ Q.T  # symmetric, top eigenvalue 7
    # A finite-difference Hessian of f(z) = z^T H z / 2, handed to scipy.
    hvp = FiniteDifferenceHVP(lambda z: H @ z, rng.standard_normal(20), scheme="central")
    lin = to_scipy_operator(hvp)
    top = sla.eigsh(lin, k=1, which="LA", tol=1e-10)[0][0]
    assert top == pytest.approx(7.0, rel=1e-6)
    assert hvp.num_products > 0
    # (Central differences are exact for a quadratic up to rounding ~ eps^(2/3).)
    x, info = sla.gmres(lin, np.ones(20), rtol=1e-7, atol=0.0, restart=20)
    assert info == 0
    np.testing.assert_allclose(H @ x, np.ones(20), atol=1e-5)


def test_batched_operator_exposes_one_sample_to_scipy():
    A = np.stack([np.diag([1.0, 2.0, 3.0]) * (i + 1) for i in range(4)])
    op = aslinearoperator(A)
    with pytest.raises(ValueError, match="sample"):
        op.to_scipy()
    with pytest.raises(IndexError):
        op.to_scipy(sample=4)
    with pytest.raises(TypeError, match="matmat"):
        op.matmat(np.ones((3, 2)))
    lin = op.to_scipy(sample=2)
    np.testing.assert_allclose(lin @ np.eye(3), A[2])
    # One vector for one sample: indices as an int.
    np.testing.assert_allclose(op.matvec(np.ones(3), 1), A[1] @ np.ones(3))


def test_torch_operator_through_scipy_converts_both_ways():
    M = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float32)
    lin = DenseOperator(M).to_scipy()
    assert lin.dtype == np.float32
    out = lin.matvec(np.array([1.0, 1.0]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [3.0, 4.0])
    with pytest.raises(TypeError, match="complex"):
        lin.matvec(np.array([1.0, 1j]))


def test_no_adjoint_is_an_explicit_error():
    op = FunctionOperator(lambda v: 2 * v, (3, 3))
    assert not op.supports_adjoint
    with pytest.raises(NotImplementedError, match="rmatvec"):
        op.rmatvec(np.ones(3))
    lin = op.to_scipy()
    np.testing.assert_allclose(lin.matvec(np.ones(3)), 2 * np.ones(3))
    assert IdentityOperator(3).supports_adjoint


def test_gmres_on_a_converted_operator_matches_the_matrix():
    A = _matrix(8, 5) + 8 * np.eye(8)
    b = np.arange(8.0)
    via_scipy = gmres(DenseOperator(A).to_scipy(), b, rtol=1e-12)
    direct = gmres(A, b, rtol=1e-12)
    np.testing.assert_allclose(via_scipy.x, direct.x, rtol=1e-10)
