"""Verification tests for krylovadv.operators."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg as sla
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import ALL_FAMILIES, build_quadratic, quadratics, seeds

from krylovadv import (
    DenseOperator,
    FunctionOperator,
    IdentityOperator,
    LinearOperator,
    ScipyOperator,
    ShiftedOperator,
    aslinearoperator,
)


@given(q=quadratics(ALL_FAMILIES, dtypes=(np.float64, np.float32), max_n=20))
def test_dense_to_dense_round_trip(q):
    op = aslinearoperator(q.A)
    assert isinstance(op, DenseOperator)
    assert op.shape == (q.n, q.n) and op.batch_size is None and op.dtype == q.dtype
    assert np.array_equal(op.to_dense(like=q.A), q.A)
    batch = aslinearoperator(np.stack([q.A, 2 * q.A]))
    assert batch.batch_size == 2
    dense = batch.to_dense(like=q.A)
    assert dense.shape == (2, q.n, q.n)
    assert np.array_equal(dense[0], q.A) and np.array_equal(dense[1], 2 * q.A)


def test_to_dense_follows_like():
    A = build_quadratic("nonsymmetric", 5, 0).A
    t = aslinearoperator(torch.from_numpy(A)).to_dense(like=torch.zeros(1, dtype=torch.float64))
    assert isinstance(t, torch.Tensor)
    assert np.array_equal(t.numpy(), A)
    f = aslinearoperator(lambda v: A @ v, shape=(5, 5)).to_dense()
    assert f.dtype == np.float64
    np.testing.assert_allclose(f, A, rtol=1e-15)


@given(q=quadratics(ALL_FAMILIES, max_n=15), shift=st.floats(-10.0, 10.0))
def test_shifted_operator_scalar(q, shift):
    op = ShiftedOperator(q.A, shift)
    assert op.batch_size is None
    np.testing.assert_allclose(op.to_dense(), q.A + shift * np.eye(q.n), rtol=1e-14, atol=1e-14)
    v = np.arange(q.n, dtype=np.float64)
    np.testing.assert_allclose(op @ v, q.A @ v + shift * v, rtol=1e-14, atol=1e-12)


@given(n=st.integers(2, 12), seed=seeds, B=st.integers(1, 4))
def test_shifted_operator_per_sample(n, seed, B):
    rng = np.random.default_rng(seed)
    shifts = rng.uniform(-5.0, 5.0, B)
    # A shared operator with per-sample shifts becomes a batch of B operators.
    A = build_quadratic("spd", n, seed).A
    op = ShiftedOperator(A, shifts)
    assert op.batch_size == B
    dense = op.to_dense()
    for i in range(B):
        np.testing.assert_allclose(dense[i], A + shifts[i] * np.eye(n), rtol=1e-14, atol=1e-14)
    # A batched operator with per-sample shifts, evaluated on a subset of samples.
    As = np.stack([build_quadratic("nonsymmetric", n, seed + i).A for i in range(B)])
    op = ShiftedOperator(As, shifts)
    dense = op.to_dense()
    for i in range(B):
        np.testing.assert_allclose(dense[i], As[i] + shifts[i] * np.eye(n), rtol=1e-14, atol=1e-14)
    idx = np.arange(B)[::-1]
    X = rng.standard_normal((B, n))
    expected = np.einsum("kij,kj->ki", As[idx], X) + shifts[idx, None] * X
    np.testing.assert_allclose(op.matvec(X, idx), expected, rtol=1e-13, atol=1e-13)


def test_shifted_operator_torch_shift_and_errors():
    A = np.stack([np.eye(3)] * 2)
    op = ShiftedOperator(torch.from_numpy(A), torch.tensor([1.0, 2.0], dtype=torch.float64))
    out = op.matvec(torch.ones(2, 3, dtype=torch.float64))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), [[2.0] * 3, [3.0] * 3])
    with pytest.raises(ValueError):
        ShiftedOperator(A, np.ones(3))  # 3 shifts, 2 samples
    with pytest.raises(ValueError):
        ShiftedOperator(A, np.ones((2, 1)))
    with pytest.raises(ValueError):
        ShiftedOperator(A, np.nan)
    with pytest.raises(ValueError):
        ShiftedOperator(A, np.array([1.0, np.inf]))


def test_bad_shapes_raise_with_shapes_in_the_message():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        DenseOperator(np.ones((3, 4)))
    with pytest.raises(ValueError):
        DenseOperator(np.ones(3))
    with pytest.raises(ValueError):
        DenseOperator(np.ones((2, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        FunctionOperator(lambda v: v, (3, 4))
    with pytest.raises(ValueError):
        FunctionOperator(lambda v: v, (3, 3), batch_size=0)
    op = aslinearoperator(np.eye(3))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        op.matvec(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        op.matvec(np.ones(4))  # one vector must have length n
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        op.matvec(np.ones((3, 2)))  # neither rows (k, 3) nor a column (3, 1)
    batch = aslinearoperator(np.stack([np.eye(3)] * 4))
    with pytest.raises(ValueError):
        batch.matvec(np.ones((2, 3)))  # 2 rows for 4 samples and no indices
    np.testing.assert_array_equal(batch.matvec(np.ones((2, 3)), np.array([0, 3])), np.ones((2, 3)))


def test_dtypes_integers_upcast_complex_kept_never_silently_made_real():
    assert DenseOperator(np.eye(3, dtype=np.int64)).matrix.dtype == np.float64
    assert DenseOperator(np.eye(3, dtype=np.bool_)).matrix.dtype == np.float64
    assert DenseOperator(np.eye(3, dtype=np.complex64)).dtype == np.complex64
    op = ScipyOperator(scipy.sparse.eye(3, dtype=np.complex128) * 1j)
    np.testing.assert_array_equal(op.matvec(np.ones((1, 3), dtype=complex)), 1j * np.ones((1, 3)))
    # A complex product for a real vector would drop the imaginary part: an error.
    with pytest.raises(TypeError, match="complex"):
        op.matvec(np.ones((1, 3)))
    with pytest.raises(TypeError, match="complex"):
        FunctionOperator(lambda v: 1j * v, (3, 3)).matvec(np.ones((2, 3)))


def test_function_operator_wrong_output_shape():
    op = FunctionOperator(lambda v: np.ones(4), (3, 3))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        op.matvec(np.ones((1, 3)))
    vec = FunctionOperator(lambda V: np.ones((V.shape[0] + 1, 3)), (3, 3), vectorized=True)
    with pytest.raises(ValueError):
        vec.matvec(np.ones((2, 3)))
    # Same size, other shape: reshaped (a flat (k*n,) output of a vectorized call).
    flat = FunctionOperator(lambda V: V.reshape(-1) * 2, (3, 3), vectorized=True)
    np.testing.assert_array_equal(flat.matvec(np.ones((2, 3))), 2 * np.ones((2, 3)))


def test_function_operator_casts_to_input_dtype():
    op = FunctionOperator(lambda v: v.astype(np.float64) * 2, (3, 3))
    out = op.matvec(np.ones((2, 3), dtype=np.float32))
    assert out.dtype == np.float32


def test_function_operator_pass_indices_needs_two_arguments():
    with pytest.raises(TypeError):
        FunctionOperator(lambda v: v, (3, 3), pass_indices=True)
    op = FunctionOperator(lambda v, i: v * (i + 1), (2, 2), batch_size=3, pass_indices=True)
    np.testing.assert_array_equal(
        op.matvec(np.ones((2, 2)), np.array([2, 0])), [[3.0, 3.0], [1.0, 1.0]]
    )
    # Without indices every row is its own sample 0..k-1.
    np.testing.assert_array_equal(op.matvec(np.ones((3, 2)))[:, 0], [1.0, 2.0, 3.0])


def test_vectorized_batched_callable_without_indices_gets_the_full_batch():
    seen = []

    def f(X):
        seen.append(X.copy())
        return X * np.arange(1.0, 5.0)[:, None]

    op = FunctionOperator(f, (2, 2), batch_size=4, vectorized=True)
    out = op.matvec(np.ones((2, 2)), np.array([3, 1]))
    np.testing.assert_array_equal(out, [[4.0, 4.0], [2.0, 2.0]])
    assert seen[0].shape == (4, 2)
    np.testing.assert_array_equal(seen[0][[0, 2]], 0.0)  # idle samples get zero rows


def test_num_products_counts_rows():
    op = aslinearoperator(np.eye(3))
    op.matvec(np.ones((5, 3)))
    op @ np.ones(3)
    assert op.num_products == 6


def test_scipy_operators():
    A = build_quadratic("nonsymmetric", 6, 1).A
    X = np.random.default_rng(0).standard_normal((4, 6))
    for wrapped in (scipy.sparse.csr_array(A), sla.aslinearoperator(A)):
        op = aslinearoperator(wrapped)
        assert isinstance(op, ScipyOperator)
        np.testing.assert_allclose(op.matvec(X), X @ A.T, rtol=1e-13)
        np.testing.assert_allclose(op.matvec(X[:1]), X[:1] @ A.T, rtol=1e-13)
        with pytest.raises(TypeError):
            op.matvec(torch.from_numpy(X))


def test_aslinearoperator_dispatch():
    op = aslinearoperator(np.eye(2))
    assert aslinearoperator(op) is op
    assert isinstance(aslinearoperator([[1.0, 0.0], [0.0, 1.0]]), DenseOperator)
    assert isinstance(aslinearoperator(lambda v: v, shape=(2, 2)), FunctionOperator)
    with pytest.raises(TypeError):
        aslinearoperator(lambda v: v)  # no shape
    with pytest.raises(TypeError):
        aslinearoperator("not an operator")
    ident = IdentityOperator(3)
    assert isinstance(ident, LinearOperator)
    np.testing.assert_array_equal(ident.to_dense(), np.eye(3))
