r"""Recursive (incremental) Givens QR of an upper Hessenberg matrix.

GMRES minimises :math:`\|\beta e_1 - \bar H_j \gamma\|_2` over
:math:`\gamma \in \mathbb{R}^j`, where :math:`\bar H_j` is the
:math:`(j+1)\times j` Hessenberg matrix of the Arnoldi relation
:math:`A V_j = V_{j+1} \bar H_j` (Qian et al., eqs. 9–11, where it is called
:math:`D_{j+1,j}`).  Writing :math:`\bar H_j = Q_{j+1}^T R_{j+1,j}` with
:math:`Q_{j+1} = G_j G_{j-1}\cdots G_1` a product of Givens rotations turns
the problem into the triangular system :math:`R_j\gamma = \beta\, q_1(1{:}j)`
(eqs. 12–13), and the least-squares residual is
:math:`|\beta\, q_1(j+1)|`, which GMRES therefore gets for free at every step.

The QR is *recursive* (eq. 14): when column :math:`j` is appended, it is
rotated by the earlier rotations :math:`G_1,\dots,G_{j-1}` and one new rotation
:math:`G_j` zeroes its subdiagonal entry :math:`h_{j+1,j}`; nothing already
computed changes.  Here the earlier rotations are applied through their
accumulated product :math:`Q_j`, kept explicitly: one batched matrix-vector
product instead of :math:`j` dependent scalar updates, which on a GPU is one
kernel instead of :math:`j`, and for a batch of :math:`B` systems keeps every
operation a whole-batch array operation.  The small factorization lives on the
host in float64 (see :class:`GivensQR`).  :math:`Q_j` is a product of exactly
orthogonal plane rotations, so this is as stable as applying them one by one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._backend import is_complex

__all__ = ["GivensQR", "givens_rotation"]

Array = Any


def givens_rotation(xp: Any, a: Array, b: Array) -> tuple[Array, Array, Array]:
    r"""Plane rotations that zero ``b`` against ``a``, elementwise over a batch.

    Returns ``c, s, r`` with

    .. math:: \begin{pmatrix} c & s\\ -\bar s & c\end{pmatrix}
              \begin{pmatrix} a\\ b\end{pmatrix} = \begin{pmatrix} r\\ 0\end{pmatrix},
              \qquad c^2 + |s|^2 = 1,\quad |r| = \sqrt{|a|^2 + |b|^2},

    with :math:`c` real and :math:`\bar s` the complex conjugate (the same as
    :math:`s` for real inputs).

    Parameters
    ----------
    xp : namespace
        Array-API namespace.
    a, b : array, shape (B,)
        The entries to combine (diagonal and subdiagonal), real or complex.

    Returns
    -------
    c, s, r : array, shape (B,)
        ``c`` real and nonnegative; ``s`` and ``r`` of the inputs' dtype.  Where
        ``a == b == 0`` the rotation is the identity (``c = 1, s = 0``), never a
        division by zero.

    Notes
    -----
    LAPACK's ``lartg`` convention: :math:`r = \operatorname{sign}(a)\,\rho`,
    :math:`c = |a|/\rho`, :math:`s = \operatorname{sign}(a)\,\bar b/\rho` with
    :math:`\rho = \sqrt{|a|^2+|b|^2}` and :math:`\operatorname{sign}(a) = a/|a|`
    (1 for :math:`a = 0`); for real inputs the sign of ``r`` follows ``a``.  The
    inputs are scaled by :math:`\max(|a|, |b|)` first, as ``lartg`` does: for
    subnormal inputs ``hypot`` rounds so coarsely that :math:`a/r` and
    :math:`b/r` would no longer form a rotation (``a = b = 5e-324`` would give
    ``c = s = 1``).
    """
    complex_ = is_complex(xp, a.dtype) or is_complex(xp, b.dtype)
    abs_a, abs_b = xp.abs(a), xp.abs(b)
    scale = xp.maximum(abs_a, abs_b)
    if type(scale) is np.ndarray and not complex_ and scale.all():
        # GMRES's common case on the host: no zero pair, so no guards; the same
        # arithmetic as below, with a dozen fewer array operations.
        a_scaled = abs_a / scale
        b_scaled = b / scale
        rho = np.hypot(a_scaled, np.abs(b_scaled))
        # In a's dtype: a float64 phase would promote float32 s and r to float64.
        phase = np.where(a < 0, -1.0, 1.0).astype(a.dtype, copy=False)
        return a_scaled / rho, phase * b_scaled / rho, phase * (rho * scale)
    zero = scale == 0
    safe_scale = xp.where(zero, xp.ones_like(scale), scale)
    a_scaled = abs_a / safe_scale
    b_scaled = b / safe_scale
    rho = xp.hypot(a_scaled, xp.abs(b_scaled))
    safe_rho = xp.where(zero, xp.ones_like(rho), rho)
    c = xp.where(zero, xp.ones_like(rho), a_scaled / safe_rho)
    if complex_:
        safe_abs_a = xp.where(abs_a == 0, xp.ones_like(abs_a), abs_a)
        phase = xp.where(abs_a == 0, xp.ones_like(a), a / safe_abs_a)
        s = phase * xp.conj(b_scaled) / safe_rho
    else:
        phase = xp.where(a < 0, -xp.ones_like(a), xp.ones_like(a))
        s = phase * b_scaled / safe_rho
    s = xp.where(zero, xp.zeros_like(s), s)
    return c, s, phase * (rho * scale)


def _rotation(a: Any, b: Any) -> tuple[float, Any, Any]:
    """:func:`givens_rotation` for two Python scalars (the same formulas)."""
    abs_a, abs_b = abs(a), abs(b)
    scale = max(abs_a, abs_b)
    if scale == 0:
        return 1.0, 0.0 * b, 0.0 * a
    a_scaled = abs_a / scale
    b_scaled = b / scale
    rho = float(np.hypot(a_scaled, abs(b_scaled)))
    if isinstance(a, complex) or isinstance(b, complex):
        phase = a / abs_a if abs_a != 0 else 1.0 + 0.0j
        s = phase * b_scaled.conjugate() / rho
    else:
        phase = -1.0 if a < 0 else 1.0
        s = phase * b_scaled / rho
    return a_scaled / rho, s, phase * (rho * scale)


def _row_norms(h: np.ndarray) -> np.ndarray:
    """2-norm of each row of ``h``, without overflow where the sum of squares would.

    Hand-written rather than ``np.linalg.norm``, which squares the entries and so
    overflows for entries above about 1e154; dividing by the row's largest
    magnitude first (LAPACK's ``xNRM2`` idea) keeps every square in [0, 1].
    """
    magnitude = np.abs(h)
    largest = np.max(magnitude, axis=1, initial=0.0)
    usable = (largest > 0) & np.isfinite(largest)
    divisor = np.where(usable, largest, 1.0)
    with np.errstate(invalid="ignore"):
        scaled = np.sqrt(np.sum((magnitude / divisor[:, None]) ** 2, axis=1))
    # A zero row has norm 0; a row with an infinite or NaN entry keeps it (inf or nan).
    return np.where(usable, largest * scaled, largest)


def _below_one(inv_norm2: float, threshold: float) -> bool:
    """Whether ``inv_norm2 * threshold**2 < 1``, the rank test's "clearly nonsingular".

    ``threshold**2`` overflows for ``||H|| > ~1e150`` and ``inv_norm2`` may then
    underflow to 0; their product is NaN, which must read as *not* clearly
    nonsingular so that the exact SVD decides.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.float64(inv_norm2) * np.float64(threshold) ** 2 < 1.0)


