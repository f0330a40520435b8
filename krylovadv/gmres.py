r"""Restarted GMRES with a recursive Givens QR, batched over independent systems.

GMRES (Saad & Schultz 1986) picks, at step :math:`j` of a restart cycle, the
iterate :math:`x = x_0 + V_j \gamma` that minimises the residual
:math:`\|b - A x\|_2` over the Krylov space :math:`\mathcal K_j(A, r_0)`.  With
the Arnoldi relation :math:`A V_j = V_{j+1}\bar H_j` and
:math:`r_0 = \beta v_1`,

.. math:: \|b - A(x_0 + V_j\gamma)\|_2 = \|\beta e_1 - \bar H_j \gamma\|_2

(Qian et al., eqs. 9–11), a :math:`(j+1)\times j` least-squares problem solved by
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

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from ._backend import batched_norm, device, finfo_eps, finfo_tiny, host_dtype, to_numpy
from ._gmres_state import Active, Cycle, SampleState
from ._results import SolveResult
from ._system import (
    ask_callback,
    check_maxiter,
    check_tolerances,
    make_system,
    reject_unexpected,
    residual_targets,
)
from .arnoldi import Orthogonalization, direction_lost, orthogonalize
from .givens import GivensQR
from .operators import LinearOperator
from .status import SolverStatus

__all__ = ["GMRESResult", "gmres"]

Array = Any

#: Cycles in a row without a new best true residual (by a relative margin of
#: sqrt(eps)) after which a sample is declared stagnant.  One such cycle is normal
#: near the attainable accuracy; three mean further cycles only repeat rounding.
STAGNATION_CYCLES = 3

_ONE_TRUE = np.ones(1, dtype=bool)  # the finite mask of one stepping system
_ONE_TRUE.flags.writeable = False


@dataclass(eq=False, repr=False)
class GMRESResult(SolveResult):
    r"""Outcome of :func:`gmres`, per sample.

    For a single system the fields are scalars; for a batch of ``B`` systems they
    are arrays of length ``B`` (numpy on the host, except ``x``, which is in the
    caller's array type, dtype and device).  ``result.sample(i)`` is sample
    ``i``'s own result, equal to what solving that system alone returns.

    The result is also scipy's pair ``(x, info)``: ``x, info = gmres(A, b)``,
    ``result[0]`` is ``x`` and ``result[1]`` is ``info`` (0 on convergence,
    otherwise ``maxiter``, as in scipy; ``status`` says why).

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
    maxiter : int or numpy.ndarray of int
        The iteration budget the solve ran with (restart cycles, or inner
        iterations for ``callback_type="legacy"``); scipy's ``info`` on failure.
    """

    x: Array
    converged: Any
    status: Any
    iterations: Any
    cycles: Any
    matvecs: Any
    residual_norm: Any
    residual_history: Any
    maxiter: Any = field(default=None, repr=False)
    batched: bool = field(default=True, repr=False)

    batch_field: ClassVar[str] = "x"

    info_field: ClassVar[str] = "maxiter"


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _apply(op: LinearOperator, x: Array, active: Active) -> Array:
    """``op`` on rows ``x`` belonging to the samples ``active``."""
    return op.matvec(x, active.idx if op.batch_size is not None else None)


# ---------------------------------------------------------------------------
# The algorithm, one named step at a time
# ---------------------------------------------------------------------------


class _GMRES:
    r"""One batched run of restarted GMRES: the steps of Qian et al., Algorithm 1.

    :meth:`start_cycle` is line 4, :meth:`arnoldi_step` lines 6–11,
    :meth:`givens_update` eqs. 12 and 14 (and the test of line 12),
    :meth:`update_x` eqs. 11 and 13 (lines 16–17), and
    :meth:`true_residual_test` is the contract this library adds: the stopping
    decision is taken on :math:`\|b - Ax\|`, recomputed from scratch.
    """

    def __init__(
        self,
        xp: Any,
        op: LinearOperator,
        precond: LinearOperator | None,
        b: Array,
        x: Array,
        state: SampleState,
        *,
        restart: int,
        maxiter: int,
        orthogonalization: Orthogonalization,
        callback: Callable[[Any], Any] | None,
        callback_type: str | None,
        single: bool,
    ) -> None:
        self.xp, self.op, self.precond = xp, op, precond
        self.b, self.x, self.state = b, x, state
        self.restart, self.maxiter = restart, maxiter
        self.orthogonalization = orthogonalization
        self.callback, self.callback_type, self.single = callback, callback_type, single
        B, n = b.shape
        self.B = B
        self.dtype, self.dev = b.dtype, device(b)
        # Rounding thresholds scale with the working dtype's machine epsilon.
        self.eps = finfo_eps(xp, self.dtype)
        self.tiny = finfo_tiny(xp, self.dtype)
        # A cycle "improves" only by more than a relative sqrt(eps): below that the
        # change is rounding in ||b - Ax||, not progress.
        self.stall_margin = 1.0 - np.sqrt(self.eps)
        # scipy's legacy callback: maxiter counts inner iterations, not cycles.
        self.iteration_limit = maxiter if callback_type == "legacy" else None
        self.basis = xp.zeros((B, restart + 1, n), dtype=self.dtype, device=self.dev)
        # The small least-squares problem is solved on the host in double precision,
        # complex (unitary rotations) for complex systems.
        self.host = host_dtype(xp, self.dtype)
        self.qr = GivensQR(B, restart, eps=self.eps, dtype=self.host)
        self.r = xp.asarray(b, copy=True)

    def _norms(self, a: Array) -> np.ndarray:
        return to_numpy(batched_norm(self.xp, a)).astype(np.float64)

    def _precondition(self, rows: Array, active: Active) -> Array:
        return rows if self.precond is None else _apply(self.precond, rows, active)

    # -- r_0 = b - A x_0 ----------------------------------------------------
    def initial_residual(self, x0_nonzero: np.ndarray) -> None:
        """Compute :math:`r_0 = b - Ax_0` (one product, only where ``x0`` is nonzero)."""
        xp, s = self.xp, self.state
        if x0_nonzero.any():
            active = Active.of(xp, x0_nonzero, self.dev)
            # Indexed by sample numbers even when every sample is in (as before).
            idx = xp.asarray(active.idx_np, device=self.dev)
            Ax = _apply(self.op, xp.take(self.x, idx, axis=0), Active(active.idx_np, idx))
            self.r[idx] = xp.take(self.b, idx, axis=0) - Ax
            s.matvecs[active.idx_np] += 1
            bad = ~to_numpy(xp.all(xp.isfinite(Ax), axis=-1))
            s.status[active.idx_np[bad]] = SolverStatus.NON_FINITE
        s.r_norm = self._norms(self.r)
        s.running = s.status == SolverStatus.NOT_STARTED
        s.stop(s.running & (s.r_norm <= s.tol), SolverStatus.CONVERGED)
        s.best_r_norm = s.r_norm.copy()

    # -- Algorithm 1, line 4 -------------------------------------------------
    def start_cycle(self) -> Cycle:
        r"""Begin a cycle: :math:`\beta = \|M r\|`, :math:`v_1 = M r/\beta`, QR reset."""
        xp, s = self.xp, self.state
        members = s.running.copy()
        s.cycles[members] += 1
        r_before = s.r_norm.copy()
        active = Active.of(xp, members, self.dev)
        z = self._precondition(active.take(xp, self.r), active)
        beta = np.zeros(self.B)
        beta[active.idx_np] = self._norms(z)
        nonfinite = members & ~np.isfinite(beta)
        if nonfinite.any():
            s.stop(nonfinite, SolverStatus.NON_FINITE)
            members &= ~nonfinite
            beta[nonfinite] = 0.0
        beta_rows = beta[active.idx_np]
        usable = np.isfinite(beta_rows) & (beta_rows > 0)
        # 1/beta overflows the working precision where beta is subnormal there (below
        # ~2.2e-308 in float64, ~1.2e-38 in float32, e.g. the residual of a system with
        # ||b|| ~ 1e-300 after a few cycles).  Those rows are first lifted by 1/eps, a power
        # of two (exact: |M r| <= beta is subnormal too), which makes beta/eps >= tiny normal:
        # v_1 = (M r / eps) (eps / beta).  (Not a division by beta: numpy divides complex
        # numbers through the reciprocal, which overflows just the same.)
        subnormal = usable & (beta_rows < self.tiny)
        lift = np.where(subnormal, 1.0 / self.eps, 1.0)
        reciprocal = np.where(usable, 1.0 / np.where(usable, beta_rows * lift, 1.0), 0.0)
        scale = xp.asarray(reciprocal, dtype=self.dtype, device=self.dev)
        self.basis[...] = 0
        # A non-finite M r (reported above) times its scale 0 is NaN in that sample's
        # row, which no step reads; numpy must not also warn about it.
        with np.errstate(invalid="ignore"):
            if subnormal.any():
                z = z * xp.asarray(lift, dtype=self.dtype, device=self.dev)[:, None]
            self.basis[active.rows, 0, :] = z * scale[:, None]
        self.qr.reset(beta)  # the least-squares right-hand side beta e_1 (eq. 10)
        for i in np.flatnonzero(members):
            s.history[i].append(float(beta[i]))
        return Cycle(
            members=members,
            iterating=members & (beta > 0),
            r_before=r_before,
            presid=beta.copy(),
            breakdown=np.zeros(self.B, dtype=bool),
        )

    # -- Algorithm 1, lines 6-11 ---------------------------------------------
    def arnoldi_step(
        self, cycle: Cycle, j: int
    ) -> tuple[Active, np.ndarray, np.ndarray, np.ndarray]:
        r"""Extend the basis by :math:`v_{j+2}`: :math:`w = MAv_{j+1}`, orthogonalized.

        Returns the samples that stepped, the Hessenberg column
        :math:`(h_{1,j+1}, \dots, h_{j+2,j+1})` of :math:`\bar H` (``D`` in
        Qian et al., eq. 9) per sample, zero for samples that sat out, and two
        masks over the stepping samples: finite output, and new direction lost
        to rounding (breakdown: an invariant Krylov space).
        """
        xp, s = self.xp, self.state
        active = Active.of(xp, cycle.iterating, self.dev)
        idx_np = active.idx_np
        every = active.idx is None  # the common case: plain slices, no index arrays
        w = _apply(self.op, active.take(xp, self.basis[:, j, :]), active)
        w = self._precondition(w, active)
        rows = slice(None) if every else idx_np
        s.matvecs[rows] += 1
        s.iterations[rows] += 1
        # Orthogonalize only the stepping samples against their own bases.
        sub_basis = self.basis if every else active.take(xp, self.basis[:, : j + 1, :])
        # A non-finite operator output is detected below, per sample; numpy must
        # not also warn about it.
        with np.errstate(invalid="ignore", over="ignore"):
            h, w, norm_before, norm_after = orthogonalize(
                xp, sub_basis, j, w, self.orthogonalization
            )
        h_np = to_numpy(h).astype(self.host, copy=False)
        nb_np = to_numpy(norm_before).astype(np.float64, copy=False)
        na_np = to_numpy(norm_after).astype(np.float64, copy=False)
        if self.B == 1:
            nb, na = float(nb_np[0]), float(na_np[0])
            if math.isfinite(nb) and math.isfinite(na) and bool(np.isfinite(h_np).all()):
                return self._finish_step_one(cycle, active, j, w, h_np[0], nb, na)
        finite = np.isfinite(nb_np) & np.isfinite(na_np) & np.isfinite(h_np).all(axis=1)
        all_finite = finite.all()
        if not all_finite:
            # A non-finite operator output: keep the iterate of earlier cycles and
            # drop this sample from the cycle (its x is not updated).
            bad = idx_np[~finite]
            s.stop(bad, SolverStatus.NON_FINITE)
            cycle.members[bad] = False
            h_np = np.where(finite[:, None], h_np, 0.0)
            nb_np = np.where(finite, nb_np, 0.0)
        s.operator_norm[rows] = np.maximum(s.operator_norm[rows], nb_np)
        broke = finite & direction_lost(nb_np, na_np, self.eps, j, s.operator_norm[rows])
        keep = finite & ~broke
        # v_{j+2} = w / h_{j+2,j+1} (zero where the direction was lost).
        if keep.all():
            inv_np, subdiagonal = 1.0 / na_np, na_np
        else:
            inv_np = np.where(keep, 1.0 / np.where(keep, na_np, 1.0), 0.0)
            subdiagonal = np.where(keep, na_np, 0.0)
        inv = xp.asarray(inv_np, dtype=self.dtype, device=self.dev)
        # A non-finite w (its sample stopped above) times 0 is NaN in a row no step
        # reads; numpy must not warn about it.
        with np.errstate(invalid="ignore"):
            self.basis[active.rows, j + 1, :] = w * inv[:, None]
        column = np.zeros((self.B, j + 2), dtype=self.host)
        column[rows, : j + 1] = h_np
        column[rows, j + 1] = subdiagonal
        if broke.any():
            cycle.breakdown[idx_np[broke]] = True
        return active, column, finite, broke

    def _finish_step_one(
        self, cycle: Cycle, active: Active, j: int, w: Array, h: np.ndarray, nb: float, na: float
    ) -> tuple[Active, np.ndarray, np.ndarray, np.ndarray]:
        """End :meth:`arnoldi_step` for one system with finite output, on scalars.

        The same arithmetic as the batched path (``direction_lost``'s test, the
        scaling by :math:`1/h_{j+2,j+1}` in the working dtype) without its masks.
        """
        s = self.state
        alpha = max(float(s.operator_norm[0]), nb)
        s.operator_norm[0] = alpha
        broke = na <= 16.0 * math.sqrt(j + 1) * self.eps * max(nb, alpha)
        inv = self.xp.asarray(0.0 if broke else 1.0 / na, dtype=self.dtype, device=self.dev)
        self.basis[0, j + 1, :] = w[0] * inv
        column = np.empty((1, j + 2), dtype=self.host)
        column[0, : j + 1] = h
        column[0, j + 1] = 0.0 if broke else na
        if broke:
            cycle.breakdown[0] = True
        return active, column, _ONE_TRUE, np.array([broke])

    # -- Qian et al., eqs. 12 and 14; Algorithm 1, line 12 ---------------------
    def givens_update(
        self,
        cycle: Cycle,
        active: Active,
        column: np.ndarray,
        finite: np.ndarray,
        broke: np.ndarray,
    ) -> None:
        r"""Rotate the new column into :math:`R` (eq. 14); test :math:`\|\tilde r\|` (line 12).

        The residual estimate :math:`\|\tilde r_j\| = |\beta\, q_1(j+1)|` of the
        least-squares problem (eq. 12) ends the inner iteration of a sample when
        it reaches the inner tolerance, when its Krylov space broke down, or
        when the callback asks.
        """
        s = self.state
        if self.B == 1 and finite[0] and self.callback is None:
            self._givens_update_one(cycle, column, bool(broke[0]))
            return
        idx_np = active.idx_np
        stepped = idx_np[finite]
        took = np.zeros(self.B, dtype=bool)
        took[stepped] = True
        # The rank threshold scales with ||MA||, estimated over every cycle so far: a
        # cycle that only sees rounding noise is not judged against its own noise.
        estimate = self.qr.add_column(column, active=took, scale=self.state.operator_norm)
        singular = self.qr.singular[stepped]
        cycle.presid[stepped] = estimate[stepped]
        for i in stepped:
            s.history[i].append(float(estimate[i]))
        finished = np.zeros(self.B, dtype=bool)
        # A breakdown (Arnoldi: invariant space; GMRES: singular least-squares
        # problem) ends the sample's cycle; its iterate is that of the last
        # well-conditioned step.
        finished[stepped] = (cycle.presid[stepped] <= s.ptol[stepped]) | broke[finite] | singular
        finished[idx_np[~finite]] = True
        if self.iteration_limit is not None:
            finished[stepped] |= s.iterations[stepped] >= self.iteration_limit
        if self.callback is not None and self.callback_type in ("pr_norm", "legacy"):
            in_use = np.zeros(self.B, dtype=bool)
            in_use[stepped] = True
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(in_use, cycle.presid / s.b_norm, np.nan)
            stop = ask_callback(self.callback, rel[0] if self.single else rel, self.B) & in_use
            s.stop_requested |= stop
            finished |= stop
        cycle.iterating &= ~finished

    def _givens_update_one(self, cycle: Cycle, column: np.ndarray, broke: bool) -> None:
        """Run :meth:`givens_update` for one system that stepped, without a callback.

        The same decisions on scalars: the host overhead per step matters at small n.
        """
        s = self.state
        estimate = float(self.qr.add_column(column, scale=s.operator_norm)[0])
        cycle.presid[0] = estimate
        s.history[0].append(estimate)
        if (
            estimate <= s.ptol[0]
            or broke
            or self.qr.singular[0]
            or (self.iteration_limit is not None and s.iterations[0] >= self.iteration_limit)
        ):
            cycle.iterating[0] = False

    # -- Qian et al., eqs. 11 and 13; Algorithm 1, lines 16-17 -----------------
    def update_x(self, cycle: Cycle) -> tuple[Array, np.ndarray]:
        r"""Solve :math:`R_m\gamma = \beta q_1(1{:}m)` (eq. 13); :math:`x + V_m\gamma` (eq. 11).

        Returns the candidate iterate (``gamma = 0`` for samples outside the
        cycle) and which samples' triangular factor was singular.
        """
        xp = self.xp
        gamma_np = np.where(cycle.members[:, None], self.qr.solve(), 0.0)
        singular = self.qr.singular.copy()
        gamma = xp.asarray(gamma_np, dtype=self.dtype, device=self.dev)
        x_new = self.x + (gamma[:, None, :] @ self.basis[:, : self.restart, :])[:, 0, :]
        return x_new, singular

    # -- The contract: the true residual decides --------------------------------
    def true_residual_test(self, cycle: Cycle, x_new: Array, singular: np.ndarray) -> None:
        r"""Recompute :math:`\|b - Ax\|` and decide each sample's fate.

        Converged; stopped by the callback; ``BREAKDOWN`` (an invariant space
        that brought no progress); ``STAGNATION``; ``MAX_ITERATIONS``; or on to
        the next cycle with an adapted inner tolerance (scipy gh-8400).
        """
        xp, s = self.xp, self.state
        active = Active.of(xp, cycle.members, self.dev)
        idx_np = active.idx_np
        if idx_np.size == 0:
            return
        Ax = _apply(self.op, active.take(xp, x_new), active)
        s.matvecs[idx_np] += 1
        r_rows = active.take(xp, self.b) - Ax
        r_rows_norm = self._norms(r_rows)
        finite = np.isfinite(r_rows_norm)
        s.stop(idx_np[~finite], SolverStatus.NON_FINITE)
        # GMRES cannot increase the residual in exact arithmetic: a cycle that did
        # (a solve polluted by rounding, e.g. a near-singular Hessenberg matrix) is
        # rejected and the previous iterate kept.
        accepted = finite & (r_rows_norm <= cycle.r_before[idx_np])
        ok = idx_np[accepted]
        if ok.size:
            ok_x = xp.asarray(ok, device=self.dev)
            pos = xp.asarray(np.flatnonzero(accepted), device=self.dev)
            self.x[ok_x] = xp.take(x_new, ok_x, axis=0)
            self.r[ok_x] = xp.take(r_rows, pos, axis=0)
            s.r_norm[ok] = r_rows_norm[accepted]
        for i in idx_np[finite]:
            self._decide(i, cycle, bool(singular[i]))

    def _decide(self, i: int, cycle: Cycle, singular: bool) -> None:
        """Take the end-of-cycle decision for sample ``i``."""
        s, eps = self.state, self.eps
        if s.r_norm[i] <= s.tol[i]:
            s.stop(i, SolverStatus.CONVERGED)
        elif s.stop_requested[i]:
            s.stop(i, SolverStatus.CALLBACK)
        elif self.iteration_limit is not None and s.iterations[i] >= self.iteration_limit:
            s.stop(i, SolverStatus.MAX_ITERATIONS)
        elif (
            singular
            and s.r_norm[i] >= self.stall_margin * cycle.r_before[i]
            and s.r_norm[i] > np.sqrt(eps) * s.b_norm[i]
        ):
            # GMRES breakdown (Brown & Walker 1997): the least-squares problem became
            # rank deficient, dim A K_k < dim K_k, so A is singular; the cycle brought
            # no progress and the residual is far above rounding: b has a component
            # outside the range of A.  (A residual already at rounding level is an
            # accuracy limit: the stagnation test below.)
            s.stop(i, SolverStatus.BREAKDOWN)
        else:
            if s.r_norm[i] < self.stall_margin * s.best_r_norm[i]:
                s.best_r_norm[i] = s.r_norm[i]
                s.stalled_cycles[i] = 0
            else:
                s.stalled_cycles[i] += 1
            if s.stalled_cycles[i] >= STAGNATION_CYCLES:
                s.stop(i, SolverStatus.STAGNATION)
            elif s.cycles[i] >= self.maxiter:
                s.stop(i, SolverStatus.MAX_ITERATIONS)
            else:
                # Tighten the inner tolerance when the estimate was optimistic
                # (it passed but the true residual did not), relax it otherwise.
                if cycle.presid[i] <= s.ptol[i]:
                    s.ptol_max_factor[i] = max(eps, 0.25 * s.ptol_max_factor[i])
                else:
                    s.ptol_max_factor[i] = min(1.0, 1.5 * s.ptol_max_factor[i])
                s.ptol[i] = cycle.presid[i] * min(s.ptol_max_factor[i], s.tol[i] / s.r_norm[i])

    def x_callback(self) -> None:
        """Hand the iterate to a ``callback_type="x"`` callback after a cycle."""
        if self.callback is None or self.callback_type != "x":
            return
        s = self.state
        stop = ask_callback(self.callback, self.x[0] if self.single else self.x, self.B)
        s.stop(stop & s.running, SolverStatus.CALLBACK)

    def result(self, zero_rhs: np.ndarray) -> GMRESResult:
        """Assemble the per-sample result."""
        s = self.state
        residual_norm = np.where(zero_rhs, 0.0, s.r_norm)
        for i in range(self.B):
            if not s.history[i]:
                s.history[i].append(float(residual_norm[i]))
        return GMRESResult(
            x=self.x,
            converged=s.status == SolverStatus.CONVERGED,
            status=s.status,
            iterations=s.iterations,
            cycles=s.cycles,
            matvecs=s.matvecs,
            residual_norm=residual_norm,
            residual_history=[np.asarray(h) for h in s.history],
            maxiter=np.full(self.B, self.maxiter, dtype=np.int64),
            batched=True,
        )


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
    callback_type: Literal["pr_norm", "x", "legacy"] | None = None,
    orthogonalization: Orthogonalization = "cgs2",
    **unexpected: Any,
) -> GMRESResult:
    r"""Solve :math:`A x = b` (or a batch :math:`A_i x_i = b_i`) by restarted GMRES.

    Parameters
    ----------
    A : LinearOperator, array, scipy sparse matrix, scipy LinearOperator or callable
        The operator.  A dense ``(B, n, n)`` array or a batched
        :class:`~krylovadv.operators.LinearOperator` gives ``B`` independent
        systems; an ``(n, n)`` operator with ``b`` of shape ``(B, n)`` solves
        ``B`` right-hand sides of the same operator, still independently.
    b : array or list, shape (n,), (n, 1) or (B, n)
        Right-hand side(s), numpy (also ``numpy.matrix`` or a list) or torch
        (any device).  float32, float64, complex64 or complex128; integer, bool
        and float16 data are upcast to float64, and the working dtype joins
        ``A``'s and ``b``'s as scipy does (float32 ``A`` with float64 ``b``
        solves in float64, a complex ``A`` makes the solve complex).  A 2-D
        ``b`` whose last axis has length ``n`` is a batch; ``(n, 1)`` with a
        shared operator is scipy's column vector (see ``docs/contract.rst``).
    x0 : array, list or "Mb", optional
        Starting guess, shaped like ``b`` (``(n,)`` or ``(n, 1)`` for one
        system); zeros by default; ``"Mb"`` starts from :math:`Mb`.  Never
        modified.
    rtol, atol : float
        Convergence test on the **true** residual, per sample:
        :math:`\|b - Ax\|_2 \le \max(\mathrm{rtol}\,\|b\|_2,\ \mathrm{atol})`.
        Checked at the end of every restart cycle (and at the start).  Must be
        ``>= 0``; ``inf`` accepts any iterate.
    restart : int, optional
        Krylov dimension of a cycle (``min(20, n)`` by default, as scipy).
    maxiter : int, optional
        Maximum number of restart cycles (``10 n`` by default, as scipy); inner
        iterations with ``callback_type="legacy"``.
    M : operator, optional
        Inverse of the preconditioner, applied on the left
        (:math:`MAx = Mb`): the inner iteration minimises the preconditioned
        residual, the final test uses the unpreconditioned one (as scipy).
        When ``M`` is None and ``A`` has a ``psolve`` method, that is ``M``.
    callback : callable, optional
        With ``callback_type="pr_norm"``, called after every inner iteration
        with the relative preconditioned residual estimate
        :math:`\|\tilde r\|/\|b\|` (a float, or an array of length ``B``,
        NaN for samples not iterating).  With ``"x"``, called after every
        restart cycle with the current iterate.  Returning ``True`` stops every
        sample; returning a boolean array of length ``B`` stops those samples.
        Stopped, unconverged samples get status ``CALLBACK``.
    callback_type : {"pr_norm", "x", "legacy"}, optional
        See ``callback``.  ``"legacy"`` is scipy's old meaning: ``"pr_norm"``
        calls, with ``maxiter`` counting inner iterations.  A callback without
        ``callback_type`` gets ``"legacy"`` and scipy's ``DeprecationWarning``.
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
        On unsupported types, a complex ``x0`` for a real system, positional
        tolerances, or an unknown keyword (``tol=`` names its replacement,
        ``rtol``).

    Notes
    -----
    Per sample, the cycle ends when the residual estimate reaches the inner
    tolerance, when the Krylov space becomes invariant (Arnoldi breakdown,
    :math:`h_{j+1,j} \le \varepsilon\|A v_j\|`, with :math:`\varepsilon` the
    dtype's machine epsilon), when the least-squares problem becomes numerically
    rank deficient (GMRES breakdown, Brown & Walker 1997; the iterate is then
    that of the step before, see :class:`~krylovadv.givens.GivensQR`), or after
    ``restart`` steps.  The true residual then decides: converged;
    ``BREAKDOWN`` if a rank-deficient cycle brought no progress (a singular,
    inconsistent system); ``STAGNATION`` if
    :data:`STAGNATION_CYCLES` cycles in a row brought no relative improvement
    above :math:`\sqrt{\varepsilon}` (the tolerance is below attainable
    accuracy); ``MAX_ITERATIONS`` after ``maxiter`` cycles.  A sample whose
    operator output is not finite stops with ``NON_FINITE`` and keeps its last
    finite iterate.  Samples never mix: each has its own Krylov space,
    rotations and stopping decisions, so ``gmres(A, b).sample(i)`` equals
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
    if unexpected:
        reject_unexpected("gmres", unexpected)
    rtol, atol = check_tolerances(rtol, atol)
    system = make_system(A, b, x0, M)
    xp, b2, x, x0_nonzero, single = system.xp, system.b, system.x, system.x0_nonzero, system.single
    B, n = b2.shape
    dev = device(b2)
    restart = min(20 if restart is None else int(restart), n)
    if restart < 1:
        raise ValueError(f"restart must be >= 1; got {restart}.")
    maxiter = check_maxiter(maxiter, 10 * n)
    if callback_type is not None and callback_type not in ("pr_norm", "x", "legacy"):
        raise ValueError(
            f"callback_type must be 'pr_norm', 'x' or 'legacy'; got {callback_type!r}."
        )
    if callback is None:
        callback_type = None
    elif callback_type is None:
        warnings.warn(
            "krylovadv.gmres called without specifying `callback_type`: the callback keeps "
            "scipy's legacy meaning (called with the relative residual estimate after every "
            "inner iteration, and maxiter counting inner iterations). Pass "
            "callback_type='pr_norm', 'x' or 'legacy' to choose.",
            DeprecationWarning,
            stacklevel=2,
        )
        callback_type = "legacy"
    if orthogonalization not in ("mgs", "cgs2"):
        raise ValueError(f"orthogonalization must be 'mgs' or 'cgs2'; got {orthogonalization!r}.")

    state = SampleState.new(B)
    state.b_norm, state.tol = residual_targets(xp, b2, rtol, atol)
    # A zero right-hand side has the exact solution 0, whatever x0 is (as scipy).
    zero_rhs = state.b_norm == 0
    if zero_rhs.any():
        x = xp.where(xp.asarray(zero_rhs, device=dev)[:, None], xp.zeros_like(x), x)
        state.status[zero_rhs] = SolverStatus.CONVERGED
        x0_nonzero &= ~zero_rhs

    run = _GMRES(
        xp,
        system.op,
        system.precond,
        b2,
        x,
        state,
        restart=restart,
        maxiter=maxiter,
        orthogonalization=orthogonalization,
        callback=callback,
        callback_type=callback_type,
        single=single,
    )
    run.initial_residual(x0_nonzero)
    # The inner tolerance on the preconditioned residual estimate (scipy gh-8400):
    # the target ||M r|| <= ||M b|| min(1, tol / ||b||).
    precond = system.precond
    Mb_norm = state.b_norm.copy() if precond is None else run._norms(precond.matvec(b2, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(state.b_norm > 0, state.tol / state.b_norm, 0.0)
    state.ptol = Mb_norm * np.minimum(1.0, ratio)

    # Restarted GMRES (Saad & Schultz 1986; Qian et al., Algorithm 1), per sample.
    while state.running.any():
        cycle = run.start_cycle()  # beta = ||M r||, v_1 = M r / beta
        for j in range(restart):
            if not cycle.iterating.any():
                break
            stepped, column, finite, broke = run.arnoldi_step(cycle, j)  # new h column
            run.givens_update(cycle, stepped, column, finite, broke)  # ||r~|| (eqs. 12, 14)
        x_new, singular = run.update_x(cycle)  # R gamma = beta q_1, x + V gamma
        run.true_residual_test(cycle, x_new, singular)  # ||b - A x|| decides
        run.x_callback()

    result = run.result(zero_rhs)
    return result.sample(0) if single else result
