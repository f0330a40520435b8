r"""Recursive (incremental) Givens QR of an upper Hessenberg matrix.

GMRES minimises :math:`\|\beta e_1 - \bar H_j \gamma\|_2` over
:math:`\gamma \in \mathbb{R}^j`, where :math:`\bar H_j` is the
:math:`(j+1)\times j` Hessenberg matrix of the Arnoldi relation
:math:`A V_j = V_{j+1} \bar H_j` (seed 004, eqs. 9–11, where it is called
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
operation a whole-batch array operation.  :math:`Q_j` is a product of exactly
orthogonal plane rotations, so this is as stable as applying them one by one.
"""

from __future__ import annotations

from typing import Any

from ._backend import device

__all__ = ["GivensQR", "givens_rotation"]

Array = Any


def givens_rotation(xp: Any, a: Array, b: Array) -> tuple[Array, Array, Array]:
    r"""Plane rotations that zero ``b`` against ``a``, elementwise over a batch.

    Returns ``c, s, r`` with

    .. math:: \begin{pmatrix} c & s\\ -s & c\end{pmatrix}
              \begin{pmatrix} a\\ b\end{pmatrix} = \begin{pmatrix} r\\ 0\end{pmatrix},
              \qquad c^2 + s^2 = 1,\quad r = \pm\sqrt{a^2 + b^2}.

    Parameters
    ----------
    xp : namespace
        Array-API namespace.
    a, b : array, shape (B,)
        The entries to combine (diagonal and subdiagonal).

    Returns
    -------
    c, s, r : array, shape (B,)
        Where ``a == b == 0`` the rotation is the identity (``c = 1, s = 0``),
        never a division by zero.

    Notes
    -----
    ``hypot`` avoids the overflow and underflow of :math:`\sqrt{a^2+b^2}`.  The
    sign of ``r`` follows ``a`` (``r`` has the sign of ``a`` when ``a != 0``), as in
    LAPACK's ``lartg``, so that ``c >= 0``.
    """
    r = xp.hypot(a, b)
    zero = r == 0
    safe_r = xp.where(zero, xp.ones_like(r), r)
    sign = xp.where(a < 0, -xp.ones_like(a), xp.ones_like(a))
    r = sign * r
    safe_r = sign * safe_r
    c = xp.where(zero, xp.ones_like(a), a / safe_r)
    s = xp.where(zero, xp.zeros_like(b), b / safe_r)
    return c, s, r