class GivensQR:
    r"""Incremental QR factorization of a batch of Hessenberg matrices.

    Holds, for ``B`` independent least-squares problems
    :math:`\min_\gamma \|\beta e_1 - \bar H_j\gamma\|`, the accumulated rotation
    :math:`Q_{j+1}` (``(B, m+1, m+1)``), the triangular factor :math:`R`
    (``(B, m, m)``) and the rotations :math:`(c_i, s_i)`.

    The factorization lives on the host in float64 numpy arrays whatever the
    backend of the Krylov vectors: it is :math:`O(m^2)` numbers per sample, and
    one transfer of the new Hessenberg column per step costs less than the
    dozen tiny device kernels the update would otherwise launch.  For float32
    problems it also makes the small least-squares solve more accurate.

    **Rank.**  GMRES *breaks down* at step :math:`k` when the least-squares
    problem becomes rank deficient, :math:`\dim A\mathcal K_k < \dim\mathcal K_k`
    (Brown & Walker 1997): :math:`\bar H_k` is singular, which happens for
    singular :math:`A` only.  Beyond that step the minimiser is not unique and
    the triangular solve would divide by rounding noise, and the residual
    estimate :math:`|\beta q_1(k+1)|` no longer measures anything (it can fall
    below the smallest residual any :math:`x` has).  So, as Brown & Walker
    advise, the condition of :math:`R_k` is monitored as columns arrive: the
    first column that makes it numerically singular,

    .. math:: \sigma_{\min}(R_k) \le (k+1)\,\varepsilon\,\hat\alpha,

    (numpy's ``matrix_rank`` rule for the :math:`(k+1)\times k` matrix
    :math:`\bar H_k`, with :math:`\hat\alpha` an estimate of :math:`\|A\|`)
    freezes the sample: :attr:`singular` is set, :attr:`rank` stays at the
    last well-conditioned step, the residual estimate stays that step's, and
    :meth:`solve` returns that step's iterate.  Note that a small
    :math:`\sigma_{\min}` need not show on the diagonal of :math:`R` (a QR
    without pivoting does not reveal rank), so the test tracks
    :math:`\|R_k^{-1}\|_F \ge 1/\sigma_{\min}(R_k)` incrementally (one product
    per column) and computes :math:`\sigma_{\min}` exactly only when that bound
    cannot rule singularity out.

    Parameters
    ----------
    batch_size : int
        ``B``.
    max_columns : int
        ``m``, the largest number of Hessenberg columns (the restart length).
    eps : float
        Machine epsilon of the dtype the Hessenberg entries were computed in;
        sets the rank threshold above.
    dtype : numpy dtype
        ``float64`` for real problems, ``complex128`` for complex ones (the
        rotations are then complex: :math:`Q` is unitary).

    Attributes
    ----------
    residual : numpy.ndarray, shape (B,)
        The current least-squares residual :math:`|\beta q_1(k+1)|` per sample
        (:math:`k` = :attr:`rank`).
    singular : numpy.ndarray of bool, shape (B,)
        Whether a sample's Hessenberg matrix became numerically singular (a
        GMRES breakdown); such a sample ignores later columns.
    rank : numpy.ndarray of int, shape (B,)
        Columns of the well-conditioned leading part :math:`R_k` per sample:
        the step whose iterate :meth:`solve` returns.
    used : numpy.ndarray of bool, shape (B, m)
        Which columns each sample took into its factorization.
    """

    def __init__(
        self,
        batch_size: int,
        max_columns: int,
        eps: float = float(np.finfo(np.float64).eps),
        dtype: Any = np.float64,
    ) -> None:
        self.batch_size = batch_size
        self.max_columns = max_columns
        self.eps = float(eps)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float64, np.complex128):
            raise TypeError(f"GivensQR works in float64 or complex128; got {self.dtype}.")
        m = max_columns
        self.Q = np.zeros((batch_size, m + 1, m + 1), dtype=self.dtype)
        self.R = np.zeros((batch_size, m, m), dtype=self.dtype)
        # R^{-1}, column by column: its Frobenius norm bounds 1/sigma_min(R) from above.
        self.R_inv = np.zeros((batch_size, m, m), dtype=self.dtype)
        self.cosines = np.zeros((batch_size, m))
        self.sines = np.zeros((batch_size, m), dtype=self.dtype)
        self.used = np.zeros((batch_size, m), dtype=bool)
        self.beta = np.zeros(batch_size, dtype=self.dtype)
        self.residual = np.zeros(batch_size)
        self.singular = np.zeros(batch_size, dtype=bool)
        self.rank = np.zeros(batch_size, dtype=np.int64)
        self.scale = np.zeros(batch_size)
        self.inv_norm2 = np.zeros(batch_size)
        self.sat_out = np.zeros(batch_size, dtype=bool)
        self.columns = 0

    def reset(self, beta: np.ndarray) -> None:
        r"""Start a new factorization with right-hand side :math:`\beta e_1`.

        Parameters
        ----------
        beta : numpy.ndarray, shape (B,)
            :math:`\beta = \|r_0\|` per sample (0 for samples that sit out).
        """
        self.Q[...] = np.eye(self.max_columns + 1)
        self.R[...] = 0.0
        self.R_inv[...] = 0.0
        self.cosines[...] = 0.0
        self.sines[...] = 0.0
        self.used[...] = False
        self.beta = np.asarray(beta, dtype=self.dtype).copy()
        self.residual = np.abs(self.beta)
        self.singular[...] = False
        self.rank[...] = 0
        self.scale[...] = 0.0
        self.inv_norm2[...] = 0.0
        self.sat_out[...] = False
        self.columns = 0

    def add_column(
        self,
        h: np.ndarray,
        active: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        r"""Append Hessenberg column :math:`j` and return the new residual estimate.

        Parameters
        ----------
        h : numpy.ndarray, shape (B, j+2)
            :math:`(h_{1,j}, \dots, h_{j+1,j})` (zero-based: column ``j`` of
            :math:`\bar H`, entries ``0..j+1``).
        active : numpy.ndarray of bool, shape (B,), optional
            The samples that took this step (all by default).  The others sit
            it out: their entries of ``h`` are ignored, their factorization and
            residual estimate stay as they were, and they may not take a later
            column before :meth:`reset` (a sample's columns are a prefix).  An
            all-zero column of an *active* sample is :math:`Av_j = 0`: a
            singular Hessenberg matrix.
        scale : numpy.ndarray, shape (B,), optional
            An estimate :math:`\hat\alpha \le \|A\|` per sample from outside this
            factorization (GMRES passes its running :math:`\max\|Av_i\|` over
            all restart cycles); the rank threshold uses the larger of it and
            the largest column norm seen since :meth:`reset`.  Without it, a
            cycle whose every column is rounding noise would be judged against
            its own noise and look well conditioned.

        Returns
        -------
        numpy.ndarray, shape (B,)
            :math:`|\beta\, q_1(k+1)|`, the least-squares residual norm after
            this column, i.e. the GMRES residual estimate :math:`\|\tilde r_k\|`
            (frozen at the last well-conditioned step for singular samples).

        Raises
        ------
        RuntimeError
            When ``max_columns`` columns were added since the last reset.
        ValueError
            When a sample that sat out a column is active again.
        """
        j = self.columns
        if j >= self.max_columns:
            raise RuntimeError("GivensQR is full; reset it (restart) first.")
        B = self.batch_size
        if active is not None:
            active = np.asarray(active, dtype=bool)
            if active.shape != (B,):
                raise ValueError(f"active must have shape ({B},); got {active.shape}.")
        if B == 1 and (active is None or active[0]) and not (self.singular[0] or self.sat_out[0]):
            return self._add_column_one(h[0], None if scale is None else float(scale[0]))
        # active=None means every sample takes the column, a sat-out one included.
        again = self.sat_out if active is None else active & self.sat_out
        if again.any():
            raise ValueError(
                "a sample that sat out a column cannot take a later one (its columns are "
                "a prefix); reset the factorization first."
            )
        if active is None:
            active = np.ones(B, dtype=bool)
        else:
            self.sat_out |= ~active
        # With B = 1 the fast path above took every column that passes this check and that
        # the sample takes (active, not singular): a single sample gets here only to sit out.
        taking = active & ~self.singular
        every = bool(taking.all())
        if not every:
            h = np.where(taking[:, None], h, 0.0)
        self.used[:, j] = taking
        np.maximum(self.scale, _row_norms(h), out=self.scale)
        # Rotate the new column by G_1 ... G_{j-1} at once: rotated = Q_j h.
        Q = self.Q
        rotated = np.matmul(Q[:, : j + 2, : j + 2], h[:, :, None])[:, :, 0]
        c, s, r = givens_rotation(np, rotated[:, j], rotated[:, j + 1])
        self.cosines[:, j] = c
        self.sines[:, j] = s
        # Column j of R: the rotated entries above the diagonal, then r.
        rotated[:, j] = r
        self.R[:, : j + 1, j] = rotated[:, : j + 1]
        # Q_{j+1} = G_j Q_j: only rows j and j+1 change.
        rows = Q[:, j : j + 2, : j + 2]
        row_j = rows[:, 0, :].copy()
        rows[:, 0, :] *= c[:, None]
        rows[:, 0, :] += s[:, None] * rows[:, 1, :]
        rows[:, 1, :] *= c[:, None]
        rows[:, 1, :] -= (np.conj(s) if self.dtype.kind == "c" else s)[:, None] * row_j
        self.columns = j + 1
        newly_singular = self._rank_test(j, r, taking, scale)
        grew = taking & ~newly_singular
        self.rank[grew] = j + 1
        estimate = np.abs(self.beta * Q[:, j + 1, 0])
        if every and not newly_singular.any():
            self.residual = estimate
        else:
            self.residual = np.where(grew, estimate, self.residual)
        return self.residual.copy()

    def _add_column_one(self, h: np.ndarray, scale: float | None) -> np.ndarray:
        """Run :meth:`add_column` for one sample that takes the column.

        The same arithmetic on scalars and 1-D views, without the masks: GMRES on
        one system spent most of its host time in the batched update otherwise.
        """
        j = self.columns
        Q, R, R_inv = self.Q[0], self.R[0], self.R_inv[0]
        self.used[0, j] = True
        column_norm = math.sqrt(np.vdot(h, h).real)
        if not 1e-140 < column_norm < 1e140:
            # The sum of squares may have overflowed (entries above about 1e154) or lost
            # digits to underflow (below about 1e-154): the scaled norm is exact there.
            column_norm = float(_row_norms(h[None, :])[0])
        alpha = max(float(self.scale[0]), column_norm)
        self.scale[0] = alpha
        rotated = Q[: j + 2, : j + 2] @ h
        a, b = rotated[j].item(), rotated[j + 1].item()
        c, s, r = _rotation(a, b)
        self.cosines[0, j] = c
        self.sines[0, j] = s
        R[:j, j] = rotated[:j]
        R[j, j] = r
        # Q_{j+1} = G_j Q_j on rows j and j+1, where row j+1 of Q_j is still e_{j+1}:
        # the batched update's values, with the products by 0 and 1 left out.
        Q[j + 1, : j + 1] = Q[j, : j + 1] * -s.conjugate()
        Q[j + 1, j + 1] = c
        Q[j, : j + 1] *= c
        Q[j, j + 1] = s
        self.columns = j + 1
        # The rank test of _rank_test, on scalars.
        threshold = (j + 2) * self.eps * (alpha if scale is None else max(alpha, scale))
        singular = r == 0
        if not singular:
            # For |r| below ~1e-154 (or subnormal) the entries of R^{-1} and their squares
            # overflow; in numpy float64 they become inf/NaN quietly (Python floats would
            # raise OverflowError) and the non-finite norm sends the sample to the SVD.
            with np.errstate(over="ignore", invalid="ignore"):
                inv_r = 1.0 / r
                upper = R_inv[:j, :j] @ R[:j, j]
                upper *= -inv_r
                R_inv[:j, j] = upper
                R_inv[j, j] = inv_r
                inv_norm2 = (
                    self.inv_norm2[0] + np.vdot(upper, upper).real + np.float64(abs(inv_r)) ** 2
                )
            self.inv_norm2[0] = inv_norm2
            suspect = not math.isfinite(inv_norm2) or not _below_one(inv_norm2, threshold)
            if suspect:
                sigma_min = np.linalg.svd(R[: j + 1, : j + 1], compute_uv=False)[-1]
                singular = sigma_min <= threshold
        if singular:
            self.singular[0] = True
        else:
            self.rank[0] = j + 1
            self.residual = np.array([abs(self.beta[0].item() * Q[j + 1, 0].item())])
        return self.residual.copy()

    def _rank_test(
        self, j: int, r: np.ndarray, taking: np.ndarray, scale: np.ndarray | None
    ) -> np.ndarray:
        r"""Extend :math:`R^{-1}` by column ``j``; flag samples with a singular :math:`R_{j+1}`."""
        # Column j of R^{-1} for upper-triangular R: (-R_j^{-1} R[:j, j] / r, 1 / r).
        nonzero = taking & (r != 0)
        with np.errstate(over="ignore", invalid="ignore"):
            inv_r = 1.0 / np.where(nonzero, r, 1.0)
            upper = -np.matmul(self.R_inv[:, :j, :j], self.R[:, :j, j, None])[:, :, 0]
            upper *= inv_r[:, None]
            column_sq = np.sum(np.abs(upper) ** 2, axis=1) + np.abs(inv_r) ** 2
        self.R_inv[:, :j, j] = np.where(nonzero[:, None], upper, 0.0)
        self.R_inv[:, j, j] = np.where(nonzero, inv_r, 0.0)
        self.inv_norm2 += np.where(nonzero, column_sq, 0.0)
        alpha = self.scale if scale is None else np.maximum(self.scale, scale)
        # numpy's matrix_rank rule for the (j+2) x (j+1) matrix H_bar: rounding in the
        # Hessenberg entries is O(eps ||A||), so a smaller singular value is noise.
        threshold = (j + 2) * self.eps * alpha
        # ||R^{-1}||_F >= 1/sigma_min: sigma_min <= threshold needs ||R^{-1}||_F >= 1/threshold.
        with np.errstate(over="ignore", invalid="ignore"):
            suspect = taking & (
                (r == 0) | ~np.isfinite(self.inv_norm2) | ~(self.inv_norm2 * threshold**2 < 1.0)
            )
        newly = np.zeros(self.batch_size, dtype=bool)
        for b in np.flatnonzero(suspect):
            sigma_min = np.linalg.svd(self.R[b, : j + 1, : j + 1], compute_uv=False)[-1]
            newly[b] = sigma_min <= threshold[b]
        self.singular |= newly
        return newly

    def solve(self) -> np.ndarray:
        r"""Solve :math:`R_k \gamma = \beta\, q_1(1{:}k)` per sample, :math:`k` = :attr:`rank`.

        Returns
        -------
        numpy.ndarray, shape (B, m)
            :math:`\gamma`, zero past each sample's :attr:`rank`: the GMRES
            iterate of its last well-conditioned step.  For a singular sample
            this is a least-squares minimiser whenever the column that made
            :math:`\bar H` singular brought no reduction (the case for
            range-symmetric :math:`A`, Brown & Walker 1997), and otherwise the
            best iterate that is not dominated by rounding.
        """
        j = self.columns
        gamma = np.zeros((self.batch_size, self.max_columns), dtype=self.dtype)
        if j == 0:
            return gamma
        rhs = self.beta[:, None] * self.Q[:, :j, 0]
        rank = self.rank
        for k in range(j - 1, -1, -1):
            in_prefix = k < rank
            acc = rhs[:, k] - np.einsum("bi,bi->b", self.R[:, k, k + 1 : j], gamma[:, k + 1 : j])
            diag = self.R[:, k, k]
            gamma[:, k] = np.where(in_prefix, acc / np.where(in_prefix, diag, 1.0), 0.0)
        return gamma
