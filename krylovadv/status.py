"""Per-sample termination status shared by every iterative solver."""

from __future__ import annotations

import enum

__all__ = ["SolverStatus"]


class SolverStatus(enum.IntEnum):
    r"""Why an iterative solver stopped for one sample.

    Every solver returns one status per sample (an integer array of these
    codes, plus a readable message); ``CONVERGED`` is the only success.

    Attributes
    ----------
    CONVERGED
        The stopping criterion was met (for GMRES: on the *true* residual).
    MAX_ITERATIONS
        The iteration budget (``maxiter``) ran out first.
    BREAKDOWN
        GMRES: the least-squares problem became rank deficient (a singular
        Hessenberg matrix, Brown & Walker 1997) and the cycle brought no
        progress: the system is singular and inconsistent.  Power iteration:
        the start vector lies in the null space (an invariant Krylov space with
        ``A d = 0``).
    STAGNATION
        A full restart cycle left the iterate unchanged to working precision:
        the tolerance is below what this dtype, operator and restart length can
        reach.
    NON_FINITE
        The operator or preconditioner returned NaN or Inf; the returned iterate
        is the last finite one.
    CALLBACK
        The user's callback asked to stop.
    NOT_STARTED
        The sample was not iterated (internal placeholder; never returned).
    NEGATIVE_CURVATURE
        Conjugate gradients met a search direction :math:`d` with
        :math:`d^T A d \le 0` (to the rounding of the product): ``A`` is not
        positive definite for this sample.  The direction is returned with the
        result (a trust-region method steps along it); the iterate is the last
        one before that direction.
    """

    CONVERGED = 0
    MAX_ITERATIONS = 1
    BREAKDOWN = 2
    STAGNATION = 3
    NON_FINITE = 4
    CALLBACK = 5
    NOT_STARTED = 6
    NEGATIVE_CURVATURE = 7

    @property
    def message(self) -> str:
        """A sentence that says what happened and what to try next."""
        return _MESSAGES[self]


_MESSAGES = {
    SolverStatus.CONVERGED: "converged: the stopping tolerance was met.",
    SolverStatus.MAX_ITERATIONS: (
        "maximum iterations reached before the tolerance: raise maxiter or restart, "
        "add a preconditioner, or loosen rtol/atol."
    ),
    SolverStatus.BREAKDOWN: (
        "breakdown: the Krylov space became invariant or its least-squares problem singular, "
        "and the true residual misses the tolerance; the system is singular and inconsistent "
        "(b not in the range of A), x is the last iterate before the breakdown. Try a shift "
        "(A + lambda*I) or a least-squares method."
    ),
    SolverStatus.STAGNATION: (
        "stagnation: a restart cycle no longer changed the iterate; the tolerance is below "
        "the attainable accuracy for this dtype and operator. Use float64, a larger "
        "restart, or a looser tolerance."
    ),
    SolverStatus.NON_FINITE: (
        "non-finite values (NaN or Inf) came out of the operator or preconditioner; the "
        "last finite iterate is returned. Check the operator (e.g. the finite-difference "
        "step, or a network producing NaN)."
    ),
    SolverStatus.CALLBACK: "stopped by the callback.",
    SolverStatus.NOT_STARTED: "not started.",
    SolverStatus.NEGATIVE_CURVATURE: (
        "negative curvature: a search direction d with d^T A d <= 0 was found, so A is not "
        "positive definite; the direction is in the result (curvature_direction). Use "
        "minres for symmetric indefinite systems, or a shift (A + lambda*I)."
    ),
}
