"""Hypothesis strategies for synthetic quadratics f(x) = 1/2 x^T A x + b^T x.

Every strategy draws only small integers (a family name, a size, a seed) and
builds the matrix with numpy's ``default_rng(seed)``: generation is fast,
shrinking is cheap, and a failing example is reproducible from its seed alone
(``build_quadratic(family, n, seed, dtype)``).

The linear system the solver tests use is ``A x = b`` (for a Newton step
``A x = -b``: the sign does not matter for a linear solver).  For the
symmetric families ``A x + b`` is the gradient of ``f``; for the nonsymmetric
ones it is a "gradient-like" affine map whose Jacobian is ``A``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

__all__ = [
    "ALL_FAMILIES",
    "NONSINGULAR",
    "SYMMETRIC",
    "Quadratic",
    "build_quadratic",
    "quadratic_batches",
    "quadratics",
    "seeds",
]

#: Families with an invertible, reasonably conditioned A (cond <= ~1e3).
NONSINGULAR = (
    "spd",
    "indefinite",
    "nonsymmetric",
    "nonnormal",
    "clustered",
    "k_distinct",
)
#: Families whose A is symmetric.
SYMMETRIC = ("spd", "indefinite", "clustered", "k_distinct", "singular_consistent")
ALL_FAMILIES = (*NONSINGULAR, "singular_consistent")

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@dataclass(frozen=True)
class Quadratic:
    """A synthetic quadratic and everything a test may want to know about it.

    Attributes
    ----------
    A, b : numpy.ndarray
        Operator and right-hand side, in ``dtype``.
    family : str
        One of :data:`ALL_FAMILIES`.
    seed : int
        The ``default_rng`` seed it was built from.
    rank : int
        Rank of ``A`` (``n`` for the nonsingular families).
    distinct : int or None
        Number of distinct eigenvalues (``k_distinct`` only).
    eigenvalues : numpy.ndarray or None
        The exact eigenvalues used to build a symmetric ``A`` (float64).
    cond : float
        2-norm condition number of ``A`` (restricted to its range for the
        singular family), computed in float64.
    """

    A: np.ndarray
    b: np.ndarray
    family: str
    seed: int
    rank: int
    distinct: int | None
    eigenvalues: np.ndarray | None
    cond: float

    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.A.dtype

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """``A x + b`` (rows of a batch ``(k, n)`` independently)."""
        return x @ self.A.T + self.b

    def solution(self) -> np.ndarray:
        """``A^{-1} b`` in float64 (min-norm least squares for the singular family)."""
        A = self.A.astype(np.float64)
        b = self.b.astype(np.float64)
        if self.rank < self.n:
            return np.linalg.lstsq(A, b, rcond=None)[0]
        return np.linalg.solve(A, b)


def _orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _symmetric(q: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    a = (q * eigenvalues) @ q.T
    return (a + a.T) / 2


def build_quadratic(family: str, n: int, seed: int, dtype=np.float64) -> Quadratic:
    """Build one member of ``family`` of size ``n`` from ``seed``."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(n)
    rank, distinct, eig = n, None, None
    if family == "spd":
        cond = 10.0 ** rng.uniform(0.0, 3.0)
        eig = np.geomspace(1.0, cond, n) if n > 1 else np.ones(1)
        eig = rng.permutation(eig)
        A = _symmetric(_orthogonal(rng, n), eig)
    elif family == "indefinite":
        magnitudes = 10.0 ** rng.uniform(0.0, 2.0, n)
        signs = rng.choice([-1.0, 1.0], n)
        if n > 1:  # make sure both signs occur
            signs[0], signs[1] = 1.0, -1.0
        eig = magnitudes * signs
        A = _symmetric(_orthogonal(rng, n), eig)
    elif family == "nonsymmetric":
        # Shifted Ginibre: spectrum in a disk of radius ~1 around the shift and a
        # positive definite symmetric part, so restarted GMRES always progresses.
        shift = rng.uniform(2.5, 4.0)
        A = shift * np.eye(n) + rng.standard_normal((n, n)) / np.sqrt(n)
    elif family == "nonnormal":
        # Jordan-like: upper triangular, diagonal in [2, 3], unit superdiagonal plus a
        # little random upper part; ||D^-1 N|| <= ~0.6 keeps it well conditioned,
        # while an orthogonal similarity hides the structure.
        d = rng.uniform(2.0, 3.0, n)
        T = np.diag(d) + np.diag(np.ones(n - 1), 1)
        T += np.triu(rng.standard_normal((n, n)), 2) * (0.2 / np.sqrt(n))
        q = _orthogonal(rng, n)
        A = q @ T @ q.T
    elif family == "clustered":
        # Most eigenvalues in a tight cluster around 1, a few outliers.
        outliers = min(n, int(rng.integers(0, 4)))
        eig = 1.0 + 1e-3 * rng.uniform(-1.0, 1.0, n)
        eig[:outliers] = rng.uniform(5.0, 20.0, outliers) * rng.choice([-1.0, 1.0], outliers)
        A = _symmetric(_orthogonal(rng, n), eig)
    elif family == "k_distinct":
        distinct = int(rng.integers(1, min(n, 6) + 1))
        grid = np.concatenate([-np.arange(5.0, 0.0, -0.5), np.arange(0.5, 5.5, 0.5)])
        values = rng.choice(grid, distinct, replace=False)
        eig = np.concatenate([values, rng.choice(values, n - distinct)])
        A = _symmetric(_orthogonal(rng, n), eig)
    elif family == "singular_consistent":
        # Like an input Hessian J^T S J of a K-class classifier: PSD, rank <= 9,
        # and the right-hand side J^T c in its range.
        rank = int(rng.integers(1, min(n - 1, 9) + 1)) if n > 1 else 1
        J = rng.standard_normal((rank, n))
        S = rng.uniform(0.1, 1.0, rank)
        A = J.T @ (S[:, None] * J)
        A = (A + A.T) / 2
        b = J.T @ rng.standard_normal(rank)
    else:
        raise ValueError(f"unknown family {family!r}")
    sv = np.linalg.svd(A, compute_uv=False)
    cond = float(sv[0] / sv[rank - 1])
    return Quadratic(
        A=np.ascontiguousarray(A, dtype=dtype),
        b=np.ascontiguousarray(b, dtype=dtype),
        family=family,
        seed=seed,
        rank=rank,
        distinct=distinct,
        eigenvalues=None if eig is None else np.asarray(eig, dtype=np.float64),
        cond=cond,
    )


@st.composite
def quadratics(
    draw,
    families=NONSINGULAR,
    dtypes=(np.float64,),
    min_n: int = 2,
    max_n: int = 30,
) -> Quadratic:
    """One :class:`Quadratic` from ``families`` in one of ``dtypes``."""
    family = draw(st.sampled_from(families))
    dtype = draw(st.sampled_from(dtypes))
    n = draw(st.integers(min_n, max_n))
    return build_quadratic(family, n, draw(seeds), dtype)


@st.composite
def quadratic_batches(
    draw,
    families=NONSINGULAR,
    dtypes=(np.float64,),
    min_n: int = 2,
    max_n: int = 20,
    min_batch: int = 2,
    max_batch: int = 5,
) -> list[Quadratic]:
    """A list of quadratics of one size and dtype (families may differ)."""
    dtype = draw(st.sampled_from(dtypes))
    n = draw(st.integers(min_n, max_n))
    B = draw(st.integers(min_batch, max_batch))
    return [
        build_quadratic(draw(st.sampled_from(families)), n, draw(seeds), dtype) for _ in range(B)
    ]
