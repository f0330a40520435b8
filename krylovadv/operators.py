r"""Batched linear operators: the one interface every solver talks to.

A :class:`LinearOperator` represents either one ``n × n`` operator shared by
every right-hand side (``batch_size is None``) or a batch of ``B`` independent
operators ``A_1, …, A_B`` (``batch_size == B``).  Its single primitive is

.. math::  Y = \operatorname{matvec}(X, \text{indices}),\qquad
           Y_r = A_{i_r} X_r,

where ``X`` has shape ``(k, n)`` and ``indices`` (``None`` or ``k`` sample
numbers) says which sample each row belongs to.  Passing a subset of samples
is how solvers do *active-set compaction*: once a sample has converged it no
longer costs an operator application, which matters when an application is a
forward and backward pass through a neural network.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from array_api_compat import is_array_api_obj

from ._backend import (
    check_floating,
    device,
    is_complex,
    namespace_of,
    scatter_rows,
    to_numpy,
)

__all__ = [
    "DenseOperator",
    "FunctionOperator",
    "IdentityOperator",
    "LinearOperator",
    "ScipyOperator",
    "ShiftedOperator",
    "aslinearoperator",
    "to_scipy_operator",
]

Array = Any


class LinearOperator:
    """Abstract batched linear operator ``x_i ↦ A_i x_i``.

    Subclasses implement :meth:`_matvec`.  Solvers call :meth:`matvec` with a
    ``(k, n)`` array of rows and, for batched operators, the sample number of
    each row; an operator that can evaluate a subset of samples cheaply (a
    network evaluated on fewer images) gets compaction for free.

    Parameters
    ----------
    shape : tuple of int
        ``(n, n)``, the shape of one sample's operator.
    batch_size : int or None
        ``B`` for a batch of independent operators; ``None`` for a single
        operator applied to every right-hand side.
    dtype : dtype or None
        The dtype of the operator's output, when known.

    Attributes
    ----------
    num_products : int
        How many single-sample products ``A_i x`` have been evaluated: a row
        counts once, so a batched call on ``k`` rows adds ``k``.
    """

    def __init__(
        self, shape: tuple[int, int], *, batch_size: int | None = None, dtype: Any = None
    ) -> None:
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"shape must be square (n, n); got {tuple(shape)}.")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive int or None; got {batch_size}.")
        self.shape = (int(shape[0]), int(shape[1]))
        self.batch_size = batch_size
        self.dtype = dtype
        self.num_products = 0

    @property
    def n(self) -> int:
        """Dimension ``n`` of one sample's vector space."""
        return self.shape[0]

    #: Whether every :math:`A_i` equals its adjoint :math:`A_i^H` (Hessians do); then
    #: :meth:`rmatvec` is :meth:`matvec` without further code.
    hermitian: ClassVar[bool] = False

    def matvec(self, x: Array, indices: Array | int | None = None) -> Array:
        """Apply the operator row by row (or to one vector, as scipy's ``matvec``).

        Parameters
        ----------
        x : array, shape (k, n), (n,) or (n, 1)
            Rows to multiply; or one vector, as scipy's ``LinearOperator.matvec``
            takes it (``(n,)`` or the column ``(n, 1)``).
        indices : integer array of shape (k,), or int, optional
            Sample number of each row (for batched operators); an int for one
            vector.  ``None`` means row ``r`` is sample ``r`` (so ``k`` must
            equal ``batch_size``), or, for a shared operator, that the rows are
            just ``k`` vectors.

        Returns
        -------
        array
            ``A_{indices[r]} x_r`` in each row, same shape, namespace and device
            as ``x``.
        """
        return self._apply(x, indices, adjoint=False)

    def rmatvec(self, x: Array, indices: Array | int | None = None) -> Array:
        """Apply the adjoint :math:`A_i^H` (the transpose for real operators); see :meth:`matvec`.

        Raises
        ------
        NotImplementedError
            If the operator has no adjoint (see :attr:`supports_adjoint`).
        """
        return self._apply(x, indices, adjoint=True)

    def matmat(self, X: Array) -> Array:
        """Compute :math:`AX` for columns ``X`` of shape ``(n, k)``, as scipy's ``matmat``.

        Only for a shared operator (or a batch of one): a batch of ``B``
        operators is no single matrix; use :meth:`matvec` with ``indices``.
        """
        return self._columns(X, adjoint=False)

    def rmatmat(self, X: Array) -> Array:
        """Compute :math:`A^H X` for columns ``X`` of shape ``(n, k)``, as scipy's ``rmatmat``."""
        return self._columns(X, adjoint=True)

    @property
    def supports_adjoint(self) -> bool:
        """Whether :meth:`rmatvec` is available."""
        return self.hermitian or type(self)._rmatvec is not LinearOperator._rmatvec

    def _columns(self, X: Array, adjoint: bool) -> Array:
        if self.batch_size not in (None, 1):
            raise TypeError(
                f"matmat needs a single operator; this one holds {self.batch_size}. Use "
                "matvec(rows, indices) or to_scipy(sample=i)."
            )
        if not is_array_api_obj(X) or X.ndim != 2 or X.shape[0] != self.n:
            shape = tuple(X.shape) if hasattr(X, "shape") else type(X).__name__
            raise ValueError(f"matmat expects X of shape ({self.n}, k); got {shape}.")
        xp = namespace_of(X)
        rows = xp.permute_dims(X, (1, 0))
        indices = None if self.batch_size is None else xp.zeros(X.shape[1], dtype=xp.int64)
        return xp.permute_dims(self._apply(rows, indices, adjoint), (1, 0))

    def _apply(self, x: Array, indices: Array | int | None, adjoint: bool) -> Array:
        name = "rmatvec" if adjoint else "matvec"
        # (The solvers' hot path: an ndarray needs no namespace lookup to be checked.)
        if type(x) is not np.ndarray and not is_array_api_obj(x):
            raise TypeError(
                f"{name} expects an array (numpy or torch) of shape (k, {self.n}) or "
                f"({self.n},); got {type(x).__name__}. Convert it with numpy.asarray first."
            )
        shape = tuple(x.shape)
        n = self.n
        # One vector, as scipy passes it: (n,) or the column (n, 1) (for n = 1 the
        # column and the single row (1, 1) are the same computation).
        one = shape == (n,) or (shape == (n, 1) and n != 1)
        if one:
            x = namespace_of(x).reshape(x, (1, n))
        elif len(shape) != 2 or shape[1] != n:
            raise ValueError(
                f"{name} expects x of shape (k, {n}) (rows), or one vector ({n},) or "
                f"({n}, 1); got {shape}."
            )
        if isinstance(indices, (int, np.integer)):
            xp = namespace_of(x)
            indices = xp.full((x.shape[0],), int(indices), dtype=xp.int64, device=device(x))
        if indices is None and self.batch_size is not None and x.shape[0] != self.batch_size:
            raise ValueError(
                f"x has {x.shape[0]} rows but the operator holds {self.batch_size} samples; "
                "pass indices= to say which samples the rows belong to."
            )
        y = self._rmatvec(x, indices) if adjoint else self._matvec(x, indices)
        self.num_products += int(x.shape[0])
        return namespace_of(y).reshape(y, shape) if one else y

    def _matvec(self, x: Array, indices: Array | None) -> Array:
        raise NotImplementedError

    def _rmatvec(self, x: Array, indices: Array | None) -> Array:
        if self.hermitian:
            return self._matvec(x, indices)
        raise NotImplementedError(
            f"{type(self).__name__} has no adjoint (rmatvec); give the operator one "
            "(FunctionOperator(..., rmatvec=...)) or mark it hermitian."
        )

    def __matmul__(self, x: Array) -> Array:
        """Compute ``A @ x`` for a vector ``(n,)`` or a batch ``(B, n)``."""
        if x.ndim == 1:
            xp = namespace_of(x)
            return xp.reshape(self.matvec(xp.reshape(x, (1, -1))), (-1,))
        return self.matvec(x)

    def _default_like(self) -> Array | None:
        """Return an array in the operator's namespace, dtype and device (None: numpy)."""
        return None

    def to_scipy(self, sample: int | None = None, *, like: Array | None = None) -> Any:
        """Return this operator as a :class:`scipy.sparse.linalg.LinearOperator`.

        scipy's solvers and eigensolvers (``gmres``, ``eigsh``, ``svds``, ...)
        then work on it directly: they pass numpy vectors, which are converted
        to the operator's array type (e.g. torch on a GPU) and back.

        Parameters
        ----------
        sample : int, optional
            For a batched operator, which :math:`A_i` to expose (required unless
            ``batch_size`` is None or 1).
        like : array, optional
            An array whose namespace, dtype and device the products run in.
            Defaults to the operator's own (a dense matrix's, a
            finite-difference HVP's point), else numpy float64.

        Returns
        -------
        scipy.sparse.linalg.LinearOperator
            With ``matvec``/``matmat`` and ``rmatvec``/``rmatmat``; without an
            adjoint (:attr:`supports_adjoint` False) the last two raise
            ``NotImplementedError`` naming the fix.  Each product counts in
            :attr:`num_products`.

        Examples
        --------
        >>> import numpy as np, scipy.sparse.linalg as sla
        >>> from krylovadv import aslinearoperator
        >>> op = aslinearoperator(np.diag([1.0, 2.0, 5.0])).to_scipy()
        >>> round(float(sla.eigsh(op, k=1, which="LA")[0][0]), 12)  # ARPACK's random start
        5.0
        """
        import scipy.sparse.linalg as sla

        if self.batch_size not in (None, 1) and sample is None:
            raise ValueError(
                f"the operator holds {self.batch_size} samples; pass sample=i for A_i."
            )
        if sample is not None and self.batch_size is not None:
            if not 0 <= int(sample) < self.batch_size:
                raise IndexError(f"sample {sample} is out of range for {self.batch_size}.")
        like = self._default_like() if like is None else like
        if like is None:
            like = np.zeros(0, dtype=np.dtype(self.dtype) if _is_numpy_dtype(self.dtype) else None)
        xp, dtype, dev = namespace_of(like), like.dtype, device(like)
        index = None if self.batch_size is None else (0 if sample is None else int(sample))

        def apply(V: Any, adjoint: bool) -> np.ndarray:
            V = np.asarray(V)
            if V.dtype.kind == "c" and not is_complex(xp, dtype):
                raise TypeError(f"a complex vector was given to a real ({dtype}) operator.")
            rows = xp.asarray(np.ascontiguousarray(V.T), dtype=dtype, device=dev)
            return to_numpy(self._apply(rows, index, adjoint)).T

        # The adjoint products are always handed over: without an adjoint they raise this
        # operator's NotImplementedError, which names the fix (scipy's own fallbacks say
        # "rmatvec is not defined", or for rmatmat "'NoneType' object is not callable").
        return sla.LinearOperator(
            self.shape,
            matvec=lambda v: apply(np.reshape(v, (-1, 1)), False)[:, 0],
            matmat=lambda V: apply(V, False),
            rmatvec=lambda v: apply(np.reshape(v, (-1, 1)), True)[:, 0],
            rmatmat=lambda V: apply(V, True),
            dtype=np.dtype(to_numpy(xp.zeros(1, dtype=dtype, device=dev)).dtype),
        )

    def to_dense(self, like: Array | None = None) -> Array:
        """Materialize the operator by applying it to the identity.

        Meant for tests and small ``n``.  Costs ``n`` products per sample.

        Parameters
        ----------
        like : array, optional
            An array whose namespace, dtype and device the identity takes;
            defaults to a numpy float64 array.

        Returns
        -------
        array
            ``(n, n)`` for a shared operator, ``(B, n, n)`` for a batch.
        """
        xp = namespace_of(like)
        dtype = like.dtype if like is not None else xp.float64
        kwargs = {"device": device(like)} if like is not None else {}
        eye = xp.eye(self.n, dtype=dtype, **kwargs)
        if self.batch_size is None:
            # Rows of A @ I^T are the columns of A, so transpose back.
            return xp.permute_dims(self.matvec(eye), (1, 0))
        blocks = []
        for i in range(self.batch_size):
            idx = xp.full((self.n,), i, dtype=xp.int64, **kwargs)
            blocks.append(xp.permute_dims(self.matvec(eye, idx), (1, 0)))
        return xp.stack(blocks)

    def __repr__(self) -> str:
        batch = "shared" if self.batch_size is None else f"batch_size={self.batch_size}"
        return f"<{type(self).__name__} n={self.n} {batch} dtype={self.dtype}>"


