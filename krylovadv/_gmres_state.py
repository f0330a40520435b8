"""Per-sample bookkeeping of a batched GMRES run (see :mod:`krylovadv.gmres`).

The algorithm's vectors live in the caller's array backend; the small per-sample
arrays here (length ``B``, on the host) say which samples take part in a step,
why each stopped, and what each has counted.  Keeping them apart from the
numerical steps is what lets :class:`krylovadv.gmres._GMRES` read like
Qian et al.'s Algorithm 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .status import SolverStatus

Array = Any


@dataclass(eq=False)
class Active:
    """The samples taking part in a step: host indices and their device twin.

    ``idx`` is ``None`` when every sample takes part, so that the common
    unbatched case indexes nothing.
    """

    idx_np: np.ndarray
    idx: Array | None

    @classmethod
    def of(cls, xp: Any, mask: np.ndarray, dev: Any) -> Active:
        idx_np = mask.nonzero()[0]  # (the method: no wrapper overhead per step)
        idx = None if idx_np.size == mask.size else xp.asarray(idx_np, device=dev)
        return cls(idx_np, idx)

    @property
    def rows(self) -> Any:
        """Index selecting these samples' rows (in ``a[rows, ...] = ...``)."""
        return slice(None) if self.idx is None else self.idx

    def take(self, xp: Any, a: Array) -> Array:
        """Return these samples' rows of ``a``."""
        return a if self.idx is None else xp.take(a, self.idx, axis=0)


@dataclass(eq=False)
class SampleState:
    r"""Everything GMRES tracks per sample, on the host: one entry per system.

    The algorithm's vectors (basis, iterate, residual) live in the caller's
    array backend; these small arrays of length ``B`` drive the control flow.
    """

    status: np.ndarray  # SolverStatus codes; NOT_STARTED while running
    running: np.ndarray  # bool: still iterating
    iterations: np.ndarray  # inner (Arnoldi) steps
    cycles: np.ndarray  # restart cycles started
    matvecs: np.ndarray  # products with A
    history: list[list[float]]  # residual estimates ||r~||
    b_norm: np.ndarray  # ||b||
    tol: np.ndarray  # max(atol, rtol ||b||): the true-residual target
    r_norm: np.ndarray  # ||b - A x|| of the current iterate
    best_r_norm: np.ndarray  # best true residual so far (stagnation test)
    stalled_cycles: np.ndarray  # cycles in a row without a new best
    stop_requested: np.ndarray  # the callback asked this sample to stop
    operator_norm: np.ndarray  # running max ||M A v_j||, the breakdown test's scale
    ptol: np.ndarray  # inner tolerance on the estimate (scipy gh-8400)
    ptol_max_factor: np.ndarray

    @classmethod
    def new(cls, B: int) -> SampleState:
        int_zeros = lambda: np.zeros(B, dtype=np.int64)  # noqa: E731
        return cls(
            status=np.full(B, int(SolverStatus.NOT_STARTED), dtype=np.int64),
            running=np.zeros(B, dtype=bool),
            iterations=int_zeros(),
            cycles=int_zeros(),
            matvecs=int_zeros(),
            history=[[] for _ in range(B)],
            b_norm=np.zeros(B),
            tol=np.zeros(B),
            r_norm=np.zeros(B),
            best_r_norm=np.zeros(B),
            stalled_cycles=int_zeros(),
            stop_requested=np.zeros(B, dtype=bool),
            operator_norm=np.zeros(B),
            ptol=np.zeros(B),
            ptol_max_factor=np.ones(B),
        )

    def stop(self, which: Any, status: SolverStatus) -> None:
        """Give the samples ``which`` (mask or indices) their final status."""
        self.status[which] = status
        self.running[which] = False


@dataclass(eq=False)
class Cycle:
    """State of one restart cycle, per sample."""

    members: np.ndarray  # bool: samples in this cycle
    iterating: np.ndarray  # bool: samples still taking inner steps
    r_before: np.ndarray  # true residual at the start of the cycle
    presid: np.ndarray  # latest residual estimate ||r~_j||
    breakdown: np.ndarray  # bool: the Krylov space became invariant
    steps: int = 0
