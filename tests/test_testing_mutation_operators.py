"""Tests that kill the mutants mutmut left alive in krylovadv/operators.py.

Every product is compared with the explicit matrix it stands for (numpy's ``@``),
every error with its exact message (it must name the argument and the fix), and
the bookkeeping (``num_products``, dtypes, namespaces, shapes) with its documented
value.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg as sla
import torch

from krylovadv import (
    DenseOperator,
    FunctionOperator,
    IdentityOperator,
    LinearOperator,
    ScipyOperator,
    ShiftedOperator,
    aslinearoperator,
    to_scipy_operator,
)

RNG = np.random.default_rng(42)
A3 = RNG.standard_normal((3, 3))
AS = RNG.standard_normal((4, 3, 3))  # a batch of four 3 x 3 matrices
C3 = A3 + 1j * RNG.standard_normal((3, 3))


class _Rows(LinearOperator):
    """A bare subclass: only ``_matvec`` (A3), no adjoint."""

    def __init__(self, batch_size=None):
        super().__init__((3, 3), batch_size=batch_size)

    def _matvec(self, x, indices):
        return x @ A3.T


class _Symmetric(_Rows):
    hermitian = True


# --- the base class: shapes, counts, errors ------------------------------------------


def test_constructor_checks_and_records():
    op = _Rows(batch_size=1)
    assert op.shape == (3, 3) and op.n == 3 and op.batch_size == 1 and op.num_products == 0
    assert op.dtype is None
    shared = LinearOperator((np.int64(2), np.int64(2)), dtype=np.float32)
    assert shared.shape == (2, 2) and type(shared.shape[0]) is int and shared.dtype == np.float32
    with pytest.raises(ValueError, match=r"^shape must be square \(n, n\); got \(3, 4\)\.$"):
        LinearOperator((3, 4))
    with pytest.raises(ValueError, match=r"^shape must be square \(n, n\); got \(3,\)\.$"):
        LinearOperator((3,))
    with pytest.raises(ValueError, match=r"^shape must be square \(n, n\); got \(3, 3, 3\)\.$"):
        LinearOperator((3, 3, 3))
    with pytest.raises(ValueError, match=r"^batch_size must be a positive int or None; got 0\.$"):
        LinearOperator((3, 3), batch_size=0)


def test_matvec_shapes_and_product_count():
    op = DenseOperator(A3)
    v = np.array([1.0, -2.0, 0.5])
    for arg, shape in ((v, (3,)), (v[:, None], (3, 1)), (np.stack([v, 2 * v]), (2, 3))):
        out = op.matvec(arg)
        assert out.shape == shape
        np.testing.assert_allclose(np.reshape(out, (-1, 3)), np.reshape(arg, (-1, 3)) @ A3.T)
    assert op.num_products == 1 + 1 + 2  # a row counts once
    out = op.rmatvec(v[:, None])
    assert out.shape == (3, 1)
    np.testing.assert_allclose(out[:, 0], A3.T @ v)
    assert op.num_products == 5
    # n = 1: the column (1, 1) and the single row (1, 1) are the same product.
    one = DenseOperator(np.array([[3.0]]))
    np.testing.assert_array_equal(one.matvec(np.array([[2.0]])), [[6.0]])
    np.testing.assert_array_equal(one.matvec(np.array([2.0])), [6.0])


def test_matvec_errors_name_the_shapes():
    op = DenseOperator(A3)
    with pytest.raises(
        TypeError,
        match=r"^matvec expects an array \(numpy or torch\) of shape \(k, 3\) or \(3,\); got "
        r"list\. Convert it with numpy\.asarray first\.$",
    ):
        op.matvec([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"^rmatvec expects an array"):
        op.rmatvec([1.0, 2.0, 3.0])
    with pytest.raises(
        ValueError,
        match=r"^matvec expects x of shape \(k, 3\) \(rows\), or one vector \(3,\) or "
        r"\(3, 1\); got \(2, 4\)\.$",
    ):
        op.matvec(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"^rmatvec expects x of shape \(k, 3\)"):
        op.rmatvec(np.ones((1, 1, 3)))
    batch = DenseOperator(AS)
    with pytest.raises(
        ValueError,
        match=r"^x has 2 rows but the operator holds 4 samples; pass indices= to say which "
        r"samples the rows belong to\.$",
    ):
        batch.matvec(np.ones((2, 3)))
    assert batch.num_products == 0  # a refused call costs nothing


def test_int_indices_select_one_sample_for_every_row():
    batch = DenseOperator(AS)
    X = RNG.standard_normal((2, 3))
    np.testing.assert_allclose(batch.matvec(X, 2), X @ AS[2].T)
    np.testing.assert_allclose(batch.matvec(X, np.int32(3)), X @ AS[3].T)
    np.testing.assert_allclose(batch.rmatvec(X[0], 1), AS[1].T @ X[0])
    t = DenseOperator(torch.from_numpy(AS))
    out = t.matvec(torch.from_numpy(X), 1)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), X @ AS[1].T)


def test_matmat_and_rmatmat():
    op = DenseOperator(A3)
    X = RNG.standard_normal((3, 2))
    np.testing.assert_allclose(op.matmat(X), A3 @ X)
    np.testing.assert_allclose(op.rmatmat(X), A3.T @ X)
    assert op.num_products == 4
    single_batch = DenseOperator(AS[1:2])  # a batch of one is one matrix
    np.testing.assert_allclose(single_batch.matmat(X), AS[1] @ X)
    np.testing.assert_allclose(single_batch.rmatmat(X), AS[1].T @ X)
    t = DenseOperator(torch.from_numpy(A3)).matmat(torch.from_numpy(X))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), A3 @ X)
    with pytest.raises(
        TypeError,
        match=r"^matmat needs a single operator; this one holds 4\. Use matvec\(rows, "
        r"indices\) or to_scipy\(sample=i\)\.$",
    ):
        DenseOperator(AS).rmatmat(X)
    with pytest.raises(ValueError, match=r"^matmat expects X of shape \(3, k\); got \(3,\)\.$"):
        op.matmat(np.ones(3))
    with pytest.raises(ValueError, match=r"^matmat expects X of shape \(3, k\); got \(2, 3\)\.$"):
        op.matmat(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^matmat expects X of shape \(3, k\); got list\.$"):
        op.matmat([[1.0], [2.0], [3.0]])


def test_adjoint_support_rules():
    bare = _Rows()
    assert not bare.supports_adjoint
    with pytest.raises(
        NotImplementedError,
        match=r"^_Rows has no adjoint \(rmatvec\); give the operator one "
        r"\(FunctionOperator\(\.\.\., rmatvec=\.\.\.\)\) or mark it hermitian\.$",
    ):
        bare.rmatvec(np.ones(3))
    symmetric = _Symmetric()
    assert symmetric.supports_adjoint
    np.testing.assert_allclose(symmetric.rmatvec(np.ones(3)), A3 @ np.ones(3))
    assert DenseOperator(A3).supports_adjoint and IdentityOperator(3).supports_adjoint
    assert ScipyOperator(scipy.sparse.csr_array(A3)).supports_adjoint
    assert not FunctionOperator(lambda v: v, (3, 3)).supports_adjoint
    assert FunctionOperator(lambda v: v, (3, 3), rmatvec=lambda v: v).supports_adjoint
    assert not ShiftedOperator(FunctionOperator(lambda v: v, (3, 3)), 1.0).supports_adjoint
    assert ShiftedOperator(A3, 1.0).supports_adjoint


def test_matmul_and_repr():
    op = DenseOperator(A3)
    v = np.array([1.0, 2.0, 3.0])
    out = op @ v
    assert out.shape == (3,)
    np.testing.assert_allclose(out, A3 @ v)
    np.testing.assert_allclose(op @ np.stack([v, v]), np.stack([A3 @ v] * 2))
    tv = DenseOperator(torch.from_numpy(A3)) @ torch.from_numpy(v)
    assert tuple(tv.shape) == (3,)
    assert repr(op) == "<DenseOperator n=3 shared dtype=float64>"
    assert repr(DenseOperator(AS)) == "<DenseOperator n=3 batch_size=4 dtype=float64>"


# --- to_dense / to_scipy -------------------------------------------------------------


def test_to_dense_dtypes_namespaces_and_batches():
    f = FunctionOperator(lambda v: A3 @ v, (3, 3))
    dense = f.to_dense()
    assert dense.dtype == np.float64
    np.testing.assert_allclose(dense, A3, rtol=1e-15)
    low = f.to_dense(like=np.zeros(1, dtype=np.float32))
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, A3, rtol=1e-6)
    batch = DenseOperator(torch.from_numpy(AS))
    t = batch.to_dense(like=torch.zeros(1, dtype=torch.float64))
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == (4, 3, 3)
    np.testing.assert_allclose(t.numpy(), AS)
    assert batch.num_products == 4 * 3  # n products per sample


def test_to_scipy_of_a_batch_and_its_errors():
    batch = DenseOperator(AS)
    with pytest.raises(
        ValueError, match=r"^the operator holds 4 samples; pass sample=i for A_i\.$"
    ):
        batch.to_scipy()
    for bad in (4, -1):
        with pytest.raises(IndexError, match=rf"^sample {bad} is out of range for 4\.$"):
            batch.to_scipy(sample=bad)
    for i in (0, 3):
        np.testing.assert_allclose(batch.to_scipy(sample=i) @ np.eye(3), AS[i])
    np.testing.assert_allclose(to_scipy_operator(AS, 2) @ np.eye(3), AS[2])
    # A batch of one needs no sample number; a shared operator ignores it.
    np.testing.assert_allclose(DenseOperator(AS[2:3]).to_scipy() @ np.eye(3), AS[2])
    np.testing.assert_allclose(DenseOperator(A3).to_scipy(sample=7) @ np.eye(3), A3)


def test_to_scipy_dtype_follows_the_operator_or_like():
    f32 = FunctionOperator(lambda v: v * 2, (3, 3), dtype=np.float32)
    lin = f32.to_scipy()
    assert lin.dtype == np.float32
    seen = []
    probe = FunctionOperator(lambda v: seen.append(v) or 2 * v, (3, 3), dtype=np.float32)
    out = probe.to_scipy().matvec(np.ones(3))
    assert seen[0].dtype == np.float32 and out.dtype == np.float32
    # A dtype numpy cannot read (torch's) falls back to numpy float64.
    torch_typed = FunctionOperator(lambda v: v * 2, (3, 3), dtype=torch.float32)
    assert torch_typed.to_scipy().dtype == np.float64
    assert FunctionOperator(lambda v: v, (3, 3)).to_scipy().dtype == np.float64
    # like= decides where the products run: here in torch float32.
    seen.clear()
    tf = FunctionOperator(lambda v: seen.append(v) or 3 * v, (3, 3))
    lin = tf.to_scipy(like=torch.zeros(1, dtype=torch.float32))
    assert lin.dtype == np.float32
    out = lin.matvec(np.arange(3.0))
    assert isinstance(seen[0], torch.Tensor) and seen[0].dtype == torch.float32
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_array_equal(out, [0.0, 3.0, 6.0])
    via = to_scipy_operator(tf, like=torch.zeros(1, dtype=torch.float64))
    assert via.dtype == np.float64
    # A shifted operator runs in its operator's own array type.
    lin = ShiftedOperator(torch.tensor(A3, dtype=torch.float32), 1.0).to_scipy()
    assert lin.dtype == np.float32
    np.testing.assert_allclose(lin @ np.eye(3), A3 + np.eye(3), rtol=1e-6)


def test_to_scipy_products_adjoints_and_counts():
    op = DenseOperator(C3)
    lin = op.to_scipy()
    assert lin.dtype == np.complex128 and lin.shape == (3, 3)
    V = RNG.standard_normal((3, 2)) + 1j * RNG.standard_normal((3, 2))
    np.testing.assert_allclose(lin.matmat(V), C3 @ V)
    np.testing.assert_allclose(lin.rmatmat(V), C3.conj().T @ V)
    np.testing.assert_allclose(lin.matvec(V[:, 0]), C3 @ V[:, 0])
    np.testing.assert_allclose(lin.rmatvec(V[:, 0]), C3.conj().T @ V[:, 0])
    assert op.num_products == 2 + 2 + 1 + 1
    no_adjoint = FunctionOperator(lambda v: 2 * v, (3, 3))
    lin_no_adjoint = no_adjoint.to_scipy()
    # Every adjoint product says what is missing and how to fix it (scipy's rmatmat
    # fallback used to fail with "TypeError: 'NoneType' object is not callable").
    message = r"^FunctionOperator has no adjoint \(rmatvec\); give the operator one "
    for product in (
        lambda: lin_no_adjoint.rmatvec(np.ones(3)),
        lambda: lin_no_adjoint.rmatmat(np.ones((3, 2))),
        lambda: lin_no_adjoint.H @ np.ones(3),
        lambda: lin_no_adjoint.H @ np.ones((3, 2)),
    ):
        with pytest.raises(NotImplementedError, match=message):
            product()
    assert no_adjoint.num_products == 0
    real = DenseOperator(A3).to_scipy()
    with pytest.raises(
        TypeError, match=r"^a complex vector was given to a real \(float64\) operator\.$"
    ):
        real.matvec(np.array([1.0, 1j, 0.0]))
    # A complex operator takes real vectors (they are complex numbers too).
    np.testing.assert_allclose(lin.matvec(np.ones(3)), C3 @ np.ones(3))


# --- DenseOperator, ScipyOperator, FunctionOperator ----------------------------------


def test_dense_operator_dtypes_and_matrix_input():
    assert DenseOperator(np.eye(3, dtype=np.float16)).matrix.dtype == np.float64
    assert DenseOperator(np.eye(3, dtype=np.uint8)).dtype == np.float64
    assert DenseOperator(np.eye(3, dtype=np.float32)).dtype == np.float32
    m = DenseOperator(np.matrix(A3))
    assert type(m.matrix) is np.ndarray
    np.testing.assert_allclose(m.matvec(np.ones(3)), A3 @ np.ones(3))
    with pytest.raises(TypeError, match=r"^A has dtype object"):
        DenseOperator(np.array([[None, None], [None, None]]))
    with pytest.raises(
        ValueError,
        match=r"^A dense operator must have shape \(n, n\) or \(B, n, n\); got \(2, 3, 4\)\.$",
    ):
        DenseOperator(np.ones((2, 3, 4)))
    t = DenseOperator(torch.eye(2, dtype=torch.int32))
    assert t.matrix.dtype == torch.float64 and t.dtype == torch.float64


def test_dense_batched_products_with_and_without_indices():
    CS = AS + 1j * RNG.standard_normal((4, 3, 3))
    op = DenseOperator(CS)
    X = RNG.standard_normal((4, 3)) + 1j * RNG.standard_normal((4, 3))
    np.testing.assert_allclose(op.matvec(X), np.einsum("bij,bj->bi", CS, X))
    np.testing.assert_allclose(op.rmatvec(X), np.einsum("bji,bj->bi", CS.conj(), X))
    idx = np.array([3, 0, 3])
    Y = X[:3]
    np.testing.assert_allclose(op.matvec(Y, idx), np.einsum("bij,bj->bi", CS[idx], Y))
    np.testing.assert_allclose(op.rmatvec(Y, idx), np.einsum("bji,bj->bi", CS[idx].conj(), Y))
    tidx = torch.tensor([2, 1])
    out = DenseOperator(torch.from_numpy(CS)).rmatvec(torch.from_numpy(X[:2]), tidx)
    np.testing.assert_allclose(out.numpy(), np.einsum("bji,bj->bi", CS[[2, 1]].conj(), X[:2]))
    shared = DenseOperator(C3)
    np.testing.assert_allclose(shared.rmatvec(X), X @ C3.conj())


def test_scipy_operator_products_casts_and_errors():
    sparse = ScipyOperator(scipy.sparse.csr_array(A3))
    linop = ScipyOperator(sla.aslinearoperator(A3))
    X = RNG.standard_normal((2, 3))
    for op in (sparse, linop):
        assert op.dtype == np.float64 and op.batch_size is None
        np.testing.assert_allclose(op.matvec(X), X @ A3.T)
        np.testing.assert_allclose(op.matvec(X[0]), A3 @ X[0])
        np.testing.assert_allclose(op.rmatvec(X), X @ A3)
        np.testing.assert_allclose(op.rmatvec(X[:1]), X[:1] @ A3)
        # float64 matrix, float32 vectors: the product comes back in the vectors' dtype.
        out = op.matvec(X.astype(np.float32))
        assert out.dtype == np.float32 and out.flags.c_contiguous
        one = op.matvec(X[:1].astype(np.float32))
        assert one.dtype == np.float32 and one.shape == (1, 3)
        assert op.rmatvec(X.astype(np.float32)).dtype == np.float32
        with pytest.raises(
            TypeError, match=r"^a scipy operator can only multiply numpy arrays; got Tensor\.$"
        ):
            op.matvec(torch.ones(1, 3, dtype=torch.float64))
        with pytest.raises(
            TypeError, match=r"^a scipy operator can only multiply numpy arrays; got Tensor\.$"
        ):
            op.rmatvec(torch.ones(2, 3, dtype=torch.float64))
    complex_sparse = ScipyOperator(scipy.sparse.csr_array(C3))
    Z = X + 1j
    np.testing.assert_allclose(complex_sparse.rmatvec(Z), Z @ C3.conj())
    with pytest.raises(
        TypeError,
        match=r"^the operator returned complex128 values for a float64 vector; a complex "
        r"operator needs complex vectors \(pass a complex b / v0\)\.$",
    ):
        complex_sparse.matvec(X)


def test_accepts_two_args_rules():
    def keyword_only(x, *, i):
        return x

    with pytest.raises(
        TypeError, match=r"^pass_indices=True needs a function taking \(x, indices\)\.$"
    ):
        FunctionOperator(keyword_only, (3, 3), pass_indices=True)
    with pytest.raises(TypeError, match="pass_indices=True"):
        FunctionOperator(max, (3, 3), pass_indices=True)  # no signature: not trusted
    with pytest.raises(TypeError, match="pass_indices=True"):
        FunctionOperator(lambda x, i: x, (3, 3), pass_indices=True, rmatvec=lambda x: x)
    star = FunctionOperator(lambda *a: a[0] * (a[1] + 1), (2, 2), batch_size=2, pass_indices=True)
    np.testing.assert_array_equal(star.matvec(np.ones(2), 1), [2.0, 2.0])
    FunctionOperator(lambda x: x, (3, 3))  # one argument is fine without pass_indices


def test_function_operator_attributes_and_adjoint():
    f = FunctionOperator(
        lambda v, i: A3 @ v, (3, 3), pass_indices=True, rmatvec=lambda v, i: A3.T @ v + i
    )
    assert f.vectorized is False and f.pass_indices is True and f.batch_size is None
    v = np.ones(3)
    np.testing.assert_allclose(f.rmatvec(v), A3.T @ v)  # row 0 is sample 0
    np.testing.assert_allclose(f.rmatvec(np.stack([v, v]))[1], A3.T @ v + 1)
    with pytest.raises(NotImplementedError, match=r"^FunctionOperator has no adjoint"):
        FunctionOperator(lambda v: v, (3, 3)).rmatvec(v)


def test_vectorized_callables_with_and_without_indices():
    scale = np.arange(1.0, 5.0)[:, None]
    calls = []

    def told(X, idx):
        calls.append(idx)
        return X * scale[np.asarray(idx)]

    op = FunctionOperator(told, (2, 2), batch_size=4, vectorized=True, pass_indices=True)
    np.testing.assert_array_equal(op.matvec(np.ones((2, 2)), np.array([3, 1])), [[4, 4], [2, 2]])
    np.testing.assert_array_equal(op.matvec(np.ones((4, 2)))[:, 0], [1, 2, 3, 4])
    assert calls[1].dtype == np.int64  # no indices: 0..k-1, as int64

    def untold(X):
        calls.append(X.shape)
        return X * scale

    op = FunctionOperator(untold, (2, 2), batch_size=4, vectorized=True)
    out = op.matvec(np.ones((2, 2), dtype=np.float32), np.array([2, 0]))
    assert out.dtype == np.float32 and calls[-1] == (4, 2)
    np.testing.assert_array_equal(out, [[3, 3], [1, 1]])
    np.testing.assert_array_equal(op.matvec(np.ones((4, 2)))[:, 1], [1, 2, 3, 4])
    t = op.matvec(torch.ones(1, 2, dtype=torch.float64), torch.tensor([3]))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), [[4.0, 4.0]])


def test_function_output_shape_checks():
    flat = FunctionOperator(lambda v: np.ones((3, 1)), (3, 3))  # a column per row: reshaped
    np.testing.assert_array_equal(flat.matvec(np.ones((2, 3))), np.ones((2, 3)))
    bad = FunctionOperator(lambda v: np.ones(4), (3, 3))
    with pytest.raises(
        ValueError, match=r"^the operator function returned shape \(4,\); expected \(3,\)\.$"
    ):
        bad.matvec(np.ones(3))
    # A list answer is made an array in the input's namespace.
    listy = FunctionOperator(lambda v: [1.0, 2.0, 3.0], (3, 3))
    np.testing.assert_array_equal(listy.matvec(np.ones((2, 3))), [[1, 2, 3], [1, 2, 3]])
    t = FunctionOperator(lambda v: v * 2, (3, 3)).matvec(torch.ones(2, 3, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32


def test_same_kind_returns_same_dtype_untouched():
    y = np.ones((1, 3))
    op = FunctionOperator(lambda v: y[0], (3, 3))
    out = op.matvec(np.ones((1, 3)))
    assert out.dtype == np.float64
    c128 = FunctionOperator(lambda v: np.ones(3, dtype=np.complex128), (3, 3))
    assert c128.matvec(np.ones((1, 3), dtype=np.complex64)).dtype == np.complex64


# --- identity, shifts, aslinearoperator ----------------------------------------------


def test_identity_operator():
    ident = IdentityOperator(4)
    assert ident.shape == (4, 4) and ident.batch_size is None and ident.hermitian
    X = RNG.standard_normal((2, 4))
    np.testing.assert_array_equal(ident.matvec(X), X)
    np.testing.assert_array_equal(ident.rmatvec(X), X)


def test_scalar_shifts():
    for shift in (2, np.float32(2.5), -1.0):
        op = ShiftedOperator(A3, shift)
        assert type(op.shift) is float and op.batch_size is None
        np.testing.assert_allclose(op.to_dense(), A3 + float(shift) * np.eye(3))
        # Row i of the adjoint's output is (A^T e_i)^T, row i of A: the rows give A back.
        np.testing.assert_allclose(op.rmatvec(np.eye(3)), A3 + float(shift) * np.eye(3))
    lam = 1.5 - 2.0j
    op = ShiftedOperator(C3, lam)
    assert type(op.shift) is complex
    Z = np.eye(3, dtype=np.complex128)
    dense = C3 + lam * np.eye(3)
    np.testing.assert_allclose(op.matvec(Z), Z @ dense.T)
    np.testing.assert_allclose(op.rmatvec(Z), Z @ dense.conj())  # rows of A^H x
    with pytest.raises(ValueError, match=r"^shift must be finite\.$"):
        ShiftedOperator(A3, complex(np.inf, 0.0))
    batch = ShiftedOperator(AS, 1.0)
    assert batch.batch_size == 4
    np.testing.assert_allclose(batch.matvec(np.ones((1, 3)), np.array([2])), [AS[2].sum(1) + 1])


def test_per_sample_shifts():
    lam = np.array([1.0, -2.0, 0.5, 3.0])
    op = ShiftedOperator(AS, lam)
    assert op.shift.dtype == np.float64 and op.batch_size == 4
    X = RNG.standard_normal((2, 3))
    idx = np.array([3, 1])
    expected = np.einsum("bij,bj->bi", AS[idx], X) + lam[idx, None] * X
    np.testing.assert_allclose(op.matvec(X, idx), expected)
    expected_h = np.einsum("bji,bj->bi", AS[idx], X) + lam[idx, None] * X
    np.testing.assert_allclose(op.rmatvec(X, idx), expected_h)
    full = RNG.standard_normal((4, 3))
    np.testing.assert_allclose(
        op.rmatvec(full), np.einsum("bji,bj->bi", AS, full) + lam[:, None] * full
    )
    # Integer shifts become float64; complex per-sample shifts are conjugated in A^H.
    assert ShiftedOperator(AS, np.arange(4)).shift.dtype == np.float64
    clam = np.array([1j, 2.0, -1j, 0.5])
    cop = ShiftedOperator(AS.astype(np.complex128), clam)
    assert cop.shift.dtype == np.complex128
    Z = full.astype(np.complex128)
    np.testing.assert_allclose(
        cop.rmatvec(Z, np.array([0, 1, 2, 3])),
        np.einsum("bji,bj->bi", AS, Z) + np.conj(clam)[:, None] * Z,
    )
    np.testing.assert_allclose(
        cop.rmatvec(Z[:2], np.array([2, 0])),
        np.einsum("bji,bj->bi", AS[[2, 0]], Z[:2]) + np.conj(clam[[2, 0]])[:, None] * Z[:2],
    )
    # A shared operator with per-sample shifts; torch indices and rows.
    shared = ShiftedOperator(A3, lam)
    out = ShiftedOperator(torch.from_numpy(A3), lam).rmatvec(
        torch.from_numpy(X), torch.tensor([0, 3])
    )
    np.testing.assert_allclose(out.numpy(), X @ A3 + lam[[0, 3], None] * X)
    np.testing.assert_allclose(shared.matvec(X, np.array([0, 3])), X @ A3.T + lam[[0, 3], None] * X)
    with pytest.raises(ValueError, match=r"^shift has 3 entries but the operator has 4 samples\.$"):
        ShiftedOperator(AS, np.ones(3))
    with pytest.raises(ValueError, match=r"^shift must be a scalar or shape \(B,\); got \(\)\.$"):
        ShiftedOperator(AS, np.array(1.0))  # 0-d array: neither scalar nor (B,)
    with pytest.raises(ValueError, match=r"^shift must be finite\.$"):
        ShiftedOperator(A3, np.array([1.0, np.nan]))


def test_aslinearoperator_passes_every_option_to_function_operators():
    def f(X, idx):
        return X

    op = aslinearoperator(
        f, shape=(3, 3), dtype=np.float32, batch_size=2, vectorized=True, pass_indices=True
    )
    assert isinstance(op, FunctionOperator) and op.function is f
    assert op.shape == (3, 3) and op.dtype == np.float32 and op.batch_size == 2
    assert op.vectorized is True and op.pass_indices is True
    plain = aslinearoperator(lambda v: v, shape=(3, 3))
    assert plain.vectorized is False and plain.pass_indices is False and plain.batch_size is None
    assert plain.dtype is None
    m = aslinearoperator(np.matrix(A3))
    assert isinstance(m, DenseOperator) and type(m.matrix) is np.ndarray
    assert isinstance(aslinearoperator(scipy.sparse.csr_array(A3)), ScipyOperator)
    assert isinstance(aslinearoperator(sla.aslinearoperator(A3)), ScipyOperator)
    assert isinstance(aslinearoperator(torch.from_numpy(A3)), DenseOperator)
    tup = aslinearoperator(((1.0, 0.0), (0.0, 2.0)))
    assert isinstance(tup, DenseOperator)
    np.testing.assert_array_equal(tup.matvec(np.ones(2)), [1.0, 2.0])
    with pytest.raises(
        TypeError, match=r"^aslinearoperator needs shape=\(n, n\) to wrap a callable\.$"
    ):
        aslinearoperator(lambda v: v)
    with pytest.raises(
        TypeError,
        match=r"^cannot make a linear operator from int; pass an array \(n, n\) or \(B, n, n\), "
        r"a scipy sparse matrix or LinearOperator, or a callable with shape=\.$",
    ):
        aslinearoperator(3)


# --- second pass: survivors of the first run -----------------------------------------


def test_a_column_of_two_is_one_vector():
    # n = 2: the column (2, 1) is one vector (scipy's convention), not two rows of one.
    op = DenseOperator(A3[:2, :2])
    out = op.matvec(np.array([[1.0], [2.0]]))
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out[:, 0], A3[:2, :2] @ [1.0, 2.0])


def test_hermitian_batched_subclass_keeps_the_sample_numbers_in_rmatvec():
    class Scaled(LinearOperator):
        hermitian = True

        def __init__(self):
            super().__init__((2, 2), batch_size=3)

        def _matvec(self, x, indices):
            idx = np.arange(x.shape[0]) if indices is None else np.asarray(indices)
            return x * (idx[:, None] + 1.0)

    op = Scaled()
    X = np.ones((2, 2))
    np.testing.assert_array_equal(op.rmatvec(X, np.array([2, 0])), [[3.0, 3.0], [1.0, 1.0]])


def test_hermitian_function_operator_subclass_uses_its_products_as_adjoint():
    # The no-adjoint error says "or mark it hermitian": a subclass that does gets
    # rmatvec = matvec, with the sample numbers kept.
    class HermitianFunction(FunctionOperator):
        hermitian = True

    op = HermitianFunction(
        lambda X, idx: X * (np.asarray(idx)[:, None] + 1.0),
        (2, 2),
        batch_size=3,
        vectorized=True,
        pass_indices=True,
    )
    np.testing.assert_array_equal(
        op.rmatvec(np.ones((2, 2)), np.array([2, 1])), [[3.0, 3.0], [2.0, 2.0]]
    )


def test_function_adjoint_gets_the_sample_numbers():
    f = FunctionOperator(
        lambda v, i: v * 0.0,
        (2, 2),
        batch_size=3,
        pass_indices=True,
        rmatvec=lambda v, i: v * (i + 1.0),
    )
    np.testing.assert_array_equal(f.rmatvec(np.ones((2, 2)), np.array([2, 0])), [[3, 3], [1, 1]])


def test_indices_seen_by_callables_are_int64_in_the_rows_namespace():
    seen = []

    def record(X, idx):
        seen.append(idx)
        return X

    shared = FunctionOperator(record, (3, 3), vectorized=True, pass_indices=True)
    X = np.ones((3, 4))
    shared.matmat(X)
    # A shared operator: the rows are just k vectors, numbered 0..k-1 (no sample numbers),
    # whether called directly or through scipy.
    np.testing.assert_array_equal(seen[-1], np.arange(4))
    shared.to_scipy().matmat(X)
    np.testing.assert_array_equal(seen[-1], np.arange(4))
    one = FunctionOperator(record, (3, 3), batch_size=1, vectorized=True, pass_indices=True)
    one.matmat(torch.ones(3, 2, dtype=torch.float64))
    idx = seen[-1]
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64
    np.testing.assert_array_equal(idx.numpy(), [0, 0])  # a batch of one: sample 0
    one.matmat(np.ones((3, 2)))
    assert seen[-1].dtype == np.int64


def test_shifted_shared_operator_is_called_as_shared():
    seen = []

    def record(X, idx):
        seen.append(np.asarray(idx).tolist())
        return X @ A3.T

    inner = FunctionOperator(record, (3, 3), vectorized=True, pass_indices=True)
    lam = np.array([1.0, 2.0, 3.0, 4.0])
    op = ShiftedOperator(inner, lam)
    X = RNG.standard_normal((2, 3))
    np.testing.assert_allclose(op.matvec(X, np.array([3, 1])), X @ A3.T + lam[[3, 1], None] * X)
    assert seen[-1] == [0, 1]  # the shared operator never sees sample numbers
    adj = FunctionOperator(record, (3, 3), vectorized=True, pass_indices=True, rmatvec=record)
    ShiftedOperator(adj, lam).rmatvec(X, np.array([3, 1]))
    assert seen[-1] == [0, 1]


def test_shifts_keep_the_rows_dtype():
    x32 = np.ones((2, 3), dtype=np.float32)
    lam = np.array([1.0, 2.0, 3.0, 4.0])
    per_sample = ShiftedOperator(AS.astype(np.float32), lam)
    assert per_sample.matvec(x32, np.array([0, 3])).dtype == np.float32
    assert per_sample.rmatvec(x32, np.array([0, 3])).dtype == np.float32
    in_torch = ShiftedOperator(torch.from_numpy(AS.astype(np.float32)), lam)
    t = in_torch.rmatvec(torch.from_numpy(x32), torch.tensor([1, 2]))
    assert t.dtype == torch.float32
    # A real scalar shift keeps real products real (the adjoint too).
    scalar = ShiftedOperator(A3, 1.0)
    assert scalar.dtype == np.float64
    assert scalar.rmatvec(np.ones((1, 3))).dtype == np.float64
    assert ShiftedOperator(torch.from_numpy(A3), 1.0).dtype == torch.float64


def test_torch_products_are_cast_in_torch():
    op = FunctionOperator(lambda v: v.double() * 2, (3, 3))
    out = op.matvec(torch.ones(2, 3, dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    bad = FunctionOperator(lambda v: v * (1 + 1j), (3, 3))
    with pytest.raises(TypeError, match=r"returned torch\.complex64 values for a torch\.float32"):
        bad.matvec(torch.ones(1, 3, dtype=torch.float32))


def test_to_scipy_batches_columns_into_one_call():
    calls = []

    def forward(X):
        calls.append(("A", X.shape[0]))
        return X @ A3.T

    def backward(X):
        calls.append(("AH", X.shape[0]))
        return X @ A3

    op = FunctionOperator(forward, (3, 3), vectorized=True, rmatvec=backward)
    lin = op.to_scipy()
    V = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(lin.matmat(V), A3 @ V)
    np.testing.assert_allclose(lin.rmatmat(V), A3.T @ V)
    # One operator call per block of columns (a network evaluated once on the batch).
    assert calls == [("A", 4), ("AH", 4)]
    no_adjoint = FunctionOperator(forward, (3, 3), vectorized=True).to_scipy()
    # No adjoint given: scipy's operator has none either, and says how to give one.
    with pytest.raises(NotImplementedError, match=r"has no adjoint \(rmatvec\)"):
        no_adjoint.rmatvec(np.ones(3))
    assert calls == [("A", 4), ("AH", 4)]


def test_to_scipy_operator_passes_like():
    f = FunctionOperator(lambda v: v * 2, (3, 3))
    assert to_scipy_operator(f, like=np.zeros(1, dtype=np.float32)).dtype == np.float32
    assert to_scipy_operator(f, like=torch.zeros(1, dtype=torch.float32)).dtype == np.float32


def test_scipy_operator_of_unknown_dtype_and_of_size_one():
    class Untyped(sla.LinearOperator):
        def __init__(self):
            super().__init__(None, (2, 2))

        def _matvec(self, x):
            return 2.0 * np.asarray(x)

    assert ScipyOperator(Untyped()).dtype is None
    one = ScipyOperator(scipy.sparse.csr_array(np.array([[3.0]])))
    np.testing.assert_array_equal(one.matvec(np.array([[1.0], [2.0]])), [[3.0], [6.0]])


def test_vectorized_batched_function_with_permuted_full_indices() -> None:
    # Row r of a batched callable is sample r: indices [1, 0] must give (A_1 x_0, A_0 x_1),
    # not the callable's rows in their own order (a bug found by mutation testing).
    scale = np.array([1.0, 2.0])
    op = FunctionOperator(lambda X: X * scale[:, None], (2, 2), batch_size=2, vectorized=True)
    x = np.array([[1.0, 1.0], [3.0, 3.0]])
    np.testing.assert_array_equal(op.matvec(x, np.array([1, 0])), [[2.0, 2.0], [3.0, 3.0]])
    np.testing.assert_array_equal(op.matvec(x, np.array([0, 1])), [[1.0, 1.0], [6.0, 6.0]])


def test_hermitian_function_operator_supports_adjoint_in_scipy() -> None:
    # The no-adjoint error tells users to mark the operator hermitian; doing so must make
    # supports_adjoint True and give scipy's rmatvec.
    class Hermitian(FunctionOperator):
        hermitian = True

    op = Hermitian(lambda v: 2 * v, (3, 3))
    assert op.supports_adjoint
    np.testing.assert_array_equal(op.to_scipy().rmatvec(np.ones(3)), [2.0, 2.0, 2.0])


def test_products_stay_on_the_inputs_device_under_another_torch_default_device():
    # torch.device("meta") as the default device (a user's torch.set_default_device): every
    # array an operator creates (index arrays, the zero-padded batch, shifts, the identity
    # of to_dense, the rows of to_scipy) must follow the input's device (CPU here), so the
    # products equal those without the context, bit for bit.
    AS_t = torch.from_numpy(AS[:3])
    X = torch.from_numpy(RNG.standard_normal((2, 3)))
    idx, first = torch.tensor([2, 0]), torch.tensor([0, 1])
    dense = DenseOperator(AS_t)
    padded = FunctionOperator(
        lambda Y: torch.einsum("kij,kj->ki", AS_t, Y), (3, 3), batch_size=3, vectorized=True
    )
    told = FunctionOperator(
        lambda Y, i: torch.einsum("kij,kj->ki", AS_t[i], Y),
        (3, 3),
        batch_size=3,
        vectorized=True,
        pass_indices=True,
    )
    rowwise = FunctionOperator(lambda y: (AS_t[0] @ y).numpy(), (3, 3))
    shifted = ShiftedOperator(dense, np.array([1.0, 2.0, 3.0]))
    like = torch.zeros(1, dtype=torch.float64)
    Y3 = torch.from_numpy(RNG.standard_normal((3, 3)))
    calls = [
        lambda: dense.matvec(X, idx),
        lambda: dense.matvec(X[0], 1),
        lambda: dense.rmatvec(X, idx),
        lambda: padded.matvec(X, idx),
        lambda: padded.matvec(X, first),  # the first k < B samples: padded too
        lambda: told.matvec(Y3),
        lambda: rowwise.matvec(X),
        lambda: shifted.matvec(X, idx),
        lambda: shifted.rmatvec(X, idx),
        lambda: dense.to_dense(like=like),
        lambda: torch.from_numpy(rowwise.to_scipy(like=like).matmat(np.eye(3))),
    ]
    expected = [call() for call in calls]
    with torch.device("meta"):
        results = [call() for call in calls]
    for got, want in zip(results, expected, strict=True):
        assert got.device == torch.device("cpu")
        assert torch.equal(got, want)
    # And they are the products asked for.
    np.testing.assert_allclose(expected[0].numpy(), np.einsum("kij,kj->ki", AS[[2, 0]], X.numpy()))
    np.testing.assert_allclose(expected[3].numpy(), expected[0].numpy(), rtol=1e-15)
    np.testing.assert_allclose(expected[4].numpy(), np.einsum("kij,kj->ki", AS[:2], X.numpy()))
    np.testing.assert_allclose(expected[9].numpy(), AS[:3])
