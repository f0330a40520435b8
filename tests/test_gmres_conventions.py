"""scipy's input conventions in krylovadv.gmres, checked against scipy's gmres itself."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

from krylovadv import SolverStatus, gmres


def _system(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    A = np.eye(n) * 4 + rng.standard_normal((n, n)) / np.sqrt(n)
    b = rng.standard_normal(n)
    return A, b


# ---------------------------------------------------------------------------
# Batch (B, n) or scipy's column vector (n, 1): the rule of docs/contract.rst
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5])
def test_column_vector_is_one_system_as_in_scipy(n):
    A, b = _system(n)
    result = gmres(A, b[:, None], rtol=1e-10)
    x_ref, info_ref = sla.gmres(A, b[:, None], rtol=1e-10)
    assert result.batch_size == 1 and not result.batched
    assert result.x.shape == x_ref.shape == (n,)
    np.testing.assert_allclose(result.x, x_ref, rtol=1e-8)
    assert result.info == info_ref == 0
    # x0 of shape (n, 1) or (n,) goes with it, as in scipy.
    for x0 in (np.ones((n, 1)), np.ones(n)):
        np.testing.assert_allclose(gmres(A, b[:, None], x0, rtol=1e-10).x, x_ref, rtol=1e-8)


@pytest.mark.parametrize("B", [1, 3])
def test_trailing_axis_n_is_a_batch_even_where_scipy_would_see_a_column(B):
    # n = 1: b of shape (B, 1) has last axis n, so it is B one-unknown systems.
    A = np.array([[2.0]])
    b = np.arange(1.0, B + 1.0)[:, None]
    result = gmres(A, b, rtol=1e-12)
    assert result.batched and result.batch_size == B
    assert result.x.shape == (B, 1)
    np.testing.assert_allclose(result.x[:, 0], b[:, 0] / 2.0, rtol=1e-12)
    # The (1, 1) case both readings fit: a batch of one whose ravel() is scipy's x.
    if B == 1:
        x_ref, _ = sla.gmres(A, b, rtol=1e-12)
        np.testing.assert_allclose(result.x.ravel(), x_ref, rtol=1e-12)


def test_square_batch_n_by_n_is_a_batch():
    # b of shape (n, n): last axis n, so n systems (never a column).
    A, _ = _system(4)
    b = np.eye(4)
    result = gmres(A, b, rtol=1e-12)
    assert result.batch_size == 4
    np.testing.assert_allclose(A @ result.x.T, np.eye(4), atol=1e-10)


def test_column_vector_with_a_batched_operator_is_an_error():
    A = np.stack([np.eye(3)] * 2)
    with pytest.raises(ValueError, match=r"\(3, 1\)"):
        gmres(A, np.ones((3, 1)))


# ---------------------------------------------------------------------------
# Input types
# ---------------------------------------------------------------------------


def test_lists_and_matrices_as_scipy():
    A, b = _system(4, seed=1)
    x_ref, _ = sla.gmres(A, b, rtol=1e-10)
    with pytest.warns(PendingDeprecationWarning):  # numpy discourages np.matrix
        matrices = (np.asmatrix(A), np.asmatrix(b).T)
    for A_, b_ in ((A.tolist(), b.tolist()), matrices):
        x, info = gmres(A_, b_, rtol=1e-10)
        assert isinstance(x, np.ndarray) and not isinstance(x, np.matrix)
        assert info == 0 and x.shape == (4,)
        np.testing.assert_allclose(x, x_ref, rtol=1e-8)


def test_x0_Mb_and_psolve_as_scipy():
    A, b = _system(6, seed=2)
    M = np.diag(1.0 / np.diag(A))
    for kwargs in ({}, {"M": M}):
        ours = gmres(A, b, "Mb", rtol=1e-10, restart=2, maxiter=2, **kwargs)
        x_ref, _ = sla.gmres(A, b, "Mb", rtol=1e-10, restart=2, maxiter=2, **kwargs)
        np.testing.assert_allclose(ours.x, x_ref, rtol=1e-9)
        # One product for r_0 = b - A Mb, as the start is nonzero.
        assert ours.matvecs == 1 + ours.iterations + ours.cycles
    # A.psolve is the preconditioner when M is None.
    op = sla.aslinearoperator(A)
    calls = []
    op.psolve = lambda v: calls.append(1) or M @ v
    ours = gmres(op, b, rtol=1e-10, restart=2, maxiter=2)
    x_ref, _ = sla.gmres(A, b, rtol=1e-10, restart=2, maxiter=2, M=M)
    np.testing.assert_allclose(ours.x, x_ref, rtol=1e-9)
    assert calls
    with pytest.raises(ValueError, match="x0"):
        gmres(A, b, "b")


def test_torch_integer_b_is_upcast_to_float64():
    A = torch.eye(3, dtype=torch.float64) * 2
    result = gmres(A, torch.tensor([2, 4, 6]), rtol=1e-12)
    assert result.x.dtype == torch.float64
    torch.testing.assert_close(result.x, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


# ---------------------------------------------------------------------------
# Tolerances, keywords, info
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("rtol", "atol"), [(np.inf, 0.0), (0.0, np.inf), (np.inf, np.inf)])
def test_infinite_tolerances_accept_the_start(rtol, atol):
    A, b = _system(5)
    result = gmres(A, b, rtol=rtol, atol=atol)
    x_ref, info_ref = sla.gmres(A, b, rtol=rtol, atol=atol)
    assert result.status == SolverStatus.CONVERGED and result.info == info_ref == 0
    np.testing.assert_array_equal(result.x, x_ref)


@pytest.mark.parametrize("atol", [None, "legacy", -1.0, np.nan])
def test_invalid_atol_is_value_error(atol):
    with pytest.raises(ValueError, match="atol"):
        gmres(np.eye(3), np.ones(3), atol=atol)


def test_tol_keyword_points_to_rtol():
    with pytest.raises(TypeError, match="rtol"):
        gmres(np.eye(3), np.ones(3), tol=1e-8)
    with pytest.raises(TypeError, match="tolerance"):
        gmres(np.eye(3), np.ones(3), tolerance=1e-8)
    with pytest.raises(TypeError):
        gmres(np.eye(3), np.ones(3), None, 1e-5)  # tolerances are keyword-only, as scipy


def test_info_is_maxiter_on_failure_per_sample():
    A, b = _system(30, seed=3)
    A[0, 0] = 1e-3  # slower
    bb = np.stack([b, np.zeros(30)])
    result = gmres(np.stack([A, A]), bb, rtol=1e-14, restart=2, maxiter=3)
    np.testing.assert_array_equal(result.info, [3, 0])
    x, info = result
    assert x is result.x and info is not None
