r"""Put any solver with scipy's calling convention through the solver contract.

:func:`check_solver` calls ``solver(A, b, x0=..., rtol=..., atol=..., maxiter=...)``
(only the keywords the solver accepts) on problems built to test one promise
each, and expects scipy's return value ``(x, info)`` with ``info == 0`` meaning
"converged" (krylovadv's result objects unpack the same way).  Each check is a
row of the :class:`ConformanceReport`:

``honest flag``
    Wherever ``info == 0``, the true residual, recomputed in double precision,
    meets :math:`\max(\mathrm{rtol}\|b\|, \mathrm{atol})` up to the rounding of a
    residual computed in the working precision
    (:func:`~krylovadv.testing.residual_allowance`); run on the easy and on the
    hard families (ill-conditioned up to :math:`10^{12}`, badly scaled, nearly
    singular, defective, non-normal, singular inconsistent).
``converges``
    Well-conditioned problems reach ``info == 0``.
``no silent stagnation``
    A tolerance below what the dtype allows (``rtol = 1e-3 eps``) ends with
    ``info != 0`` — the solver admits it did not get there.
``dtype preserved``
    float32 in, float32 out (and float64 likewise).
``x0 untouched``
    The caller's ``x0`` array is unchanged.
``zero rhs``
    ``b = 0`` returns exactly ``x = 0`` with ``info == 0``, even from a nonzero ``x0``.
``NaN input``
    NaN in ``b``: an exception, or ``info != 0`` — never ``info == 0``.
``NaN operator``
    An operator returning NaN: an exception or ``info != 0``.
``maxiter respected``
    ``maxiter=1`` on a problem that needs many steps: ``info != 0`` and at most
    ``n + 3`` products with ``A`` (one restart cycle or one iteration).

Examples
--------
>>> import scipy.sparse.linalg as spla
>>> from krylovadv.testing import check_solver
>>> report = check_solver(spla.gmres, name="scipy gmres", problems=1, sizes=(4, 8))
>>> report["x0 untouched"].passed, report["zero rhs"].passed
(True, True)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .families import EASY, HARD, HERMITIAN, LinearSystem, build_system
from .metrics import eps_of, residual_allowance, true_residual

__all__ = ["CheckResult", "ConformanceReport", "check_solver"]

_STRUCTURES = {
    "general": (EASY, HARD),
    "symmetric": (
        tuple(f for f in EASY if f in HERMITIAN),
        ("ill_conditioned_spd",),
    ),
    "spd": (("spd", "clustered"), ("ill_conditioned_spd",)),
}


@dataclass
class CheckResult:
    """One row of a :class:`ConformanceReport`.

    Attributes
    ----------
    name : str
        The promise checked.
    passed : bool
        Whether it held on every problem run.
    problems : int
        Problems the check ran.
    failures : int
        Problems on which it failed.
    detail : str
        The worst failure (family, size, dtype, seed and what went wrong), or a
        short note when it passed.
    """

    name: str
    passed: bool
    problems: int
    failures: int
    detail: str = ""


@dataclass
class ConformanceReport:
    """Per-check outcome of :func:`check_solver` for one solver.

    ``str(report)`` is an aligned text table; :meth:`to_markdown` and
    :meth:`to_rst` give the same table for documents.  ``report[name]`` is the
    :class:`CheckResult` named ``name``.
    """

    solver: str
    items: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(item.passed for item in self.items)

    def __getitem__(self, name: str) -> CheckResult:
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(f"no check named {name!r}; checks: {[i.name for i in self.items]}")

    def _rows(self) -> list[tuple[str, str, str, str]]:
        return [
            (
                i.name,
                "pass" if i.passed else "FAIL",
                f"{i.problems - i.failures}/{i.problems}",
                i.detail,
            )
            for i in self.items
        ]

    def __str__(self) -> str:
        header = ("check", "result", "ok/run", "detail")
        rows = [header, *self._rows()]
        widths = [max(len(r[k]) for r in rows) for k in range(3)]
        lines = [f"conformance of {self.solver}: {'PASS' if self.passed else 'FAIL'}"]
        for r in rows:
            lines.append("  ".join(r[k].ljust(widths[k]) for k in range(3)) + "  " + r[3])
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Return the table in Markdown."""
        lines = [
            f"**{self.solver}**",
            "",
            "| check | result | ok/run | detail |",
            "|---|---|---|---|",
        ]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self._rows()]
        return "\n".join(lines)

    def to_rst(self) -> str:
        """Return the table as an reStructuredText list-table."""
        lines = [
            f".. list-table:: {self.solver}",
            "   :header-rows: 1",
            "",
            "   * - check",
            "     - result",
            "     - ok/run",
            "     - detail",
        ]
        for name, verdict, count, detail in self._rows():
            # The detail holds norms (||b-Ax||), which reST would read as substitutions.
            lines += [
                f"   * - {name}",
                f"     - {verdict}",
                f"     - {count}",
                f"     - ``{detail}``" if detail else "     - —",
            ]
        return "\n".join(lines)


