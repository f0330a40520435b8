r"""A few eigenpairs of symmetric (Hermitian) operators: thick-restart Lanczos (``eigsh``), batched.

The Lanczos process builds an orthonormal basis :math:`V_j` of
:math:`\mathcal K_j(A, v_0)` with :math:`A V_j = V_j T_j + \beta_j v_{j+1} e_j^T`
and symmetric :math:`T_j = V_j^T A V_j`; the eigenpairs :math:`(\theta_i, s_i)`
of :math:`T_j` give Ritz pairs :math:`(\theta_i, V_j s_i)` whose residual is
known without a product,

.. math:: \|A V_j s_i - \theta_i V_j s_i\|_2 = |\beta_j\, e_j^T s_i|.

Every new vector is reorthogonalized against the whole basis (classical
Gram–Schmidt twice, as in :func:`krylovadv.arnoldi.orthogonalize`), so no
spurious copies of converged eigenvalues appear and clustered eigenvalues are
resolved.  When the basis reaches ``ncv`` vectors it is *thick-restarted*
(Wu & Simon 2000; Stewart's Krylov–Schur for symmetric matrices): the best
Ritz vectors are kept, :math:`T` becomes diagonal plus one coupling row, and
the process continues from :math:`v_{j+1}`.  This is what ARPACK's implicitly
restarted Lanczos (behind :func:`scipy.sparse.linalg.eigsh`) computes, written
against the array API so it runs on numpy and torch, in batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np

from ._backend import (
    batched_norm,
    check_floating,
    coerce_dtype,
    device,
    dtype_in,
    finfo_eps,
    is_complex,
    to_numpy,
)
from ._results import PerSampleResult
from ._start import start_norms, start_vectors
from .arnoldi import orthogonalize
from .operators import aslinearoperator
from .status import SolverStatus

__all__ = ["EigshResult", "eigsh"]

Array = Any
Which = Literal["LA", "SA", "LM"]

#: Safety factor of the invariant-subspace test, as in GMRES's breakdown test: what
#: Gram-Schmidt leaves of a vector inside the span is rounding of a few eps*||A||,
#: growing like sqrt(j).
INVARIANT_FACTOR = 16.0


@dataclass(eq=False, repr=False)
class EigshResult(PerSampleResult):
    r"""Outcome of :func:`eigsh`, per sample.

    Scalars/arrays for one operator, with a leading batch axis ``B`` for a
    batch; ``result.sample(i)`` is sample ``i``'s result and
    ``result.batch_size`` is ``B``.  The result reads as scipy's answer:
    ``w, v = eigsh(A, k)`` and ``result[0]``/``result[1]`` are ``w``/``v``;
    with ``return_eigenvectors=False`` it iterates over, indexes and converts
    with ``numpy.asarray`` to the eigenvalues.

    Attributes
    ----------
    eigenvalues : numpy.ndarray, shape (k,) or (B, k)
        Ritz values, ascending (scipy's order).
    eigenvectors : array or None, shape (n, k) or (B, n, k)
        Unit Ritz vectors in the caller's array type (``None`` with
        ``return_eigenvectors=False``).
    converged : bool or numpy.ndarray of bool
        Whether all ``k`` pairs met the tolerance.
    status : SolverStatus or numpy.ndarray of int
        ``CONVERGED``, ``MAX_ITERATIONS`` or ``NON_FINITE``.
    iterations : int or numpy.ndarray of int
        Restart cycles started.
    matvecs : int or numpy.ndarray of int
        Products with ``A``.
    residual_norm : numpy.ndarray, shape (k,) or (B, k)
        :math:`\|Ay_i - \theta_i y_i\|_2 = |\beta_j e_j^T s_i|` per pair: the
        true eigen-residual as long as the basis is orthonormal, which the full
        reorthogonalization keeps to working precision (checked in the tests
        against :math:`\|Ay - \theta y\|` computed from scratch).
    invariant_subspaces : int or numpy.ndarray of int
        Lanczos breakdowns (:math:`\beta_j \approx 0`: the Krylov space is
        invariant and its Ritz values exact).  Each is reported here, never
        divided by; the process continues from a fresh random vector orthogonal
        to the basis, as ARPACK does.
    eigenvalue_history : list or numpy.ndarray
        The wanted Ritz values after every step, shape ``(steps, k)`` per sample
        (NaN-padded while the basis has fewer than ``k`` vectors).
    """

    eigenvalues: Any
    eigenvectors: Any
    converged: Any
    status: Any
    iterations: Any
    matvecs: Any
    residual_norm: Any
    invariant_subspaces: Any
    eigenvalue_history: Any
    batched: bool = field(default=True, repr=False)

    batch_field: ClassVar[str] = "eigenvalues"

    def sample(self, i: int) -> EigshResult:
        """Return the result of sample ``i`` alone (as solving that problem alone returns)."""
        if self.batched and self.eigenvectors is None:
            # PerSampleResult indexes every field; there are no vectors to index.
            return replace(self, eigenvectors=[None] * self.batch_size).sample(i)
        return super().sample(i)

    def __len__(self) -> int:
        """Return the length of scipy's answer: 2 for ``(w, v)``, else that of ``w``."""
        return 2 if self.eigenvectors is not None else len(self.eigenvalues)

    def __getitem__(self, k: int) -> Any:
        """Index scipy's answer: ``(w, v)[k]``, or ``w[k]`` without eigenvectors.

        Per-sample results of a batch are :meth:`sample`, not indexing.
        """
        if not isinstance(k, (int, np.integer)):
            raise TypeError(
                f"EigshResult indexes like scipy's (w, v) pair (or w); got {k!r}. "
                "Use result.sample(i) for sample i of a batch."
            )
        if self.eigenvectors is None:
            return self.eigenvalues[k]
        return (self.eigenvalues, self.eigenvectors)[k]

    def __iter__(self):
        """Yield ``(w, v)``, or the eigenvalues themselves without eigenvectors (as scipy)."""
        if self.eigenvectors is None:
            return iter(self.eigenvalues)
        return iter((self.eigenvalues, self.eigenvectors))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.eigenvalues, dtype=dtype)

    def __repr__(self) -> str:
        if not self.batched:
            return (
                f"EigshResult(status={SolverStatus(self.status).name}, "
                f"eigenvalues={np.array2string(np.asarray(self.eigenvalues), precision=4)}, "
                f"matvecs={self.matvecs})"
            )
        counts = self.status_counts()
        matvecs = self.matvecs.tolist()
        return f"EigshResult(batch={self.batch_size}, status={counts}, matvecs={matvecs})"


