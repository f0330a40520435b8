"""Tests that kill the mutants mutmut left alive in krylovadv/_backend.py.

The primitives are checked one by one against numpy / exact answers, on numpy
and on torch (CPU) arrays: each solver relies on them, so a wrong dtype rule or a
lost rescaling shows up here first, not as a puzzling solver failure.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from array_api_compat import array_namespace

from krylovadv import _backend
from krylovadv._backend import (
    as_batch,
    batched_dot,
    batched_norm,
    check_floating,
    check_real_floating,
    coerce_dtype,
    complex_if,
    dtype_in,
    finfo_eps,
    finfo_tiny,
    host_dtype,
    is_complex,
    namespace_of,
    scatter_rows,
    to_numpy,
)

NP = array_namespace(np.empty(0))
TO = array_namespace(torch.empty(0))


class _NamedDtype:
    """A dtype of some other library: numpy cannot read it, only its printed name."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class _ForeignArray:
    """A minimal array of another library: no ``detach``, moved with ``to_device``."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.moved_to: list[str] = []

    def to_device(self, dev: str, stream: object = None) -> _ForeignArray:
        self.moved_to.append(dev)
        return self

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.data, dtype=dtype)


# --- namespaces and dtype rules -----------------------------------------------------


def test_namespace_of_skips_scalars_and_none():
    t = torch.ones(2)
    # Scalars and None are no arrays: the tensor decides (numpy only when nothing is).
    assert namespace_of(None, 3, 2.5, True, t) is TO
    assert namespace_of(None, 1.0) is NP
    assert namespace_of() is NP
    assert namespace_of(np.ones(2), None) is NP


def test_is_complex_and_floating_checks():
    assert is_complex(NP, np.complex64) and is_complex(NP, np.complex128)
    assert not is_complex(NP, np.float64)
    assert is_complex(TO, torch.complex64) and not is_complex(TO, torch.float32)
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        check_floating(NP, dtype, "b")  # accepted: no exception
    with pytest.raises(TypeError, match=r"^b has dtype int64; krylovadv works in float32"):
        check_floating(NP, np.dtype(np.int64), "b")
    for dtype in (np.float32, np.float64):
        check_real_floating(NP, dtype, "x0")
    # A complex x0 for a real-only solver: named, with the fix.
    with pytest.raises(TypeError, match=r"^x0 has dtype complex128; krylovadv solves real"):
        check_real_floating(NP, np.dtype(np.complex128), "x0")
    with pytest.raises(TypeError, match=r"x0\.astype\(float64\) / x0\.double\(\)"):
        check_real_floating(NP, np.dtype(np.int32), "x0")


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((np.float32,), np.float32),
        ((np.float32, np.float32), np.float32),
        ((np.float32, None), np.float32),  # an operator of unknown dtype adds nothing
        ((np.int64,), np.float64),  # integers solve in float64 (scipy's make_system)
        ((np.float16, np.float32), np.float64),
        ((np.bool_,), np.float64),
        ((), np.float64),
        ((None,), np.float64),
        ((np.float32, np.float64), np.float64),
        ((np.complex64,), np.complex64),
        ((np.float32, np.complex64), np.complex64),
        ((np.float64, np.complex64), np.complex128),
        ((np.complex128, np.float32), np.complex128),
    ],
)
def test_coerce_dtype_is_scipys_rule(dtypes, expected):
    # scipy's rule is numpy's promotion once non-solving dtypes count as float64.
    assert coerce_dtype(NP, *[None if d is None else np.dtype(d) for d in dtypes]) == expected
    known = [d for d in dtypes if d is not None]
    reference = np.result_type(
        *[np.float64 if d in (np.int64, np.float16, np.bool_) else d for d in known] or [np.float64]
    )
    assert reference == expected


def test_coerce_dtype_in_torch():
    assert coerce_dtype(TO, torch.float32) == torch.float32
    assert coerce_dtype(TO, torch.float32, torch.complex64) == torch.complex64
    assert coerce_dtype(TO, torch.float64, torch.complex64) == torch.complex128
    assert coerce_dtype(TO, torch.int64, None) == torch.float64


def test_dtype_in_translates_between_libraries():
    assert dtype_in(NP, None) is None
    assert dtype_in(NP, np.float32) == np.float32
    assert dtype_in(NP, np.dtype(np.complex64)) == np.complex64
    assert dtype_in(TO, np.float64) == torch.float64
    assert dtype_in(NP, torch.float32) == np.float32  # printed as "torch.float32"
    assert dtype_in(NP, torch.complex128) == np.complex128
    # The name is the last dotted part of the printed dtype, whatever the path.
    assert dtype_in(NP, _NamedDtype("mylib.types.float64")) == np.float64
    assert dtype_in(NP, _NamedDtype("float32")) == np.float32
    # A name no dtype has, and a dtype this namespace lacks: None, not an error.
    assert dtype_in(NP, _NamedDtype("mylib.quaternion")) is None
    assert dtype_in(NP, np.dtype("<U3")) is None


def test_complex_if_follows_a_complex_operator_only():
    a64 = np.ones((2, 3))
    a32 = np.ones((2, 3), dtype=np.float32)
    assert complex_if(NP, a64, np.complex64).dtype == np.complex128  # precision is a's
    assert complex_if(NP, a32, np.complex128).dtype == np.complex64
    assert complex_if(NP, a32, torch.complex64).dtype == np.complex64
    # Real or unknown operator, or an already complex a: a itself, untouched.
    assert complex_if(NP, a64, np.float32) is a64
    assert complex_if(NP, a64, None) is a64
    c = np.ones(3, dtype=np.complex64)
    assert complex_if(NP, c, np.complex128) is c
    t = torch.ones(2, dtype=torch.float64)
    assert complex_if(TO, t, torch.complex64).dtype == torch.complex128


def test_host_dtype_and_finfo():
    assert host_dtype(NP, np.complex64) is np.complex128
    assert host_dtype(NP, np.float32) is np.float64
    assert host_dtype(TO, torch.complex128) is np.complex128
    assert finfo_eps(NP, np.float32) == float(np.finfo(np.float32).eps)
    assert finfo_eps(TO, torch.float64) == float(np.finfo(np.float64).eps)
    assert finfo_tiny(NP, np.float32) == float(np.finfo(np.float32).smallest_normal)
    assert finfo_tiny(TO, torch.float64) == float(np.finfo(np.float64).smallest_normal)


# --- batched reductions -------------------------------------------------------------


def test_batched_dot_conjugates_the_first_argument():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    b = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    expected = np.array([np.vdot(a[i], b[i]) for i in range(3)])  # vdot conjugates a
    np.testing.assert_allclose(batched_dot(NP, a, b), expected, rtol=1e-14)
    got = batched_dot(TO, torch.from_numpy(a), torch.from_numpy(b))
    assert tuple(got.shape) == (3,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-14)
    ar, br = a.real.copy(), b.real.copy()
    np.testing.assert_allclose(batched_dot(NP, ar, br), np.sum(ar * br, axis=1), rtol=1e-14)
    got = batched_dot(TO, torch.from_numpy(ar), torch.from_numpy(br))
    assert tuple(got.shape) == (3,)
    np.testing.assert_allclose(got.numpy(), np.sum(ar * br, axis=1), rtol=1e-14)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # squares of 1e200
def test_batched_norm_numpy_extremes_and_exact_rows():
    _backend._SAFE_SQUARES.clear()  # a cold cache: the thresholds are computed here
    rows = np.array(
        [
            [2.0, 10.0, 11.0],  # squares sum exactly: the norm 15 must be exact
            [3e200, 4e200, 0.0],  # squaring overflows
            [3e-200, 4e-200, 0.0],  # squaring underflows
            [0.0, 0.0, 0.0],
            [np.inf, 1.0, 0.0],
            [np.nan, 1.0, 0.0],
        ]
    )
    got = batched_norm(NP, rows)
    assert got.dtype == np.float64 and got.shape == (6,)
    assert got[0] == 15.0
    np.testing.assert_allclose(got[1:3], [5e200, 5e-200], rtol=4e-16)
    assert got[3] == 0.0 and got[4] == np.inf and np.isnan(got[5])
    # One row at a time (its own fast path): the same answers.
    for i in range(5):
        one = batched_norm(NP, rows[i : i + 1])
        assert one.shape == (1,)
        np.testing.assert_allclose(one, got[i : i + 1], rtol=4e-16)
    # Normal first row, extreme later rows: each row is judged on its own.
    for extreme in ([3e200, 4e200], [3e-200, 4e-200], [0.0, 0.0]):
        pair = batched_norm(NP, np.array([[3.0, 4.0], extreme]))
        np.testing.assert_allclose(pair, [5.0, 5.0 * max(extreme) / 4.0], rtol=4e-16)


def test_batched_norm_float32_subnormal_squares_are_rescaled():
    _backend._SAFE_SQUARES.clear()
    # Squares ~2.5e-41 are subnormal in float32 (precision ~1e-4): must be rescaled.
    rows = np.array([[3e-21, 4e-21], [3.0, 4.0]], dtype=np.float32)
    got = batched_norm(NP, rows)
    assert got.dtype == np.float32
    eps32 = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(got, [5e-21, 5.0], rtol=4 * eps32)
    np.testing.assert_allclose(batched_norm(NP, rows[:1]), [5e-21], rtol=4 * eps32)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # squares of 1e200
def test_batched_norm_complex_rows():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    expected = np.linalg.norm(a, axis=1)
    got = batched_norm(NP, a)
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    np.testing.assert_allclose(batched_norm(NP, a[1:2]), expected[1:2], rtol=1e-15)
    huge = np.array([[3e200 + 4e200j, 0.0]])
    np.testing.assert_allclose(batched_norm(NP, huge), [5e200], rtol=4e-16)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # squares of 1e200
def test_batched_norm_mixed_huge_and_tiny_rows_in_one_batch():
    rows = np.array([[1e200, 1e200, 0.0, 0.0], [1e-200, 1e-200, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(
        batched_norm(NP, rows), [np.sqrt(2) * 1e200, np.sqrt(2) * 1e-200, 2.0], rtol=4e-16
    )


def test_batched_norm_torch():
    a = torch.tensor([[3.0, 4.0, 0.0], [1.0, 2.0, 2.0]], dtype=torch.float64)
    got = batched_norm(TO, a)
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == (2,)
    np.testing.assert_array_equal(got.numpy(), [5.0, 3.0])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy's squares
@pytest.mark.parametrize(
    ("dtype", "scales"),
    [
        # 1e-158: the squares (~1e-316) are subnormal, the norm (~5e-158) is not.
        (torch.float64, [1.0, 2.0**-1030, 1e-200, 1e-158, 1e-150, 1e160, 1e300]),
        (torch.complex128, [1.0, 2.0**-1030, 1e-200, 1e160, 1e300]),
        (torch.float32, [1.0, 2.0**-140, 1e-25, 1e-20, 1e20, 1e37]),
        (torch.complex64, [1.0, 2.0**-140, 1e-25, 1e20, 1e37]),
    ],
)
def test_batched_norm_torch_rescales_like_numpy(dtype, scales):
    """torch's vector_norm does not rescale ([1e-200] -> 0, [1e160] -> inf in float64):
    rows whose squares leave the safe range must be recomputed, as on numpy."""
    base = torch.tensor([[3.0, 4.0, 0.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    if dtype.is_complex:
        base = base * (0.6 + 0.8j)  # |0.6 + 0.8i| = 1: the same norms, spread over re and im
    eps = float(torch.finfo(dtype).eps)
    for scale in scales:
        a = (base * scale).to(dtype)
        got = batched_norm(TO, a)
        assert got.dtype == dtype.to_real() and tuple(got.shape) == (3,)
        expected = batched_norm(NP, a.numpy())
        exact = np.array([5.0, 3.0, 0.0]) * float(abs(scale))
        np.testing.assert_allclose(got.numpy(), expected, rtol=4 * eps, err_msg=f"{scale}")
        np.testing.assert_allclose(got.numpy(), exact, rtol=8 * eps, err_msg=f"{scale}")
        one = batched_norm(TO, a[:1])
        np.testing.assert_allclose(one.numpy(), expected[:1], rtol=4 * eps)
    # Rows that are extreme only in part of a batch are judged one by one; inf and NaN
    # rows keep their meaning.
    mixed = torch.tensor(
        [[3e200, 4e200], [3e-200, 4e-200], [3.0, 4.0], [np.inf, 1.0], [np.nan, 1.0]],
        dtype=torch.float64,
    )
    got = batched_norm(TO, mixed).numpy()
    np.testing.assert_allclose(got[:3], [5e200, 5e-200, 5.0], rtol=4e-16)
    assert got[3] == np.inf and np.isnan(got[4])
    # Rows in the safe range keep torch's own norm (exact here: 15 = sqrt(4 + 100 + 121));
    # only the rows that need it take the rescaled pass, which would give 11 * ||a / 11||.
    exact = torch.tensor([[2.0, 10.0, 11.0], [3e-200, 4e-200, 0.0]], dtype=torch.float64)
    got = batched_norm(TO, exact)
    assert float(got[0]) == 15.0
    np.testing.assert_allclose(float(got[1]), 5e-200, rtol=4e-16)


# --- shapes, scatter, host copies ---------------------------------------------------


def test_as_batch_views_and_errors():
    v = np.arange(3.0)
    batch, single = as_batch(NP, v, "b")
    assert batch.shape == (1, 3) and single is True
    np.testing.assert_array_equal(batch[0], v)
    m = np.ones((2, 3))
    batch, single = as_batch(NP, m, "b")
    assert batch is m and single is False
    with pytest.raises(
        ValueError,
        match=r"^v0 must have shape \(n,\) or \(B, n\); got shape \(2, 2, 2\)\. "
        r"Flatten each sample to a vector first\.$",
    ):
        as_batch(NP, np.ones((2, 2, 2)), "v0")


def test_scatter_rows_writes_the_named_rows_only():
    full = np.zeros((4, 2))
    out = scatter_rows(full, np.array([3, 1]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert out is full
    np.testing.assert_array_equal(full, [[0, 0], [3, 4], [0, 0], [1, 2]])
    every = scatter_rows(np.zeros((2, 2)), None, np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(every, [[1, 2], [3, 4]])
    t = scatter_rows(torch.zeros(3, 2), None, torch.ones(3, 2))
    np.testing.assert_array_equal(t.numpy(), np.ones((3, 2)))


def test_to_numpy_copies_every_backend_to_host():
    a = np.ones(3)
    assert to_numpy(a) is a  # ndarray: no copy on the solvers' hot path
    scalar = to_numpy(np.float64(2.5))
    assert isinstance(scalar, np.ndarray) and scalar.shape == () and scalar == 2.5
    t = torch.arange(3.0, requires_grad=True)  # needs detach before numpy()
    out = to_numpy(t * 2)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 2.0, 4.0])
    foreign = _ForeignArray(np.array([1.0, 2.0]))
    out = to_numpy(foreign)
    assert isinstance(out, np.ndarray) and foreign.moved_to == ["cpu"]
    np.testing.assert_array_equal(out, [1.0, 2.0])


def test_batched_norm_of_huge_rows_is_exact_and_silent():
    a = np.array([[1e300, 1e300], [3.0, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow of the squares is handled, not reported
        norms = batched_norm(np, a)
    np.testing.assert_allclose(norms, [np.sqrt(2) * 1e300, 5.0], rtol=1e-15)
