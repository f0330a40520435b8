r"""Test problems by family: linear systems and quadratics with known structure.

Every problem is built from a few small integers (family, size, seed) and, for
the ill-conditioned families, a target condition number, with numpy's
``default_rng(seed)``: a failing example is reproducible from
``build_system(family, n, seed, dtype, cond=...)`` alone.  This module needs
only numpy; the hypothesis strategies over it are in
:mod:`krylovadv.testing.strategies`.

The easy families (:data:`EASY`) have :math:`\kappa_2(A) \lesssim 10^3`.  The
hard ones (:data:`HARD`) are what a solver meets in practice and a test suite
of random matrices almost never draws:

``ill_conditioned``
    :math:`U \operatorname{diag}(\sigma) V^{*}` with singular values spread
    geometrically over :math:`[1/\kappa, 1]`, :math:`\kappa` up to
    :data:`MAX_COND` of the dtype (:math:`10^{12}` in double,
    :math:`10^{5}` in single precision).
``ill_conditioned_spd``
    The symmetric (Hermitian) positive definite counterpart.
``nearly_singular``
    Singular values in :math:`[1, 2]` except one isolated :math:`1/\kappa`.
``badly_scaled``
    A well-conditioned matrix with rows, columns or both scaled by factors
    spread over :math:`10^{\pm 6}` (double) or :math:`10^{\pm 2}` (single).
``jordan``
    Defective: Jordan blocks of a few shared eigenvalues hidden by a unitary
    similarity; the degree of the minimal polynomial (``krylov_degree``) bounds
    the number of full-GMRES steps.
``convection``
    Central-difference convection–diffusion ``tridiag(-1-γ, 2, -1+γ)`` with cell
    Péclet number :math:`\gamma` up to 30: highly non-normal, complex spectrum.
``grcar``
    The Grcar matrix (1 on the diagonal and ``k`` superdiagonals, -1 below):
    well conditioned, extremely non-normal.
``singular_inconsistent``
    Range-symmetric singular :math:`A` (:math:`N(A) = N(A^{*})`, spanned by
    coordinate vectors so that it stays exact in floating point) and a
    right-hand side with a component outside the range: no :math:`x` solves it,
    and ``min_residual`` is the least residual any solver can reach.

Each family also comes in complex (``complex64``/``complex128``) form.

Examples
--------
>>> import numpy as np
>>> from krylovadv.testing import build_system
>>> p = build_system("ill_conditioned", 8, seed=1, cond=1e10)
>>> bool(np.isclose(p.cond, 1e10, rtol=1e-6))
True
>>> q = build_system("singular_inconsistent", 6, seed=2)
>>> q.consistent, q.rank < q.n, q.min_residual > 0
(False, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALL_FAMILIES",
    "COMPLEX_DTYPES",
    "EASY",
    "HARD",
    "HERMITIAN",
    "MAX_COND",
    "NONSINGULAR",
    "REAL_DTYPES",
    "SYMMETRIC",
    "LinearSystem",
    "Quadratic",
    "build_quadratic",
    "build_system",
    "max_cond",
]

#: Families with an invertible, reasonably conditioned A (cond <= ~1e3).
NONSINGULAR = ("spd", "indefinite", "nonsymmetric", "nonnormal", "clustered", "k_distinct")
#: The easy families: :data:`NONSINGULAR` and consistent low-rank PSD systems.
EASY = (*NONSINGULAR, "singular_consistent")
#: Families whose A is symmetric (Hermitian for complex dtypes).
SYMMETRIC = ("spd", "indefinite", "clustered", "k_distinct", "singular_consistent")
#: The hard families described in the module docstring.
HARD = (
    "ill_conditioned",
    "ill_conditioned_spd",
    "nearly_singular",
    "badly_scaled",
    "jordan",
    "convection",
    "grcar",
    "singular_inconsistent",
)
#: Hermitian families, easy or hard.
HERMITIAN = (*SYMMETRIC, "ill_conditioned_spd")
#: Kept for the suite's older imports: the easy families.
ALL_FAMILIES = EASY
REAL_DTYPES = (np.float64, np.float32)
COMPLEX_DTYPES = (np.complex128, np.complex64)

#: Largest condition number drawn per precision.  A residual-based solver can
#: still meet rtol = 1e-5 when :math:`\kappa\,\varepsilon \ll 1` is not needed
#: (GMRES is backward stable), but the forward error then reaches
#: :math:`\kappa\,\varepsilon`: 1e12 leaves 1e-4 of it in double, 1e5 leaves 1e-2
#: in single precision — the hardest problems on which an answer still means
#: something.
MAX_COND = {"double": 1e12, "single": 1e5}
#: log10 of the scale factors of ``badly_scaled``, per precision (see MAX_COND).
_SCALE_DECADES = {"double": 6.0, "single": 2.0}


def _precision(dtype) -> str:
    return "single" if np.finfo(np.dtype(dtype)).eps > 1e-10 else "double"


def max_cond(dtype) -> float:
    """Largest condition number the families draw for ``dtype`` (:data:`MAX_COND`)."""
    return MAX_COND[_precision(dtype)]


@dataclass(frozen=True)
class LinearSystem:
    r"""A linear system :math:`Ax = b` (equivalently a quadratic) and what is known about it.

    Attributes
    ----------
    A, b : numpy.ndarray
        Operator ``(n, n)`` and right-hand side ``(n,)``, in ``dtype``.
    family : str
        The family it was drawn from.
    seed : int
        The ``default_rng`` seed it was built from.
    rank : int
        Rank of ``A`` (``n`` for the nonsingular families).
    distinct : int or None
        Number of distinct eigenvalues (``k_distinct`` only).
    eigenvalues : numpy.ndarray or None
        The exact eigenvalues used to build ``A`` when known (float64/complex128,
        with multiplicity).
    cond : float
        2-norm condition number (restricted to the range for singular ``A``),
        computed from the float64/complex128 matrix before rounding to ``dtype``.
    consistent : bool
        Whether ``b`` lies in the range of ``A`` (a solution exists).
    krylov_degree : int or None
        Degree of the minimal polynomial of ``A`` when known: full GMRES
        (``restart >= n``) reaches the solution in at most this many steps.
    min_residual : float
        :math:`\min_x \|b - Ax\|_2` (0 for consistent systems), in float64.
    """

    A: np.ndarray
    b: np.ndarray
    family: str
    seed: int
    rank: int
    distinct: int | None
    eigenvalues: np.ndarray | None
    cond: float
    consistent: bool = True
    krylov_degree: int | None = None
    min_residual: float = 0.0

    @property
    def n(self) -> int:
        """Size of the system."""
        return self.A.shape[0]

    @property
    def dtype(self) -> np.dtype:
        """Dtype of ``A`` and ``b``."""
        return self.A.dtype

    @property
    def hermitian(self) -> bool:
        """Whether ``A`` equals its conjugate transpose exactly."""
        return bool(np.array_equal(self.A, self.A.conj().T))

    def value(self, x: np.ndarray) -> np.ndarray:
        r"""Return :math:`f(x) = \tfrac12 x^{*}Ax + \operatorname{Re}(b^{*}x)`, rowwise."""
        x = np.asarray(x)
        return 0.5 * np.real(np.sum(x.conj() * (x @ self.A.T), axis=-1)) + np.real(
            x @ self.b.conj()
        )

    def gradient(self, x: np.ndarray) -> np.ndarray:
        r"""Exact gradient :math:`\tfrac12(A + A^{*})x + b` of :meth:`value`.

        Equal to :math:`Ax + b` when ``A`` is Hermitian (the :data:`HERMITIAN`
        families).
        """
        return np.asarray(x) @ self.hessian().T + self.b

    def hessian(self) -> np.ndarray:
        r"""Return the Hessian :math:`\tfrac12(A + A^{*})` of :meth:`value` (``A`` if Hermitian)."""
        return (self.A + self.A.conj().T) / 2

    def affine(self, x: np.ndarray) -> np.ndarray:
        """Return the affine map :math:`Ax + b` whose Jacobian is ``A`` (rows independently)."""
        return np.asarray(x) @ self.A.T + self.b

    def solution(self) -> np.ndarray:
        """:math:`A^{-1}b` in double precision (min-norm least squares if singular)."""
        wide = np.complex128 if np.iscomplexobj(self.A) else np.float64
        A, b = self.A.astype(wide), self.b.astype(wide)
        if self.rank < self.n:
            return np.linalg.lstsq(A, b, rcond=None)[0]
        return np.linalg.solve(A, b)


#: The quadratic view of a :class:`LinearSystem` (same object: value, gradient, Hessian).
Quadratic = LinearSystem


# ----------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------
def _gaussian(rng: np.random.Generator, shape, complex_: bool) -> np.ndarray:
    if complex_:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return rng.standard_normal(shape)


def _orthogonal(rng: np.random.Generator, n: int, complex_: bool = False) -> np.ndarray:
    """Haar-distributed orthogonal (unitary) matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(_gaussian(rng, (n, n), complex_))
    d = np.diag(r)
    return q * (d / np.abs(d))


