"""Mutation-killing tests for the core's internal modules (issue 8, item 2).

``krylovadv._system`` (a caller's ``(A, b, x0, M)`` as a batched system, with
scipy's input conventions), ``krylovadv._gmres_state``, ``krylovadv._results``
and ``krylovadv._start``.  The references are independent: scipy's own
``make_system`` for dtypes and shapes, exact hand-computed values, and
batch == loop.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator as ScipyLinearOperator
from scipy.sparse.linalg._isolve.utils import make_system as scipy_make_system

from krylovadv import _system
from krylovadv._gmres_state import Active, SampleState
from krylovadv._start import start_norms, start_vectors
from krylovadv.operators import DenseOperator, FunctionOperator, aslinearoperator
from krylovadv.status import SolverStatus

# ---------------------------------------------------------------- _system: as_array


def test_as_array_converts_lists_tuples_and_matrix_and_names_the_argument():
    for value in ([1.0, 2.0], (1.0, 2.0), np.matrix([[1.0, 2.0]])):
        a = _system.as_array(value, "b")
        assert type(a) is np.ndarray
        np.testing.assert_array_equal(a.ravel(), [1.0, 2.0])
    arr = np.arange(3.0)
    assert _system.as_array(arr, "b") is arr
    with pytest.raises(
        TypeError,
        match=r"^x0 must be an array \(numpy, torch\) or a list; got "
        r"dict\.$",
    ):
        _system.as_array({}, "x0")


# ---------------------------------------------------------------- _system: tolerances


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("bad", [None, "legacy"])
def test_check_tolerances_rejects_scipys_removed_values_naming_the_argument(name, bad):
    kwargs = {"rtol": 1e-5, "atol": 0.0, name: bad}
    with pytest.raises(ValueError) as info:
        _system.check_tolerances(**kwargs)
    assert str(info.value) == (
        f"{name} must be a real number >= 0; got {bad!r} (scipy's atol='legacy' "
        "and atol=None are gone: pass atol=0.0 for a purely relative test)."
    )


@pytest.mark.parametrize("name", ["rtol", "atol"])
def test_check_tolerances_errors_name_the_argument(name):
    kwargs = {"rtol": 1e-5, "atol": 0.0}
    kwargs[name] = [1.0]
    with pytest.raises(ValueError) as info:
        _system.check_tolerances(**kwargs)
    assert str(info.value) == f"{name} must be a real number >= 0; got [1.0]."
    assert isinstance(info.value.__cause__, TypeError)
    kwargs[name] = b"1e-3x"
    with pytest.raises(ValueError, match=rf"^{name} must be a real number >= 0; got b'1e-3x'\.$"):
        _system.check_tolerances(**kwargs)
    for bad in (-1e-300, float("nan"), -np.inf):
        kwargs[name] = bad
        with pytest.raises(ValueError) as info:
            _system.check_tolerances(**kwargs)
        assert str(info.value) == f"rtol and atol must be >= 0 and not NaN; got {name}={bad!r}."


def test_check_tolerances_returns_floats_in_order_and_allows_zero_and_inf():
    r, a = _system.check_tolerances(np.float32(0.25), 3)
    assert (r, a) == (0.25, 3.0) and type(r) is float and type(a) is float
    assert _system.check_tolerances(0, np.inf) == (0.0, np.inf)
    assert _system.check_tolerances(np.inf, 0) == (np.inf, 0.0)


def test_check_maxiter():
    assert _system.check_maxiter(None, 7) == 7
    assert _system.check_maxiter(1, 7) == 1
    assert _system.check_maxiter(np.int64(3), 7) == 3
    with pytest.raises(ValueError, match=r"^maxiter must be >= 1; got 0\.$"):
        _system.check_maxiter(0, 7)


def test_residual_targets_exact_values():
    b = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]])
    b_norm, tol = _system.residual_targets(np, b, 0.1, 0.01)
    np.testing.assert_array_equal(b_norm, [5.0, 0.0, 1e-3])
    np.testing.assert_allclose(tol, [0.5, 0.01, 0.01], rtol=1e-15)
    assert b_norm.dtype == np.float64
    # rtol = inf with b = 0: target atol, not NaN (inf * 0), and no RuntimeWarning about it.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, tol = _system.residual_targets(np, b, np.inf, 0.0)
    assert tol[1] == 0.0 and np.isinf(tol[0])
    # float32 input: the norms are float64 on the host.
    b_norm, _ = _system.residual_targets(np, b.astype(np.float32), 0.0, 0.0)
    assert b_norm.dtype == np.float64


# ---------------------------------------------------------------- _system: make_system


@pytest.mark.parametrize(
    "a_dtype", [np.int64, np.bool_, np.float16, np.float32, np.float64, np.complex64]
)
@pytest.mark.parametrize(
    "b_dtype",
    [np.int32, np.bool_, np.float16, np.float32, np.float64, np.complex64, np.complex128],
)
def test_make_system_dtype_is_scipys(a_dtype, b_dtype):
    A = (np.eye(3) * 2).astype(a_dtype)
    b = np.ones(3).astype(b_dtype)
    expected = scipy_make_system(A, None, None, b)[3].dtype
    system = _system.make_system(A, b, None, None)
    assert system.b.dtype == expected and system.x.dtype == expected
    assert system.single and system.b.shape == (1, 3)
    # A dense operator is converted once to the working dtype.
    assert system.op.matrix.dtype == expected
    np.testing.assert_array_equal(system.op.matvec(system.b, None), system.b @ A.astype(expected).T)


def test_make_system_x0_dtypes_are_upcast():
    A = np.eye(2, dtype=np.float32)
    b = np.ones(2, dtype=np.float32)
    for x0 in (np.array([1, 2]), np.array([True, False]), np.array([1, 2], np.float16)):
        s = _system.make_system(A, b, x0, None)
        assert s.x.dtype == np.float32
        np.testing.assert_array_equal(s.x, [x0.astype(np.float32)])
    with pytest.raises(TypeError, match=r"x0 is complex \(complex64\) but the system is real"):
        _system.make_system(A, b, np.ones(2, np.complex64), None)
    with pytest.raises(TypeError, match="x0"):
        _system.make_system(A, b, np.array(["a", "b"]), None)
    with pytest.raises(TypeError, match=r"b is complex|b"):
        _system.make_system(A, np.array(["a", "b"]), None, None)


def test_make_system_complex_b_with_real_operator_is_complex():
    A = np.eye(2)
    b = np.array([1j, 2.0])
    s = _system.make_system(A, b, None, None)
    assert s.b.dtype == np.complex128
    np.testing.assert_array_equal(s.b, [b])


def test_make_system_column_vector_is_one_system_as_in_scipy():
    A = np.diag([1.0, 2.0, 3.0])
    b = np.array([[1.0], [2.0], [3.0]])
    s = _system.make_system(A, b, None, None)
    scipy_b = scipy_make_system(A, None, None, b)[3]
    assert s.single is True
    assert s.b.shape == (1, 3)
    np.testing.assert_array_equal(s.b[0], scipy_b)
    # scipy accepts x0 of shape (n,) or (n, 1) for a column b
    for x0 in (np.ones(3), np.ones((3, 1))):
        s = _system.make_system(A, b, x0, None)
        np.testing.assert_array_equal(s.x, np.ones((1, 3)))
        assert s.x0_nonzero.tolist() == [True]
    with pytest.raises(ValueError, match=r"^x0 has shape \(1, 3\) but b has shape \(3, 1\)\.$"):
        _system.make_system(A, b, np.ones((1, 3)), None)


def test_make_system_batch_layout_rule():
    A = np.diag([1.0, 2.0, 3.0])
    # (B, n) is a batch
    b = np.arange(6.0).reshape(2, 3)
    s = _system.make_system(A, b, None, None)
    assert s.single is False and s.b.shape == (2, 3)
    np.testing.assert_array_equal(s.b, b)
    np.testing.assert_array_equal(s.x, np.zeros((2, 3)))
    assert s.x0_nonzero.tolist() == [False, False]
    # a batch does not take a single x0
    with pytest.raises(ValueError, match=r"x0 has shape \(3,\) but b has shape \(2, 3\)"):
        _system.make_system(A, b, np.ones(3), None)
    # (3, 3) with n = 3 is a batch of three, not a column
    s = _system.make_system(A, np.ones((3, 3)), None, None)
    assert s.single is False and s.b.shape == (3, 3)
    # n = 1, b (1, 1): a batch of one
    s = _system.make_system(np.array([[2.0]]), np.array([[4.0]]), None, None)
    assert s.single is False and s.b.shape == (1, 1)
    # (n, 1) with a batched operator is not a column vector
    batched = DenseOperator(np.stack([np.eye(3)] * 3))
    with pytest.raises(
        ValueError,
        match=r"^A has shape \(3, 3\) but b has shape \(3, 1\); "
        r"A must be \(1, 1\)\.$",
    ):
        _system.make_system(batched, np.ones((3, 1)), None, None)
    # (n, 2) is neither
    with pytest.raises(ValueError, match=r"A has shape \(3, 3\) but b has shape \(3, 2\)"):
        _system.make_system(A, np.ones((3, 2)), None, None)
    # column detection: exact predicate
    op = aslinearoperator(A)
    assert _system._column_vector((3, 1), op)
    assert not _system._column_vector((2, 3), op)
    assert not _system._column_vector((3,), op)
    assert not _system._column_vector((1, 3), op)
    assert not _system._column_vector((3, 1, 1), op)
    one = aslinearoperator(np.eye(1))
    assert not _system._column_vector((1, 1), one)


def test_make_system_operator_batch_mismatch_names_both():
    batched = DenseOperator(np.stack([np.eye(2)] * 3))
    with pytest.raises(
        ValueError,
        match=r"^A holds 3 operators but b has 2 rows "
        r"\(shape \(2, 2\)\)\.$",
    ):
        _system.make_system(batched, np.ones((2, 2)), None, None)
    s = _system.make_system(batched, np.ones((3, 2)), None, None)
    assert s.b.shape == (3, 2)
    Mb = DenseOperator(np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError, match=r"^M holds 2 operators but b has 3 rows"):
        _system.make_system(batched, np.ones((3, 2)), None, Mb)
    with pytest.raises(
        ValueError,
        match=r"^M has shape \(3, 3\) but b has shape \(3, 2\); "
        r"M must be \(2, 2\)\.$",
    ):
        _system.make_system(batched, np.ones((3, 2)), None, np.eye(3))


def test_make_system_errors():
    A = np.eye(2)
    with pytest.raises(ValueError, match=r"^b is empty \(n = 0\)\.$"):
        _system.make_system(np.zeros((0, 0)), np.zeros(0), None, None)
    with pytest.raises(ValueError, match=r"^b contains NaN or Inf in sample\(s\) \[1\]\.$"):
        _system.make_system(A, np.array([[1.0, 2.0], [np.nan, 0.0]]), None, None)
    with pytest.raises(ValueError, match=r"^x0 contains NaN or Inf in sample\(s\) \[0, 2\]\.$"):
        _system.make_system(A, np.ones((3, 2)), np.array([[np.inf, 0], [0, 0], [0, -np.inf]]), None)
    with pytest.raises(ValueError, match=r"^x0 must be an array, None or 'Mb'; got 'mb'\.$"):
        _system.make_system(A, np.ones(2), "mb", None)
    with pytest.raises(
        ValueError, match=r"^b must have shape \(n,\) or \(B, n\); got shape \(1, 2, 2\)"
    ):
        _system.make_system(A, np.ones((1, 2, 2)), None, None)
    with pytest.raises(TypeError, match=r"^b must be an array"):
        _system.make_system(A, "12", None, None)
    with pytest.raises(TypeError, match=r"^x0 must be an array"):
        _system.make_system(A, np.ones(2), 3.0, None)


def test_make_system_x0_is_a_private_copy_and_nonzero_mask_per_sample():
    A = np.eye(2)
    x0 = np.array([[0.0, 0.0], [0.0, 1.0]])
    s = _system.make_system(A, np.ones((2, 2)), x0, None)
    assert s.x0_nonzero.tolist() == [False, True]
    s.x[1, 1] = 5.0
    assert x0[1, 1] == 1.0
    b = np.ones((2, 2))
    s = _system.make_system(A, b, "Mb", None)
    s.x[0, 0] = 7.0
    assert b[0, 0] == 1.0
    np.testing.assert_array_equal(s.x[1], [1.0, 1.0])
    assert s.x0_nonzero.tolist() == [True, True]


def test_make_system_x0_Mb_and_psolve():
    A = np.diag([2.0, 4.0])
    b = np.array([[2.0, 4.0], [0.0, 8.0]])
    M = np.diag([0.5, 0.25])
    s = _system.make_system(A, b, "Mb", M)
    np.testing.assert_allclose(s.x, [[1.0, 1.0], [0.0, 2.0]])
    assert s.x0_nonzero.tolist() == [True, True]
    # scipy: an A with psolve is preconditioned by it when M is None
    op = ScipyLinearOperator((2, 2), matvec=lambda v: A @ v, dtype=np.float64)
    op.psolve = lambda v: 3.0 * v
    s = _system.make_system(op, b, "Mb", None)
    assert s.precond is not None
    np.testing.assert_allclose(s.x, 3.0 * b)
    # M given wins over psolve
    s = _system.make_system(op, b, "Mb", M)
    np.testing.assert_allclose(s.x, [[1.0, 1.0], [0.0, 2.0]])
    # no M, no psolve: x0 = b, and precond is None
    s = _system.make_system(A, b, "Mb", None)
    assert s.precond is None
    np.testing.assert_array_equal(s.x, b)
    # a non-callable psolve attribute is not a preconditioner
    op2 = ScipyLinearOperator((2, 2), matvec=lambda v: A @ v, dtype=np.float64)
    op2.psolve = 3.0
    assert _system.make_system(op2, b, None, None).precond is None
    # a complex M b for a real system is refused, naming "M b"
    with pytest.raises(TypeError, match=r"^M b is complex \(complex128\) but the system is real"):
        _system.make_system(A, b, "Mb", np.eye(2) * 1j)


def test_make_system_list_and_matrix_inputs_as_scipy():
    A = [[2.0, 0.0], [0.0, 4.0]]
    s = _system.make_system(np.asarray(A), [1, 2], [0, 1], None)
    assert s.b.dtype == np.float64 and s.single
    np.testing.assert_array_equal(s.b, [[1.0, 2.0]])
    np.testing.assert_array_equal(s.x, [[0.0, 1.0]])
    s = _system.make_system(np.asarray(A), np.matrix([[1.0], [2.0]]), None, None)
    assert s.single and s.b.shape == (1, 2)


def test_make_system_unknown_operator_dtype_keeps_bs():
    f = FunctionOperator(lambda v: v, (2, 2))
    s = _system.make_system(f, np.ones(2, np.float32), None, None)
    assert s.b.dtype == np.float32
    s = _system.make_system(f, np.ones(2, np.int8), None, None)
    assert s.b.dtype == np.float64


def test_make_system_torch_float32_stays_on_its_namespace():
    torch = pytest.importorskip("torch")
    A = torch.eye(2, dtype=torch.float32)
    b = torch.ones(2, 2, dtype=torch.float32)
    s = _system.make_system(A, b, None, None)
    assert s.b.dtype == torch.float32 and isinstance(s.x, torch.Tensor)
    assert s.x.dtype == torch.float32
    bi = torch.ones(2, dtype=torch.int64)
    s = _system.make_system(A, bi, torch.ones(2, dtype=torch.int32), None)
    assert s.b.dtype == torch.float64 and s.x.dtype == torch.float64
    b16 = torch.ones(2, dtype=torch.float16)
    s = _system.make_system(A, b16, torch.ones(2, dtype=torch.float16), None)
    assert s.b.dtype == torch.float64 and s.x.dtype == torch.float64


@pytest.mark.parametrize("name", ["b", "x0"])
@pytest.mark.parametrize("bad", ["<U1", "object", "datetime64[s]"])
def test_make_system_unsupported_dtype_message_names_the_argument(name, bad):
    # Strings, objects and dates are neither upcast (as integers are) nor floating.
    arr = np.array(["1", "2"]).astype(bad) if bad != "datetime64[s]" else np.array([1, 2], bad)
    args = {"b": np.ones(2), "x0": None, name: arr}
    with pytest.raises(TypeError) as info:
        _system.make_system(np.eye(2), args["b"], args["x0"], None)
    assert str(info.value) == (
        f"{name} has dtype {arr.dtype}; krylovadv works in float32, float64, complex64 or "
        f"complex128. Convert it first, e.g. {name}.astype(float64) / {name}.double()."
    )


def test_make_system_keeps_an_operator_already_in_the_working_dtype():
    # "One conversion now": a matrix already in the working dtype is neither copied
    # nor wrapped again (a copy of a large dense A would double its memory).
    A = np.diag([1.0, 2.0])
    s = _system.make_system(A, np.ones(2), None, None)
    assert s.op.matrix is A
    op = DenseOperator(np.eye(2, dtype=np.float32))
    s = _system.make_system(op, np.ones(2, np.float32), None, None)
    assert s.op is op
    # and a conversion does not touch the caller's matrix
    s = _system.make_system(A, np.ones(2, np.complex64), None, None)
    assert s.op.matrix.dtype == np.complex128 and A.dtype == np.float64


def test_make_system_psolve_preconditioner_has_scipys_shape_and_dtype():
    op = ScipyLinearOperator((2, 2), matvec=lambda v: v, dtype=np.float32)
    op.psolve = lambda v: 2.0 * v
    b = np.ones(2, np.float32)
    _, scipy_M, _, _ = scipy_make_system(op, None, None, b)
    s = _system.make_system(op, b, None, None)
    assert s.precond.shape == scipy_M.shape == (2, 2)
    assert s.precond.dtype == scipy_M.dtype == np.float32
    np.testing.assert_array_equal(s.precond.matvec(np.array([[1.0, 3.0]]), None), [[2.0, 6.0]])


def test_make_system_x0_Mb_is_cast_to_the_working_dtype():
    # A float64 M applied to a float32 b gives float64 (numpy's promotion); x0 = M b
    # must come back in the system's float32, with M b's values.
    b = np.array([[1.0, 2.0]], np.float32)
    M = np.diag([0.5, 4.0])
    s = _system.make_system(np.eye(2, dtype=np.float32), b, "Mb", M)
    assert s.x.dtype == np.float32 and s.b.dtype == np.float32
    np.testing.assert_array_equal(s.x, [[0.5, 8.0]])
    # a complex x0 of a complex system keeps its imaginary part
    s = _system.make_system(np.eye(2), np.ones(2, np.complex128), np.array([1j, 2.0]), None)
    np.testing.assert_array_equal(s.x, [[1j, 2.0]])


def test_make_system_single_b_takes_x0_of_shape_n_or_n1_as_scipy():
    # scipy: for b of shape (n,), x0 may be (n,) or (n, 1); anything else is refused.
    A = np.eye(3)
    b = np.array([1.0, 2.0, 3.0])
    x0 = np.array([[1.0], [0.0], [2.0]])
    expected = scipy_make_system(A, None, x0, b)[2]
    s = _system.make_system(A, b, x0, None)
    np.testing.assert_array_equal(s.x, [expected])
    assert s.single and s.x0_nonzero.tolist() == [True]
    for bad in ((3, 2), (1, 3), (2, 3)):
        with pytest.raises(ValueError, match=r"incompatible"):
            scipy_make_system(A, None, np.ones(bad), b)
        with pytest.raises(
            ValueError, match=rf"^x0 has shape \({bad[0]}, {bad[1]}\) but b has shape \(3,\)\.$"
        ):
            _system.make_system(A, b, np.ones(bad), None)


def test_make_system_x0_nonzero_is_per_row_and_xp_is_bs():
    from array_api_compat import array_namespace

    A = np.eye(2)
    b = np.ones((3, 2))
    x0 = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    s = _system.make_system(A, b, x0, None)
    assert s.x0_nonzero.tolist() == [False, True, False]
    assert type(s.x0_nonzero) is np.ndarray and s.x0_nonzero.dtype == bool
    assert s.xp is array_namespace(b)


def test_make_system_torch_column_vector_and_namespace():
    torch = pytest.importorskip("torch")
    from array_api_compat import array_namespace

    A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    b = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    s = _system.make_system(A, b, None, None)
    assert s.single and tuple(s.b.shape) == (1, 3)
    assert s.b.tolist() == [[1.0, 2.0, 3.0]]
    assert s.xp is array_namespace(b)


def test_make_system_start_lands_on_bs_device_not_the_default_one():
    # A caller who set torch's default device (e.g. torch.set_default_device("cuda")) still
    # gets x on b's device; the "meta" device stands in for a GPU on this CPU-only machine.
    torch = pytest.importorskip("torch")
    A = torch.eye(2, dtype=torch.float64, device="cpu")
    b = torch.ones(2, 2, dtype=torch.float64, device="cpu")
    with torch.device("meta"):
        s = _system.make_system(A, b, None, None)
    assert s.x.device == b.device and s.x.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_make_system_x0_from_another_array_library_is_refused_naming_it():
    # Bug found by mutation testing: a numpy x0 for a torch b (or the reverse) used to fail
    # with "x0 has dtype float32; krylovadv works in float32, ..." or numpy's own dtype error.
    torch = pytest.importorskip("torch")
    from krylovadv import gmres

    cases = [
        (
            np.eye(2),
            np.ones(2),
            torch.ones(2, dtype=torch.float64),
            "torch.Tensor",
            "numpy.ndarray",
        ),
        (torch.eye(2), torch.ones(2), np.ones(2, np.float32), "numpy.ndarray", "torch.Tensor"),
    ]
    for A, b, x0, x0_kind, b_kind in cases:
        message = (
            f"x0 is a {x0_kind} but b is a {b_kind}; give x0 as an array of b's library "
            "(convert it first)."
        )
        with pytest.raises(TypeError) as info:
            _system.make_system(A, b, x0, None)
        assert str(info.value) == message
        with pytest.raises(TypeError) as info:
            gmres(A, b, x0=x0)
        assert str(info.value) == message
    # a list x0 (scipy takes lists) joins b's library, device and working dtype
    b = torch.ones(2, 2, dtype=torch.float32)
    s = _system.make_system(torch.eye(2, dtype=torch.float32), b, [[1, 2], [0, 0]], None)
    assert isinstance(s.x, torch.Tensor) and s.x.dtype == torch.float32
    assert s.x.tolist() == [[1.0, 2.0], [0.0, 0.0]] and s.x0_nonzero.tolist() == [True, False]
    with torch.device("meta"):
        s = _system.make_system(torch.eye(2, dtype=torch.float64), b.double(), [[1, 2]] * 2, None)
    assert s.x.device == b.device


# ---------------------------------------------------------------- _system: keywords, callback


def test_reject_unexpected():
    with pytest.raises(TypeError) as info:
        _system.reject_unexpected("gmres", {"foo": 1, "tol": 1e-5})
    assert str(info.value) == (
        "gmres() got an unexpected keyword argument 'tol': scipy replaced it by rtol "
        "(deprecated in scipy 1.12, removed in 1.14); use rtol=... for the relative and "
        "atol=... for the absolute tolerance."
    )
    with pytest.raises(TypeError, match=r"^cg\(\) got an unexpected keyword argument 'foo'\.$"):
        _system.reject_unexpected("cg", {"foo": 1, "bar": 2})


def test_ask_callback():
    seen = []

    def cb(answer):
        def f(arg):
            seen.append(arg)
            return answer

        return f

    def check(mask, expected):
        assert type(mask) is np.ndarray and mask.dtype == bool
        assert mask.tolist() == expected

    check(_system.ask_callback(cb(None), "arg", 3), [False] * 3)
    assert seen == ["arg"]
    check(_system.ask_callback(cb(False), 0, 3), [False] * 3)
    check(_system.ask_callback(cb(True), 0, 3), [True] * 3)
    check(_system.ask_callback(cb(np.True_), 0, 2), [True, True])
    check(_system.ask_callback(cb(np.array(1.0)), 0, 2), [True, True])
    check(_system.ask_callback(cb(0), 0, 2), [False, False])
    check(_system.ask_callback(cb([1, 0, 1]), 0, 3), [True, False, True])
    m = _system.ask_callback(cb(np.array([0.0, 2.0])), 0, 2)
    assert m.dtype == bool and m.tolist() == [False, True]
    with pytest.raises(
        ValueError,
        match=r"^the callback returned a mask of shape \(2,\); "
        r"expected a bool or \(3,\)\.$",
    ):
        _system.ask_callback(cb([True, False]), 0, 3)
    torch = pytest.importorskip("torch")
    m = _system.ask_callback(cb(torch.tensor([True, False])), 0, 2)
    assert m.tolist() == [True, False]
    # a float mask still attached to autograd is read through a detached copy
    m = _system.ask_callback(cb(torch.tensor([1.0, 0.0], requires_grad=True)), 0, 2)
    assert type(m) is np.ndarray and m.dtype == bool and m.tolist() == [True, False]


# ---------------------------------------------------------------- _gmres_state


def test_active_of_indexes_nothing_when_all_take_part():
    a = Active.of(np, np.ones(3, bool), None)
    assert a.idx is None and a.idx_np.tolist() == [0, 1, 2]
    x = np.arange(6.0).reshape(3, 2)
    assert a.take(np, x) is x
    assert a.rows == slice(None)
    a = Active.of(np, np.array([True, False, True]), None)
    assert a.idx_np.tolist() == [0, 2]
    np.testing.assert_array_equal(a.idx, [0, 2])
    np.testing.assert_array_equal(a.take(np, x), x[[0, 2]])
    y = x.copy()
    y[a.rows, ...] = -1
    np.testing.assert_array_equal(y, [[-1, -1], [2, 3], [-1, -1]])
    a = Active.of(np, np.zeros(2, bool), None)
    assert a.idx is not None and a.idx_np.size == 0


def test_sample_state_new_and_stop():
    s = SampleState.new(3)
    assert s.status.tolist() == [int(SolverStatus.NOT_STARTED)] * 3
    assert s.status.dtype == np.int64
    assert s.running.tolist() == [False] * 3
    for name in ("iterations", "cycles", "matvecs", "stalled_cycles"):
        arr = getattr(s, name)
        assert arr.dtype == np.int64 and arr.tolist() == [0, 0, 0]
    for name in ("b_norm", "tol", "r_norm", "best_r_norm", "operator_norm", "ptol"):
        arr = getattr(s, name)
        assert arr.dtype == np.float64 and arr.tolist() == [0.0] * 3
    assert s.ptol_max_factor.tolist() == [1.0] * 3
    assert s.stop_requested.tolist() == [False] * 3
    assert s.history == [[], [], []]
    s.history[0].append(1.0)
    assert s.history[1] == []
    s.running[:] = True
    s.stop(np.array([False, True, False]), SolverStatus.CONVERGED)
    assert s.running.tolist() == [True, False, True]
    assert s.status.tolist() == [
        int(SolverStatus.NOT_STARTED),
        int(SolverStatus.CONVERGED),
        int(SolverStatus.NOT_STARTED),
    ]
    s.stop([2], SolverStatus.MAX_ITERATIONS)
    assert s.running.tolist() == [True, False, False]
    assert s.status[2] == int(SolverStatus.MAX_ITERATIONS)


# ---------------------------------------------------------------- _results


def _gmres_result(batched=True):
    from krylovadv.gmres import GMRESResult

    return GMRESResult(
        x=np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        converged=np.array([True, False, False]),
        status=np.array(
            [
                int(SolverStatus.CONVERGED),
                int(SolverStatus.MAX_ITERATIONS),
                int(SolverStatus.MAX_ITERATIONS),
            ]
        ),
        iterations=np.array([2, 7, 9]),
        cycles=np.array([1, 2, 3]),
        matvecs=np.array([3, 8, 10]),
        residual_norm=np.array([1e-9, 0.5, 0.25]),
        residual_history=[[1.0], [1.0, 0.5], [1.0, 0.25]],
        maxiter=np.array([11, 12, 13]),
        batched=batched,
    )


def test_result_batch_size_counts_and_scipy_pair():
    r = _gmres_result()
    assert r.batch_size == 3
    assert r.status_counts() == {"CONVERGED": 1, "MAX_ITERATIONS": 2}
    # scipy's info for gmres: 0 on convergence, else maxiter
    assert r.info.tolist() == [0, 12, 13]
    x, info = r
    assert x is r.x and info.tolist() == [0, 12, 13]
    assert len(r) == 2
    assert r[0] is r.x and r[1].tolist() == [0, 12, 13]
    assert r[-1].tolist() == [0, 12, 13]
    assert r[np.int64(0)] is r.x
    with pytest.raises(IndexError):
        r[2]
    for k in (slice(0, 1), 1.0, "x"):
        with pytest.raises(
            TypeError,
            match=r"^GMRESResult indexes like scipy's \(x, info\) pair "
            r"with 0 or 1; got .*Use result\.sample\(i\) for sample i of a batch\.$",
        ):
            r[k]
    assert r.message == [
        SolverStatus.CONVERGED.message,
        SolverStatus.MAX_ITERATIONS.message,
        SolverStatus.MAX_ITERATIONS.message,
    ]
    assert repr(r) == (
        "GMRESResult(batch=3, status={'CONVERGED': 1, 'MAX_ITERATIONS': 2}, iterations=[2, 7, 9])"
    )


def test_result_sample_gives_scalars_and_statuses():
    r = _gmres_result()
    s = r.sample(1)
    assert s.batched is False and s.batch_size == 1
    assert s.status is SolverStatus.MAX_ITERATIONS
    assert type(s.iterations) is int and s.iterations == 7
    assert type(s.converged) is bool and s.converged is False
    assert type(s.residual_norm) is float and s.residual_norm == 0.5
    assert s.cycles == 2 and s.matvecs == 8 and s.maxiter == 12
    np.testing.assert_array_equal(s.x, [3.0, 4.0])
    assert s.residual_history == [1.0, 0.5]
    assert s.info == 12 and type(s.info) is int
    assert s.message == SolverStatus.MAX_ITERATIONS.message
    assert repr(s) == "GMRESResult(status=MAX_ITERATIONS, iterations=7, residual_norm=5.000e-01)"
    s0 = r.sample(-3)
    assert s0.status is SolverStatus.CONVERGED and s0.info == 0 and s0.converged is True
    x, info = s0
    np.testing.assert_array_equal(x, [1.0, 2.0])
    assert info == 0
    # a single result is its own sample 0 / -1
    assert s.sample(0) is s and s.sample(-1) is s
    with pytest.raises(IndexError, match=r"^a single-problem result only has sample 0\.$"):
        s.sample(1)
    # None fields are left at their default
    from krylovadv.gmres import GMRESResult

    r2 = GMRESResult(**{**vars(r), "maxiter": None})
    assert r2.sample(2).maxiter is None


def test_cg_result_info_is_iterations_and_batch_equals_loop():
    from krylovadv import cg

    rng = np.random.default_rng(0)
    Q = rng.standard_normal((4, 4))
    A = Q @ Q.T + 4 * np.eye(4)
    b = rng.standard_normal((3, 4))
    r = cg(A, b, maxiter=1, rtol=1e-12)
    assert r.batch_size == 3
    assert r.info.tolist() == r.iterations.tolist() == [1, 1, 1]
    for i in range(3):
        alone = cg(A, b[i], maxiter=1, rtol=1e-12)
        s = r.sample(i)
        assert s.info == alone.info == 1
        np.testing.assert_allclose(s.x, alone.x, rtol=1e-12)
        assert s.status == alone.status


# ---------------------------------------------------------------- _start


def _draw(B, n):
    return np.arange(B * n, dtype=np.float64).reshape(B, n) + 1.0


def test_start_vectors_drawn_shapes_and_single():
    op = aslinearoperator(np.eye(3, dtype=np.float32))
    xp, v, single = start_vectors(op, None, None, _draw)
    assert single is True and v.shape == (1, 3) and v.dtype == np.float32
    np.testing.assert_array_equal(v, [[1, 2, 3]])
    xp, v, single = start_vectors(op, None, 2, _draw)
    assert single is False and v.shape == (2, 3)
    batched = DenseOperator(np.stack([np.eye(3)] * 4))
    xp, v, single = start_vectors(batched, None, None, _draw)
    assert single is False and v.shape == (4, 3)
    # an operator's batch wins over batch_size
    xp, v, single = start_vectors(batched, None, 2, _draw)
    assert v.shape == (4, 3)
    f = FunctionOperator(lambda x: x, (3, 3))
    xp, v, single = start_vectors(f, None, None, _draw)
    assert xp is not None and type(v) is np.ndarray and single
    np.testing.assert_array_equal(v, [[1, 2, 3]])


def test_start_vectors_torch_dense_takes_its_dtype():
    torch = pytest.importorskip("torch")
    op = aslinearoperator(torch.eye(2, dtype=torch.float32))
    xp, v, single = start_vectors(op, None, None, _draw)
    assert "torch" in xp.__name__ and single is True
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float32
    assert v.tolist() == [[1.0, 2.0]]


def test_start_vectors_given_and_errors():
    op = aslinearoperator(np.eye(3))
    v0 = np.array([1.0, 0.0, 2.0])
    xp, v, single = start_vectors(op, v0, None, _draw)
    assert "numpy" in xp.__name__
    assert single and v.shape == (1, 3)
    np.testing.assert_array_equal(v, [v0])
    _, v, single = start_vectors(op, np.ones((2, 3)), None, _draw)
    assert not single and v.shape == (2, 3)
    with pytest.raises(ValueError, match=r"^A has shape \(3, 3\) but v0 has shape \(2,\)\.$"):
        start_vectors(op, np.ones(2), None, _draw)
    with pytest.raises(ValueError, match=r"^v0 contains NaN or Inf\.$"):
        start_vectors(op, np.array([[1.0, 1, 1], [np.inf, 0, 0]]), None, _draw)


def test_start_norms():
    op = aslinearoperator(np.eye(2))
    np.testing.assert_allclose(start_norms(np, op, np.array([[3.0, 4.0], [0.0, 2.0]])), [5, 2])
    with pytest.raises(ValueError, match=r"^v0 must be nonzero for every sample\.$"):
        start_norms(np, op, np.array([[3.0, 4.0], [0.0, 0.0]]))
    batched = DenseOperator(np.stack([np.eye(2)] * 3))
    with pytest.raises(ValueError, match=r"^A holds 3 operators but there are 2 start vectors\.$"):
        start_norms(np, batched, np.ones((2, 2)))
    np.testing.assert_allclose(start_norms(np, batched, np.ones((3, 2))), [2**0.5] * 3)


def test_start_vectors_rejects_a_3d_v0_naming_it():
    op = aslinearoperator(np.eye(2))
    with pytest.raises(ValueError) as info:
        start_vectors(op, np.ones((1, 2, 2)), None, _draw)
    assert str(info.value) == (
        "v0 must have shape (n,) or (B, n); got shape (1, 2, 2). "
        "Flatten each sample to a vector first."
    )


def test_start_vectors_and_norms_keep_a_torch_v0_in_torch():
    torch = pytest.importorskip("torch")
    from array_api_compat import array_namespace

    f = FunctionOperator(lambda x: x, (2, 2))
    v0 = torch.tensor([3.0, 4.0], dtype=torch.float64)
    xp, v, single = start_vectors(f, v0, None, _draw)
    assert xp is array_namespace(v0) and single
    assert isinstance(v, torch.Tensor) and v.tolist() == [[3.0, 4.0]]
    norms = start_norms(xp, f, torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.float64))
    assert isinstance(norms, torch.Tensor) and norms.tolist() == [5.0, 2.0]
    with pytest.raises(ValueError, match=r"^v0 must be nonzero for every sample\.$"):
        start_norms(xp, f, torch.zeros(1, 2, dtype=torch.float64))
    # drawn starts of an operator that is not a matrix are numpy's
    xp, v, _ = start_vectors(f, None, None, _draw)
    assert xp is array_namespace(np.empty(0)) and type(v) is np.ndarray


def test_start_vectors_drawn_on_the_operators_device_not_the_default_one():
    # The drawn starts take a dense A's device even when torch's default device differs
    # ("meta" stands in for a GPU default on this CPU-only machine).
    torch = pytest.importorskip("torch")
    op = aslinearoperator(torch.eye(2, dtype=torch.float64, device="cpu"))
    with torch.device("meta"):
        _, v, _ = start_vectors(op, None, None, _draw)
    assert v.device == torch.device("cpu") and v.tolist() == [[1.0, 2.0]]


# ---------------------------------------------------------------- _symmetric


def test_row_norms_match_numpy_at_every_scale():
    from krylovadv._symmetric import row_norms

    for scale in (1.0, 1e-170, 1e-300, 1e170, 1e300):
        a = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]]) * scale
        got = row_norms(np, a)
        assert got.dtype == np.float64
        # (np.linalg.norm itself underflows at 1e-170: exact values instead)
        np.testing.assert_allclose(got, np.array([5.0, 0.0, 2**0.5]) * scale, rtol=1e-14)
    c = np.array([[3j, 4.0], [1 + 1j, 0.0]])
    np.testing.assert_allclose(row_norms(np, c), [5.0, 2**0.5], rtol=1e-15)
    c32 = (np.array([[3j, 4.0]]) * 1e-30).astype(np.complex64)
    np.testing.assert_allclose(row_norms(np, c32), [5e-30], rtol=1e-6)
    f32 = np.array([[3e-30, 4e-30]], dtype=np.float32)
    np.testing.assert_allclose(row_norms(np, f32), [5e-30], rtol=1e-6)
    torch = pytest.importorskip("torch")
    got = row_norms(torch, torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    assert type(got) is np.ndarray and got.tolist() == [5.0]


def test_dots_and_complex_dots():
    from krylovadv._symmetric import complex_dots, dots

    a = np.array([[1.0, 2.0], [3.0, -1.0]])
    b = np.array([[4.0, 5.0], [1.0, 1.0]])
    got = dots(np, a, b)
    assert got.dtype == np.float64 and got.tolist() == [14.0, 2.0]
    ac = np.array([[1j, 2.0]])
    bc = np.array([[1j, 1j]])
    # conj(a) . b = (-i)(i) + 2 i = 1 + 2i; real part 1
    assert dots(np, ac, bc).tolist() == [1.0]
    assert dots(np, a[:1], bc).tolist() == [0.0]  # 1*i + 2*i, real part 0
    np.testing.assert_array_equal(complex_dots(np, ac, bc), [1 + 2j])
    assert complex_dots(np, ac, bc).dtype == np.complex128
    assert dots(np, a.astype(np.float32), b.astype(np.float32)).dtype == np.float64
    torch = pytest.importorskip("torch")
    t = dots(torch, torch.tensor([[1j, 2.0]]), torch.tensor([[1j, 1j]]))
    assert type(t) is np.ndarray and t.dtype == np.float64 and t.tolist() == [1.0]


def test_rows_active_index_put_rows():
    from krylovadv._symmetric import active_index, put_rows, rows

    a = np.arange(6.0).reshape(3, 2)
    assert rows(np, a, None) is a
    np.testing.assert_array_equal(rows(np, a, np.array([2, 0])), a[[2, 0]])
    idx_np, idx = active_index(np, np.ones(3, bool), None)
    assert idx is None and idx_np.tolist() == [0, 1, 2]
    idx_np, idx = active_index(np, np.array([False, True, True]), None)
    assert idx_np.tolist() == [1, 2] and idx.tolist() == [1, 2]
    full = np.zeros((3, 2))
    put_rows(full, None, np.ones((3, 2)))
    assert full.tolist() == [[1, 1]] * 3
    put_rows(full, np.array([1]), np.array([[5.0, 6.0]]))
    assert full.tolist() == [[1, 1], [5, 6], [1, 1]]


def test_bookkeeping_judge_and_stagnation_exact():
    from krylovadv._symmetric import STAGNATION_RESTARTS, Bookkeeping

    eps = 1e-16
    book = Bookkeeping.start(5, eps)
    assert book.margin == 1.0 - 1e-8
    assert book.running.tolist() == [True] * 5
    assert book.residual_norm.tolist() == [np.inf] * 5 and book.best.tolist() == [np.inf] * 5
    assert book.iterations.dtype == np.int64 and book.matvecs.tolist() == [0] * 5
    assert book.history == [[]] * 5 and book.history[0] is not book.history[1]
    book.record(np.array([1, 3]), np.array([0.5, 0.25]))
    assert book.history == [[], [0.5], [], [0.25], []]
    assert type(book.history[1][0]) is float
    # converged at equality, non-finite, breakdown
    assert book.judge(0, 1.0, 1.0) is False and book.status[0] == SolverStatus.CONVERGED
    assert book.judge(1, np.nan, 1.0) is False and book.status[1] == SolverStatus.NON_FINITE
    book.best[2] = 2.0
    assert book.judge(2, 2.0 * (1 - 1e-9), 1.0, broke=True) is False
    assert book.status[2] == SolverStatus.BREAKDOWN
    # breakdown with progress is a restart
    book.best[3] = 2.0
    assert book.judge(3, 1.5, 1.0, broke=True) is True
    assert book.status[3] == SolverStatus.NOT_STARTED and book.best[3] == 1.5
    assert book.stalled[3] == 0
    # stagnation after STAGNATION_RESTARTS restarts without progress
    for k in range(1, STAGNATION_RESTARTS):
        assert book.judge(3, 1.5, 1.0) is True
        assert book.stalled[3] == k
    assert book.judge(3, 1.5, 1.0) is False and book.status[3] == SolverStatus.STAGNATION
    assert book.running.tolist() == [False, False, False, False, True]
    # progress resets the count
    book.best[4] = 1.0
    book.stalled[4] = 2
    assert book.stagnant(4, 0.5) is False and book.stalled[4] == 0 and book.best[4] == 0.5


def _problem(A, b, x0=None, rtol=1e-5, atol=0.0):
    from krylovadv._symmetric import setup_problem

    return setup_problem(A, b, x0, None, rtol, atol)


def test_setup_problem_and_initial_residual_exact():
    from krylovadv._symmetric import Bookkeeping, initial_residual

    A = np.diag([1.0, 2.0])
    b = np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    x0 = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0], [0.0, 0.0]])
    p = _problem(A, b, x0, rtol=0.1, atol=0.0)
    assert p.batch == 4 and p.n == 2 and p.dtype == np.float64 and p.device == "cpu"
    np.testing.assert_allclose(p.b_norm, [5**0.5, 0.0, 5**0.5, 5.0])
    np.testing.assert_allclose(p.tol, [0.1 * 5**0.5, 0.0, 0.1 * 5**0.5, 0.5])
    book = Bookkeeping.start(4, 2.2e-16)
    r = initial_residual(p, book)
    # b = 0 sample: x = 0, CONVERGED, no product
    np.testing.assert_array_equal(p.x[1], [0.0, 0.0])
    assert p.x0_nonzero.tolist() == [False, False, True, False]
    np.testing.assert_allclose(r, [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert book.matvecs.tolist() == [0, 0, 1, 0]
    np.testing.assert_allclose(book.residual_norm, [5**0.5, 0.0, 0.0, 5.0])
    np.testing.assert_allclose(book.best, book.residual_norm)
    assert book.status.tolist() == [
        int(SolverStatus.NOT_STARTED),
        int(SolverStatus.CONVERGED),
        int(SolverStatus.CONVERGED),
        int(SolverStatus.NOT_STARTED),
    ]
    # b is not modified through r
    assert p.b[0].tolist() == [1.0, 2.0]
    # non-finite r0 from an overflowing product
    p = _problem(np.diag([1e308, 1.0]), np.array([1.0, 1.0]), np.array([1e308, 0.0]))
    book = Bookkeeping.start(1, 2.2e-16)
    initial_residual(p, book)
    assert book.status.tolist() == [int(SolverStatus.NON_FINITE)]


def test_finish_adds_true_residuals_for_stale_samples():
    from krylovadv._symmetric import Bookkeeping, finish, precondition, true_residual

    A = np.diag([1.0, 2.0])
    b = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 1.0]])
    p = _problem(A, b)
    assert precondition(p, b, None) is b
    x = np.array([[1.0, 1.0], [3.0, 2.0], [0.0, 0.0]])
    r, norms = true_residual(p, x, np.array([0, 2]), np.array([0, 2]))
    np.testing.assert_allclose(r, [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(norms, [0.0, 2**0.5])
    book = Bookkeeping.start(3, 2.2e-16)
    book.status[:] = [
        int(SolverStatus.CONVERGED),
        int(SolverStatus.NON_FINITE),
        int(SolverStatus.MAX_ITERATIONS),
    ]
    book.residual_norm[:] = [7.0, 7.0, 7.0]
    book.history[0].append(3.0)
    out = finish(p, book, x, np.array([False, False, True]))
    # sample 0 stale -> true residual computed; 1 non-finite and 2 true: untouched
    np.testing.assert_allclose(out["residual_norm"], [0.0, 7.0, 7.0])
    assert out["matvecs"].tolist() == [1, 0, 0]
    assert out["converged"].tolist() == [True, False, False]
    assert out["x"] is x and out["iterations"] is book.iterations
    assert out["status"] is book.status
    assert [h.tolist() for h in out["residual_history"]] == [[3.0], [], []]
    assert all(type(h) is np.ndarray for h in out["residual_history"])
    # preconditioned
    from krylovadv._symmetric import setup_problem

    p = setup_problem(A, b, None, np.diag([2.0, 3.0]), 1e-5, 0.0)
    np.testing.assert_allclose(precondition(p, b, None), b * [2.0, 3.0])
