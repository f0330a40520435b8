r"""Residuals and backward errors with tolerances that follow the dtype.

A solver computes its residual :math:`r = b - Ax` in working precision; the
computed value differs from the exact one by at most about
:math:`\gamma_{n+1}(\||A||x|\| + \|b\|)` with :math:`\gamma_k = k\varepsilon`
(Higham, *Accuracy and Stability of Numerical Algorithms*, §3.5).  That is the
slack a check must allow when it recomputes the residual in double precision,
and the scale against which a solver's backward error is judged.

Examples
--------
>>> import numpy as np
>>> from krylovadv.testing import backward_error, true_residual
>>> A = np.array([[2.0, 0.0], [0.0, 4.0]]); b = np.array([2.0, 4.0])
>>> float(true_residual(A, np.ones(2), b)), float(backward_error(A, np.ones(2), b))
(0.0, 0.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["backward_error", "eps_of", "residual_allowance", "true_residual"]


def eps_of(dtype) -> float:
    """Machine epsilon of ``dtype`` (of its real part for complex dtypes)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def _wide(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def true_residual(A, x, b) -> float:
    r""":math:`\|b - Ax\|_2` recomputed in double precision from the stored ``A``, ``x``, ``b``."""
    A, x, b = _wide(A), _wide(x), _wide(b)
    return float(np.linalg.norm(b - A @ x))


def backward_error(A, x, b) -> float:
    r"""Normwise backward error :math:`\|b - Ax\|_2 / (\|A\|_2\|x\|_2 + \|b\|_2)` (Rigal–Gaches).

    The smallest relative perturbation of ``A`` and ``b`` for which ``x`` is an
    exact solution; a backward-stable solver reaches :math:`O(n\varepsilon)`.
    """
    A, x, b = _wide(A), _wide(x), _wide(b)
    denominator = np.linalg.norm(A, 2) * np.linalg.norm(x) + np.linalg.norm(b)
    if denominator == 0:
        return 0.0
    return float(np.linalg.norm(b - A @ x) / denominator)


def residual_allowance(A, x, b, dtype=None, factor: float = 1.0) -> float:
    r"""Return the rounding slack :math:`c\,(n+1)\varepsilon(\||A||x|\|_2 + \|b\|_2)`, c = factor.

    The error of a residual computed in ``dtype`` (default: the dtype of ``x``):
    a solver that claims :math:`\|b - Ax\| \le \tau` in working precision has a
    double-precision residual below :math:`\tau` plus this.
    """
    eps = eps_of(np.asarray(x).dtype if dtype is None else dtype)
    A, x, b = _wide(A), _wide(x), _wide(b)
    n = A.shape[-1]
    return float(
        factor * (n + 1) * eps * (np.linalg.norm(np.abs(A) @ np.abs(x)) + np.linalg.norm(b))
    )