def _select(theta: np.ndarray, which: str, count: int) -> np.ndarray:
    """Return the indices (per row) of the ``count`` best Ritz values for ``which``."""
    if which == "LA":
        key = -theta
    elif which == "SA":
        key = theta
    else:
        key = -np.abs(theta)
    return np.argsort(key, axis=-1, kind="stable")[..., :count]


def eigsh(
    A: Any,
    k: int = 6,
    *,
    which: Which = "LM",
    v0: Array | None = None,
    ncv: int | None = None,
    maxiter: int | None = None,
    tol: float = 0.0,
    return_eigenvectors: bool = True,
    rng: int | np.random.Generator | None = None,
    batch_size: int | None = None,
) -> EigshResult:
    r"""Find ``k`` eigenvalues (and eigenvectors) of symmetric operator(s).

    Parameters
    ----------
    A : operator
        Real symmetric or complex Hermitian; anything
        :func:`~krylovadv.operators.aslinearoperator` takes.  A complex ``A``
        (or ``v0``) makes the basis complex; the eigenvalues are real.
        A batched operator gives ``B`` independent problems.
    k : int
        Number of eigenpairs, ``1 <= k < n`` (as scipy).
    which : {"LA", "SA", "LM"}
        Largest algebraic, smallest algebraic or largest magnitude.
    v0 : array, shape (n,) or (B, n), optional
        Start vector(s), nonzero.  By default :math:`\mathcal N(0, I)` drawn
        with ``rng``, in the namespace, dtype and device of a dense ``A``
        (numpy float64 otherwise; pass ``v0`` to choose).
    ncv : int, optional
        Basis size, ``k < ncv <= n``; ``min(n, max(2k + 1, 20))`` by default
        (scipy's).
    maxiter : int, optional
        Maximum restart cycles (``10 n`` by default, scipy's).
    tol : float
        Relative accuracy: pair :math:`i` has converged when
        :math:`|\beta_j e_j^T s_i| \le \max(\mathrm{tol}\,|\theta_i|,\
        16\,\varepsilon\|T_j\|_2)`; ``0`` means machine precision
        :math:`\varepsilon` (as scipy).  The floor :math:`16\varepsilon\|T_j\|`
        is the rounding of the product :math:`Ay` itself, below which no
        residual can be certified; it also keeps eigenvalues near zero (a
        singular Hessian's) reachable.
    return_eigenvectors : bool
        Also return the Ritz vectors.
    rng : int or numpy.random.Generator, optional
        Seed of the default start vector(s) and of the fresh vectors drawn after
        a breakdown (the same for every sample, so a batch equals a loop).
    batch_size : int, optional
        ``B`` random starts on a shared operator when ``v0`` is not given.

    Returns
    -------
    EigshResult

    Raises
    ------
    ValueError
        On invalid ``k``, ``ncv``, ``which``, ``tol``, ``maxiter``, shapes, or a
        zero or non-finite ``v0``.

    Notes
    -----
    Symmetry is assumed, not checked.  Per sample, after every Lanczos step the
    ``k`` wanted Ritz pairs of :math:`T_j` are tested; the sample stops (and
    leaves the active set) once all ``k`` have converged.  When the basis holds
    ``ncv`` vectors, the best ``k + (ncv - k) // 2`` Ritz vectors are kept
    (thick restart).  The eigenproblems of :math:`T_j` (at most ``ncv``
    square) are solved in float64 on the host.

    Examples
    --------
    >>> import numpy as np
    >>> from krylovadv import eigsh
    >>> A = np.diag(np.arange(1.0, 101.0))
    >>> w, v = eigsh(A, k=3, which="LA", rng=0)
    >>> np.round(w, 8)
    array([ 98.,  99., 100.])
    """
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which must be 'LA', 'SA' or 'LM'; got {which!r}.")
    op = aslinearoperator(A)
    n = op.n
    k = int(k)
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < n = {n}; got k={k}.")
    ncv = min(n, max(2 * k + 1, 20)) if ncv is None else int(ncv)
    if not k < ncv <= n:
        raise ValueError(f"ncv must satisfy k < ncv <= n ({k} < ncv <= {n}); got {ncv}.")
    maxiter = 10 * n if maxiter is None else int(maxiter)
    if maxiter < 1:
        raise ValueError(f"maxiter must be >= 1; got {maxiter}.")
    tol = float(tol)
    if not (tol >= 0 and np.isfinite(tol)):
        raise ValueError(f"tol must be finite and >= 0; got {tol}.")
    generator = np.random.default_rng(rng)

    xp, v, single = start_vectors(
        op, v0, batch_size, lambda B, n: np.repeat(generator.standard_normal((1, n)), B, axis=0)
    )
    B = int(v.shape[0])
    # scipy's dtype rule (as the solvers): a complex Hermitian A makes the basis complex.
    dtype = coerce_dtype(xp, v.dtype, dtype_in(xp, op.dtype))
    check_floating(xp, dtype, "v0")
    if v.dtype != dtype:
        v = xp.astype(v, dtype)
    norms = start_norms(xp, op, v)
    dev = device(v)
    # Thresholds from the real dtype's eps (finfo of a complex dtype is its real part's).
    eps = finfo_eps(xp, dtype)
    # T_j = V_j^H A V_j is Hermitian: real diagonal and real beta_j, but the entries
    # that full reorthogonalization adds above the tridiagonal are complex.
    host = np.complex128 if is_complex(xp, dtype) else np.float64
    tol = eps if tol == 0 else tol

    basis = xp.zeros((B, ncv + 1, n), dtype=dtype, device=dev)
    basis[:, 0, :] = v / norms[:, None]
    T = np.zeros(
        (B, ncv + 1, ncv + 1), dtype=host
    )  # projected matrix, upper triangle + coupling row
    status = np.full(B, int(SolverStatus.NOT_STARTED), dtype=np.int64)
    cycles = np.zeros(B, dtype=np.int64)
    matvecs = np.zeros(B, dtype=np.int64)
    invariant = np.zeros(B, dtype=np.int64)
    scale = np.zeros(B)  # running max ||A v_j||, the scale of the breakdown test
    theta_out = np.full((B, k), np.nan)
    s_out = np.zeros((B, ncv, k), dtype=host)
    res_out = np.full((B, k), np.inf)
    history: list[list[np.ndarray]] = [[] for _ in range(B)]
    running = np.ones(B, dtype=bool)
    keep_count = k + (ncv - k) // 2
    start = 0  # basis vectors carried into the cycle

    while running.any():
        cycles[running] += 1
        for j in range(start, ncv):
            idx_np = np.flatnonzero(running)
            if idx_np.size == 0:
                break
            all_in = idx_np.size == B
            idx = None if all_in else xp.asarray(idx_np, device=dev)
            sub = basis if all_in else xp.take(basis, idx, axis=0)
            w = op.matvec(sub[:, j, :], idx if op.batch_size is not None else None)
            matvecs[idx_np] += 1
            with np.errstate(invalid="ignore", over="ignore"):
                h, w, nb, na = orthogonalize(xp, sub, j, w, "cgs2")
            h_np = to_numpy(h).astype(host)
            nb_np = to_numpy(nb).astype(np.float64)
            na_np = to_numpy(na).astype(np.float64)
            finite = np.isfinite(nb_np) & np.isfinite(na_np) & np.isfinite(h_np).all(axis=1)
            status[idx_np[~finite]] = SolverStatus.NON_FINITE
            running[idx_np[~finite]] = False
            scale[idx_np] = np.maximum(scale[idx_np], np.where(finite, nb_np, 0.0))
            lost = finite & (na_np <= INVARIANT_FACTOR * np.sqrt(j + 1) * eps * scale[idx_np])
            beta = np.where(finite & ~lost, na_np, 0.0)
            T[idx_np, : j + 1, j] = np.where(finite[:, None], h_np, 0.0)
            T[idx_np, j + 1, j] = beta
            inv = np.where(beta > 0, 1.0 / np.where(beta > 0, beta, 1.0), 0.0)
            new = w * xp.asarray(inv, dtype=dtype, device=dev)[:, None]
            if lost.any() and j + 1 < n:
                # Invariant subspace: continue from a fresh vector orthogonal to the basis.
                invariant[idx_np[lost]] += 1
                fresh = _fresh_vectors(xp, generator, sub[:, : j + 1, :], dtype, dev)
                new = xp.where(xp.asarray(lost, device=dev)[:, None], fresh, new)
            if all_in:
                basis[:, j + 1, :] = new
            else:
                basis[idx, j + 1, :] = new

            # Ritz pairs of T_{j+1} and their residuals |beta_{j+1} e_{j+1}^T s_i|.
            ok = idx_np[finite]
            count = min(k, j + 1)
            th, Sk, tnorm = _ritz_pairs(T[ok], j + 1, which, count)
            res = np.abs(T[ok, j + 1, j][:, None] * Sk[:, j, :])
            # Below a few eps*||A|| a residual cannot be certified: the product A y
            # itself carries that much rounding (the floor also makes eigenvalues
            # near zero, e.g. of a singular Hessian, reachable).
            bound = np.maximum(tol * np.abs(th), INVARIANT_FACTOR * eps * tnorm[:, None])
            done = (count == k) & np.all(res <= bound, axis=1)
            exhausted = j + 1 >= n  # the basis spans R^n: every Ritz pair is exact
            for r_, s in enumerate(ok.tolist()):
                history[s].append(np.pad(np.sort(th[r_]), (0, k - count), constant_values=np.nan))
            finish = ok[done | exhausted] if count == k else ok[:0]
            fin_rows = np.flatnonzero(done | exhausted) if count == k else []
            for r_, s in zip(fin_rows, finish.tolist(), strict=True):
                theta_out[s], res_out[s] = th[r_], res[r_]
                s_out[s, : j + 1, :] = Sk[r_]
                status[s] = SolverStatus.CONVERGED
            running[finish] = False
            if exhausted:
                running[:] = False

        # Thick restart of the samples still running: keep the best Ritz vectors.
        idx_np = np.flatnonzero(running)
        over = idx_np[cycles[idx_np] >= maxiter]
        if over.size:
            _store_current(T, over, ncv, k, which, theta_out, s_out, res_out)
            status[over] = SolverStatus.MAX_ITERATIONS
            running[over] = False
            idx_np = np.flatnonzero(running)
        if idx_np.size == 0:
            break
        _thick_restart(xp, basis, T, idx_np, ncv, keep_count, which)
        start = keep_count

    # Ritz vectors y_i = V s_i, ascending eigenvalues (scipy's order).
    order = np.argsort(theta_out, axis=1)
    eigenvalues = np.take_along_axis(theta_out, order, axis=1)
    residual_norm = np.take_along_axis(res_out, order, axis=1)
    eigenvectors = None
    if return_eigenvectors:
        S_sorted = np.take_along_axis(s_out, order[:, None, :], axis=2)  # (B, ncv, k)
        Sx = xp.asarray(np.swapaxes(S_sorted, 1, 2), dtype=dtype, device=dev)  # (B, k, ncv)
        Y = Sx @ basis[:, :ncv, :]  # (B, k, n)
        eigenvectors = xp.permute_dims(Y, (0, 2, 1))
    result = EigshResult(
        eigenvalues=eigenvalues,
        eigenvectors=eigenvectors,
        converged=status == SolverStatus.CONVERGED,
        status=status,
        iterations=cycles,
        matvecs=matvecs,
        residual_norm=residual_norm,
        invariant_subspaces=invariant,
        eigenvalue_history=[np.asarray(h) for h in history],
        batched=True,
    )
    return result.sample(0) if single else result