class DenseOperator(LinearOperator):
    """Explicit matrix ``(n, n)`` or batch of matrices ``(B, n, n)``, any array-API backend.

    Real or complex (float32, float64, complex64, complex128).  Integer, bool
    and float16 matrices are upcast to float64, as scipy's solvers do.
    """

    def __init__(self, matrix: Array) -> None:
        if isinstance(matrix, np.matrix):
            matrix = np.asarray(matrix)
        xp = namespace_of(matrix)
        if matrix.ndim not in (2, 3) or matrix.shape[-1] != matrix.shape[-2]:
            raise ValueError(
                f"A dense operator must have shape (n, n) or (B, n, n); got {tuple(matrix.shape)}."
            )
        if xp.isdtype(matrix.dtype, ("integral", "bool")) or matrix.dtype == xp.float16:
            matrix = xp.astype(matrix, xp.float64)
        check_floating(xp, matrix.dtype, "A")
        batch = None if matrix.ndim == 2 else int(matrix.shape[0])
        super().__init__((matrix.shape[-1], matrix.shape[-1]), batch_size=batch, dtype=matrix.dtype)
        self.matrix = matrix
        self.xp = xp

    def _matvec(self, x: Array, indices: Array | None) -> Array:
        xp = self.xp
        if self.batch_size is None:
            # (k, n) @ (n, n)^T: one GEMM for all rows.
            return x @ xp.permute_dims(self.matrix, (1, 0))
        if indices is None:
            return (self.matrix @ x[..., None])[..., 0]
        # Gathering a subset of an (B, n, n) stack would copy k·n² numbers per
        # product; per-sample views cost nothing and each product is one GEMV.
        rows = [self.matrix[int(i)] @ x[r] for r, i in enumerate(to_numpy(indices))]
        return xp.stack(rows)

    def _rmatvec(self, x: Array, indices: Array | None) -> Array:
        # Rows of A^H x are x^T conj(A): one product with the conjugated matrix.
        xp = self.xp
        M = xp.conj(self.matrix) if is_complex(xp, self.matrix.dtype) else self.matrix
        if self.batch_size is None:
            return x @ M
        if indices is None:
            return (x[:, None, :] @ M)[:, 0, :]
        return xp.stack([x[r] @ M[int(i)] for r, i in enumerate(to_numpy(indices))])

    def _default_like(self) -> Array:
        return self.matrix


