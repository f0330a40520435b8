r"""Input checks, per-sample records and results shared by the short-recurrence solvers.

:func:`krylovadv.cg` and :func:`krylovadv.minres` take the same arguments as
:func:`krylovadv.gmres` (an operator, right-hand sides ``(n,)`` or ``(B, n)``,
``x0``, ``rtol``/``atol``, ``maxiter``, ``M``, ``callback``) and report the
same per-sample facts (status, iterations, matvecs, *true* residual, history
of residual estimates).  This module holds that common part once, so each
solver module contains only its recurrence; the input rules themselves are
:mod:`krylovadv._system`'s, shared with GMRES.

Complex Hermitian systems need nothing else: the inner products here are
:math:`a^H b`, and the ones the recurrences use are real (see :func:`dots`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._backend import batched_dot, batched_norm, device, to_numpy
from ._results import SolveResult
from ._system import System, check_tolerances, make_system, residual_targets
from .operators import LinearOperator
from .status import SolverStatus

Array = Any

#: Residual replacements in a row that bring no relative improvement of the true
#: residual above sqrt(eps) before a sample is declared stagnant.  When the recursive
#: residual passes the tolerance but the true one does not, the solver restarts from
#: the true residual; once that no longer helps, the tolerance is below the accuracy
#: this dtype and operator can reach.
STAGNATION_RESTARTS = 3


@dataclass
class Problem(System):
    r"""A validated batch of systems :math:`A_i x_i = b_i` with its stopping targets.

    The fields of :class:`krylovadv._system.System` (``xp``, ``op``, ``precond``,
    ``b``, ``x``, ``x0_nonzero``, ``single``), and:

    Attributes
    ----------
    b_norm, tol : numpy.ndarray, shape (B,)
        :math:`\|b_i\|` and :math:`\max(\mathrm{rtol}\|b_i\|, \mathrm{atol})`.
    """

    b_norm: np.ndarray
    tol: np.ndarray

    @property
    def batch(self) -> int:
        return int(self.b.shape[0])

    @property
    def n(self) -> int:
        return int(self.b.shape[1])

    @property
    def dtype(self) -> Any:
        return self.b.dtype

    @property
    def device(self) -> Any:
        return device(self.b)


def setup_problem(A: Any, b: Array, x0: Array | None, M: Any, rtol: Any, atol: Any) -> Problem:
    """Validate the arguments shared by the solvers with scipy's conventions.

    The input rules are :func:`krylovadv._system.make_system`'s (the same as
    :func:`krylovadv.gmres`): lists and ``numpy.matrix`` are arrays, integer data
    is upcast to float64, ``(n, 1)`` is scipy's column vector, the working dtype
    joins ``A``'s and ``b``'s (complex for a complex Hermitian ``A``), and
    ``atol=None`` is a ``ValueError`` as in scipy.
    """
    rtol, atol = check_tolerances(rtol, atol)
    system = make_system(A, b, x0, M)
    b_norm, tol = residual_targets(system.xp, system.b, rtol, atol)
    return Problem(**vars(system), b_norm=b_norm, tol=tol)


def row_norms(xp: Any, a: Array) -> np.ndarray:
    r"""Return the row norms of ``a`` in float64 on the host, by a dot product when safe.

    The square root of the dot product is a third of the cost of the scaled norm on
    short numpy rows; it is kept only when the squares neither overflow nor
    underflow (every norm finite and above :math:`\sqrt{\text{tiny}}/\varepsilon`,
    or zero for a row of zeros), otherwise the scaled
    :func:`~krylovadv._backend.batched_norm` is used.
    """
    if type(a) is np.ndarray and a.ndim == 2:
        squares = np.einsum("ij,ij->i", a.conj(), a).real if np.iscomplexobj(a) else None
        if squares is None:
            squares = np.einsum("ij,ij->i", a, a)
        quick = np.sqrt(squares).astype(np.float64)
        finfo = np.finfo(a.dtype)
        # A zero from the dot product is trusted only for a row that is zero: squares of
        # entries below sqrt(tiny) underflow to 0 (||(1e-170, 1e-170)|| is not 0).
        zero = quick == 0
        truly_zero = zero & ~np.any(a != 0, axis=1) if zero.any() else zero
        if np.all(np.isfinite(quick)) and np.all(
            truly_zero | (quick > np.sqrt(finfo.smallest_normal) / finfo.eps)
        ):
            return quick
    return to_numpy(batched_norm(xp, a)).astype(np.float64)


def dots(xp: Any, a: Array, b: Array) -> np.ndarray:
    r"""Row-wise real parts of :math:`a_i^H b_i` in float64 on the host.

    The solvers only take inner products that are real for a Hermitian ``A``
    (and Hermitian positive definite ``M``): :math:`r^H M r`, :math:`d^H A d`,
    :math:`v^H A v`.  For a complex system the imaginary part is rounding error
    of order :math:`\varepsilon\|A\|\|a\|\|b\|`, so dropping it keeps the
    recurrences (step lengths, Lanczos :math:`\alpha_k`, :math:`\beta_k`, Givens
    rotations) real, as in exact arithmetic.  For real data this is the plain dot.
    """
    if type(a) is np.ndarray and type(b) is np.ndarray:
        if np.iscomplexobj(a) or np.iscomplexobj(b):
            return np.einsum("ij,ij->i", a.conj(), b).real.astype(np.float64)
        return np.einsum("ij,ij->i", a, b).astype(np.float64, copy=False)
    return np.real(to_numpy(batched_dot(xp, a, b))).astype(np.float64)


def complex_dots(xp: Any, a: Array, b: Array) -> np.ndarray:
    """Row-wise :math:`a_i^H b_i` in complex128 on the host (keeps the imaginary part)."""
    return to_numpy(batched_dot(xp, a, b)).astype(np.complex128)


def apply(op: LinearOperator, x: Array, idx: Array | None) -> Array:
    """``op`` on rows ``x`` belonging to samples ``idx`` (``None`` = all)."""
    return op.matvec(x, idx if op.batch_size is not None else None)


def rows(xp: Any, a: Array, idx: Array | None) -> Array:
    """Rows ``idx`` of ``a`` (all of them for ``None``)."""
    return a if idx is None else xp.take(a, idx, axis=0)


def active_index(xp: Any, mask: np.ndarray, dev: Any) -> tuple[np.ndarray, Array | None]:
    """Host indices of ``mask`` and their device array (``None`` when all are active)."""
    idx_np = np.flatnonzero(mask)
    if idx_np.size == mask.size:
        return idx_np, None
    return idx_np, xp.asarray(idx_np, device=dev)


def put_rows(full: Array, idx: Array | None, values: Array) -> None:
    """``full[idx] = values`` in place (every row for ``None``)."""
    if idx is None:
        full[...] = values
    else:
        full[idx] = values


def true_residual(
    problem: Problem, x: Array, idx_np: np.ndarray, idx: Array | None
) -> tuple[Array, np.ndarray]:
    r"""Return :math:`r = b - Ax` on the rows ``idx`` and its norms (one product per row)."""
    xp = problem.xp
    Ax = apply(problem.op, rows(xp, x, idx), idx)
    r = rows(xp, problem.b, idx) - Ax
    return r, to_numpy(batched_norm(xp, r)).astype(np.float64)


def precondition(problem: Problem, r: Array, idx: Array | None) -> Array:
    """:math:`z = M r` on rows ``idx`` (``r`` itself without a preconditioner)."""
    if problem.precond is None:
        return r
    return apply(problem.precond, r, idx)


@dataclass
class Bookkeeping:
    """Per-sample host records of an iterative solve (status, counts, histories)."""

    status: np.ndarray
    iterations: np.ndarray
    matvecs: np.ndarray
    residual_norm: np.ndarray
    history: list[list[float]]
    best: np.ndarray
    stalled: np.ndarray
    #: A true residual below ``margin`` times the best so far is progress: a relative
    #: improvement above sqrt(eps), which rounding alone does not produce.
    margin: float

    @classmethod
    def start(cls, B: int, eps: float) -> Bookkeeping:
        """Fresh records for ``B`` samples of a dtype with machine epsilon ``eps``."""
        return cls(
            status=np.full(B, int(SolverStatus.NOT_STARTED), dtype=np.int64),
            iterations=np.zeros(B, dtype=np.int64),
            matvecs=np.zeros(B, dtype=np.int64),
            residual_norm=np.full(B, np.inf),
            history=[[] for _ in range(B)],
            best=np.full(B, np.inf),
            stalled=np.zeros(B, dtype=np.int64),
            margin=1.0 - float(np.sqrt(eps)),
        )

    @property
    def running(self) -> np.ndarray:
        return self.status == SolverStatus.NOT_STARTED

    def record(self, samples: np.ndarray, values: np.ndarray) -> None:
        for s, v in zip(samples.tolist(), np.asarray(values).tolist(), strict=True):
            self.history[s].append(float(v))

    def judge(self, s: int, r_true: float, tol: float, broke: bool = False) -> bool:
        """Set sample ``s``'s status from its true residual; return whether to restart it.

        ``CONVERGED`` if ``r_true <= tol``; ``NON_FINITE`` if it is not finite;
        ``BREAKDOWN`` if the Krylov space was exhausted (``broke``) without progress
        since the best residual so far; ``STAGNATION`` after
        :data:`STAGNATION_RESTARTS` restarts without progress; otherwise the
        sample restarts from its true residual (``True``).
        """
        if r_true <= tol:
            self.status[s] = SolverStatus.CONVERGED
        elif not np.isfinite(r_true):
            self.status[s] = SolverStatus.NON_FINITE
        elif broke and r_true >= self.margin * self.best[s]:
            self.status[s] = SolverStatus.BREAKDOWN
        elif self.stagnant(s, r_true):
            self.status[s] = SolverStatus.STAGNATION
        else:
            return True
        return False

    def stagnant(self, s: int, r_norm: float) -> bool:
        """Count a restart of sample ``s`` that ended at true residual ``r_norm``."""
        if r_norm < self.margin * self.best[s]:
            self.best[s] = r_norm
            self.stalled[s] = 0
        else:
            self.stalled[s] += 1
        return bool(self.stalled[s] >= STAGNATION_RESTARTS)


def initial_residual(problem: Problem, book: Bookkeeping) -> Array:
    r"""Return :math:`r_0 = b - Ax_0` (one product only where ``x0`` is nonzero).

    Samples with :math:`b = 0` get :math:`x = 0` and ``CONVERGED`` (as scipy);
    samples whose :math:`r_0` already meets the tolerance are ``CONVERGED``.
    """
    xp = problem.xp
    dev = problem.device
    zero_rhs = problem.b_norm == 0
    if zero_rhs.any():
        problem.x = xp.where(
            xp.asarray(zero_rhs, device=dev)[:, None], xp.zeros_like(problem.x), problem.x
        )
        book.status[zero_rhs] = SolverStatus.CONVERGED
        problem.x0_nonzero &= ~zero_rhs
    r = xp.asarray(problem.b, copy=True)
    r_norm = problem.b_norm.copy()
    if problem.x0_nonzero.any():
        idx_np = np.flatnonzero(problem.x0_nonzero)
        idx = xp.asarray(idx_np, device=dev)
        r_rows, norms = true_residual(problem, problem.x, idx_np, idx)
        r[idx] = r_rows
        book.matvecs[idx_np] += 1
        r_norm[idx_np] = norms
        book.status[idx_np[~np.isfinite(norms)]] = SolverStatus.NON_FINITE
    r_norm[zero_rhs] = 0.0
    book.residual_norm[:] = r_norm
    book.best[:] = r_norm
    done = book.running & (r_norm <= problem.tol)
    book.status[done] = SolverStatus.CONVERGED
    return r


def finish(
    problem: Problem, book: Bookkeeping, x: Array, residual_is_true: np.ndarray
) -> dict[str, Any]:
    """Return the fields every :class:`SymmetricResult` has, for the batch.

    ``residual_norm`` must be the true residual of the returned ``x`` for every
    sample: the samples whose last recorded norm is a recursive estimate
    (``residual_is_true`` False, and not stopped on a non-finite value) get one
    more product with ``A`` here.
    """
    stale = ~residual_is_true & (book.status != SolverStatus.NON_FINITE)
    if stale.any():
        s_np, s_idx = active_index(problem.xp, stale, problem.device)
        _, norms = true_residual(problem, x, s_np, s_idx)
        book.matvecs[s_np] += 1
        book.residual_norm[s_np] = norms
    return {
        "x": x,
        "converged": book.status == SolverStatus.CONVERGED,
        "status": book.status,
        "iterations": book.iterations,
        "matvecs": book.matvecs,
        "residual_norm": book.residual_norm,
        "residual_history": [np.asarray(h) for h in book.history],
    }


@dataclass(eq=False, repr=False)
class SymmetricResult(SolveResult):
    """The fields :func:`krylovadv.cg` and :func:`krylovadv.minres` both report.

    Subclasses add their own fields and end with ``batched`` (see
    :class:`krylovadv._results.PerSampleResult`); :func:`finish` fills these.
    """

    x: Array
    converged: Any
    status: Any
    iterations: Any
    matvecs: Any
    residual_norm: Any
    residual_history: Any

    batch_field: ClassVar[str] = "x"
