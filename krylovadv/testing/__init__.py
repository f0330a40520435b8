"""Tools to verify a linear solver: problem families, strategies and a conformance checker.

``krylovadv.testing`` is public so that authors of other solvers can put their
code through the same tests as krylovadv's own:

* :func:`build_system` and the family lists (:data:`EASY`, :data:`HARD`) build
  reproducible test problems — ill-conditioned up to :math:`10^{12}`, badly
  scaled, nearly singular, defective, non-normal, singular and inconsistent,
  real or complex — from a seed;
* the hypothesis strategies (:func:`linear_systems`, :func:`quadratics`,
  :func:`system_batches`, :func:`matrices`) draw them (needs ``hypothesis``,
  imported on first use);
* :func:`check_solver` runs any solver with scipy's calling convention through
  the solver contract and returns a :class:`ConformanceReport`;
* :func:`backward_error` and :func:`residual_allowance` give the dtype-aware
  tolerances the checks use.

Importing this package imports neither torch nor hypothesis.
"""

from __future__ import annotations

from typing import Any

from .conformance import CheckResult, ConformanceReport, check_solver
from .families import (
    ALL_FAMILIES,
    COMPLEX_DTYPES,
    EASY,
    HARD,
    HERMITIAN,
    MAX_COND,
    NONSINGULAR,
    REAL_DTYPES,
    SYMMETRIC,
    LinearSystem,
    Quadratic,
    build_quadratic,
    build_system,
    max_cond,
)
from .metrics import backward_error, residual_allowance, true_residual

_STRATEGIES = (
    "conds",
    "linear_systems",
    "matrices",
    "quadratic_batches",
    "quadratics",
    "seeds",
    "system_batches",
)

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
    "CheckResult",
    "ConformanceReport",
    "LinearSystem",
    "Quadratic",
    "backward_error",
    "build_quadratic",
    "build_system",
    "check_solver",
    "max_cond",
    "residual_allowance",
    "true_residual",
    *_STRATEGIES,
]


def __getattr__(name: str) -> Any:
    # The strategies need hypothesis, a test-only dependency: import it on first use.
    if name in _STRATEGIES:
        from . import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