class _Counting:
    """A scipy LinearOperator-like wrapper that counts products (and can poison them)."""

    def __init__(self, A: np.ndarray, poison: bool = False) -> None:
        self.A, self.poison, self.calls = A, poison, 0
        self.shape, self.dtype = A.shape, A.dtype

    def matvec(self, x):
        self.calls += 1
        y = self.A @ np.asarray(x).reshape(-1)
        return y * np.nan if self.poison else y

    def __matmul__(self, x):
        return self.matvec(x)


def _as_scipy(op: _Counting) -> Any:
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator(op.shape, matvec=op.matvec, dtype=op.dtype)


def _call(solver: Callable, accepted: set[str] | None, A, b, **kwargs) -> tuple[Any, int]:
    if accepted is not None:
        kwargs = {k: v for k, v in kwargs.items() if k in accepted and v is not None}
    out = solver(A, b, **kwargs)
    x, info = out
    return x, int(np.max(np.asarray(info)))


def _keywords(solver: Callable) -> set[str] | None:
    try:
        params = inspect.signature(solver).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def _describe(p: LinearSystem) -> str:
    return f"{p.family} n={p.n} {p.dtype} seed={p.seed} cond={p.cond:.1e}"


class _Check:
    def __init__(self, name: str) -> None:
        self.name, self.run, self.bad, self.detail = name, 0, 0, ""
        self.worst = -np.inf

    def record(self, ok: bool, detail: str = "", severity: float = 0.0) -> None:
        self.run += 1
        if not ok:
            self.bad += 1
            if severity >= self.worst:
                self.worst, self.detail = severity, detail

    def result(self, note: str = "") -> CheckResult:
        return CheckResult(self.name, self.bad == 0, self.run, self.bad, self.detail or note)


