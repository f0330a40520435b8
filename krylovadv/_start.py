r"""Start vectors of the eigensolvers (:func:`krylovadv.power_iteration`, :func:`krylovadv.eigsh`).

Both take an optional ``v0`` of shape ``(n,)`` or ``(B, n)``; without one they
draw :math:`\mathcal N(0, I)` vectors (the solver decides how: one draw per
sample, or one draw shared by all) in the namespace, dtype and device of a dense
``A`` (numpy otherwise).  The rules on what a start vector may be (shape, finite,
nonzero, one per operator) are the same for both and live here once; the dtype
rules differ (the power iteration keeps the caller's precision, ``eigsh`` joins
``A``'s and ``v0``'s dtypes as the solvers do) and stay with each solver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._backend import as_batch, batched_norm, device, namespace_of
from .operators import DenseOperator, LinearOperator

Array = Any


def start_vectors(
    op: LinearOperator,
    v0: Array | None,
    batch_size: int | None,
    draw: Callable[[int, int], np.ndarray],
) -> tuple[Any, Array, bool]:
    """Return ``(xp, v, single)``: the start vectors as a ``(B, n)`` batch.

    Parameters
    ----------
    op : LinearOperator
        The operator; a batched one fixes ``B``.
    v0 : array, shape (n,) or (B, n), optional
        The caller's start vectors (not copied: the caller copies before writing).
    batch_size : int, optional
        ``B`` random starts on a shared operator when ``v0`` is not given.
    draw : callable
        ``draw(B, n)`` returns the random starts as a numpy array (seeded by the caller).

    Raises
    ------
    ValueError
        If ``v0`` has the wrong shape or holds NaN or Inf.
    """
    n = op.n
    if v0 is None:
        B = op.batch_size or batch_size or 1
        single = op.batch_size is None and batch_size is None
        drawn = draw(B, n)
        if isinstance(op, DenseOperator):
            xp = op.xp
            return xp, xp.asarray(drawn, dtype=op.matrix.dtype, device=device(op.matrix)), single
        return namespace_of(drawn), drawn, single
    xp = namespace_of(v0)
    v, single = as_batch(xp, v0, "v0")
    if v.shape[1] != n:
        raise ValueError(f"A has shape {op.shape} but v0 has shape {tuple(v0.shape)}.")
    if not bool(xp.all(xp.isfinite(v))):
        raise ValueError("v0 contains NaN or Inf.")
    return xp, v, single


def start_norms(xp: Any, op: LinearOperator, v: Array) -> Array:
    r"""Return :math:`\|v_i\|_2` after checking one start per operator, each nonzero.

    Raises
    ------
    ValueError
        If a batched ``op`` holds a different number of operators than ``v`` has
        rows, or a start vector is zero (the Krylov space would be empty).
    """
    B = int(v.shape[0])
    if op.batch_size is not None and op.batch_size != B:
        raise ValueError(f"A holds {op.batch_size} operators but there are {B} start vectors.")
    norms = batched_norm(xp, v)
    if bool(xp.any(norms == 0)):
        raise ValueError("v0 must be nonzero for every sample.")
    return norms