class GivensQR:
    r"""Incremental QR factorization of a batch of Hessenberg matrices.

    Holds, for ``B`` independent least-squares problems
    :math:`\min_\gamma \|\beta e_1 - \bar H_j\gamma\|`, the accumulated rotation
    :math:`Q_{j+1}` (``(B, m+1, m+1)``), the triangular factor :math:`R`
    (``(B, m, m)``) and the rotations :math:`(c_i, s_i)`.

    Parameters
    ----------
    xp : namespace
        Array-API namespace.
    batch_size : int
        ``B``.
    max_columns : int
        ``m``, the largest number of Hessenberg columns (the restart length).
    dtype, device
        Of the arrays to allocate.
    """

    def __init__(self, xp: Any, batch_size: int, max_columns: int, dtype: Any,
                 device_: Any = None) -> None:
        self.xp = xp
        self.batch_size = batch_size
        self.max_columns = max_columns
        self.dtype = dtype
        self.device = device_
        m = max_columns
        self.Q = xp.zeros((batch_size, m + 1, m + 1), dtype=dtype, device=device_)
        self.R = xp.zeros((batch_size, m, m), dtype=dtype, device=device_)
        self.cosines = xp.zeros((batch_size, m), dtype=dtype, device=device_)
        self.sines = xp.zeros((batch_size, m), dtype=dtype, device=device_)
        self.beta = xp.zeros((batch_size,), dtype=dtype, device=device_)
        self.columns = 0

    def reset(self, beta: Array) -> None:
        r"""Start a new factorization with right-hand side :math:`\beta e_1`.

        Parameters
        ----------
        beta : array, shape (B,)
            :math:`\beta = \|r_0\|` per sample (0 for samples that sit out).
        """
        xp = self.xp
        m = self.max_columns
        eye = xp.eye(m + 1, dtype=self.dtype, device=self.device)
        self.Q = xp.broadcast_to(eye, (self.batch_size, m + 1, m + 1))
        self.Q = xp.asarray(self.Q, copy=True)
        self.R = xp.zeros_like(self.R)
        self.cosines = xp.zeros_like(self.cosines)
        self.sines = xp.zeros_like(self.sines)
        self.beta = beta
        self.columns = 0

    def add_column(self, h: Array) -> Array:
        r"""Append Hessenberg column :math:`j` and return the new residual estimate.

        Parameters
        ----------
        h : array, shape (B, j+2)
            :math:`(h_{1,j}, \dots, h_{j+1,j})` (zero-based: column ``j`` of
            :math:`\bar H`, entries ``0..j+1``).  A sample that sits out this
            step passes an all-zero column: its rotation is the identity and its
            :math:`R_{jj}` is zero, which :meth:`solve` treats as "no step".

        Returns
        -------
        array, shape (B,)
            :math:`|\beta\, q_1(j+1)|`, the least-squares residual norm after
            this column, i.e. the GMRES residual estimate :math:`\|\tilde r_j\|`.
        """
        xp = self.xp
        j = self.columns
        if j >= self.max_columns:
            raise RuntimeError("GivensQR is full; reset it (restart) first.")
        # Rotate the new column by G_1 ... G_{j-1} at once: rotated = Q_j h.
        Qj = self.Q[:, : j + 2, : j + 2]
        rotated = (Qj @ h[:, :, None])[:, :, 0]
        c, s, r = givens_rotation(xp, rotated[:, j], rotated[:, j + 1])
        self.cosines[:, j] = c
        self.sines[:, j] = s
        # Column j of R: the rotated entries above the diagonal, then r.
        self.R[:, :j, j] = rotated[:, :j]
        self.R[:, j, j] = r
        # Q_{j+1} = G_j Q_j: only rows j and j+1 change.
        row_j = self.Q[:, j, : j + 2]
        row_j1 = self.Q[:, j + 1, : j + 2]
        new_j = c[:, None] * row_j + s[:, None] * row_j1
        new_j1 = -s[:, None] * row_j + c[:, None] * row_j1
        self.Q[:, j, : j + 2] = new_j
        self.Q[:, j + 1, : j + 2] = new_j1
        self.columns = j + 1
        return xp.abs(self.beta * new_j1[:, 0])

    def solve(self) -> Array:
        r"""Solve :math:`R_j \gamma = \beta\, q_1(1{:}j)` for every sample.

        Returns
        -------
        array, shape (B, m)
            :math:`\gamma`, zero-padded past each sample's own column count.

        Notes
        -----
        A zero diagonal entry :math:`R_{kk} = 0` (a sample that sat out column
        ``k``, or an exactly singular Hessenberg matrix after a breakdown on a
        singular system) gets :math:`\gamma_k = 0`: the minimum-residual problem
        has no unique solution there and this picks one of its minimisers,
        instead of dividing by zero.
        """
        xp = self.xp
        j = self.columns
        if j == 0:
            return xp.zeros((self.batch_size, self.max_columns), dtype=self.dtype,
                            device=self.device)
        R = self.R[:, :j, :j]
        rhs = self.beta[:, None] * self.Q[:, :j, 0]
        diag = xp.linalg.diagonal(R)
        singular = diag == 0
        eye = xp.eye(j, dtype=self.dtype, device=self.device)
        # Unit diagonal and zero right-hand side where R_kk = 0 give gamma_k = 0.
        R = R + eye * xp.astype(singular, self.dtype)[:, None, :]
        rhs = xp.where(singular, xp.zeros_like(rhs), rhs)
        gamma = _solve_upper(xp, R, rhs)
        out = xp.zeros((self.batch_size, self.max_columns), dtype=self.dtype,
                       device=device(gamma))
        out[:, :j] = gamma
        return out


def _solve_upper(xp: Any, R: Array, rhs: Array) -> Array:
    """Back substitution on a batch of upper-triangular systems ``R y = rhs``."""
    j = R.shape[-1]
    y = xp.zeros_like(rhs)
    for k in range(j - 1, -1, -1):
        acc = rhs[:, k]
        if k + 1 < j:
            acc = acc - xp.sum(R[:, k, k + 1:] * y[:, k + 1:], axis=-1)
        y[:, k] = acc / R[:, k, k]
    return y
