r"""Arnoldi factorization :math:`A V_k = V_{k+1} \bar H_k`, batched.

The Arnoldi process builds an orthonormal basis :math:`v_1, \dots, v_{k+1}` of
the Krylov space :math:`\mathcal K_{k+1}(A, v_1) =
\operatorname{span}\{v_1, Av_1, \dots, A^k v_1\}` and the
:math:`(k+1)\times k` upper Hessenberg matrix :math:`\bar H_k` with
:math:`h_{ij} = \langle A v_j, v_i\rangle` (Qian et al., Algorithm 1, lines 5–11).
It is a public object here, as in KrylovKit.jl, not a hidden helper of GMRES:
its Ritz values approximate the extreme eigenvalues of :math:`A`, and it can be
expanded step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._backend import (
    as_batch,
    batched_dot,
    batched_norm,
    check_floating,
    complex_if,
    device,
    finfo_eps,
    is_complex,
    namespace_of,
    to_numpy,
)
from .operators import LinearOperator, aslinearoperator

__all__ = ["ArnoldiFactorization", "arnoldi", "orthogonalize"]

Array = Any
Orthogonalization = Literal["mgs", "cgs2"]


def orthogonalize(
    xp: Any, basis: Array, j: int, w: Array, method: Orthogonalization
) -> tuple[Array, Array, Array, Array]:
    r"""Orthogonalize ``w`` against the first ``j + 1`` basis vectors of each sample.

    Parameters
    ----------
    xp : namespace
        Array-API namespace.
    basis : array, shape (B, m+1, n)
        Rows ``0..j`` of each sample hold its orthonormal basis :math:`v_1..v_{j+1}`.
    j : int
        Zero-based index of the newest basis vector.
    w : array, shape (B, n)
        :math:`A v_{j+1}` per sample.
    method : {"mgs", "cgs2"}
        ``"mgs"``: modified Gram-Schmidt, one vector at a time (as scipy and the
        Qian et al.'s Algorithm 1).  ``"cgs2"``: classical Gram-Schmidt with
        reorthogonalization: a second classical pass whenever the first removed
        more than :math:`1 - 1/\sqrt 2` of :math:`\|w\|` (the
        Daniel-Gragg-Kaufman-Stewart criterion used by ARPACK).  Each pass is one
        matrix-vector product with the whole basis instead of ``j`` dependent
        dot/axpy pairs, and "twice is enough" (Giraud et al. 2005) makes it as
        stable as MGS (its basis stays orthogonal to working precision, where
        MGS's loses orthogonality in proportion to the basis' condition number);
        when the first pass cancelled little, the second would change :math:`w`
        only at rounding level and is skipped.

    Returns
    -------
    h : array, shape (B, j+1)
        The coefficients :math:`h_{i,j+1} = \langle w, v_i \rangle = v_i^H w`
        (Hermitian for complex arrays).
    w : array, shape (B, n)
        The orthogonalized, *unnormalized* vector.
    norm_before, norm_after : array, shape (B,)
        :math:`\|w\|` before and after; their ratio detects breakdown, and a
        non-finite ``norm_before`` flags a non-finite ``w``.
    """
    norm_before = batched_norm(xp, w)
    V = basis[:, : j + 1, :]
    if is_complex(xp, w.dtype):
        # Hermitian coefficients <w, v_i> = v_i^H w = conj(v_i^T conj(w)): conjugating
        # the one vector w costs O(n), conjugating the basis O(jn).
        def coefficients(w: Array) -> Array:
            return xp.conj((V @ xp.conj(w)[:, :, None])[:, :, 0])
    else:

        def coefficients(w: Array) -> Array:
            return (V @ w[:, :, None])[:, :, 0]

    if method == "cgs2":
        h = coefficients(w)
        w = w - (h[:, None, :] @ V)[:, 0, :]
        # The DGKS test ||w - Vh|| < ||w|| / sqrt(2) by Pythagoras (V orthonormal):
        # ||h|| > ||w|| / sqrt(2), from j + 1 numbers instead of a pass over w.  Where
        # rounding makes the two differ, the test is near its threshold (either
        # answer is fine) or w cancelled (a second pass is the right answer).
        if bool((batched_norm(xp, h) > _DGKS * norm_before).any()):  # (method: any backend)
            correction = coefficients(w)
            w -= (correction[:, None, :] @ V)[:, 0, :]  # (w is ours since the line above)
            h = h + correction
        return h, w, norm_before, batched_norm(xp, w)
    if method == "mgs":
        columns = []
        for i in range(j + 1):
            hij = batched_dot(xp, V[:, i, :], w)
            w = w - hij[:, None] * V[:, i, :]
            columns.append(hij)
        return xp.stack(columns, axis=1), w, norm_before, batched_norm(xp, w)
    raise ValueError(f"orthogonalization must be 'mgs' or 'cgs2'; got {method!r}.")


#: DGKS reorthogonalization threshold 1/sqrt(2).
_DGKS = 0.7071067811865476


def direction_lost(
    norm_before: np.ndarray,
    norm_after: np.ndarray,
    eps: float,
    j: int,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    r"""Tell, per sample, whether the new Krylov direction is rounding noise (breakdown).

    In exact arithmetic the Arnoldi process breaks down (the Krylov space is
    invariant) when :math:`h_{j+2,j+1} = 0`.  In floating point, what
    Gram-Schmidt leaves of an :math:`Av_{j+1}` that lies in the span of the basis
    is rounding of a few :math:`\varepsilon\|A\|`, growing like
    :math:`\sqrt{j}`, so the test is

    .. math:: \|w_{\text{after}}\| \le 16\sqrt{j+1}\,\varepsilon\,
              \max(\|w_{\text{before}}\|, \hat\alpha)

    with :math:`\hat\alpha = \max_i \|Av_i\|` a running estimate of
    :math:`\|A\|` (``scale``).  Measuring against :math:`\|A\|` rather than
    :math:`\|Av_{j+1}\|` alone matters when the invariant subspace belongs to
    small eigenvalues; scipy's :math:`\|w_{\text{after}}\| \le
    \varepsilon\|w_{\text{before}}\|` misses most exact invariant subspaces.

    Parameters
    ----------
    norm_before, norm_after : numpy.ndarray
        :math:`\|w\|` before and after orthogonalization, per sample.
    eps : float
        Machine epsilon of the vectors' dtype.
    j : int
        Zero-based index of the newest basis vector.
    scale : numpy.ndarray, optional
        :math:`\hat\alpha` per sample.

    Returns
    -------
    numpy.ndarray of bool
    """
    reference = norm_before if scale is None else np.maximum(norm_before, scale)
    # (A NaN norm compares False, without a warning: not a breakdown.)
    return np.asarray(norm_after <= 16.0 * math.sqrt(j + 1) * eps * reference)


@dataclass(eq=False)
class ArnoldiFactorization:
    r"""A (batched) Arnoldi factorization :math:`A V_k = V_{k+1}\bar H_k`.

    Attributes
    ----------
    V : array
        Orthonormal basis, columns are basis vectors: ``(n, k+1)``, or
        ``(B, n, k+1)`` for a batch.  Columns past a sample's ``size`` are zero.
    H : array
        Hessenberg matrix ``(k+1, k)`` or ``(B, k+1, k)``.
    size : int or array of int
        Number of Arnoldi steps actually taken per sample: ``k``, or fewer where
        the Krylov space became invariant (then :math:`A V_m = V_m H_m` exactly,
        and the eigenvalues of :math:`H_m` are eigenvalues of :math:`A`).
    breakdown : bool or array of bool
        Whether each sample found an invariant subspace.
    matvecs : int or array of int
        Operator applications per sample.
    """

    operator: LinearOperator
    basis: Array  # (B, k+1, n): rows are basis vectors, contiguous for the solvers
    hessenberg: Array  # (B, k+1, k)
    sizes: np.ndarray  # (B,)
    breakdowns: np.ndarray  # (B,)
    matvec_counts: np.ndarray  # (B,)
    operator_norm: np.ndarray  # (B,) running max ||A v_i||, the breakdown scale
    orthogonalization: Orthogonalization
    single: bool

    @property
    def xp(self) -> Any:
        """Array namespace of the factorization."""
        return namespace_of(self.basis)

    @property
    def k(self) -> int:
        r"""Number of columns of :math:`\bar H` (steps requested so far)."""
        return int(self.hessenberg.shape[-1])

    def _out(self, a: Any) -> Any:
        return a[0] if self.single else a

    @property
    def V(self) -> Array:
        """Orthonormal basis with basis vectors as columns."""
        return self._out(self.xp.permute_dims(self.basis, (0, 2, 1)))

    @property
    def H(self) -> Array:
        r"""Upper Hessenberg matrix :math:`\bar H_k`."""
        return self._out(self.hessenberg)

    @property
    def size(self) -> int | np.ndarray:
        """Steps taken per sample."""
        return int(self.sizes[0]) if self.single else self.sizes.copy()

    @property
    def breakdown(self) -> bool | np.ndarray:
        """Invariant subspace found, per sample."""
        return bool(self.breakdowns[0]) if self.single else self.breakdowns.copy()

    @property
    def matvecs(self) -> int | np.ndarray:
        """Operator applications per sample."""
        return int(self.matvec_counts[0]) if self.single else self.matvec_counts.copy()

    def ritz_values(self) -> np.ndarray | list[np.ndarray]:
        r"""Eigenvalues of the square :math:`H_m` (:math:`m` = ``size``), per sample.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            Complex Ritz values sorted by decreasing magnitude (a list, one per
            sample, for a batch).  Computed on the CPU: :math:`H_m` is tiny.
        """
        H = to_numpy(self.hessenberg)
        values = []
        for b, m in enumerate(self.sizes):
            eig = np.linalg.eigvals(H[b, :m, :m]) if m > 0 else np.zeros(0, dtype=complex)
            # eigvals returns a real array when every eigenvalue is real: one dtype
            # (complex, as documented and as scipy's eigs) whatever the spectrum.
            eig = eig.astype(np.result_type(eig.dtype, np.complex64))
            values.append(eig[np.argsort(-np.abs(eig), kind="stable")])
        return values[0] if self.single else values

    def expand(self, steps: int) -> ArnoldiFactorization:
        """Take ``steps`` more Arnoldi steps in place (samples that broke down stay put).

        Parameters
        ----------
        steps : int
            Number of additional steps (``>= 1``).

        Returns
        -------
        ArnoldiFactorization
            ``self``, for chaining.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}.")
        xp = self.xp
        B, k_plus_1, n = self.basis.shape
        k = k_plus_1 - 1
        new_k = k + steps
        dev = device(self.basis)
        basis = xp.zeros((B, new_k + 1, n), dtype=self.basis.dtype, device=dev)
        basis[:, : k + 1, :] = self.basis
        hess = xp.zeros((B, new_k + 1, new_k), dtype=self.basis.dtype, device=dev)
        hess[:, : k + 1, :k] = self.hessenberg
        self.basis, self.hessenberg = basis, hess
        _run_arnoldi(self, start=k, stop=new_k)
        return self


def _run_arnoldi(fact: ArnoldiFactorization, start: int, stop: int) -> None:
    """Arnoldi steps ``start..stop-1`` for the samples that have not broken down."""
    xp = fact.xp
    basis, hess = fact.basis, fact.hessenberg
    eps = finfo_eps(xp, basis.dtype)
    dev = device(basis)
    B = basis.shape[0]
    for j in range(start, stop):
        active_np = ~fact.breakdowns
        if not active_np.any():
            break
        idx_np = np.flatnonzero(active_np)
        all_active = idx_np.size == B
        idx = None if all_active else xp.asarray(idx_np, device=dev)
        rows = basis[:, j, :] if all_active else xp.take(basis[:, j, :], idx, axis=0)
        w_active = fact.operator.matvec(rows, idx if fact.operator.batch_size is not None else None)
        fact.matvec_counts[idx_np] += 1
        finite = to_numpy(xp.all(xp.isfinite(w_active), axis=-1))
        if not finite.all():
            bad = idx_np[~finite]
            raise FloatingPointError(
                f"the operator returned NaN or Inf for sample(s) {bad.tolist()} at Arnoldi "
                f"step {j + 1}."
            )
        w = xp.zeros((B, basis.shape[2]), dtype=basis.dtype, device=dev)
        if all_active:
            w = w_active
        else:
            w[idx] = w_active
        h, w, norm_before, norm_after = orthogonalize(xp, basis, j, w, fact.orthogonalization)
        mask = xp.asarray(active_np, device=dev)
        before_np = to_numpy(norm_before).astype(np.float64)
        fact.operator_norm = np.where(
            active_np, np.maximum(fact.operator_norm, before_np), fact.operator_norm
        )
        broke = (
            direction_lost(before_np, to_numpy(norm_after), eps, j, fact.operator_norm) & active_np
        )
        keep = mask & ~xp.asarray(broke, device=dev)
        hess[:, : j + 1, j] = xp.where(mask[:, None], h, xp.zeros_like(h))
        hess[:, j + 1, j] = xp.where(keep, norm_after, xp.zeros_like(norm_after))
        safe = xp.where(keep, norm_after, xp.ones_like(norm_after))
        basis[:, j + 1, :] = xp.where(keep[:, None], w / safe[:, None], xp.zeros_like(w))
        fact.sizes[active_np] = j + 1
        fact.breakdowns |= broke


def arnoldi(
    A: Any, v0: Array, k: int, *, orthogonalization: Orthogonalization = "cgs2"
) -> ArnoldiFactorization:
    r"""Run ``k`` steps of the Arnoldi process from ``v0``.

    Parameters
    ----------
    A : LinearOperator, array, scipy operator or callable
        The operator (anything :func:`~krylovadv.operators.aslinearoperator` takes);
        a ``(B, n, n)`` array or batched operator gives ``B`` independent runs.
    v0 : array, shape (n,) or (B, n)
        Starting vector(s); normalised internally (:math:`v_1 = v_0/\|v_0\|`).
    k : int
        Number of steps (``1 <= k``); fewer are taken where the Krylov space
        becomes invariant (see ``size``/``breakdown``).
    orthogonalization : {"cgs2", "mgs"}
        Gram-Schmidt variant; see :func:`orthogonalize`.  ``"cgs2"`` keeps
        :math:`\|V^TV - I\| = O(\varepsilon)`; with ``"mgs"`` the loss of
        orthogonality grows with the condition number of the Krylov basis (which
        is harmless inside GMRES but not for Ritz values).

    Returns
    -------
    ArnoldiFactorization
        With :math:`A V_k = V_{k+1} \bar H_k`, and (for ``"cgs2"``)
        :math:`V_{k+1}^T V_{k+1} = I` up to rounding.

    Raises
    ------
    ValueError
        For a zero or non-finite ``v0``, bad shapes or ``k < 1``.
    FloatingPointError
        If the operator returns NaN or Inf.

    Examples
    --------
    >>> import numpy as np
    >>> from krylovadv import arnoldi
    >>> A = np.diag([1.0, 2.0, 3.0, 4.0])
    >>> fact = arnoldi(A, np.ones(4), 4)
    >>> np.allclose(A @ fact.V[:, :4], fact.V @ fact.H)
    True
    """
    if orthogonalization not in ("mgs", "cgs2"):
        raise ValueError(f"orthogonalization must be 'mgs' or 'cgs2'; got {orthogonalization!r}.")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}.")
    xp = namespace_of(v0)
    check_floating(xp, v0.dtype, "v0")
    v, single = as_batch(xp, v0, "v0")
    op = aslinearoperator(A)
    v = complex_if(xp, v, op.dtype)  # a complex operator makes the basis complex
    B, n = v.shape
    if op.n != n:
        raise ValueError(f"A has shape {op.shape} but v0 has shape {tuple(v0.shape)}.")
    if op.batch_size is not None and op.batch_size != B:
        raise ValueError(
            f"A holds {op.batch_size} operators but v0 has {B} rows (shape {tuple(v0.shape)})."
        )
    if not bool(xp.all(xp.isfinite(v))):
        raise ValueError("v0 contains NaN or Inf.")
    norms = batched_norm(xp, v)
    if bool(xp.any(norms == 0)):
        raise ValueError("v0 must be nonzero for every sample.")
    dev = device(v)
    basis = xp.zeros((B, k + 1, n), dtype=v.dtype, device=dev)
    basis[:, 0, :] = v / norms[:, None]
    hess = xp.zeros((B, k + 1, k), dtype=v.dtype, device=dev)
    fact = ArnoldiFactorization(
        operator=op,
        basis=basis,
        hessenberg=hess,
        sizes=np.zeros(B, dtype=np.int64),
        breakdowns=np.zeros(B, dtype=bool),
        matvec_counts=np.zeros(B, dtype=np.int64),
        operator_norm=np.zeros(B),
        orthogonalization=orthogonalization,
        single=single,
    )
    _run_arnoldi(fact, start=0, stop=k)
    return fact
