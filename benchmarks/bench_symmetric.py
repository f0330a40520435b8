"""Symmetric solvers: krylovadv.cg / minres / eigsh against scipy.sparse.linalg, same problems.

Products with ``A`` are counted on both sides by wrapping the operator, so the
comparison is of work, not of wall time alone:

- ``cg``: both solvers at ``rtol=1e-8``; scipy's count against ours (which
  adds one product for the final true-residual check).  Goal: within 2.
- ``minres``: scipy stops on a backward-error estimate, ours on the true
  residual, so scipy is run to ``rtol=1e-15`` and its products are counted up
  to the first iterate whose *true* residual meets ours (``rtol=1e-8``).
  Goal: within 2.
- ``eigsh``: ``k = 5`` eigenvalues (``which`` in LA, SA, LM), same start
  vector, default ``ncv`` and ``tol`` (machine precision) on both sides.
  Goal: at most 1.5 times ARPACK's products.

The problems are the test suite's families (``tests/strategies.py`` builds the
same matrices from the same seeds) at ``n = 200``.  Run
``python -m benchmarks.bench_symmetric`` for the Markdown tables.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse.linalg as sla

import krylovadv

from .timing import interleaved_min

N = 200
RTOL = 1e-8
K = 5
SEED = 3
FAMILIES = {
    "cg": ("spd", "clustered_spd", "singular_consistent"),
    "minres": ("spd", "indefinite", "clustered", "singular_consistent"),
    "eigsh": ("spd", "indefinite", "clustered"),
}
WHICH = ("LA", "SA", "LM")


@functools.cache
def get_problem(family: str, n: int = N, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` of ``family``: symmetric, built from ``seed`` (float64)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    b = rng.standard_normal(n)
    if family == "spd":
        eig = np.geomspace(1.0, 1e3, n)
    elif family == "clustered_spd":
        eig = np.concatenate([1.0 + 1e-3 * rng.uniform(-1, 1, n - 3), [10.0, 50.0, 100.0]])
    elif family == "indefinite":
        eig = 10.0 ** rng.uniform(0.0, 2.0, n) * rng.choice([-1.0, 1.0], n)
    elif family == "clustered":
        eig = np.concatenate([1.0 + 1e-3 * rng.uniform(-1, 1, n - 3), [-10.0, 20.0, 50.0]])
    elif family == "singular_consistent":
        rank = 9
        J = rng.standard_normal((rank, n))
        A = J.T @ (rng.uniform(0.1, 1.0, rank)[:, None] * J)
        return (A + A.T) / 2, J.T @ rng.standard_normal(rank)
    else:
        raise ValueError(f"unknown family {family!r}")
    A = (q * eig) @ q.T
    return (A + A.T) / 2, b


def _counted(A: np.ndarray) -> tuple[sla.LinearOperator, list[int]]:
    count = [0]

    def matvec(v):
        count[0] += 1
        return A @ v

    return sla.LinearOperator(A.shape, matvec=matvec, dtype=A.dtype), count


def cg_matvecs(family: str) -> tuple[int, int]:
    """Products of krylovadv.cg and scipy's cg on ``family``."""
    A, b = get_problem(family)
    ours = krylovadv.cg(A, b, rtol=RTOL, maxiter=20 * N)
    op, count = _counted(A)
    sla.cg(op, b, rtol=RTOL, maxiter=20 * N)
    return int(ours.matvecs), count[0]


def minres_matvecs(family: str) -> tuple[int, int | None]:
    """Products of krylovadv.minres, and scipy's until its true residual meets the same test."""
    A, b = get_problem(family)
    ours = krylovadv.minres(A, b, rtol=RTOL, maxiter=20 * N)
    tol = RTOL * np.linalg.norm(b)
    op, count = _counted(A)
    hit: list[int | None] = [None]

    def callback(xk):
        if hit[0] is None and np.linalg.norm(b - A @ xk) <= tol:
            hit[0] = count[0]

    sla.minres(op, b, rtol=1e-15, maxiter=20 * N, callback=callback)
    return int(ours.matvecs), hit[0]


def eigsh_matvecs(family: str, which: str) -> tuple[int, int, float]:
    """Products of krylovadv.eigsh and ARPACK for ``k = 5``, and the eigenvalue difference."""
    A, _ = get_problem(family)
    v0 = np.random.default_rng(SEED + 1).standard_normal(A.shape[0])
    ours = krylovadv.eigsh(A, K, which=which, v0=v0, return_eigenvectors=False)
    op, count = _counted(A)
    ref = np.sort(sla.eigsh(op, K, which=which, v0=v0, return_eigenvectors=False))
    scale = np.abs(ref).max()
    return int(ours.matvecs), count[0], float(np.abs(ours.eigenvalues - ref).max() / scale)