class ScipyOperator(LinearOperator):
    """A scipy sparse matrix or ``scipy.sparse.linalg.LinearOperator`` (numpy arrays only)."""

    def __init__(self, operator: Any) -> None:
        shape = operator.shape
        dtype = np.dtype(operator.dtype) if operator.dtype is not None else None
        super().__init__(shape, batch_size=None, dtype=dtype)
        self.operator = operator
        import scipy.sparse

        self._sparse = scipy.sparse.issparse(operator)

    def _matvec(self, x: Array, indices: Array | None) -> Array:
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"a scipy operator can only multiply numpy arrays; got {type(x).__name__}."
            )
        if x.shape[0] == 1:
            # The common unbatched case: a plain (sparse) matrix-vector product.
            y = self.operator @ x[0] if self._sparse else self.operator.matvec(x[0])
            return np.reshape(_same_kind(np.asarray(y), x), (1, -1))
        y = self.operator @ x.T if self._sparse else self.operator.matmat(x.T)
        return np.ascontiguousarray(_same_kind(np.asarray(y), x).T)

    def _rmatvec(self, x: Array, indices: Array | None) -> Array:
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"a scipy operator can only multiply numpy arrays; got {type(x).__name__}."
            )
        op = self.operator
        y = op.conj().T @ x.T if self._sparse else op.rmatmat(x.T)
        return np.ascontiguousarray(_same_kind(np.asarray(y), x).T)