def _symmetric(q: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    a = (q * eigenvalues) @ q.conj().T
    return (a + a.conj().T) / 2


def _log_cond(rng: np.random.Generator, cond: float | None, dtype, low: float) -> float:
    top = np.log10(max_cond(dtype))
    if cond is None:
        return float(rng.uniform(min(low, top), top))
    if not (np.isfinite(cond) and cond >= 1):
        raise ValueError(f"cond must be a finite number >= 1; got {cond}.")
    return float(np.log10(cond))


def _easy(family: str, n: int, rng: np.random.Generator, c: bool):
    """Build the easy families; real draws reproduce the suite's historic problems exactly."""
    b = rng.standard_normal(n)
    rank, distinct, eig = n, None, None
    if family == "spd":
        cond = 10.0 ** rng.uniform(0.0, 3.0)
        eig = np.geomspace(1.0, cond, n) if n > 1 else np.ones(1)
        eig = rng.permutation(eig)
        A = _symmetric(_orthogonal(rng, n, c), eig)
    elif family == "indefinite":
        magnitudes = 10.0 ** rng.uniform(0.0, 2.0, n)
        signs = rng.choice([-1.0, 1.0], n)
        if n > 1:  # make sure both signs occur
            signs[0], signs[1] = 1.0, -1.0
        eig = magnitudes * signs
        A = _symmetric(_orthogonal(rng, n, c), eig)
    elif family == "nonsymmetric":
        # Shifted Ginibre: spectrum in a disk of radius ~1 around the shift and a
        # positive definite symmetric part, so restarted GMRES always progresses.
        shift = rng.uniform(2.5, 4.0)
        A = shift * np.eye(n) + _gaussian(rng, (n, n), c) / np.sqrt(n)
    elif family == "nonnormal":
        # Jordan-like: upper triangular, diagonal in [2, 3], unit superdiagonal plus a
        # little random upper part; ||D^-1 N|| <= ~0.6 keeps it well conditioned,
        # while an orthogonal similarity hides the structure.
        d = rng.uniform(2.0, 3.0, n)
        T = np.diag(d) + np.diag(np.ones(n - 1), 1)
        T = T + np.triu(_gaussian(rng, (n, n), c), 2) * (0.2 / np.sqrt(n))
        q = _orthogonal(rng, n, c)
        A = q @ T @ q.conj().T
    elif family == "clustered":
        # Most eigenvalues in a tight cluster around 1, a few outliers.
        outliers = min(n, int(rng.integers(0, 4)))
        eig = 1.0 + 1e-3 * rng.uniform(-1.0, 1.0, n)
        eig[:outliers] = rng.uniform(5.0, 20.0, outliers) * rng.choice([-1.0, 1.0], outliers)
        A = _symmetric(_orthogonal(rng, n, c), eig)
    elif family == "k_distinct":
        distinct = int(rng.integers(1, min(n, 6) + 1))
        grid = np.concatenate([-np.arange(5.0, 0.0, -0.5), np.arange(0.5, 5.5, 0.5)])
        values = rng.choice(grid, distinct, replace=False)
        eig = np.concatenate([values, rng.choice(values, n - distinct)])
        A = _symmetric(_orthogonal(rng, n, c), eig)
    else:  # singular_consistent
        # Like an input Hessian J^T S J of a K-class classifier: PSD, rank <= 9,
        # and the right-hand side J^T c in its range.
        rank = int(rng.integers(1, min(n - 1, 9) + 1)) if n > 1 else 1
        J = _gaussian(rng, (rank, n), c)
        S = rng.uniform(0.1, 1.0, rank)
        A = J.conj().T @ (S[:, None] * J)
        A = (A + A.conj().T) / 2
        b = J.conj().T @ _gaussian(rng, rank, c)
    if c and family != "singular_consistent":
        b = b + 1j * rng.standard_normal(n)
    return A, b, rank, distinct, eig


def _hard(family: str, n: int, rng: np.random.Generator, c: bool, dtype, cond):
    """Build the hard families (see the module docstring)."""
    b = _gaussian(rng, n, c)
    rank, eig, degree, consistent, min_res = n, None, None, True, 0.0
    if family in ("ill_conditioned", "nearly_singular"):
        k = 10.0 ** _log_cond(rng, cond, dtype, 3.0 if family == "ill_conditioned" else 2.0)
        if family == "ill_conditioned":
            sigma = np.geomspace(1.0, 1.0 / k, n) if n > 1 else np.ones(1)
        else:
            sigma = rng.uniform(1.0, 2.0, n)
            sigma[0], sigma[-1] = 2.0, 2.0 / k
        A = (_orthogonal(rng, n, c) * rng.permutation(sigma)) @ _orthogonal(rng, n, c).conj().T
    elif family == "ill_conditioned_spd":
        k = 10.0 ** _log_cond(rng, cond, dtype, 3.0)
        eig = rng.permutation(np.geomspace(1.0, 1.0 / k, n) if n > 1 else np.ones(1))
        A = _symmetric(_orthogonal(rng, n, c), eig)
    elif family == "badly_scaled":
        decades = _SCALE_DECADES[_precision(dtype)]
        mode = rng.integers(0, 3)  # rows, columns, or both (half the range each)
        span = decades if mode < 2 else decades / 2
        rows = 10.0 ** rng.uniform(-span, span, n) if mode != 1 else np.ones(n)
        cols = 10.0 ** rng.uniform(-span, span, n) if mode != 0 else np.ones(n)
        M = rng.uniform(2.5, 4.0) * np.eye(n) + _gaussian(rng, (n, n), c) / np.sqrt(n)
        A = rows[:, None] * M * cols[None, :]
        # b = A x* for an O(1) x*: the scaling shows in b as it would in practice.
        b = A @ _gaussian(rng, n, c)
    elif family == "jordan":
        # A few distinct eigenvalues, each carried by one or more Jordan blocks.
        k = int(rng.integers(1, min(n, 3) + 1))
        values = rng.uniform(1.0, 3.0, k) * rng.choice([-1.0, 1.0], k)
        if c:
            values = values * np.exp(1j * rng.uniform(0, 2 * np.pi, k))
        sizes, owner = [], []
        left = n
        while left:
            s = int(rng.integers(1, min(left, 6) + 1))
            sizes.append(s)
            owner.append(int(rng.integers(0, k)) if len(sizes) > 1 or k == 1 else 0)
            left -= s
        T = np.zeros((n, n), dtype=complex if c else float)
        pos, eig_list = 0, []
        for s, o in zip(sizes, owner, strict=True):
            T[pos : pos + s, pos : pos + s] = values[o] * np.eye(s) + np.eye(s, k=1)
            eig_list += [values[o]] * s
            pos += s
        q = _orthogonal(rng, n, c)
        A = q @ T @ q.conj().T
        eig = np.asarray(eig_list)
        used = set(owner)
        degree = sum(max(s for s, o in zip(sizes, owner, strict=True) if o == u) for u in used)
    elif family == "convection":
        gamma = 10.0 ** rng.uniform(0.0, np.log10(30.0))
        A = 2 * np.eye(n) + (-1 - gamma) * np.eye(n, k=-1) + (-1 + gamma) * np.eye(n, k=1)
        if c:
            A = A * np.exp(1j * rng.uniform(-np.pi / 4, np.pi / 4))
    elif family == "grcar":
        k = int(rng.integers(1, 4))
        A = -np.eye(n, k=-1) + sum(np.eye(n, k=i) for i in range(k + 1))
        if c:
            A = A * np.exp(1j * rng.uniform(-np.pi / 4, np.pi / 4))
    elif family == "singular_inconsistent":
        rank = int(rng.integers(1, n)) if n > 1 else 0
        if rng.integers(0, 2):
            lam = rng.uniform(1.0, 10.0, rank) * rng.choice([-1.0, 1.0], rank)
            core = np.diag(lam)
        else:
            core = rng.uniform(2.5, 4.0) * np.eye(rank) + _gaussian(rng, (rank, rank), c) / np.sqrt(
                max(rank, 1)
            )
        # The null space is a set of coordinates (a permutation of blockdiag(core, 0)):
        # exact in floating point, so no rounding makes the system consistent.
        q = _orthogonal(rng, rank, c)
        A = np.zeros((n, n), dtype=complex if c else float)
        A[:rank, :rank] = q @ core @ q.conj().T
        perm = rng.permutation(n)
        A = A[np.ix_(perm, perm)]
        coeffs = _gaussian(rng, n, c)
        b = coeffs[perm]
        consistent = False
        min_res = float(np.linalg.norm(coeffs[rank:]))
    else:
        raise ValueError(f"unknown family {family!r}; choose from {EASY + HARD}")
    return A, b, rank, eig, degree, consistent, min_res


def build_system(
    family: str, n: int, seed: int, dtype=np.float64, *, cond: float | None = None
) -> LinearSystem:
    """Build one member of ``family`` of size ``n`` from ``seed``.

    Parameters
    ----------
    family : str
        One of :data:`EASY` or :data:`HARD`.
    n : int
        Size (``n >= 2`` for the singular families).
    seed : int
        Seed of ``numpy.random.default_rng``.
    dtype : dtype
        float32, float64, complex64 or complex128.  The matrix is built in
        double precision and rounded once.
    cond : float, optional
        Target 2-norm condition number of ``ill_conditioned``,
        ``ill_conditioned_spd`` and ``nearly_singular`` (drawn log-uniformly up
        to :func:`max_cond` of the dtype when omitted); ignored by the others.

    Returns
    -------
    LinearSystem
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(d) for d in REAL_DTYPES + COMPLEX_DTYPES):
        raise TypeError(f"dtype must be float32/64 or complex64/128; got {dtype}.")
    if n < 1 or (n < 2 and family in ("singular_inconsistent", "singular_consistent")):
        raise ValueError(f"n = {n} is too small for family {family!r}.")
    c = dtype.kind == "c"
    rng = np.random.default_rng(seed)
    distinct, degree, consistent, min_res = None, None, True, 0.0
    if family in EASY:
        A, b, rank, distinct, eig = _easy(family, n, rng, c)
        if family == "k_distinct":
            degree = distinct
    elif family in HARD:
        A, b, rank, eig, degree, consistent, min_res = _hard(family, n, rng, c, dtype, cond)
    else:
        raise ValueError(f"unknown family {family!r}; choose from {EASY + HARD}")
    sv = np.linalg.svd(A, compute_uv=False)
    cond_value = float(sv[0] / sv[rank - 1]) if rank > 0 else float("inf")
    return LinearSystem(
        A=np.ascontiguousarray(A, dtype=dtype),
        b=np.ascontiguousarray(b, dtype=dtype),
        family=family,
        seed=int(seed),
        rank=rank,
        distinct=distinct,
        eigenvalues=None if eig is None else np.asarray(eig),
        cond=cond_value,
        consistent=consistent,
        krylov_degree=degree,
        min_residual=min_res,
    )


def build_quadratic(family: str, n: int, seed: int, dtype=np.float64) -> LinearSystem:
    """Build one member of ``family``; the name the suite has always used."""
    return build_system(family, n, seed, dtype)
