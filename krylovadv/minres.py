r"""MINRES for symmetric (possibly indefinite or singular) systems, batched.

MINRES (Paige & Saunders 1975) takes, at step :math:`k`, the iterate of
:math:`x_0 + \mathcal K_k(A, r_0)` that minimises :math:`\|b - Ax\|_2`, like
GMRES (Qian et al., eqs. 9–11), but uses the symmetry of :math:`A`: the Lanczos
process

.. math:: A V_k = V_{k+1} \underline{T}_k, \qquad
          \beta_{k+1} v_{k+1} = A v_k - \alpha_k v_k - \beta_k v_{k-1},

gives a *tridiagonal* :math:`\underline{T}_k`, so the Givens QR of the
least-squares problem :math:`\min_y \|\beta_1 e_1 - \underline{T}_k y\|`
(GMRES's eqs. 12–14) touches three entries per step and the iterate is
updated by a three-term recurrence of search directions
:math:`w_k = (v_k - \varepsilon_k w_{k-2} - \delta_k w_{k-1})/\gamma_k`,
:math:`x_k = x_{k-1} + \phi_k w_k`.  Memory is seven vectors per sample
whatever :math:`k` (GMRES: :math:`k + 1`).

On a singular *consistent* system (:math:`b` in the range of :math:`A`, the
exact input Hessian of a ReLU network), every Lanczos vector lies in the range
of :math:`A` when :math:`x_0 = 0`, so the iterate stays in the range and MINRES
returns the minimum-norm solution :math:`A^+ b`.

Semantics follow :func:`scipy.sparse.linalg.minres` (``shift`` solves
:math:`(A - \sigma I)x = b`, ``maxiter`` counts iterations with default
``5 n``, ``callback(xk)``, ``check``); the tolerance contract is that of
:func:`krylovadv.gmres` (true residual, per sample, batched).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import batched_norm, finfo_eps, is_complex, to_numpy
from ._symmetric import (
    Bookkeeping,
    Problem,
    SymmetricResult,
    active_index,
    apply,
    complex_dots,
    dots,
    finish,
    initial_residual,
    precondition,
    put_rows,
    rows,
    setup_problem,
    true_residual,
)
from ._system import ask_callback, check_maxiter, reject_unexpected
from .operators import ShiftedOperator
from .status import SolverStatus

__all__ = ["MINRESResult", "minres"]

Array = Any

#: Safety factor of the Lanczos breakdown test.  The computed
#: :math:`\beta_{k+1}v_{k+1}` of an invariant Krylov space is rounding of the
#: three-term recurrence, a few :math:`\varepsilon\|T_k\|` growing like
#: :math:`\sqrt k`; the same constant as the Arnoldi breakdown test of GMRES.
BREAKDOWN_FACTOR = 16.0


def least_squares_threshold(eps: float) -> float:
    r"""Threshold of the least-squares test :math:`\|Ar\| \le \sqrt\varepsilon\,\|T_k\|\,\|r\|`.

    Once a Ritz value converges, the three-term Lanczos recurrence loses
    orthogonality at the level :math:`\sqrt\varepsilon` (Paige 1976); on a singular
    inconsistent system the last pivot :math:`\gamma_k`, zero in exact arithmetic, is
    then of that size relative to :math:`\|T_k\|` and dividing by it would throw the
    iterate away.  Below this level the residual is, to working accuracy, orthogonal
    to the range of :math:`A`.  A consistent system whose restricted condition number
    exceeds :math:`1/\sqrt\varepsilon` may trip the test early; the true-residual
    check then restarts it instead of stopping.
    """
    return float(np.sqrt(eps))


@dataclass(eq=False, repr=False)
class MINRESResult(SymmetricResult):
    r"""Outcome of :func:`minres`, per sample.

    Scalars for a single system, arrays of length ``B`` for a batch
    (``result.sample(i)`` is sample ``i``'s result, ``result.batch_size`` is
    ``B``).  The result is also scipy's pair: ``x, info = minres(A, b)``,
    ``result[0]`` is ``x`` and ``result[1]`` is ``info`` (0 on convergence,
    else the number of iterations).

    Attributes
    ----------
    x : array
        Approximate solution, ``(n,)`` or ``(B, n)``.
    converged : bool or numpy.ndarray of bool
        Whether :math:`\|b - (A - \sigma I)x\|_2 \le \max(\mathrm{rtol}\|b\|_2,
        \mathrm{atol})` on the true residual.
    status : SolverStatus or numpy.ndarray of int
        ``CONVERGED``, ``MAX_ITERATIONS``, ``BREAKDOWN`` (the Krylov space
        became invariant and the true residual misses the tolerance: ``b`` is
        not in the range of ``A``; ``x`` is then a least-squares solution),
        ``STAGNATION``, ``NON_FINITE`` or ``CALLBACK``.
    iterations : int or numpy.ndarray of int
        Lanczos steps.
    matvecs : int or numpy.ndarray of int
        Products with ``A`` (steps, true-residual checks, :math:`r_0` for a
        nonzero ``x0``, and the symmetry test of ``check=True``).
    residual_norm : float or numpy.ndarray
        True residual :math:`\|b - (A - \sigma I)x\|_2` of the returned ``x``.
    residual_history : numpy.ndarray or list of numpy.ndarray
        Residual estimates :math:`\bar\phi_k` (:math:`\|r_k\|_2`, or
        :math:`\|r_k\|_M` with a preconditioner), from :math:`\bar\phi_0`.
    restarts : int or numpy.ndarray of int
        Residual replacements: restarts from the true residual after the
        estimate met the tolerance but the true residual did not.
    """

    restarts: Any
    batched: bool = field(default=True, repr=False)


@dataclass
class _Lanczos:
    """Per-sample state of the MINRES recurrence (host scalars, device vectors)."""

    r1: Array  # beta_{k-1} v_{k-1}: the previous unnormalised Lanczos vector
    r2: Array  # beta_k v_k: the current one (normalised by beta_k = ||r2||_M)
    y: Array  # M r2 (r2 itself without a preconditioner)
    w: Array  # search direction w_k
    w_prev: Array  # w_{k-1}
    beta: np.ndarray  # beta_{k+1} (M-norm of r2)
    oldb: np.ndarray  # beta_k
    dbar: np.ndarray
    epsln: np.ndarray
    phibar: np.ndarray
    cs: np.ndarray
    sn: np.ndarray
    tnorm2: np.ndarray  # ||T_k||_F^2 of this cycle (beta_{k+1} included, beta_1 not)
    # max of tnorm2 over every cycle so far: the scale of the breakdown and pivot tests.
    # A restart from a least-squares iterate starts in (nearly) the null space of A, where
    # this cycle's T_k is tiny; only the earlier cycles still know how large A is.
    anorm2: np.ndarray
    steps: np.ndarray  # Lanczos steps since the last (re)start
    ptol: np.ndarray  # tolerance on phibar (M-norm) equivalent to tol on ||r||_2


def minres(
    A: Any,
    b: Array,
    x0: Array | None = None,
    *,
    shift: float = 0.0,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[Any], Any] | None = None,
    check: bool = False,
    **unexpected: Any,
) -> MINRESResult:
    r"""Solve :math:`(A - \sigma I)x = b` for a symmetric ``A`` by MINRES.

    Parameters
    ----------
    A : LinearOperator, array, scipy sparse matrix, scipy LinearOperator or callable
        Symmetric (real) or Hermitian (complex) operator(s), possibly
        indefinite or singular; ``(B, n, n)``
        or a batched operator gives ``B`` independent systems.
    b : array or list, shape (n,), (n, 1) or (B, n)
        Right-hand side(s), numpy (also a list or ``numpy.matrix``) or torch
        (any device), with :func:`krylovadv.gmres`'s input rules: float32,
        float64, complex64 or complex128, integers upcast to float64, the
        working dtype joining ``A``'s and ``b``'s, ``(n, 1)`` scipy's column
        vector.
    x0 : array, optional
        Starting guess (zeros by default; the minimum-norm property of
        singular systems needs :math:`x_0` in the range of ``A``, e.g. 0).
    shift : float
        :math:`\sigma`: solve :math:`(A - \sigma I)x = b` (scipy's convention).
    rtol, atol : float
        Per sample, stop when the true residual satisfies
        :math:`\|b - (A-\sigma I)x\|_2 \le \max(\mathrm{rtol}\|b\|_2, \mathrm{atol})`.
        (scipy has no ``atol`` and stops on a backward-error estimate; the test
        here is the same as :func:`krylovadv.gmres`'s.)
    maxiter : int, optional
        Maximum Lanczos steps per sample (``5 n`` by default, as scipy).
    M : operator, optional
        Inverse of a symmetric positive definite preconditioner.
    callback : callable, optional
        Called after every step with the iterate(s); returning ``True`` or a
        boolean array of length ``B`` stops (those) samples with ``CALLBACK``.
    check : bool
        Test, before iterating, that ``A`` (and ``M``) are symmetric on a pair
        of random vectors per sample (two products each); raise ``ValueError``
        if not.  The vectors are seeded, so the test is reproducible:
        ``rng = numpy.random.default_rng(0)``; ``u, v = rng.standard_normal((2, B, n))``,
        and for complex data ``u += 1j * rng.standard_normal((B, n))``, then
        ``v += 1j * rng.standard_normal((B, n))``.  Like any randomized probe it
        cannot see an asymmetry :math:`A - A^H` that vanishes on them.

    Returns
    -------
    MINRESResult

    Raises
    ------
    ValueError
        On shape mismatches, NaN/Inf in ``b`` or ``x0``, invalid tolerances,
        a non-symmetric operator with ``check=True``, or a preconditioner with
        :math:`r^T M r < 0`.
    TypeError
        On non-floating or mismatched dtypes.

    Notes
    -----
    **Stopping.**  Per sample, when the residual estimate :math:`\bar\phi_k`
    meets the tolerance, or the Lanczos process breaks down
    (:math:`\beta_{k+1} \le 16\sqrt{k}\,\varepsilon\|T_k\|_F`: the Krylov
    space is invariant to working precision, so the iterate is the exact
    minimiser over it), the true residual is computed.  Met: ``CONVERGED``.
    Missed after a breakdown: ``BREAKDOWN`` (inconsistent system, ``x`` a
    least-squares solution, not necessarily the minimum-norm one).  Missed
    otherwise: restart from the true residual (``restarts``), and after
    :data:`~krylovadv._symmetric.STAGNATION_RESTARTS` restarts without a
    relative improvement above :math:`\sqrt\varepsilon`, ``STAGNATION``.  A
    zero pivot :math:`\gamma_k` (a singular :math:`T_k`, only possible at a
    breakdown) skips the update instead of dividing by zero.

    Samples never mix (``minres(A, b).sample(i)`` equals ``minres(A[i], b[i])``) and
    only unfinished samples reach the operator.

    Examples
    --------
    >>> import numpy as np
    >>> from krylovadv import minres
    >>> A = np.diag([2.0, -1.0, 0.0])           # indefinite and singular
    >>> b = np.array([2.0, 1.0, 0.0])           # consistent
    >>> x, info = minres(A, b, rtol=1e-12)
    >>> np.allclose(x, [1.0, -1.0, 0.0])        # the minimum-norm solution
    True
    """
    if unexpected:
        reject_unexpected("minres", unexpected)
    problem = setup_problem(A, b, x0, M, rtol, atol)
    shift = float(shift)
    if not np.isfinite(shift):
        raise ValueError(f"shift must be finite; got {shift}.")
    if shift != 0.0:
        problem.op = ShiftedOperator(problem.op, -shift)
    xp, dev = problem.xp, problem.device
    B, n = problem.batch, problem.n
    maxiter = check_maxiter(maxiter, 5 * n)
    eps = finfo_eps(xp, problem.dtype)

    book = Bookkeeping.start(B, eps)
    if check:
        _check_symmetric(problem, book)
    r = initial_residual(problem, book)
    x = problem.x
    state = _Lanczos(
        r1=xp.asarray(r, copy=True),
        r2=xp.asarray(r, copy=True),
        y=xp.asarray(r, copy=True),
        w=xp.zeros_like(x),
        w_prev=xp.zeros_like(x),
        **{
            name: np.zeros(B)
            for name in (
                "beta",
                "oldb",
                "dbar",
                "epsln",
                "phibar",
                "cs",
                "sn",
                "tnorm2",
                "anorm2",
                "ptol",
            )
        },
        steps=np.zeros(B, dtype=np.int64),
    )
    restarts = np.zeros(B, dtype=np.int64)
    residual_is_true = np.ones(B, dtype=bool)
    _start(problem, state, r, book.running, book.residual_norm)
    for s in range(B):
        book.history[s].append(float(state.phibar[s] if book.running[s] else book.residual_norm[s]))

    while book.running.any():
        idx_np, idx = active_index(xp, book.running, dev)
        st = state
        v, alfa, beta_new, finite = _lanczos_step(problem, st, idx_np, idx)
        book.matvecs[idx_np] += 1
        book.iterations[idx_np] += 1
        st.anorm2[idx_np] = np.maximum(st.anorm2[idx_np], st.tnorm2[idx_np])
        tnorm = np.sqrt(np.where(finite, st.anorm2[idx_np], 0.0))
        invariant = finite & (
            beta_new <= BREAKDOWN_FACTOR * np.sqrt(st.steps[idx_np]) * eps * tnorm
        )
        step = _givens_update(st, idx_np, alfa, beta_new, finite, tnorm, eps)
        _update_iterate(problem, st, x, v, idx, step)
        least_squares = step.least_squares

        book.status[idx_np[~finite]] = SolverStatus.NON_FINITE
        ok = idx_np[finite]
        residual_is_true[ok] = False
        book.residual_norm[ok] = st.phibar[ok]  # an estimate until the check below
        book.record(ok, st.phibar[ok])

        # Confirm on the true residual where the estimate passed or the space is invariant.
        broke = np.zeros(B, dtype=bool)
        broke[idx_np[invariant | least_squares]] = True
        candidate = np.zeros(B, dtype=bool)
        candidate[ok] = st.phibar[ok] <= st.ptol[ok]
        candidate |= broke
        replace = np.zeros(B, dtype=bool)
        if candidate.any():
            c_np, c_idx = active_index(xp, candidate, dev)
            r_true, r_true_norm = true_residual(problem, x, c_np, c_idx)
            book.matvecs[c_np] += 1
            book.residual_norm[c_np] = r_true_norm
            residual_is_true[c_np] = True
            for k, s in enumerate(c_np.tolist()):
                replace[s] = book.judge(s, r_true_norm[k], problem.tol[s], broke[s])
            if replace.any():
                keep = replace[c_np]
                rep_np = c_np[keep]
                rep_idx = xp.asarray(rep_np, device=dev)
                r_rep = xp.take(r_true, xp.asarray(np.flatnonzero(keep), device=dev), axis=0)
                full_r = xp.zeros_like(x)
                full_r[rep_idx] = r_rep
                restarts[rep_np] += 1
                _start(problem, state, full_r, replace, book.residual_norm)

        if callback is not None:
            stop = ask_callback(callback, x[0] if problem.single else x, B) & book.running
            book.status[stop] = SolverStatus.CALLBACK
        out_of_steps = book.running & (book.iterations >= maxiter)
        book.status[out_of_steps] = SolverStatus.MAX_ITERATIONS

    result = MINRESResult(
        **finish(problem, book, x, residual_is_true),
        restarts=restarts,
        batched=True,
    )
    return result.sample(0) if problem.single else result


@dataclass
class _Step:
    """One Givens update of the QR factorization of :math:`T_k`, per active sample."""

    phi: np.ndarray  # phi_k, the step along w_k
    delta: np.ndarray  # delta_k, coefficient of w_{k-1}
    oldeps: np.ndarray  # eps_k, coefficient of w_{k-2}
    gamma: np.ndarray  # gamma_k (1 where there is no pivot)
    pivot: np.ndarray  # whether gamma_k is usable (else: no update)
    least_squares: np.ndarray  # whether x_{k-1} already solves the least-squares problem


def _lanczos_step(
    problem: Problem, st: _Lanczos, idx_np: np.ndarray, idx: Array | None
) -> tuple[Array, np.ndarray, np.ndarray, np.ndarray]:
    r"""One Lanczos step :math:`\beta_{k+1}v_{k+1} = Av_k - \alpha_k v_k - \beta_k v_{k-1}`.

    Returns :math:`v_k`, :math:`\alpha_k`, :math:`\beta_{k+1}` (0 where not
    finite) and whether the step was finite; updates the state's vectors,
    :math:`\beta`'s and :math:`\|T_k\|_F^2`.
    """
    xp, dev, dtype = problem.xp, problem.device, problem.dtype
    beta = st.beta[idx_np]
    oldb = st.oldb[idx_np]
    v = rows(xp, st.y, idx) * xp.asarray(1.0 / beta, dtype=dtype, device=dev)[:, None]
    y = apply(problem.op, v, idx)
    st.steps[idx_np] += 1
    with np.errstate(divide="ignore", invalid="ignore"):
        coupling = np.where(oldb > 0, beta / np.where(oldb > 0, oldb, 1.0), 0.0)
    # A new array (the operator's output may be the caller's): later updates are in place.
    y = y - xp.asarray(coupling, dtype=dtype, device=dev)[:, None] * rows(xp, st.r1, idx)
    alfa = dots(xp, v, y)
    r2_old = rows(xp, st.r2, idx)
    y -= xp.asarray(alfa / beta, dtype=dtype, device=dev)[:, None] * r2_old
    z = precondition(problem, y, idx)
    if idx is None:
        # Every sample steps: pass the vectors on instead of copying them.  (st.y
        # and st.r2 may then be one array; neither is ever modified in place.)
        st.r1, st.r2, st.y = r2_old, y, z
    else:
        put_rows(st.r1, idx, r2_old)
        put_rows(st.r2, idx, y)
        put_rows(st.y, idx, z)
    beta_sq = dots(xp, y, z)
    finite = np.isfinite(alfa) & np.isfinite(beta_sq)
    _check_preconditioner(beta_sq[finite], idx_np[finite])
    beta_new = np.sqrt(np.where(finite, np.maximum(beta_sq, 0.0), 0.0))
    st.oldb[idx_np] = beta
    st.beta[idx_np] = beta_new
    # beta_1 = ||r_0|| normalises v_1 and is no entry of T_k: counting it (as scipy's
    # minres does) would scale the thresholds by ||b|| instead of ||A||.
    beta_in_t = np.where(st.steps[idx_np] > 1, beta, 0.0)
    st.tnorm2[idx_np] += alfa**2 + beta_in_t**2 + beta_new**2
    return v, alfa, beta_new, finite


def _givens_update(
    st: _Lanczos,
    idx_np: np.ndarray,
    alfa: np.ndarray,
    beta_new: np.ndarray,
    finite: np.ndarray,
    tnorm: np.ndarray,
    eps: float,
) -> _Step:
    """Apply the previous rotation to column k of :math:`T_k`, then the new one (3 entries)."""
    cs, sn = st.cs[idx_np], st.sn[idx_np]
    dbar = st.dbar[idx_np]
    oldeps = st.epsln[idx_np]
    delta = cs * dbar + sn * alfa
    gbar = sn * dbar - cs * alfa
    st.epsln[idx_np] = sn * beta_new
    st.dbar[idx_np] = -cs * beta_new
    gamma = np.hypot(gbar, beta_new)
    # ||A r_{k-1}|| = phibar_{k-1} * root: the previous iterate is a least-squares
    # solution when root is negligible against ||T_k||.
    root = np.hypot(gbar, -cs * beta_new)
    least_squares = finite & (root <= least_squares_threshold(eps) * tnorm)
    # gamma = 0 only when beta_{k+1} = 0 and T_k is singular: no update (no 0/0).
    pivot = finite & ~least_squares & (gamma > eps * tnorm)
    safe_gamma = np.where(pivot, gamma, 1.0)
    cs_new = np.where(pivot, gbar / safe_gamma, cs)
    sn_new = np.where(pivot, beta_new / safe_gamma, sn)
    phibar = st.phibar[idx_np]
    st.phibar[idx_np] = np.where(pivot, sn_new * phibar, phibar)
    st.cs[idx_np], st.sn[idx_np] = cs_new, sn_new
    return _Step(
        phi=np.where(pivot, cs_new * phibar, 0.0),
        delta=delta,
        oldeps=np.where(pivot, oldeps, 0.0),
        gamma=safe_gamma,
        pivot=pivot,
        least_squares=least_squares,
    )


def _update_iterate(
    problem: Problem, st: _Lanczos, x: Array, v: Array, idx: Array | None, step: _Step
) -> None:
    r"""Update the directions and the iterate of the samples that step.

    :math:`w_k = (v_k - \varepsilon_k w_{k-2} - \delta_k w_{k-1})/\gamma_k` and
    :math:`x_k = x_{k-1} + \phi_k w_k`.
    """
    xp, dev = problem.xp, problem.device

    def col(a: np.ndarray) -> Array:
        return xp.asarray(a, dtype=problem.dtype, device=dev)[:, None]

    w_prev = rows(xp, st.w_prev, idx)
    w = rows(xp, st.w, idx)
    w_new = (v - col(step.oldeps) * w_prev - col(step.delta) * w) * col(1.0 / step.gamma)
    if step.pivot.all() and idx is None:
        st.w_prev, st.w = w, w_new
    elif step.pivot.all():
        put_rows(st.w_prev, idx, w)
        put_rows(st.w, idx, w_new)
    else:
        # No pivot, no step: these samples keep w and x exactly.
        stepping = xp.asarray(step.pivot, device=dev)[:, None]
        w_new = xp.where(stepping, w_new, xp.zeros_like(w_new))
        put_rows(st.w_prev, idx, xp.where(stepping, w, w_prev))
        put_rows(st.w, idx, xp.where(stepping, w_new, w))
    if idx is None:
        x += col(step.phi) * w_new
    else:
        put_rows(x, idx, rows(xp, x, idx) + col(step.phi) * w_new)


def _start(problem: Problem, st: _Lanczos, r: Array, mask: np.ndarray, r_norm: np.ndarray) -> None:
    r"""(Re)start the recurrence from residual ``r`` for the samples in ``mask``.

    :math:`\beta_1 = \|r\|_M`, :math:`\bar\phi_0 = \beta_1`, and the tolerance on
    :math:`\bar\phi` is the 2-norm tolerance scaled by :math:`\beta_1/\|r\|_2` (the
    two norms agree without a preconditioner).
    """
    xp = problem.xp
    idx_np, idx = active_index(xp, mask, problem.device)
    if idx_np.size == 0:
        return
    r_rows = rows(xp, r, idx)
    z = precondition(problem, r_rows, idx)
    beta_sq = dots(xp, r_rows, z)
    _check_preconditioner(beta_sq, idx_np)
    beta1 = np.sqrt(np.maximum(beta_sq, 0.0))
    zero = xp.zeros_like(r_rows)
    if st.y is st.r2:  # passed on as one array (see the loop): give y its own rows again
        st.y = xp.asarray(st.y, copy=True)
    for name, value in (("r1", r_rows), ("r2", r_rows), ("y", z), ("w", zero), ("w_prev", zero)):
        put_rows(getattr(st, name), idx, value)
    st.beta[idx_np] = beta1
    st.oldb[idx_np] = 0.0
    st.dbar[idx_np] = 0.0
    st.epsln[idx_np] = 0.0
    st.phibar[idx_np] = beta1
    st.cs[idx_np] = -1.0
    st.sn[idx_np] = 0.0
    st.tnorm2[idx_np] = 0.0
    st.steps[idx_np] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(r_norm[idx_np] > 0, beta1 / r_norm[idx_np], 1.0)
    st.ptol[idx_np] = problem.tol[idx_np] * scale


def _check_preconditioner(beta_sq: np.ndarray, samples: np.ndarray) -> None:
    bad = beta_sq < 0
    if bad.any():
        raise ValueError(
            f"the preconditioner M gave r^T M r < 0 for sample(s) {samples[bad].tolist()}: "
            "M must be symmetric positive definite for minres."
        )


def _check_symmetric(problem: Problem, book: Bookkeeping) -> None:
    r"""Raise unless :math:`|v^H Au - \overline{u^H Av}| \le \varepsilon^{2/3}\|Au\|\|v\|`.

    Checked per sample on seeded random vectors.

    (For real data this is :math:`|v^T A u - u^T A v|`; for complex data it is the
    Hermitian test, :math:`v^H A u = \overline{u^H A v}`.)

    :math:`\varepsilon^{2/3}` (as scipy's ``check``): rounding of the two products
    is about :math:`n\varepsilon\|A\|\|u\|\|v\|`, far below it for a symmetric
    operator, while a genuinely non-symmetric one misses it by orders of magnitude.
    """
    xp = problem.xp
    B, n = problem.batch, problem.n
    rng = np.random.default_rng(0)
    # Complex test vectors for a complex system: real ones would not tell a complex
    # symmetric A = A^T from a Hermitian one.
    u_np, v_np = rng.standard_normal((2, B, n))
    if is_complex(xp, problem.dtype):
        u_np = u_np + 1j * rng.standard_normal((B, n))
        v_np = v_np + 1j * rng.standard_normal((B, n))
    u = xp.asarray(u_np, dtype=problem.dtype, device=problem.device)
    v = xp.asarray(v_np, dtype=problem.dtype, device=problem.device)
    eps = finfo_eps(xp, problem.dtype)
    for name, op in (("A", problem.op), ("M", problem.precond)):
        if op is None:
            continue
        Au, Av = apply(op, u, None), apply(op, v, None)
        if op is problem.op:
            book.matvecs += 2
        s = complex_dots(xp, v, Au)
        t = complex_dots(xp, u, Av)
        scale = to_numpy(batched_norm(xp, Au) * batched_norm(xp, v)).astype(np.float64)
        bad = np.abs(s - np.conj(t)) > eps ** (2 / 3) * np.maximum(scale, np.finfo(np.float64).tiny)
        if bad.any():
            raise ValueError(
                f"{name} is not symmetric (Hermitian) for sample(s) {np.flatnonzero(bad).tolist()} "
                "(v^H A u != conj(u^H A v) on random vectors); minres needs a symmetric or "
                "Hermitian operator (use gmres for a general one)."
            )