def _same_kind(y: Array, x: Array) -> Array:
    """Cast an operator's output ``y`` to the dtype of its input ``x``.

    A complex output for a real input would lose its imaginary part: that is an
    error (solve with a complex right-hand side instead), never a silent cast.
    """
    if y.dtype == x.dtype:
        return y
    xp = namespace_of(y)
    if is_complex(xp, y.dtype) and not is_complex(xp, x.dtype):
        raise TypeError(
            f"the operator returned {y.dtype} values for a {x.dtype} vector; a complex "
            "operator needs complex vectors (pass a complex b / v0)."
        )
    return xp.astype(y, x.dtype)


def _accepts_two_args(f: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


class FunctionOperator(LinearOperator):
    r"""An operator given by a Python callable.

    Parameters
    ----------
    function : callable
        By default (``vectorized=False``) called as ``function(v)`` on one vector
        ``v`` of shape ``(n,)``, like ``scipy.sparse.linalg.LinearOperator``'s
        ``matvec``.  With ``vectorized=True`` it is called on a ``(k, n)`` array of
        rows and must treat rows independently.  With ``pass_indices=True`` it also
        receives the sample number(s): ``function(v, i)`` or ``function(X, indices)``,
        which lets a batched callable evaluate only the active samples.
    shape : tuple of int
        ``(n, n)``.
    batch_size : int or None
        ``B`` if the callable represents ``B`` different operators.
    dtype : dtype, optional
        Output dtype, if known.
    vectorized : bool
        Whether ``function`` accepts a ``(k, n)`` batch of rows.
    pass_indices : bool
        Whether ``function`` takes the sample numbers as its second argument.
    rmatvec : callable, optional
        The adjoint :math:`x \mapsto A^H x`, called like ``function``; enables
        :meth:`~LinearOperator.rmatvec` (and scipy's ``rmatvec`` after
        :meth:`~LinearOperator.to_scipy`).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        shape: tuple[int, int],
        *,
        batch_size: int | None = None,
        dtype: Any = None,
        vectorized: bool = False,
        pass_indices: bool = False,
        rmatvec: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(shape, batch_size=batch_size, dtype=dtype)
        for f in (function, rmatvec):
            if f is not None and pass_indices and not _accepts_two_args(f):
                raise TypeError("pass_indices=True needs a function taking (x, indices).")
        self.function = function
        self.adjoint_function = rmatvec
        self.vectorized = vectorized
        self.pass_indices = pass_indices

    @property
    def supports_adjoint(self) -> bool:
        """Whether an adjoint is available: ``rmatvec=`` was given, or the class is hermitian."""
        return self.hermitian or self.adjoint_function is not None

    def _matvec(self, x: Array, indices: Array | None) -> Array:
        return self._evaluate(self.function, x, indices)

    def _rmatvec(self, x: Array, indices: Array | None) -> Array:
        if self.adjoint_function is None:
            return super()._rmatvec(x, indices)
        return self._evaluate(self.adjoint_function, x, indices)

    def _evaluate(self, function: Callable[..., Any], x: Array, indices: Array | None) -> Array:
        def call(x: Array, indices: Array | None) -> Array:
            return function(x, indices) if self.pass_indices else function(x)

        xp = namespace_of(x)
        k = x.shape[0]
        if self.pass_indices and indices is None:
            indices = xp.arange(k, dtype=xp.int64, device=device(x))
        if self.vectorized:
            if (
                self.batch_size is not None
                and not self.pass_indices
                and indices is not None
                and (
                    k != self.batch_size
                    # The callable maps row r to sample r, so a full-length but permuted
                    # ``indices`` must be scattered too, not passed through in its order.
                    or not bool(xp.all(indices == xp.arange(k, dtype=indices.dtype)))
                )
            ):
                # A batched callable that cannot be told which samples it is given:
                # evaluate the full batch with zero rows for the idle samples.
                full = xp.zeros((self.batch_size, self.n), dtype=x.dtype, device=device(x))
                y_full = call(scatter_rows(full, indices, x), None)
                return xp.take(
                    self._as_output(xp, y_full, x, (self.batch_size, self.n)), indices, axis=0
                )
            return self._as_output(xp, call(x, indices), x, (k, self.n))
        rows = []
        for r in range(k):
            if self.pass_indices:
                rows.append(function(x[r, :], int(indices[r])))
            else:
                rows.append(function(x[r, :]))
        return xp.stack([self._as_output(xp, y, x, (self.n,)) for y in rows])

    def _as_output(self, xp: Any, y: Any, x: Array, shape: tuple[int, ...]) -> Array:
        y = xp.asarray(y, device=device(x))
        if tuple(y.shape) != shape:
            if y.size == int(np.prod(shape)):
                y = xp.reshape(y, shape)
            else:
                raise ValueError(
                    f"the operator function returned shape {tuple(y.shape)}; expected {shape}."
                )
        return _same_kind(y, x)


class IdentityOperator(LinearOperator):
    """The identity ``I_n`` (the default, i.e. absent, preconditioner)."""

    hermitian = True

    def __init__(self, n: int) -> None:
        super().__init__((n, n))

    def _matvec(self, x: Array, indices: Array | None) -> Array:
        return x


class ShiftedOperator(LinearOperator):
    """The shifted operator ``A + λ I`` with ``λ`` scalar or one per sample.

    A positive shift makes an indefinite or singular Hessian better posed
    (a Levenberg-Marquardt / trust-region style damping of ``H δ = g``).

    Parameters
    ----------
    operator : LinearOperator or array-like
        ``A``; anything :func:`aslinearoperator` accepts.
    shift : float, complex or array of shape (B,)
        ``λ``.  A per-sample array requires a batched right-hand side.
    """

    def __init__(self, operator: Any, shift: float | Array) -> None:
        operator = aslinearoperator(operator)
        if isinstance(shift, numbers.Number):
            self.shift: float | complex | np.ndarray = (
                float(shift) if isinstance(shift, numbers.Real) else complex(shift)
            )
            batch = operator.batch_size
        else:
            shift_np = np.asarray(shift.cpu() if hasattr(shift, "cpu") else shift)
            shift_np = shift_np.astype(np.complex128 if shift_np.dtype.kind == "c" else np.float64)
            if shift_np.ndim != 1:
                raise ValueError(f"shift must be a scalar or shape (B,); got {shift_np.shape}.")
            if operator.batch_size is not None and shift_np.shape[0] != operator.batch_size:
                raise ValueError(
                    f"shift has {shift_np.shape[0]} entries but the operator has "
                    f"{operator.batch_size} samples."
                )
            self.shift = shift_np
            batch = int(shift_np.shape[0])
        if not np.all(np.isfinite(self.shift)):
            raise ValueError("shift must be finite.")
        super().__init__(operator.shape, batch_size=batch, dtype=operator.dtype)
        self.operator = operator

    @property
    def supports_adjoint(self) -> bool:
        """Whether the shifted operator has an adjoint."""
        return self.operator.supports_adjoint

    def _default_like(self) -> Array | None:
        return self.operator._default_like()

    def _rmatvec(self, x: Array, indices: Array | None) -> Array:
        # (A + lambda I)^H = A^H + conj(lambda) I.
        y = self.operator.rmatvec(x, indices if self.operator.batch_size is not None else None)
        return y + self._shift_rows(x, indices, conjugate=True) * x

    def _shift_rows(self, x: Array, indices: Array | None, conjugate: bool = False) -> Any:
        shift = np.conj(self.shift) if conjugate else self.shift
        if isinstance(self.shift, (float, complex)):
            return complex(shift) if isinstance(self.shift, complex) else float(shift)
        xp = namespace_of(x)
        lam = shift if indices is None else shift[np.asarray(_cpu(indices))]
        return xp.asarray(lam, dtype=x.dtype, device=device(x))[:, None]

    def _matvec(self, x: Array, indices: Array | None) -> Array:
        y = self.operator.matvec(x, indices if self.operator.batch_size is not None else None)
        if isinstance(self.shift, (float, complex)):
            return y + self.shift * x
        xp = namespace_of(x)
        lam = self.shift if indices is None else self.shift[np.asarray(_cpu(indices))]
        lam = xp.asarray(lam, dtype=x.dtype, device=device(x))
        return y + lam[:, None] * x


def _is_numpy_dtype(dtype: Any) -> bool:
    try:
        return dtype is not None and np.dtype(dtype).kind in "fc"
    except TypeError:
        return False


def to_scipy_operator(A: Any, sample: int | None = None, *, like: Array | None = None) -> Any:
    """Return any krylovadv operator (or what :func:`aslinearoperator` takes) as scipy's.

    Shorthand for ``aslinearoperator(A).to_scipy(sample, like=like)``; see
    :meth:`LinearOperator.to_scipy`.
    """
    return aslinearoperator(A).to_scipy(sample, like=like)


def _cpu(indices: Array) -> Any:
    return indices.cpu() if hasattr(indices, "cpu") else indices


def aslinearoperator(
    A: Any,
    *,
    shape: tuple[int, int] | None = None,
    dtype: Any = None,
    batch_size: int | None = None,
    vectorized: bool = False,
    pass_indices: bool = False,
) -> LinearOperator:
    """Wrap ``A`` as a :class:`LinearOperator`.

    Parameters
    ----------
    A : LinearOperator, array, scipy sparse matrix, scipy LinearOperator or callable
        - a krylovadv :class:`LinearOperator`: returned unchanged;
        - a dense numpy/torch array of shape ``(n, n)`` (shared) or ``(B, n, n)``
          (a batch of ``B`` independent matrices);
        - a scipy sparse matrix/array or ``scipy.sparse.linalg.LinearOperator``
          (shared; numpy vectors only);
        - a callable, with ``shape`` given (see :class:`FunctionOperator`).
    shape, dtype, batch_size, vectorized, pass_indices
        Only for callables; see :class:`FunctionOperator`.

    Returns
    -------
    LinearOperator

    Raises
    ------
    TypeError
        If ``A`` is none of the above, or a callable is given without ``shape``.
    """
    if isinstance(A, LinearOperator):
        return A
    if isinstance(A, np.matrix):
        A = np.asarray(A)
    try:
        import scipy.sparse
        import scipy.sparse.linalg
    except ImportError:  # pragma: no cover - scipy is a hard dependency
        scipy = None
    if scipy is not None and (
        scipy.sparse.issparse(A) or isinstance(A, scipy.sparse.linalg.LinearOperator)
    ):
        return ScipyOperator(A)
    if is_array_api_obj(A):
        return DenseOperator(A)
    if isinstance(A, (list, tuple)):
        return DenseOperator(np.asarray(A))
    if callable(A):
        if shape is None:
            raise TypeError("aslinearoperator needs shape=(n, n) to wrap a callable.")
        return FunctionOperator(
            A,
            shape,
            batch_size=batch_size,
            dtype=dtype,
            vectorized=vectorized,
            pass_indices=pass_indices,
        )
    raise TypeError(
        f"cannot make a linear operator from {type(A).__name__}; pass an array (n, n) or "
        "(B, n, n), a scipy sparse matrix or LinearOperator, or a callable with shape=."
    )
