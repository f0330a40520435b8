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
operation a whole-batch array operation.  The small factorization lives on the
host in float64 (see :class:`GivensQR`).  :math:`Q_j` is a product of exactly
orthogonal plane rotations, so this is as stable as applying them one by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    r = xp.where(a < 0, -r, r)
    zero = r == 0
    safe_r = xp.where(zero, xp.ones_like(r), r)
    c = xp.where(zero, xp.ones_like(a), a / safe_r)
    s = xp.where(zero, xp.zeros_like(b), b / safe_r)
    return c, s, r


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

    Parameters
    ----------
    batch_size : int
        ``B``.
    max_columns : int
        ``m``, the largest number of Hessenberg columns (the restart length).
    """

    def __init__(self, batch_size: int, max_columns: int) -> None:
        self.batch_size = batch_size
        self.max_columns = max_columns
        m = max_columns
        self.Q = np.zeros((batch_size, m + 1, m + 1))
        self.R = np.zeros((batch_size, m, m))
        self.cosines = np.zeros((batch_size, m))
        self.sines = np.zeros((batch_size, m))
        self.beta = np.zeros(batch_size)
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
        self.cosines[...] = 0.0
        self.sines[...] = 0.0
        self.beta = np.asarray(beta, dtype=np.float64).copy()
        self.columns = 0

    def add_column(self, h: np.ndarray) -> np.ndarray:
        r"""Append Hessenberg column :math:`j` and return the new residual estimate.

        Parameters
        ----------
        h : numpy.ndarray, shape (B, j+2)
            :math:`(h_{1,j}, \dots, h_{j+1,j})` (zero-based: column ``j`` of
            :math:`\bar H`, entries ``0..j+1``).  A sample that sits out this
            step passes an all-zero column: its rotation is the identity and its
            :math:`R_{jj}` is zero, which :meth:`solve` treats as "no step".

        Returns
        -------
        numpy.ndarray, shape (B,)
            :math:`|\beta\, q_1(j+1)|`, the least-squares residual norm after
            this column, i.e. the GMRES residual estimate :math:`\|\tilde r_j\|`.
        """
        j = self.columns
        if j >= self.max_columns:
            raise RuntimeError("GivensQR is full; reset it (restart) first.")
        # Rotate the new column by G_1 ... G_{j-1} at once: rotated = Q_j h.
        Q = self.Q
        rotated = np.matmul(Q[:, : j + 2, : j + 2], h[:, :, None])[:, :, 0]
        a = rotated[:, j]
        b = rotated[:, j + 1]
        # Inlined givens_rotation (this runs once per GMRES step on the host).
        r = np.copysign(np.hypot(a, b), a)
        zero = r == 0
        inv_r = np.divide(1.0, r, out=np.zeros_like(r), where=~zero)
        c = a * inv_r + zero  # the identity rotation where a = b = 0
        s = b * inv_r
        self.cosines[:, j] = c
        self.sines[:, j] = s
        # Column j of R: the rotated entries above the diagonal, then r.
        self.R[:, :j, j] = rotated[:, :j]
        self.R[:, j, j] = r
        # Q_{j+1} = G_j Q_j: only rows j and j+1 change.
        rows = Q[:, j : j + 2, : j + 2]
        row_j = rows[:, 0, :].copy()
        rows[:, 0, :] *= c[:, None]
        rows[:, 0, :] += s[:, None] * rows[:, 1, :]
        rows[:, 1, :] *= c[:, None]
        rows[:, 1, :] -= s[:, None] * row_j
        self.columns = j + 1
        return np.abs(self.beta * Q[:, j + 1, 0])

    def solve(self) -> np.ndarray:
        r"""Solve :math:`R_j \gamma = \beta\, q_1(1{:}j)` for every sample.

        Returns
        -------
        numpy.ndarray, shape (B, m)
            :math:`\gamma`, zero-padded past each sample's own column count.

        Notes
        -----
        A zero diagonal entry :math:`R_{kk} = 0` (a sample that sat out column
        ``k``, or an exactly singular Hessenberg matrix after a breakdown on a
        singular system) gets :math:`\gamma_k = 0`: the minimum-residual problem
        has no unique solution there and this picks one of its minimisers,
        instead of dividing by zero.
        """
        j = self.columns
        gamma = np.zeros((self.batch_size, self.max_columns))
        rhs = self.beta[:, None] * self.Q[:, :j, 0]
        for k in range(j - 1, -1, -1):
            acc = rhs[:, k] - np.einsum("bi,bi->b", self.R[:, k, k + 1 : j],
                                        gamma[:, k + 1 : j])
            diag = self.R[:, k, k]
            nonzero = diag != 0
            gamma[:, k] = np.where(nonzero, acc / np.where(nonzero, diag, 1.0), 0.0)
        return gamma
