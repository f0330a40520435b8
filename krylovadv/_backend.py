"""Array-backend primitives shared by every solver.

The solvers are written once against the array API standard (through
``array_api_compat``), so the same code runs on numpy arrays and on torch
tensors (CPU or CUDA) without importing torch here.  This module is the thin
layer of batched vector primitives the solvers are written in, in the spirit
of Krylov.jl's ``kdot``/``kaxpy!``/``knorm``: every vector argument has shape
``(B, n)`` (a batch of ``B`` independent vectors) and every reduction returns
shape ``(B,)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_array, to_device

__all__ = [
    "array_namespace",
    "as_batch",
    "batched_dot",
    "batched_norm",
    "check_floating",
    "check_real_floating",
    "coerce_dtype",
    "complex_if",
    "device",
    "dtype_in",
    "finfo_eps",
    "finfo_tiny",
    "host_dtype",
    "is_complex",
    "is_numpy_array",
    "namespace_of",
    "scatter_rows",
    "to_numpy",
]

Array = Any


def namespace_of(*arrays: Any) -> Any:
    """Return the array-API namespace of the arrays that are arrays.

    Python scalars and ``None`` are ignored; if nothing is an array, numpy's
    namespace is returned.
    """
    candidates = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool))]
    if not candidates:
        return array_namespace(np.empty(0))
    return array_namespace(*candidates)


def check_real_floating(xp: Any, dtype: Any, name: str) -> None:
    """Raise ``TypeError`` unless ``dtype`` is float32 or float64."""
    if dtype not in (xp.float32, xp.float64):
        raise TypeError(
            f"{name} has dtype {dtype}; krylovadv solves real systems in float32 or float64. "
            f"Convert it first, e.g. {name}.astype(float64) / {name}.double()."
        )


def is_complex(xp: Any, dtype: Any) -> bool:
    """Whether ``dtype`` is complex64 or complex128."""
    return dtype in (xp.complex64, xp.complex128)


def check_floating(xp: Any, dtype: Any, name: str) -> None:
    """Raise ``TypeError`` unless ``dtype`` is float32, float64, complex64 or complex128."""
    if dtype not in (xp.float32, xp.float64, xp.complex64, xp.complex128):
        raise TypeError(
            f"{name} has dtype {dtype}; krylovadv works in float32, float64, complex64 or "
            f"complex128. Convert it first, e.g. {name}.astype(float64) / {name}.double()."
        )


def coerce_dtype(xp: Any, *dtypes: Any) -> Any:
    """Return the working dtype of a system whose parts have ``dtypes`` (scipy's rule).

    As ``scipy.sparse.linalg``'s ``make_system``: a dtype that is not float32,
    float64, complex64 or complex128 (integers, bool, float16) counts as float64,
    and the result is the smallest of the four that holds every part (float32
    with complex64 gives complex64, float64 with complex64 complex128).
    ``None`` entries (an operator of unknown dtype) are ignored.
    """
    known = [d for d in dtypes if d is not None]
    solving = (xp.float32, xp.float64, xp.complex64, xp.complex128)
    known = [d if d in solving else xp.float64 for d in known] or [xp.float64]
    double = any(d in (xp.float64, xp.complex128) for d in known)
    complex_ = any(d in (xp.complex64, xp.complex128) for d in known)
    if complex_:
        return xp.complex128 if double else xp.complex64
    return xp.float64 if double else xp.float32


def dtype_in(xp: Any, dtype: Any) -> Any:
    """Return the dtype of ``xp`` named like ``dtype`` (numpy's for a torch dtype), or None."""
    if dtype is None:
        return None
    try:
        # numpy dtypes and scalar types; torch's print as "torch.float32".
        name = np.dtype(dtype).name
    except TypeError:
        try:
            name = np.dtype(str(dtype).rsplit(".", 1)[-1]).name
        except TypeError:
            return None
    return getattr(xp, name, None)


def complex_if(xp: Any, a: Array, operator_dtype: Any) -> Array:
    """Return ``a`` as complex (same precision) if ``operator_dtype`` is complex and ``a`` real.

    A complex operator applied to real start vectors produces complex vectors;
    the precision stays the caller's.
    """
    op_dtype = dtype_in(xp, operator_dtype)
    if op_dtype is None or not is_complex(xp, op_dtype) or is_complex(xp, a.dtype):
        return a
    return xp.astype(a, xp.complex128 if a.dtype == xp.float64 else xp.complex64)


def host_dtype(xp: Any, dtype: Any) -> type:
    """Return the numpy dtype of host-side small matrices: complex128 or float64."""
    return np.complex128 if is_complex(xp, dtype) else np.float64


def finfo_eps(xp: Any, dtype: Any) -> float:
    """Machine epsilon of ``dtype`` as a Python float (of its real part for complex)."""
    return float(xp.finfo(dtype).eps)


def finfo_tiny(xp: Any, dtype: Any) -> float:
    """Smallest positive normal number of ``dtype`` (never underflows to 0 in that dtype)."""
    return float(xp.finfo(dtype).smallest_normal)


def batched_dot(xp: Any, a: Array, b: Array) -> Array:
    """Row-wise inner products ``<a_i, b_i> = a_i^H b_i`` of two ``(B, n)`` arrays, shape ``(B,)``.

    Hermitian (``a`` conjugated) for complex arrays, the plain dot product for real ones.
    """
    if type(a) is np.ndarray and type(b) is np.ndarray:
        # One pass, no temporary (the sum of a * b would write and reread an array).
        return np.einsum("ij,ij->i", a.conj() if a.dtype.kind == "c" else a, b)
    if is_complex(xp, a.dtype):
        a = xp.conj(a)
    return xp.sum(a * b, axis=-1)


def batched_norm(xp: Any, a: Array) -> Array:
    """Row-wise Euclidean norms of a ``(B, n)`` array, shape ``(B,)``.

    Accurate (to a few ulps) for every row whose norm is representable, also when
    the squares of its entries overflow or underflow: neither numpy's ``dot`` nor
    torch's ``vector_norm`` rescales (torch returns 0 for the row ``[1e-200]`` and
    inf for ``[1e160]``), so rows whose sum of squares left the safe range
    ``[tiny/eps, inf)`` are recomputed as ``s * ||a / s||`` with ``s = max |a_i|``.
    NaN rows stay NaN; a row holding inf has norm inf.
    """
    if type(a) is np.ndarray:
        # numpy's vector_norm wrapper costs more than the reduction for short rows, and
        # a max-abs pass to rule out over/underflow costs a read of the whole array:
        # square first, and redo the few rows where squaring could have lost accuracy.
        if a.dtype.kind == "c":
            a = np.stack([a.real, a.imag], axis=-1).reshape(a.shape[0], -1)
        # Row by row through BLAS (a stacked matmul is one dot per row, the same for a
        # row alone and in a batch): several times faster than einsum's loop.
        # Overflow to inf is expected and handled below (such rows are rescaled): no warning.
        with np.errstate(over="ignore"):
            squares = (a[:, None, :] @ a[:, :, None])[:, 0, 0]
        # A sum of squares >= tiny/eps has lost at most a relative n*eps to entries
        # whose squares underflowed (each < tiny); an infinite one overflowed.
        safe = _SAFE_SQUARES.get(a.dtype)
        if safe is None:
            finfo = np.finfo(a.dtype)
            safe = _SAFE_SQUARES[a.dtype] = float(finfo.smallest_normal / finfo.eps)
        if squares.shape[0] == 1:
            if safe <= squares[0] < np.inf:
                return np.sqrt(squares)
        elif np.all((squares >= safe) & (squares < np.inf)):
            return np.sqrt(squares)
        norms = np.sqrt(squares)
        redo = ~((squares >= safe) & (squares < np.inf))
        redo &= np.isfinite(squares) | np.isinf(squares)  # NaN rows stay NaN
        rows = a[redo]
        scale = np.max(np.abs(rows), axis=-1, keepdims=True)
        with np.errstate(invalid="ignore"):
            scaled = rows / np.where((scale > 0) & (scale < np.inf), scale, 1.0)
            rescaled = scale[:, 0] * np.sqrt(np.einsum("ij,ij->i", scaled, scaled))
        norms[redo] = np.where(np.isinf(scale[:, 0]), np.inf, rescaled)
        return norms
    norms = xp.linalg.vector_norm(a, axis=-1)
    # The same safe range as above, on the norm: ||a|| >= sqrt(tiny/eps) has lost at
    # most a relative n*eps to squares that underflowed.  One host sync decides whether
    # any row needs the (three times dearer) rescaled pass, which is rare.
    finfo = xp.finfo(norms.dtype)
    safe = float(np.sqrt(float(finfo.smallest_normal) / float(finfo.eps)))
    redo = ~((norms >= safe) & (norms < float("inf"))) & ~xp.isnan(norms)
    if not bool(xp.any(redo)):
        return norms
    # On the moduli: a complex entry divided by a subnormal real goes through its
    # reciprocal in torch and overflows; |a_i| (a safe hypot) is real.
    moduli = xp.abs(a)
    scale = xp.max(moduli, axis=-1)
    usable = (scale > 0) & (scale < float("inf"))
    divisor = xp.where(usable, scale, xp.ones_like(scale))
    rescaled = scale * xp.linalg.vector_norm(moduli / divisor[:, None], axis=-1)
    rescaled = xp.where(xp.isinf(scale), scale, rescaled)
    return xp.where(redo, rescaled, norms)


#: Per dtype, the smallest sum of squares trusted without rescaling (see batched_norm).
_SAFE_SQUARES: dict[Any, float] = {}


def as_batch(xp: Any, a: Array, name: str) -> tuple[Array, bool]:
    """View a vector ``(n,)`` or batch ``(B, n)`` as ``(B, n)``.

    Returns the 2-D array and whether the input was a single vector.
    """
    if a.ndim == 1:
        return xp.reshape(a, (1, a.shape[0])), True
    if a.ndim == 2:
        return a, False
    raise ValueError(
        f"{name} must have shape (n,) or (B, n); got shape {tuple(a.shape)}. "
        "Flatten each sample to a vector first."
    )


def scatter_rows(full: Array, indices: Array | None, rows: Array) -> Array:
    """Write ``rows`` into ``full[indices]`` in place and return ``full``.

    ``indices`` of ``None`` means every row.  Integer-array assignment is not in
    the array API standard, but numpy, torch and cupy all support it natively.
    """
    if indices is None:
        full[...] = rows
    else:
        full[indices] = rows
    return full


def to_numpy(a: Array) -> np.ndarray:
    """Copy an array of any supported backend to a numpy array on the CPU."""
    if type(a) is np.ndarray:  # the hot path of every solver loop: no dispatch
        return a
    if is_numpy_array(a):
        return np.asarray(a)
    # torch tensors that require grad cannot be converted directly.
    detach = getattr(a, "detach", None)
    if detach is not None:
        a = detach()
    return np.asarray(to_device(a, "cpu"))