def _projected(T: np.ndarray, size: int) -> np.ndarray:
    """Return the Hermitian projected matrices ``(b, size, size)`` from their upper triangles."""
    Tm = T[:, :size, :size]
    return np.triu(Tm) + np.conj(np.swapaxes(np.triu(Tm, 1), 1, 2))


def _ritz_pairs(
    T: np.ndarray, size: int, which: str, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the ``count`` best Ritz values, their eigenvectors in ``T``, and ``||T||_2``."""
    Tsym = _projected(T, size)
    theta, S = np.linalg.eigh(Tsym)
    pick = _select(theta, which, count)
    values = np.take_along_axis(theta, pick, axis=1)
    vectors = np.take_along_axis(S, pick[:, None, :], axis=2)
    return values, vectors, np.abs(theta).max(axis=1)


def _fresh_vectors(
    xp: Any, generator: np.random.Generator, V: Array, dtype: Any, dev: Any
) -> Array:
    """Return a random unit vector orthogonal to each sample's basis ``V`` (one draw for all)."""
    b, _, n = V.shape
    fresh = xp.asarray(
        np.repeat(generator.standard_normal((1, n)), b, axis=0), dtype=dtype, device=dev
    )
    for _ in range(2):  # twice is enough (as in orthogonalize)
        coeff = (xp.conj(V) @ fresh[:, :, None])[:, :, 0]  # v_l^H f
        fresh = fresh - (coeff[:, None, :] @ V)[:, 0, :]
    fresh_norm = batched_norm(xp, fresh)
    # Only the rows of samples that broke down are used; the others may have no room
    # left for a fresh vector (norm 0), so never divide by it.
    return fresh / xp.where(fresh_norm > 0, fresh_norm, 1.0)[:, None]


def _thick_restart(
    xp: Any,
    basis: Array,
    T: np.ndarray,
    samples: np.ndarray,
    ncv: int,
    keep: int,
    which: str,
) -> None:
    r"""Keep the best ``keep`` Ritz vectors of ``samples`` and the last basis vector.

    :math:`V \leftarrow [V_m S_{\text{keep}},\ v_{m+1}]`; :math:`T` becomes
    :math:`\operatorname{diag}(\theta)` bordered by the coupling row
    :math:`\beta_m e_m^T S_{\text{keep}}` (Krylov–Schur for symmetric matrices).
    """
    dtype, dev = basis.dtype, device(basis)
    theta, S, _ = _ritz_pairs(T[samples], ncv, which, keep)  # S: (b, ncv, keep)
    coupling = T[samples, ncv, ncv - 1][:, None] * S[:, ncv - 1, :]
    idx = xp.asarray(samples, device=dev)
    sub = xp.take(basis, idx, axis=0)
    S_x = xp.asarray(np.swapaxes(S, 1, 2), dtype=dtype, device=dev)  # (b, keep, ncv)
    rebuilt = xp.zeros_like(sub)
    rebuilt[:, :keep, :] = S_x @ sub[:, :ncv, :]
    rebuilt[:, keep, :] = sub[:, ncv, :]
    basis[idx] = rebuilt
    T[samples] = 0.0
    diagonal = np.arange(keep)
    T[samples[:, None], diagonal, diagonal] = theta
    T[samples, keep, :keep] = coupling
    T[samples, :keep, keep] = np.conj(coupling)


def _store_current(
    T: np.ndarray,
    samples: np.ndarray,
    ncv: int,
    k: int,
    which: str,
    theta_out: np.ndarray,
    s_out: np.ndarray,
    res_out: np.ndarray,
) -> None:
    """Record the current best ``k`` Ritz pairs of samples that stop unconverged."""
    theta, S, _ = _ritz_pairs(T[samples], ncv, which, k)
    theta_out[samples] = theta
    s_out[samples] = S
    res_out[samples] = np.abs(T[samples, ncv, ncv - 1][:, None] * S[:, ncv - 1, :])