def check_solver(
    solver: Callable,
    *,
    name: str | None = None,
    structure: str = "general",
    problems: int = 20,
    rtol: float = 1e-5,
    dtypes: Sequence[Any] = (np.float64, np.float32),
    sizes: tuple[int, int] = (4, 30),
    seed: int = 0,
) -> ConformanceReport:
    """Run ``solver`` through the contract and report per check.

    Parameters
    ----------
    solver : callable
        ``solver(A, b, x0=None, rtol=..., atol=..., maxiter=...) -> (x, info)``,
        as :func:`scipy.sparse.linalg.gmres`, ``cg``, ``minres``, ``bicgstab``
        or :func:`krylovadv.gmres`.  Keywords the signature does not name are
        not passed (``minres`` has no ``atol``).
    name : str, optional
        Label of the report (default: the solver's ``__module__.__name__``).
    structure : {"general", "symmetric", "spd"}
        Which problems the solver is meant for: ``cg`` needs ``"spd"``,
        ``minres`` ``"symmetric"``.
    problems : int
        Problems per family group and dtype for the randomized checks.
    rtol : float
        Relative tolerance asked for in the accuracy checks.
    dtypes : sequence of dtype
        Precisions to run (real or complex).
    sizes : (int, int)
        Range of ``n``.
    seed : int
        Seed of the problem draw; the same seed gives the same report.

    Returns
    -------
    ConformanceReport
    """
    if structure not in _STRUCTURES:
        raise ValueError(f"structure must be one of {sorted(_STRUCTURES)}; got {structure!r}.")
    if problems < 1:
        raise ValueError(f"problems must be >= 1; got {problems}.")
    label = name or f"{getattr(solver, '__module__', '')}.{getattr(solver, '__name__', solver)}"
    accepted = _keywords(solver)
    easy, hard = _STRUCTURES[structure]
    rng = np.random.default_rng(seed)
    checks = {
        key: _Check(key)
        for key in (
            "honest flag (easy)",
            "honest flag (hard)",
            "converges",
            "no silent stagnation",
            "dtype preserved",
            "x0 untouched",
            "zero rhs",
            "NaN input",
            "NaN operator",
            "maxiter respected",
        )
    }

    def draw(families, dtype) -> LinearSystem:
        family = families[int(rng.integers(len(families)))]
        n = int(rng.integers(sizes[0], sizes[1] + 1))
        return build_system(family, n, int(rng.integers(2**31)), dtype)

    for dtype in map(np.dtype, dtypes):
        eps = eps_of(dtype)
        for group, families in (("easy", easy), ("hard", hard)):
            for _ in range(problems):
                p = draw(families, dtype)
                x0 = np.asarray(rng.standard_normal(p.n), dtype=dtype) * 1e-3
                x0_copy = x0.copy()
                try:
                    x, info = _call(solver, accepted, p.A, p.b, x0=x0, rtol=rtol, atol=0.0)
                except Exception as exc:  # a crash on a valid problem fails every check
                    checks[f"honest flag ({group})"].record(False, f"{_describe(p)}: {exc!r}", 1)
                    continue
                x = np.asarray(x)
                checks["x0 untouched"].record(
                    np.array_equal(x0, x0_copy), f"{_describe(p)}: x0 was modified", 1.0
                )
                checks["dtype preserved"].record(
                    x.dtype == dtype, f"{_describe(p)}: {dtype} in, {x.dtype} out", 1.0
                )
                tol = rtol * np.linalg.norm(p.b.astype(np.complex128))
                true = true_residual(p.A, x, p.b) if np.all(np.isfinite(x)) else np.inf
                slack = residual_allowance(p.A, x, p.b, dtype) if np.isfinite(true) else 0.0
                if info == 0:
                    ratio = true / (tol + slack)
                    checks[f"honest flag ({group})"].record(
                        ratio <= 1.0,
                        f"{_describe(p)}: info=0 but ||b-Ax|| = {true:.2e} > {tol:.2e}",
                        ratio,
                    )
                else:
                    checks[f"honest flag ({group})"].record(True)
                if group == "easy" and p.consistent and p.cond * eps <= rtol / 10:
                    checks["converges"].record(
                        info == 0, f"{_describe(p)}: info={info}, ||b-Ax|| = {true:.2e}", p.cond
                    )

        # A tolerance no dtype can meet (1e-3 eps): the solver must say it failed.
        for _ in range(max(1, problems // 4)):
            p = draw(easy, dtype)
            x, info = _call(solver, accepted, p.A, p.b, rtol=1e-3 * eps, atol=0.0, maxiter=None)
            true = true_residual(p.A, x, p.b)
            checks["no silent stagnation"].record(
                info != 0 or true == 0.0,
                f"{_describe(p)}: info=0 at rtol=1e-3 eps with ||b-Ax|| = {true:.2e}",
                true,
            )

        p = draw(easy, dtype)
        zero = np.zeros_like(p.b)
        for x0 in (None, np.ones_like(p.b)):
            x, info = _call(solver, accepted, p.A, zero, x0=x0, rtol=rtol, atol=0.0)
            checks["zero rhs"].record(
                info == 0 and not np.any(np.asarray(x)),
                f"{_describe(p)}: b = 0, x0 = {'0' if x0 is None else '1'} gave info={info}, "
                f"max|x| = {np.max(np.abs(np.asarray(x))):.1e}",
                1.0,
            )

        bad_b = p.b.copy()
        bad_b[p.n // 2] = np.nan
        checks["NaN input"].record(*_nan_outcome(solver, accepted, p.A, bad_b, rtol, "b"))
        poisoned = _as_scipy(_Counting(p.A, poison=True))
        checks["NaN operator"].record(
            *_nan_outcome(solver, accepted, poisoned, p.b, rtol, "A returning NaN")
        )

        # maxiter = 1 on a problem that needs many steps: Grcar, n = 40, rtol = 1e-12.
        big = build_system("grcar", 40, seed, dtype) if structure == "general" else None
        if big is None:
            big = build_system("ill_conditioned_spd", 40, seed, dtype, cond=1e4)
        counter = _Counting(big.A)
        x, info = _call(
            solver, accepted, _as_scipy(counter), big.b, rtol=max(1e-12, 10 * eps), maxiter=1
        )
        checks["maxiter respected"].record(
            info != 0 and counter.calls <= big.n + 3,
            f"{_describe(big)}: maxiter=1 gave info={info} after {counter.calls} products",
            counter.calls,
        )

    return ConformanceReport(label, [c.result() for c in checks.values()])


def _nan_outcome(solver, accepted, A, b, rtol, what: str) -> tuple[bool, str, float]:
    try:
        x, info = _call(solver, accepted, A, b, rtol=rtol, atol=0.0)
    except Exception:  # an exception is a correct answer to bad input
        return True, "", 0.0
    finite = bool(np.all(np.isfinite(np.asarray(x))))
    ok = info != 0
    return ok, f"NaN in {what}: no exception, info={info}, x finite: {finite}", 1.0
