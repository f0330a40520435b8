r"""Power iteration for the dominant eigenpair, batched.

The iteration :math:`d^{t+1} = A d^t / \|A d^t\|_2` (Li et al., appendix A)
converges to the eigenvector of the eigenvalue of largest magnitude when that
eigenvalue is simple and real.  The eigenvalue estimate is the Rayleigh quotient
:math:`\lambda^t = \langle d^t, A d^t\rangle` (for unit :math:`d^t`), and a
sample stops when its eigen-residual satisfies

.. math:: \|A d^t - \lambda^t d^t\|_2 \le \mathrm{tol}\cdot|\lambda^t|,

which, for a symmetric :math:`A`, bounds the distance of :math:`\lambda^t` to
the spectrum by :math:`\mathrm{tol}\,|\lambda^t|`.  The test certifies *an*
eigenpair, not the dominant one: a start nearly orthogonal to the dominant
eigenvector, with :math:`|\lambda_2/\lambda_1|` close to 1, can meet it near
another eigenvector before the dominant component has grown (the fuzz session
found such starts on clustered spectra).  Dominance is guaranteed when the
start has a component of at least 1/2 along the dominant eigenvector and the
relative gap exceeds :math:`10\,\mathrm{tol}`; otherwise use
:func:`krylovadv.eigsh`, whose Krylov space contains the power iterates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._backend import (
    batched_dot,
    batched_norm,
    check_floating,
    complex_if,
    device,
    finfo_eps,
    host_dtype,
    namespace_of,
    to_numpy,
)
from ._results import PerSampleResult
from ._start import start_norms, start_vectors
from .operators import aslinearoperator
from .status import SolverStatus

__all__ = ["PowerIterationResult", "power_iteration"]

Array = Any


@dataclass(eq=False)
class PowerIterationResult(PerSampleResult):
    r"""Outcome of :func:`power_iteration`, per sample.

    Scalars for a single operator, arrays of length ``B`` for a batch;
    ``result.sample(i)`` is sample ``i``'s result.

    Attributes
    ----------
    eigenvalue : float, complex or numpy.ndarray
        Rayleigh quotient :math:`\lambda = \langle d, A d\rangle = d^H A d`
        (complex for complex problems).
    eigenvector : array
        Unit vector(s) :math:`d`, ``(n,)`` or ``(B, n)``, in the caller's array type.
    converged : bool or numpy.ndarray of bool
        Whether :math:`\|Ad - \lambda d\| \le \mathrm{tol}\,|\lambda|`.
    status : SolverStatus or numpy.ndarray of int
        ``CONVERGED``, ``MAX_ITERATIONS``, ``BREAKDOWN`` (:math:`A d = 0`: the
        start vector lies in the null space) or ``NON_FINITE``.
    iterations : int or numpy.ndarray of int
        Products with ``A`` per sample.
    residual_norm : float or numpy.ndarray
        Final eigen-residual :math:`\|A d - \lambda d\|_2`.
    eigenvalue_history : numpy.ndarray or list of numpy.ndarray
        :math:`\lambda^t` at every iteration.
    """

    eigenvalue: Any
    eigenvector: Array
    converged: Any
    status: Any
    iterations: Any
    residual_norm: Any
    eigenvalue_history: Any
    batched: bool = field(default=True, repr=False)

    batch_field: ClassVar[str] = "eigenvector"


def power_iteration(
    A: Any,
    v0: Array | None = None,
    *,
    tol: float = 1e-6,
    maxiter: int = 1000,
    seed: int | np.random.Generator | None = None,
    batch_size: int | None = None,
) -> PowerIterationResult:
    r"""Estimate the eigenvalue of largest magnitude and its eigenvector.

    Parameters
    ----------
    A : operator
        Anything :func:`~krylovadv.operators.aslinearoperator` takes; a batched
        operator gives ``B`` independent problems.
    v0 : array, shape (n,) or (B, n), optional
        Start vector(s).  By default drawn from :math:`\mathcal N(0, I)` with
        ``seed``, in the namespace, dtype and device of a dense ``A`` (numpy
        float64 otherwise; pass ``v0`` to choose).
    tol : float
        Relative eigen-residual tolerance (see module docstring); must exceed
        the dtype's machine epsilon to be reachable.
    maxiter : int
        Maximum number of products with ``A`` per sample.
    seed : int or numpy.random.Generator, optional
        For the random start; the same seed gives the same result.
    batch_size : int, optional
        Number of problems when ``v0`` is not given and ``A`` is a shared
        operator (``B`` random starts on the same operator).

    Returns
    -------
    PowerIterationResult

    Notes
    -----
    Convergence is linear with ratio :math:`|\lambda_2/\lambda_1|`; a
    dominant eigenvalue of multiplicity one in magnitude but with
    :math:`\lambda_2 = -\lambda_1` makes the iteration oscillate, and such a
    sample ends with ``MAX_ITERATIONS``.  Converged samples stop being
    multiplied (active-set compaction).

    Examples
    --------
    >>> import numpy as np
    >>> from krylovadv import power_iteration
    >>> res = power_iteration(np.diag([1.0, -5.0, 2.0]), seed=0)
    >>> round(res.eigenvalue, 6)
    -5.0
    """
    op = aslinearoperator(A)
    if tol <= 0 or not np.isfinite(tol):
        raise ValueError(f"tol must be a positive finite float; got {tol}.")
    if int(maxiter) < 1:
        raise ValueError(f"maxiter must be >= 1; got {maxiter}.")
    if v0 is not None:
        check_floating(namespace_of(v0), v0.dtype, "v0")
    rng = np.random.default_rng(seed)
    xp, v, single = start_vectors(op, v0, batch_size, lambda B, n: rng.standard_normal((B, n)))
    # A complex operator makes the iterates complex, in the caller's precision.
    v = complex_if(xp, v, op.dtype)
    if v0 is not None:
        v = xp.asarray(v, copy=True)
    B = int(v.shape[0])
    norms = start_norms(xp, op, v)
    v = v / norms[:, None]
    dev = device(v)
    eps = finfo_eps(xp, v.dtype)
    if tol < eps:
        raise ValueError(f"tol={tol} is below machine epsilon {eps:.1e} of {v.dtype}.")

    status = np.full(B, int(SolverStatus.NOT_STARTED), dtype=np.int64)
    iterations = np.zeros(B, dtype=np.int64)
    host = host_dtype(xp, v.dtype)
    eigenvalue = np.zeros(B, dtype=host)
    residual = np.full(B, np.inf)
    history: list[list[float]] = [[] for _ in range(B)]
    running = np.ones(B, dtype=bool)
    for _ in range(int(maxiter)):
        idx_np = np.flatnonzero(running)
        if idx_np.size == 0:
            break
        all_in = idx_np.size == B
        idx = None if all_in else xp.asarray(idx_np, device=dev)
        d = v if all_in else xp.take(v, idx, axis=0)
        Ad = op.matvec(d, idx if op.batch_size is not None else None)
        iterations[idx_np] += 1
        lam = batched_dot(xp, d, Ad)
        res = batched_norm(xp, Ad - lam[:, None] * d)
        Ad_norm = batched_norm(xp, Ad)
        lam_np = to_numpy(lam).astype(host)
        res_np = to_numpy(res).astype(np.float64)
        Ad_norm_np = to_numpy(Ad_norm).astype(np.float64)
        eigenvalue[idx_np] = lam_np
        residual[idx_np] = res_np
        for k, s in enumerate(idx_np):
            history[s].append(lam_np[k].item())
        nonfinite = ~(np.isfinite(res_np) & np.isfinite(Ad_norm_np))
        null = ~nonfinite & (Ad_norm_np == 0)
        conv = ~nonfinite & ~null & (res_np <= tol * np.abs(lam_np))
        status[idx_np[nonfinite]] = SolverStatus.NON_FINITE
        status[idx_np[null]] = SolverStatus.BREAKDOWN
        status[idx_np[conv]] = SolverStatus.CONVERGED
        # Advance only the samples that continue; converged ones keep the d that met
        # the test (its Rayleigh quotient is the reported eigenvalue).
        cont = ~(nonfinite | null | conv)
        if cont.any():
            safe = xp.where(Ad_norm > 0, Ad_norm, xp.ones_like(Ad_norm))
            new_rows = Ad / safe[:, None]
            cont_x = xp.asarray(cont, device=dev)
            new_rows = xp.where(cont_x[:, None], new_rows, d)
            if all_in:
                v = new_rows
            else:
                v[idx] = new_rows
        running[idx_np] = cont
    status[running] = SolverStatus.MAX_ITERATIONS
    converged = status == SolverStatus.CONVERGED
    result = PowerIterationResult(
        eigenvalue=eigenvalue,
        eigenvector=v,
        converged=converged,
        status=status,
        iterations=iterations,
        residual_norm=residual,
        eigenvalue_history=[np.asarray(h) for h in history],
        batched=True,
    )
    return result.sample(0) if single else result
