r"""Restarted GMRES with a recursive Givens QR, batched over independent systems.

GMRES (Saad & Schultz 1986) picks, at step :math:`j` of a restart cycle, the
iterate :math:`x = x_0 + V_j \gamma` that minimises the residual
:math:`\|b - A x\|_2` over the Krylov space :math:`\mathcal K_j(A, r_0)`.  With
the Arnoldi relation :math:`A V_j = V_{j+1}\bar H_j` and
:math:`r_0 = \beta v_1`,

.. math:: \|b - A(x_0 + V_j\gamma)\|_2 = \|\beta e_1 - \bar H_j \gamma\|_2

(seed 004, eqs. 9–11), a :math:`(j+1)\times j` least-squares problem solved by
the recursive Givens QR of :mod:`krylovadv.givens` (eqs. 12–14), whose
residual :math:`\|\tilde r_j\|` comes for free at every step.

Semantics follow :func:`scipy.sparse.linalg.gmres` (argument names, ``maxiter``
counting restart cycles, left preconditioning by ``M``, the adaptive inner
tolerance of scipy gh-8400), so that switching is a change of import.  What is
added: a result object with a per-sample status, batches of independent
systems, any array-API backend (numpy, torch CPU/CUDA), and stagnation and
non-finite detection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from ._backend import (
    as_batch,
    batched_norm,
    check_real_floating,
    device,
    finfo_eps,
    namespace_of,
    to_numpy,
)
from ._results import PerSampleResult
from .arnoldi import Orthogonalization, direction_lost, orthogonalize
from .givens import GivensQR
from .operators import IdentityOperator, LinearOperator, aslinearoperator
from .status import SolverStatus

__all__ = ["GMRESResult", "gmres"]

Array = Any

#: Cycles in a row without a new best true residual (by a relative margin of
#: sqrt(eps)) after which a sample is declared stagnant.  One such cycle is normal
#: near the attainable accuracy; three mean further cycles only repeat rounding.
STAGNATION_CYCLES = 3


@dataclass(eq=False)
class GMRESResult(PerSampleResult):
    r"""Outcome of :func:`gmres`, per sample.

    For a single system the fields are scalars; for a batch of ``B`` systems they
    are arrays of length ``B`` (numpy on the host, except ``x``, which is in the
    caller's array type, dtype and device).  ``result[i]`` is sample ``i``'s own
    result, equal to what solving that system alone returns.  Unpacking gives
    scipy's pair: ``x, info = gmres(A, b)``, with ``info = 0`` on convergence
    and otherwise the number of iterations taken.

    Attributes
    ----------
    x : array
        Approximate solution, shape ``(n,)`` or ``(B, n)``.
    converged : bool or numpy.ndarray of bool
        Whether :math:`\|b - A x\|_2 \le \max(\mathrm{rtol}\,\|b\|_2, \mathrm{atol})`,
        checked on the true residual.
    status : SolverStatus or numpy.ndarray of int
        Why each sample stopped; see :class:`~krylovadv.status.SolverStatus`.
    iterations : int or numpy.ndarray of int
        Inner (Arnoldi) iterations, summed over restart cycles.
    cycles : int or numpy.ndarray of int
        Restart cycles started.
    matvecs : int or numpy.ndarray of int
        Applications of ``A`` (inner iterations, plus one per cycle for the true
        residual, plus one if ``x0`` is nonzero).
    residual_norm : float or numpy.ndarray of float
        True residual norm :math:`\|b - A x\|_2` of the returned ``x``.
    residual_history : numpy.ndarray or list of numpy.ndarray
        Residual *estimates* :math:`\|\tilde r\|` of the (preconditioned) least
        squares problem: the initial :math:`\|M r_0\|`, then one per inner
        iteration (restarts start again from the true preconditioned residual).
    """

    x: Array
    converged: Any
    status: Any
    iterations: Any
    cycles: Any
    matvecs: Any
    residual_norm: Any
    residual_history: Any
    batched: bool = field(default=True, repr=False)

    batch_field: ClassVar[str] = "x"

    @property
    def message(self) -> str | list[str]:
        """Readable status message(s)."""
        if not self.batched:
            return SolverStatus(self.status).message
        return [SolverStatus(int(s)).message for s in self.status]

    @property
    def info(self) -> int | np.ndarray:
        """Return scipy's ``info``: 0 on convergence, else the number of iterations."""
        if not self.batched:
            return 0 if self.converged else int(self.iterations)
        return np.where(self.converged, 0, self.iterations)

    def __iter__(self):
        """Yield ``(x, info)`` so that ``x, info = gmres(...)`` works as in scipy."""
        return iter((self.x, self.info))

    def __repr__(self) -> str:
        if not self.batched:
            return (
                f"GMRESResult(status={SolverStatus(self.status).name}, "
                f"iterations={self.iterations}, residual_norm={self.residual_norm:.3e})"
            )
        counts = {
            SolverStatus(s).name: int(np.sum(self.status == s)) for s in np.unique(self.status)
        }
        return (
            f"GMRESResult(batch={len(self)}, status={counts}, "
            f"iterations={self.iterations.tolist()})"
        )


def _check_operator(op: LinearOperator, name: str, n: int, B: int, b_shape: tuple) -> None:
    if op.shape != (n, n):
        raise ValueError(
            f"{name} has shape {op.shape} but b has shape {b_shape}; {name} must be ({n}, {n})."
        )
    if op.batch_size is not None and op.batch_size != B:
        raise ValueError(
            f"{name} holds {op.batch_size} operators but b has {B} rows (shape {b_shape})."
        )


def _apply(op: LinearOperator, x: Array, idx: Array | None) -> Array:
    """``op`` on rows ``x`` belonging to samples ``idx`` (``None`` = all)."""
    return op.matvec(x, idx if op.batch_size is not None else None)


def gmres(
    A: Any,
    b: Array,
    x0: Array | None = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    restart: int | None = None,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[Any], Any] | None = None,
    callback_type: Literal["pr_norm", "x"] | None = None,
    orthogonalization: Orthogonalization = "cgs2",
) -> GMRESResult:
    r"""Solve :math:`A x = b` (or a batch :math:`A_i x_i = b_i`) by restarted GMRES.

    Parameters
    ----------
    A : LinearOperator, array, scipy sparse matrix, scipy LinearOperator or callable
        The operator.  A dense ``(B, n, n)`` array or a batched
        :class:`~krylovadv.operators.LinearOperator` gives ``B`` independent
        systems; an ``(n, n)`` operator with ``b`` of shape ``(B, n)`` solves
        ``B`` right-hand sides of the same operator, still independently.
    b : array, shape (n,) or (B, n)
        Right-hand side(s), float32 or float64, numpy or torch (any device).
    x0 : array, optional
        Starting guess, same shape as ``b``; zeros by default.  Never modified.
    rtol, atol : float
        Convergence test on the **true** residual, per sample:
        :math:`\|b - Ax\|_2 \le \max(\mathrm{rtol}\,\|b\|_2,\ \mathrm{atol})`.
        Checked at the end of every restart cycle (and at the start).
    restart : int, optional
        Krylov dimension of a cycle (``min(20, n)`` by default, as scipy).
    maxiter : int, optional
        Maximum number of restart cycles (``10 n`` by default, as scipy).
    M : operator, optional
        Inverse of the preconditioner, applied on the left
        (:math:`MAx = Mb`): the inner iteration minimises the preconditioned
        residual, the final test uses the unpreconditioned one (as scipy).
    callback : callable, optional
        With ``callback_type="pr_norm"`` (the default when a callback is given),
        called after every inner iteration with the relative preconditioned
        residual estimate :math:`\|\tilde r\|/\|b\|` (a float, or an array of
        length ``B``, NaN for samples not iterating).  With ``"x"``, called after
        every restart cycle with the current iterate.  Returning ``True`` stops
        every sample; returning a boolean array of length ``B`` stops those
        samples.  Stopped, unconverged samples get status ``CALLBACK``.
    callback_type : {"pr_norm", "x"}, optional
        See ``callback``.  (scipy's ``"legacy"`` is not supported: ``maxiter``
        always counts restart cycles here.)
    orthogonalization : {"cgs2", "mgs"}
        Gram-Schmidt variant for the Arnoldi basis; ``"cgs2"`` (classical,
        twice) is as stable as scipy's ``"mgs"`` and much faster.

    Returns
    -------
    GMRESResult
        Solution, per-sample status, iteration and matvec counts, true residual
        norms and the history of residual estimates.

    Raises
    ------
    ValueError
        On shape mismatches (naming both shapes), NaN/Inf in ``b`` or ``x0``, or
        invalid tolerances, ``restart`` or ``maxiter``.
    TypeError
        On non-floating or mismatched dtypes.

    Notes
    -----
    Per sample, the cycle ends when the residual estimate reaches the inner
    tolerance, when the Krylov space becomes invariant (breakdown,
    :math:`h_{j+1,j} \le \varepsilon\|A v_j\|`, with :math:`\varepsilon` the
    dtype's machine epsilon), or after ``restart`` steps.  The true residual then
    decides: converged; ``BREAKDOWN`` if an invariant space brought no progress
    (a singular, inconsistent system); ``STAGNATION`` if
    :data:`STAGNATION_CYCLES` cycles in a row brought no relative improvement
    above :math:`\sqrt{\varepsilon}` (the tolerance is below attainable
    accuracy); ``MAX_ITERATIONS`` after ``maxiter`` cycles.  A sample whose
    operator output is not finite stops with ``NON_FINITE`` and keeps its last
    finite iterate.  Samples never mix: each has its own Krylov space,
    rotations and stopping decisions, so ``gmres(A, b)[i]`` equals
    ``gmres(A[i], b[i])``.  Only unfinished samples are passed to the operator
    (with their ``indices``), so an expensive batched operator evaluates only
    the active set.

    Examples
    --------
    >>> import numpy as np
    >>> from krylovadv import gmres
    >>> A = np.array([[3.0, 2.0, 0.0], [1.0, -1.0, 0.0], [0.0, 5.0, 1.0]])
    >>> b = np.array([2.0, 4.0, -1.0])
    >>> result = gmres(A, b, atol=1e-10)
    >>> bool(result.converged), np.allclose(A @ result.x, b)
    (True, True)
    >>> x, info = gmres(A, b)   # scipy-style unpacking
    """
    xp = namespace_of(b)
    check_real_floating(xp, b.dtype, "b")
    b_shape = tuple(b.shape)
    b2, single = as_batch(xp, b, "b")
    B, n = b2.shape
    dtype = b2.dtype
    dev = device(b2)
    if n == 0:
        raise ValueError("b is empty (n = 0).")

    op = aslinearoperator(A)
    _check_operator(op, "A", n, B, b_shape)
    precond = IdentityOperator(n) if M is None else aslinearoperator(M)
    _check_operator(precond, "M", n, B, b_shape)

    if x0 is None:
        x = xp.zeros((B, n), dtype=dtype, device=dev)
        x0_nonzero = np.zeros(B, dtype=bool)
    else:
        if tuple(x0.shape) != b_shape:
            raise ValueError(f"x0 has shape {tuple(x0.shape)} but b has shape {b_shape}.")
        if x0.dtype != dtype:
            raise TypeError(f"x0 has dtype {x0.dtype} but b has dtype {dtype}; make them equal.")
        x = xp.asarray(xp.reshape(x0, (B, n)), copy=True)
        x0_nonzero = to_numpy(xp.any(x != 0, axis=-1))
    for name, arr in (("b", b2), ("x0", x)):
        bad = ~to_numpy(xp.all(xp.isfinite(arr), axis=-1))
        if bad.any():
            raise ValueError(
                f"{name} contains NaN or Inf in sample(s) {np.flatnonzero(bad).tolist()}."
            )
    rtol, atol = float(rtol), float(atol)
    if not (rtol >= 0 and atol >= 0 and np.isfinite(rtol) and np.isfinite(atol)):
        raise ValueError(f"rtol and atol must be finite and >= 0; got rtol={rtol}, atol={atol}.")
    restart = min(20 if restart is None else int(restart), n)
    if restart < 1:
        raise ValueError(f"restart must be >= 1; got {restart}.")
    maxiter = 10 * n if maxiter is None else int(maxiter)
    if maxiter < 1:
        raise ValueError(f"maxiter must be >= 1; got {maxiter}.")
    if callback is not None:
        callback_type = callback_type or "pr_norm"
        if callback_type not in ("pr_norm", "x"):
            raise ValueError(f"callback_type must be 'pr_norm' or 'x'; got {callback_type!r}.")
    if orthogonalization not in ("mgs", "cgs2"):
        raise ValueError(f"orthogonalization must be 'mgs' or 'cgs2'; got {orthogonalization!r}.")

    eps = finfo_eps(xp, dtype)
    stall_margin = 1.0 - np.sqrt(eps)

    # Host-side bookkeeping: small per-sample vectors drive the control flow.
    status = np.full(B, int(SolverStatus.NOT_STARTED), dtype=np.int64)
    iterations = np.zeros(B, dtype=np.int64)
    cycles = np.zeros(B, dtype=np.int64)
    matvecs = np.zeros(B, dtype=np.int64)
    history: list[list[float]] = [[] for _ in range(B)]

    b_norm = to_numpy(batched_norm(xp, b2)).astype(np.float64)
    tol = np.maximum(atol, rtol * b_norm)

    # A zero right-hand side has the exact solution 0, whatever x0 is (as scipy).
    zero_rhs = b_norm == 0
    if zero_rhs.any():
        x = xp.where(xp.asarray(zero_rhs, device=dev)[:, None], xp.zeros_like(x), x)
        status[zero_rhs] = SolverStatus.CONVERGED
        x0_nonzero &= ~zero_rhs

    # Initial residual: one matvec only where x0 is nonzero.
    r = xp.asarray(b2, copy=True)
    if x0_nonzero.any():
        idx_np = np.flatnonzero(x0_nonzero)
        idx = xp.asarray(idx_np, device=dev)
        Ax = _apply(op, xp.take(x, idx, axis=0), idx)
        r[idx] = xp.take(b2, idx, axis=0) - Ax
        matvecs[idx_np] += 1
        bad = ~to_numpy(xp.all(xp.isfinite(Ax), axis=-1))
        status[idx_np[bad]] = SolverStatus.NON_FINITE
    r_norm = to_numpy(batched_norm(xp, r)).astype(np.float64)
    running = status == SolverStatus.NOT_STARTED
    done_now = running & (r_norm <= tol)
    status[done_now] = SolverStatus.CONVERGED
    running &= ~done_now

    # Inner tolerance on the preconditioned residual estimate (scipy gh-8400).
    if M is None:
        Mb_norm = b_norm.copy()
    else:
        Mb = _apply(precond, b2, None)
        Mb_norm = to_numpy(batched_norm(xp, Mb)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ptol = Mb_norm * np.minimum(1.0, np.where(b_norm > 0, tol / b_norm, 0.0))
    ptol_max_factor = np.ones(B)
    best_r_norm = r_norm.copy()
    stalled_cycles = np.zeros(B, dtype=np.int64)
    stop_requested = np.zeros(B, dtype=bool)
    operator_norm = np.zeros(B)  # running max ||M A v_j||, the breakdown test's scale

    basis = xp.zeros((B, restart + 1, n), dtype=dtype, device=dev)
    qr = GivensQR(B, restart, eps=eps)

    while running.any():
        cycle_np = running.copy()
        cycles[cycle_np] += 1
        r_before = r_norm.copy()

        # v_1 = M r / beta for the samples in this cycle.
        idx_np = np.flatnonzero(cycle_np)
        all_in = idx_np.size == B
        idx = None if all_in else xp.asarray(idx_np, device=dev)
        r_rows = r if all_in else xp.take(r, idx, axis=0)
        z_rows = r_rows if M is None else _apply(precond, r_rows, idx)
        beta_rows = batched_norm(xp, z_rows)
        beta_np = np.zeros(B)
        beta_np[idx_np] = to_numpy(beta_rows)
        nonfinite = cycle_np & ~np.isfinite(beta_np)
        if nonfinite.any():
            status[nonfinite] = SolverStatus.NON_FINITE
            cycle_np &= ~nonfinite
            running &= ~nonfinite
            beta_np[nonfinite] = 0.0
        usable = np.isfinite(beta_np[idx_np]) & (beta_np[idx_np] > 0)
        scale = xp.asarray(
            np.where(usable, 1.0 / np.where(usable, beta_np[idx_np], 1.0), 0.0),
            dtype=dtype,
            device=dev,
        )
        basis[...] = 0
        if all_in:
            basis[:, 0, :] = z_rows * scale[:, None]
        else:
            basis[idx, 0, :] = z_rows * scale[:, None]
        qr.reset(beta_np)
        for s in np.flatnonzero(cycle_np):
            history[s].append(float(beta_np[s]))

        inner_np = cycle_np & (beta_np > 0)
        breakdown_np = np.zeros(B, dtype=bool)
        presid = beta_np.copy()
        for j in range(restart):
            if not inner_np.any():
                break
            idx_np = np.flatnonzero(inner_np)
            all_in = idx_np.size == B
            idx = None if all_in else xp.asarray(idx_np, device=dev)
            v_rows = basis[:, j, :] if all_in else xp.take(basis[:, j, :], idx, axis=0)
            w_rows = _apply(op, v_rows, idx)
            if M is not None:
                w_rows = _apply(precond, w_rows, idx)
            matvecs[idx_np] += 1
            iterations[idx_np] += 1
            # Orthogonalize only the active samples against their own bases.
            sub_basis = basis if all_in else xp.take(basis[:, : j + 1, :], idx, axis=0)
            # A non-finite operator output is detected below, per sample; numpy must
            # not also warn about it.
            with np.errstate(invalid="ignore", over="ignore"):
                h, w_rows, norm_before, norm_after = orthogonalize(
                    xp, sub_basis, j, w_rows, orthogonalization
                )
            h_np = to_numpy(h).astype(np.float64, copy=False)
            nb_np = to_numpy(norm_before).astype(np.float64, copy=False)
            na_np = to_numpy(norm_after).astype(np.float64, copy=False)
            finite = np.isfinite(nb_np) & np.isfinite(na_np) & np.isfinite(h_np).all(axis=1)
            if not finite.all():
                # A non-finite operator output: keep the iterate of earlier cycles and
                # drop this sample from the cycle (its x is not updated).
                bad = idx_np[~finite]
                status[bad] = SolverStatus.NON_FINITE
                cycle_np[bad] = False
                running[bad] = False
                h_np = np.where(finite[:, None], h_np, 0.0)
            operator_norm[idx_np] = np.maximum(operator_norm[idx_np], np.where(finite, nb_np, 0.0))
            broke = finite & direction_lost(nb_np, na_np, eps, j, operator_norm[idx_np])
            keep = finite & ~broke
            inv = xp.asarray(
                np.where(keep, 1.0 / np.where(keep, na_np, 1.0), 0.0), dtype=dtype, device=dev
            )
            if all_in:
                basis[:, j + 1, :] = w_rows * inv[:, None]
            else:
                basis[idx, j + 1, :] = w_rows * inv[:, None]
            column = np.zeros((B, j + 2))
            column[idx_np, : j + 1] = h_np
            column[idx_np, j + 1] = np.where(keep, na_np, 0.0)
            estimate = qr.add_column(column)
            active = idx_np[finite]
            presid[active] = estimate[active]
            for s in active:
                history[s].append(float(estimate[s]))
            breakdown_np[idx_np[broke]] = True
            finished = np.zeros(B, dtype=bool)
            finished[active] = (presid[active] <= ptol[active]) | broke[finite]
            finished[idx_np[~finite]] = True
            if callback is not None and callback_type == "pr_norm":
                in_use = np.zeros(B, dtype=bool)
                in_use[active] = True
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = np.where(in_use, presid / b_norm, np.nan)
                stop = _ask_callback(callback, rel[0] if single else rel, B) & in_use
                stop_requested |= stop
                finished |= stop
            inner_np &= ~finished

        # x <- x + V_m gamma for the samples of this cycle (gamma = 0 elsewhere).
        gamma_np = np.where(cycle_np[:, None], qr.solve(), 0.0)
        singular_np = qr.singular.copy()
        gamma = xp.asarray(gamma_np, dtype=dtype, device=dev)
        x_new = x + (gamma[:, None, :] @ basis[:, :restart, :])[:, 0, :]

        # The contract is on the true residual, recomputed from scratch.
        idx_np = np.flatnonzero(cycle_np)
        if idx_np.size:
            all_in = idx_np.size == B
            idx = None if all_in else xp.asarray(idx_np, device=dev)
            x_rows = x_new if all_in else xp.take(x_new, idx, axis=0)
            Ax = _apply(op, x_rows, idx)
            matvecs[idx_np] += 1
            r_rows = (b2 if all_in else xp.take(b2, idx, axis=0)) - Ax
            r_rows_norm = to_numpy(batched_norm(xp, r_rows)).astype(np.float64)
            finite = np.isfinite(r_rows_norm)
            status[idx_np[~finite]] = SolverStatus.NON_FINITE
            running[idx_np[~finite]] = False
            # GMRES cannot increase the residual in exact arithmetic: a cycle that did
            # (a solve polluted by rounding, e.g. a near-singular Hessenberg matrix) is
            # rejected and the previous iterate kept.
            accepted = finite & (r_rows_norm <= r_before[idx_np])
            ok = idx_np[accepted]
            finite = accepted
            if ok.size:
                ok_x = xp.asarray(ok, device=dev)
                pos = xp.asarray(np.flatnonzero(finite), device=dev)
                x[ok_x] = xp.take(x_new, ok_x, axis=0)
                r[ok_x] = xp.take(r_rows, pos, axis=0)
                r_norm[ok] = r_rows_norm[finite]

            for s in idx_np[np.isfinite(r_rows_norm)]:
                if r_norm[s] <= tol[s]:
                    status[s] = SolverStatus.CONVERGED
                elif stop_requested[s]:
                    status[s] = SolverStatus.CALLBACK
                elif (
                    breakdown_np[s]
                    and singular_np[s]
                    and r_norm[s] >= stall_margin * r_before[s]
                    and r_norm[s] > np.sqrt(eps) * b_norm[s]
                ):
                    # An invariant Krylov space whose Hessenberg matrix is singular and
                    # brought no progress, with a residual far above rounding: b has a
                    # component outside the range of A.  (A residual already at
                    # rounding level is an accuracy limit: the stagnation test below.)
                    status[s] = SolverStatus.BREAKDOWN
                else:
                    if r_norm[s] < stall_margin * best_r_norm[s]:
                        best_r_norm[s] = r_norm[s]
                        stalled_cycles[s] = 0
                    else:
                        stalled_cycles[s] += 1
                    if stalled_cycles[s] >= STAGNATION_CYCLES:
                        status[s] = SolverStatus.STAGNATION
                    elif cycles[s] >= maxiter:
                        status[s] = SolverStatus.MAX_ITERATIONS
                    else:
                        # Tighten the inner tolerance when the estimate was optimistic
                        # (it passed but the true residual did not), relax it otherwise.
                        if presid[s] <= ptol[s]:
                            ptol_max_factor[s] = max(eps, 0.25 * ptol_max_factor[s])
                        else:
                            ptol_max_factor[s] = min(1.0, 1.5 * ptol_max_factor[s])
                        ptol[s] = presid[s] * min(ptol_max_factor[s], tol[s] / r_norm[s])
                if status[s] != SolverStatus.NOT_STARTED:
                    running[s] = False

        if callback is not None and callback_type == "x":
            stop = _ask_callback(callback, x[0] if single else x, B)
            stopping = stop & running
            status[stopping] = SolverStatus.CALLBACK
            running &= ~stopping

    # The true residual of the returned x (recomputed only where x0 was kept as-is).
    never_iterated = (cycles == 0) & ~zero_rhs & (status != SolverStatus.NON_FINITE)
    residual_norm = np.where(zero_rhs, 0.0, r_norm)
    residual_norm = np.where(never_iterated, r_norm, residual_norm)
    for s in range(B):
        if not history[s]:
            history[s].append(float(residual_norm[s]))
    converged = status == SolverStatus.CONVERGED

    result = GMRESResult(
        x=x,
        converged=converged,
        status=status,
        iterations=iterations,
        cycles=cycles,
        matvecs=matvecs,
        residual_norm=residual_norm,
        residual_history=[np.asarray(h) for h in history],
        batched=True,
    )
    return result[0] if single else result


def _ask_callback(callback: Callable[[Any], Any], argument: Any, B: int) -> np.ndarray:
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
