r"""A caller's ``(A, b, x0, M)`` as a batched linear system, with scipy's input conventions.

:func:`krylovadv.gmres` takes what :func:`scipy.sparse.linalg.gmres` takes, so
that switching is a change of import (scipy's ``make_system`` is the model):

- ``b`` and ``x0`` may be lists or ``numpy.matrix``; integer, bool and float16
  data are upcast to float64; the working dtype is the smallest of float32,
  float64, complex64 and complex128 that holds both ``A``'s and ``b``'s dtypes;
- ``b`` of shape ``(n, 1)`` is scipy's column vector (one system);
- ``x0="Mb"`` starts from :math:`M b`;
- with ``M=None``, an ``A`` that has a ``psolve`` method is preconditioned by it.

What is added is the batch: ``b`` of shape ``(B, n)`` is ``B`` independent
systems.  The rule that tells the two 2-D layouts apart:

    A 2-D ``b`` whose last axis has length :math:`n` (the operator's size) is a
    batch ``(B, n)``.  Otherwise a ``b`` of shape ``(n, 1)`` with a shared
    (unbatched) operator is scipy's column vector, solved as one system whose
    ``x`` comes back with shape ``(n,)`` as in scipy.

The only shape both readings fit is ``(1, 1)`` with :math:`n = 1`; it is a batch
of one system (``x`` of shape ``(1, 1)``, whose ``ravel()`` is scipy's answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import is_array_api_obj

from ._backend import (
    as_batch,
    batched_norm,
    check_floating,
    coerce_dtype,
    device,
    dtype_in,
    is_complex,
    namespace_of,
    to_numpy,
)
from .operators import DenseOperator, FunctionOperator, LinearOperator, aslinearoperator

Array = Any


@dataclass(eq=False)
class System:
    """The batched system a solver works on.

    Attributes
    ----------
    xp : namespace
        Array namespace of the vectors.
    op, precond : LinearOperator
        ``A`` and the preconditioner (``None`` for none).
    b, x : array, shape (B, n)
        Right-hand sides and a private copy of the starting guesses, in the
        working dtype.
    x0_nonzero : numpy.ndarray of bool, shape (B,)
        Samples whose start is not zero (they cost one product for :math:`r_0`).
    single : bool
        Whether the caller gave one system (``(n,)`` or scipy's ``(n, 1)``).
    """

    xp: Any
    op: LinearOperator
    precond: LinearOperator | None
    b: Array
    x: Array
    x0_nonzero: np.ndarray
    single: bool


def as_array(value: Any, name: str) -> Array:
    """Return ``value`` as an array: lists, tuples and ``numpy.matrix`` become ndarrays."""
    if isinstance(value, np.matrix):
        return np.asarray(value)
    if is_array_api_obj(value):
        return value
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    raise TypeError(
        f"{name} must be an array (numpy, torch) or a list; got {type(value).__name__}."
    )


def check_tolerances(rtol: Any, atol: Any) -> tuple[float, float]:
    """Return ``rtol, atol`` as floats; ``ValueError`` unless each is a real number >= 0.

    Infinite tolerances are allowed (every iterate passes), as in scipy; so are
    scipy's error cases: ``atol=None`` and ``atol="legacy"`` are ``ValueError``.
    """
    values = []
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is None or isinstance(value, str):
            raise ValueError(
                f"{name} must be a real number >= 0; got {value!r} (scipy's atol='legacy' "
                "and atol=None are gone: pass atol=0.0 for a purely relative test)."
            )
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be a real number >= 0; got {value!r}.") from error
        if not number >= 0:  # also catches NaN
            raise ValueError(f"rtol and atol must be >= 0 and not NaN; got {name}={value!r}.")
        values.append(number)
    return values[0], values[1]


def check_maxiter(maxiter: int | None, default: int) -> int:
    """``maxiter`` as a positive int (``default`` for ``None``)."""
    maxiter = default if maxiter is None else int(maxiter)
    if maxiter < 1:
        raise ValueError(f"maxiter must be >= 1; got {maxiter}.")
    return maxiter


def residual_targets(xp: Any, b: Array, rtol: float, atol: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Return :math:`\|b_i\|` and the targets :math:`\max(\mathrm{rtol}\|b_i\|, \mathrm{atol})`.

    Both per sample, in float64 on the host; ``rtol`` and ``atol`` come from
    :func:`check_tolerances`.  The tolerance contract is on the true residual
    :math:`\|b_i - A x_i\| \le` target.
    """
    b_norm = to_numpy(batched_norm(xp, b)).astype(np.float64)
    # (rtol = inf with b = 0 would give inf * 0 = NaN; such a sample is solved by x = 0.
    # np.where discards that NaN, so numpy's warning about it would be a false alarm.)
    with np.errstate(invalid="ignore"):
        tol = np.maximum(atol, np.where(b_norm > 0, rtol * b_norm, 0.0))
    return b_norm, tol


def _column_vector(shape: tuple, op: LinearOperator) -> bool:
    """Whether a 2-D right-hand side of ``shape`` is scipy's column vector (see module doc)."""
    n = op.n
    return len(shape) == 2 and shape[1] != n and shape == (n, 1) and op.batch_size is None


def _check_operator(op: LinearOperator, name: str, n: int, B: int, b_shape: tuple) -> None:
    if op.shape != (n, n):
        raise ValueError(
            f"{name} has shape {op.shape} but b has shape {b_shape}; {name} must be ({n}, {n})."
        )
    if op.batch_size is not None and op.batch_size != B:
        raise ValueError(
            f"{name} holds {op.batch_size} operators but b has {B} rows (shape {b_shape})."
        )


def _kind(a: Any) -> str:
    """Return the library and type of an array, e.g. ``numpy.ndarray`` or ``torch.Tensor``."""
    return f"{type(a).__module__}.{type(a).__name__}"


def _cast(xp: Any, a: Array, dtype: Any, name: str) -> Array:
    """Return ``a`` in the working dtype; a complex ``a`` never loses its imaginary part."""
    if a.dtype == dtype:
        return a
    if is_complex(xp, a.dtype) and not is_complex(xp, dtype):
        raise TypeError(f"{name} is complex ({a.dtype}) but the system is real ({dtype}).")
    return xp.astype(a, dtype)


def make_system(A: Any, b: Any, x0: Any, M: Any) -> System:
    """Check and convert the inputs of a solve; see the module docstring for the rules.

    Raises
    ------
    ValueError
        Shape mismatches (naming both shapes), an empty ``b``, NaN/Inf in ``b``
        or ``x0``, or an unknown string ``x0``.
    TypeError
        Unsupported types, a complex ``x0`` for a real system, or an ``x0`` array of
        another library than ``b`` (a list ``x0`` joins ``b``'s library and device).
    """
    A_given = A
    op = aslinearoperator(A)
    b = as_array(b, "b")
    xp = namespace_of(b)
    b_shape = tuple(b.shape)
    column = _column_vector(b_shape, op)
    b2, single = as_batch(xp, xp.reshape(b, (1, -1)) if column else b, "b")
    single = single or column
    B, n = b2.shape
    if n == 0:
        raise ValueError("b is empty (n = 0).")
    _check_operator(op, "A", n, B, b_shape)

    # scipy's coercion: non-floating data count as float64; A's dtype joins b's.
    if xp.isdtype(b2.dtype, ("integral", "bool")) or b2.dtype == xp.float16:
        b2 = xp.astype(b2, xp.float64)
    check_floating(xp, b2.dtype, "b")
    dtype = coerce_dtype(xp, b2.dtype, dtype_in(xp, op.dtype))
    b2 = _cast(xp, b2, dtype, "b")
    if isinstance(op, DenseOperator) and op.matrix.dtype != dtype_in(op.xp, dtype):
        # One conversion now instead of a mixed-dtype product at every step.
        op = DenseOperator(op.xp.astype(op.matrix, dtype_in(op.xp, dtype)))

    if M is not None:
        precond = aslinearoperator(M)
    elif callable(getattr(A_given, "psolve", None)):
        precond = FunctionOperator(A_given.psolve, op.shape, dtype=op.dtype)
    else:
        precond = None
    if precond is not None:
        _check_operator(precond, "M", n, B, b_shape)

    dev = device(b2)
    if x0 is None:
        x = xp.zeros((B, n), dtype=dtype, device=dev)
    elif isinstance(x0, str):
        if x0 != "Mb":
            raise ValueError(f"x0 must be an array, None or 'Mb'; got {x0!r}.")
        x = b2 if precond is None else precond.matvec(b2, None)
        x = xp.asarray(_cast(xp, x, dtype, "M b"), copy=True)
    else:
        x0_given = x0
        x0 = as_array(x0, "x0")
        if namespace_of(x0) is not xp:
            if is_array_api_obj(x0_given):
                # Converting between libraries (and devices) behind the caller's back
                # would hide a mistake; a dtype check across libraries would misreport it.
                raise TypeError(
                    f"x0 is a {_kind(x0_given)} but b is a {_kind(b)}; give x0 as an "
                    "array of b's library (convert it first)."
                )
            # A list or tuple (scipy takes them) joins b's library and device.
            x0 = xp.asarray(x0, device=dev)
        x0_shape = tuple(x0.shape)
        allowed = {b_shape} | ({(n,), (n, 1)} if single else set())
        if x0_shape not in allowed:
            raise ValueError(f"x0 has shape {x0_shape} but b has shape {b_shape}.")
        if xp.isdtype(x0.dtype, ("integral", "bool")) or x0.dtype == xp.float16:
            x0 = xp.astype(x0, xp.float64)
        check_floating(xp, x0.dtype, "x0")
        x = xp.asarray(xp.reshape(_cast(xp, x0, dtype, "x0"), (B, n)), copy=True)
    for name, arr in (("b", b2), ("x0", x)):
        bad = ~to_numpy(xp.all(xp.isfinite(arr), axis=-1))
        if bad.any():
            raise ValueError(
                f"{name} contains NaN or Inf in sample(s) {np.flatnonzero(bad).tolist()}."
            )
    x0_nonzero = to_numpy(xp.any(x != 0, axis=-1)).copy()
    return System(xp, op, precond, b2, x, x0_nonzero, single)


def reject_unexpected(solver: str, unexpected: dict[str, Any]) -> None:
    """``TypeError`` for unknown keywords; scipy's removed ``tol`` gets a pointer to ``rtol``."""
    if "tol" in unexpected:
        raise TypeError(
            f"{solver}() got an unexpected keyword argument 'tol': scipy replaced it by rtol "
            "(deprecated in scipy 1.12, removed in 1.14); use rtol=... for the relative and "
            "atol=... for the absolute tolerance."
        )
    name = next(iter(unexpected))
    raise TypeError(f"{solver}() got an unexpected keyword argument {name!r}.")


def ask_callback(callback: Callable[[Any], Any], argument: Any, B: int) -> np.ndarray:
    """Call the user's callback; turn its answer into a per-sample stop mask."""
    answer = callback(argument)
    if answer is None or answer is False:
        return np.zeros(B, dtype=bool)
    if answer is True:
        return np.ones(B, dtype=bool)
    mask = np.asarray(to_numpy(answer) if hasattr(answer, "shape") else answer, dtype=bool)
    if mask.ndim == 0:
        return np.full(B, bool(mask))
    if mask.shape != (B,):
        raise ValueError(
            f"the callback returned a mask of shape {mask.shape}; expected a bool or ({B},)."
        )
    return mask
