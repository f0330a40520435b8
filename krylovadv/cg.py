r"""Preconditioned conjugate gradients, batched over independent systems.

For a symmetric positive definite :math:`A` (and SPD inverse preconditioner
:math:`M`), conjugate gradients (Hestenes & Stiefel 1952) takes, at step
:math:`j`, the iterate of :math:`x_0 + \mathcal K_j(MA, Mr_0)` that minimises
the energy norm of the error :math:`\|x - x_*\|_A`, with the two-term
recurrences

.. math::
    \alpha_j = \frac{r_j^T z_j}{d_j^T A d_j},\quad
    x_{j+1} = x_j + \alpha_j d_j,\quad r_{j+1} = r_j - \alpha_j A d_j,\quad
    z_{j+1} = M r_{j+1},\quad
    d_{j+1} = z_{j+1} + \frac{r_{j+1}^T z_{j+1}}{r_j^T z_j} d_j,

so it stores five vectors per sample whatever the number of steps (GMRES
stores its whole basis).  The curvature :math:`d_j^T A d_j` of each search
direction comes for free; when it is not positive the matrix is not positive
definite, and the direction is what a trust-region (Steihaug–Toint) method
needs, so it is returned rather than hidden.

Semantics follow :func:`scipy.sparse.linalg.cg` (argument names, ``maxiter``
counting iterations with default ``10 n``, ``callback(xk)``), with the
contract of :func:`krylovadv.gmres`: the tolerance is checked on the *true*
residual :math:`\|b - Ax\|`, per sample, in batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import finfo_eps
from ._symmetric import (
    Bookkeeping,
    SymmetricResult,
    active_index,
    apply,
    dots,
    finish,
    initial_residual,
    precondition,
    put_rows,
    row_norms,
    rows,
    setup_problem,
    true_residual,
)
from ._system import ask_callback, check_maxiter, reject_unexpected
from .status import SolverStatus

__all__ = ["CGResult", "cg"]

Array = Any


@dataclass(eq=False, repr=False)
class CGResult(SymmetricResult):
    r"""Outcome of :func:`cg`, per sample.

    Scalars for a single system, arrays of length ``B`` for a batch
    (``result.sample(i)`` is sample ``i``'s result, equal to solving it alone;
    ``result.batch_size`` is ``B``).  The result is also scipy's pair:
    ``x, info = cg(A, b)``, ``result[0]`` is ``x`` and ``result[1]`` is
    ``info`` (0 on convergence, else the number of iterations).

    Attributes
    ----------
    x : array
        Approximate solution, ``(n,)`` or ``(B, n)``, in the caller's array type.
    converged : bool or numpy.ndarray of bool
        Whether :math:`\|b - Ax\|_2 \le \max(\mathrm{rtol}\|b\|_2, \mathrm{atol})`
        on the true residual.
    status : SolverStatus or numpy.ndarray of int
        ``CONVERGED``, ``MAX_ITERATIONS``, ``NEGATIVE_CURVATURE``,
        ``BREAKDOWN`` (a zero search direction: :math:`Mr = 0` with
        :math:`r \ne 0`, a singular preconditioner), ``STAGNATION``,
        ``NON_FINITE`` or ``CALLBACK``.
    iterations : int or numpy.ndarray of int
        CG steps (products :math:`Ad_j`).
    matvecs : int or numpy.ndarray of int
        Products with ``A``: the steps, plus one for :math:`r_0` when ``x0`` is
        nonzero, plus one per true-residual check.
    residual_norm : float or numpy.ndarray
        True residual :math:`\|b - Ax\|_2` of the returned ``x``.
    residual_history : numpy.ndarray or list of numpy.ndarray
        Recursive residual norms :math:`\|r_j\|_2`, from :math:`\|r_0\|`.
    curvature_direction : array
        For ``NEGATIVE_CURVATURE`` samples, the direction :math:`d` with
        :math:`d^T A d \le \varepsilon\|d\|\|Ad\|`; zero rows otherwise.
    curvature : float or numpy.ndarray
        :math:`d^T A d / \|d\|^2` of that direction (NaN for other samples).
    """

    curvature_direction: Array
    curvature: Any
    batched: bool = field(default=True, repr=False)


def cg(
    A: Any,
    b: Array,
    x0: Array | None = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[Any], Any] | None = None,
    **unexpected: Any,
) -> CGResult:
    r"""Solve :math:`Ax = b` for a symmetric (Hermitian) positive definite ``A`` by CG.

    Parameters
    ----------
    A : LinearOperator, array, scipy sparse matrix, scipy LinearOperator or callable
        Symmetric (real) or Hermitian (complex) operator(s); ``(B, n, n)`` or a
        batched operator gives ``B`` independent systems.  Symmetry is not
        checked (it would cost products).  For complex data every inner product
        is :math:`a^H b` and the transposes below read as conjugate transposes.
    b : array or list, shape (n,), (n, 1) or (B, n)
        Right-hand side(s), numpy (also a list or ``numpy.matrix``) or torch
        (any device), with :func:`krylovadv.gmres`'s input rules: float32,
        float64, complex64 or complex128, integers upcast to float64, the
        working dtype joining ``A``'s and ``b``'s, ``(n, 1)`` scipy's column
        vector.
    x0 : array, list or "Mb", optional
        Starting guess shaped like ``b``; zeros by default; ``"Mb"`` starts
        from :math:`Mb`.  Never modified.
    rtol, atol : float
        Per sample, stop when the true residual satisfies
        :math:`\|b - Ax\|_2 \le \max(\mathrm{rtol}\|b\|_2, \mathrm{atol})`.
    maxiter : int, optional
        Maximum CG steps per sample (``10 n`` by default, as scipy).
    M : operator, optional
        Inverse of a symmetric positive definite preconditioner.
    callback : callable, optional
        Called after every step with the current iterate(s) (``(n,)`` or
        ``(B, n)``); returning ``True`` stops every sample, a boolean array of
        length ``B`` stops those samples (status ``CALLBACK``).

    Returns
    -------
    CGResult

    Raises
    ------
    ValueError
        On shape mismatches, NaN/Inf in ``b`` or ``x0``, invalid tolerances or
        ``maxiter``, or a preconditioner with :math:`r^T M r < 0` (not positive
        semi-definite; :math:`r^T M r = 0` is ``BREAKDOWN``, see ``status``).
    TypeError
        On non-floating or mismatched dtypes.

    Notes
    -----
    **Stopping.**  When the recursive residual :math:`\|r_j\|` meets the
    tolerance, the true residual :math:`\|b - Ax_j\|` is computed (one product);
    if it misses, CG restarts from it (residual replacement).
    :data:`~krylovadv._symmetric.STAGNATION_RESTARTS` replacements in a row
    without a relative improvement above :math:`\sqrt\varepsilon` end the sample
    with ``STAGNATION``.  Samples that stop otherwise get one more product so
    that ``residual_norm`` is always the true residual.

    **Negative curvature.**  A direction with
    :math:`d^T A d \le \varepsilon\,\|d\|\,\|Ad\|` (:math:`\varepsilon` the
    dtype's machine epsilon: the rounding error of the computed
    :math:`d^T A d` is of that order, so a smaller value is indistinguishable
    from zero curvature) ends the sample with ``NEGATIVE_CURVATURE``; ``x`` is
    the iterate before that direction, which is returned in
    ``curvature_direction``.  On a positive *semi*-definite ``A`` with ``b``
    in its range, CG never meets zero curvature in exact arithmetic and
    converges to the minimum-norm solution from :math:`x_0 = 0`; use
    :func:`krylovadv.minres` for indefinite or inconsistent systems.

    Samples never mix: ``cg(A, b).sample(i)`` equals ``cg(A[i], b[i])``, and only
    unfinished samples reach the operator (with their ``indices``).

    Examples
    --------
    >>> import numpy as np
    >>> from krylovadv import cg
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> x, info = cg(A, np.array([1.0, 2.0]), atol=1e-12)
    >>> info, np.allclose(A @ x, [1.0, 2.0])
    (0, True)
    """
    if unexpected:
        reject_unexpected("cg", unexpected)
    problem = setup_problem(A, b, x0, M, rtol, atol)
    xp, dev = problem.xp, problem.device
    B, n = problem.batch, problem.n
    maxiter = check_maxiter(maxiter, 10 * n)
    eps = finfo_eps(xp, problem.dtype)

    book = Bookkeeping.start(B, eps)
    r = initial_residual(problem, book)
    x = problem.x
    for s in range(B):
        book.history[s].append(float(book.residual_norm[s]))
    residual_is_true = np.ones(B, dtype=bool)
    direction = xp.zeros_like(x)
    curvature_direction = xp.zeros_like(x)
    curvature = np.full(B, np.nan)
    rz = np.zeros(B)

    def restart(mask: np.ndarray) -> None:
        """Start the recurrence afresh from the residual of the samples in ``mask``."""
        idx_np, idx = active_index(xp, mask, dev)
        if idx_np.size == 0:
            return
        r_rows = rows(xp, r, idx)
        z_rows = precondition(problem, r_rows, idx)
        rz_rows = dots(xp, r_rows, z_rows)
        _check_preconditioner(rz_rows, idx_np)
        put_rows(direction, idx, z_rows)
        rz[idx_np] = rz_rows

    restart(book.running)
    while book.running.any():
        running = book.running
        idx_np, idx = active_index(xp, running, dev)
        d = rows(xp, direction, idx)
        Ad = apply(problem.op, d, idx)
        book.matvecs[idx_np] += 1
        book.iterations[idx_np] += 1
        dAd = dots(xp, d, Ad)
        d_norm = row_norms(xp, d)
        Ad_norm = row_norms(xp, Ad)

        finite = np.isfinite(dAd) & np.isfinite(Ad_norm)
        if not finite.all():
            book.status[idx_np[~finite]] = SolverStatus.NON_FINITE
        # A zero direction (M r = 0 for r != 0: M is singular) has no curvature at all:
        # the recurrence cannot go on, which is a breakdown, not negative curvature.
        no_direction = finite & (d_norm == 0)
        book.status[idx_np[no_direction]] = SolverStatus.BREAKDOWN
        negative = finite & ~no_direction & (dAd <= eps * d_norm * Ad_norm)
        if negative.any():
            neg = idx_np[negative]
            pos = xp.asarray(np.flatnonzero(negative), device=dev)
            curvature_direction[xp.asarray(neg, device=dev)] = xp.take(d, pos, axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                curvature[neg] = dAd[negative] / d_norm[negative] ** 2
            book.status[neg] = SolverStatus.NEGATIVE_CURVATURE

        # x <- x + alpha d, r <- r - alpha A d on the samples that step.
        step = finite & ~negative & ~no_direction
        alpha_np = np.where(step, rz[idx_np] / np.where(step, dAd, 1.0), 0.0)
        alpha = xp.asarray(alpha_np, dtype=problem.dtype, device=dev)[:, None]
        if idx is None and step.all():
            # Every sample steps: update in place (no copies of x and r).
            x += alpha * d
            r -= alpha * Ad
            r_rows = r
        else:
            x_rows, r_rows = rows(xp, x, idx), rows(xp, r, idx)
            # Samples that do not step keep x and r exactly (0 * NaN would poison them).
            stepping = xp.asarray(step, device=dev)[:, None]
            x_rows = xp.where(stepping, x_rows + alpha * d, x_rows)
            r_rows = xp.where(stepping, r_rows - alpha * Ad, r_rows)
            put_rows(x, idx, x_rows)
            put_rows(r, idx, r_rows)
        r_norm = row_norms(xp, r_rows)
        stepped = idx_np[step]
        residual_is_true[stepped] = False
        book.residual_norm[stepped] = r_norm[step]
        book.record(stepped, r_norm[step])

        # Candidates for convergence: confirm on the true residual.
        passed = r_norm[step] <= problem.tol[stepped]
        replace = np.zeros(B, dtype=bool)
        if passed.any():
            candidate = np.zeros(B, dtype=bool)
            candidate[stepped] = passed
            c_np, c_idx = active_index(xp, candidate, dev)
            r_true, r_true_norm = true_residual(problem, x, c_np, c_idx)
            book.matvecs[c_np] += 1
            put_rows(r, c_idx, r_true)
            book.residual_norm[c_np] = r_true_norm
            residual_is_true[c_np] = True
            for k, s in enumerate(c_np.tolist()):
                replace[s] = book.judge(s, r_true_norm[k], problem.tol[s])

        if callback is not None:
            stop = ask_callback(callback, x[0] if problem.single else x, B) & book.running
            book.status[stop] = SolverStatus.CALLBACK
        running = book.running
        out_of_steps = running & (book.iterations >= maxiter)
        if out_of_steps.any():
            book.status[out_of_steps] = SolverStatus.MAX_ITERATIONS
            running = book.running

        # Next direction d <- z + (r'z'/r z) d for the samples that go on.
        if replace.any():
            restart(replace & running)
        go_on = running & ~replace
        if go_on.any():
            g_np, g_idx = active_index(xp, go_on, dev)
            r_rows = rows(xp, r, g_idx)
            z_rows = precondition(problem, r_rows, g_idx)
            rz_new = dots(xp, r_rows, z_rows)
            _check_preconditioner(rz_new, g_np)
            beta = xp.asarray(rz_new / rz[g_np], dtype=problem.dtype, device=dev)[:, None]
            if g_idx is None:
                direction *= beta
                direction += z_rows
            else:
                put_rows(direction, g_idx, z_rows + beta * rows(xp, direction, g_idx))
            rz[g_np] = rz_new

    # residual_norm is the true residual of the returned x for every sample.
    result = CGResult(
        **finish(problem, book, x, residual_is_true),
        curvature_direction=curvature_direction,
        curvature=curvature,
        batched=True,
    )
    return result.sample(0) if problem.single else result


def _check_preconditioner(rz: np.ndarray, samples: np.ndarray) -> None:
    """Raise when r^T M r < 0 for some sample: ``M`` is not positive definite."""
    bad = np.isfinite(rz) & (rz < 0)
    if bad.any():
        raise ValueError(
            f"the preconditioner M gave r^T M r < 0 for sample(s) {samples[bad].tolist()}: "
            "M must be symmetric positive definite for cg and minres."
        )