# -- asv ------------------------------------------------------------------------------
class SymmetricMatvecs:
    """Products with A: krylovadv minus scipy (cg, minres; goal |diff| <= 2)."""

    params = (["cg", "minres"], ["spd", "indefinite", "clustered", "singular_consistent"])
    param_names = ("solver", "family")
    unit = "products"

    def setup(self, solver: str, family: str) -> None:
        if family not in FAMILIES[solver] and not (solver == "cg" and family == "clustered"):
            raise NotImplementedError  # asv skips: cg is for positive definite systems
        get_problem(family)

    def track_matvec_difference(self, solver: str, family: str) -> float:
        if solver == "cg":
            family = "clustered_spd" if family == "clustered" else family
            ours, theirs = cg_matvecs(family)
        else:
            ours, theirs = minres_matvecs(family)
        return float(ours - (theirs if theirs is not None else np.nan))


class EigshMatvecs:
    """Products of krylovadv.eigsh / ARPACK's for k = 5 (goal <= 1.5)."""

    params = (list(FAMILIES["eigsh"]), list(WHICH))
    param_names = ("family", "which")
    unit = "ratio"

    def setup(self, family: str, which: str) -> None:
        get_problem(family)

    def track_matvec_ratio(self, family: str, which: str) -> float:
        ours, theirs, _ = eigsh_matvecs(family, which)
        return ours / theirs


class SymmetricTime:
    """Time of krylovadv's solver / scipy's on the same problem and operator.

    ``dense_200``: a dense n = 200 matrix, where the per-iteration bookkeeping
    (per-sample status, masks, histories: about 0.1 ms) dominates;
    ``diagonal_1e5``: a diagonal operator with n = 100,000 (the same Python
    callable on both sides), where the vector arithmetic does.  scipy's minres
    stops on its backward-error estimate, usually earlier than the true-residual
    test here (on ``diagonal_1e5``: 8,235 products and a true relative residual
    of 1.7e-4, against 17,971 products and 1e-8), so its ratio is not at equal
    work.
    """

    params = (["cg", "minres", "eigsh"], ["dense_200", "diagonal_1e5"])
    param_names = ("solver", "size")
    unit = "ratio"
    timeout = 300

    def setup(self, solver: str, size: str) -> None:
        get_problem("spd")
        get_problem("indefinite")

    def track_time_ratio(self, solver: str, size: str) -> float:
        if size == "dense_200":
            A, b = get_problem("indefinite" if solver == "minres" else "spd")
            ours_A, scipy_A, n = A, A, N
        else:
            n = 100_000
            diagonal = np.geomspace(1.0, 1e3, n)
            if solver == "minres":
                diagonal[::2] *= -1.0
            elif solver == "eigsh":  # five well-separated top eigenvalues
                diagonal = np.linspace(1.0, 2.0, n)
                diagonal[-5:] = [3.0, 4.0, 5.0, 6.0, 7.0]
            b = np.random.default_rng(SEED).standard_normal(n)
            ours_A = krylovadv.aslinearoperator(
                lambda X: X * diagonal, shape=(n, n), vectorized=True
            )
            scipy_A = sla.LinearOperator((n, n), matvec=lambda v: diagonal * v, dtype=float)
        if solver == "cg":
            funcs = {
                "ours": lambda: krylovadv.cg(ours_A, b, rtol=RTOL, maxiter=20 * n),
                "scipy": lambda: sla.cg(scipy_A, b, rtol=RTOL, maxiter=20 * n),
            }
        elif solver == "minres":
            funcs = {
                "ours": lambda: krylovadv.minres(ours_A, b, rtol=RTOL, maxiter=20 * n),
                "scipy": lambda: sla.minres(scipy_A, b, rtol=RTOL, maxiter=20 * n),
            }
        else:
            v0 = np.ones(n)
            funcs = {
                "ours": lambda: krylovadv.eigsh(ours_A, K, which="LA", v0=v0),
                "scipy": lambda: sla.eigsh(scipy_A, K, which="LA", v0=v0),
            }
        times = interleaved_min(funcs, repeats=3)
        return times["ours"] / times["scipy"]


def main() -> None:
    """Print the product-count tables."""
    print(f"n = {N}, float64, seed {SEED}; products with A counted on both sides.\n")
    print("| solver | family | krylovadv | scipy | difference |")
    print("|---|---|---|---|---|")
    for family in FAMILIES["cg"]:
        ours, theirs = cg_matvecs(family)
        print(f"| cg | {family} | {ours} | {theirs} | {ours - theirs:+d} |")
    for family in FAMILIES["minres"]:
        ours, theirs = minres_matvecs(family)
        diff = "-" if theirs is None else f"{ours - theirs:+d}"
        print(f"| minres | {family} | {ours} | {theirs} | {diff} |")
    print("\n| eigsh k=5 | which | krylovadv | ARPACK | ratio | max eigenvalue difference |")
    print("|---|---|---|---|---|---|")
    for family in FAMILIES["eigsh"]:
        for which in WHICH:
            ours, theirs, diff = eigsh_matvecs(family, which)
            print(f"| {family} | {which} | {ours} | {theirs} | {ours / theirs:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
