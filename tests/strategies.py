"""The suite's strategies: a thin re-export of the public :mod:`krylovadv.testing`.

Tests import ``from strategies import ...``; the problem families, the
hypothesis strategies and the builders live in :mod:`krylovadv.testing` so that
users can run their own solvers through the same problems.
"""

from __future__ import annotations

from krylovadv.testing import (
    ALL_FAMILIES,
    EASY,
    HARD,
    HERMITIAN,
    NONSINGULAR,
    SYMMETRIC,
    LinearSystem,
    Quadratic,
    build_quadratic,
    build_system,
)
from krylovadv.testing.strategies import (
    conds,
    linear_systems,
    matrices,
    quadratic_batches,
    quadratics,
    seeds,
    system_batches,
)

__all__ = [
    "ALL_FAMILIES",
    "EASY",
    "HARD",
    "HERMITIAN",
    "NONSINGULAR",
    "SYMMETRIC",
    "LinearSystem",
    "Quadratic",
    "build_quadratic",
    "build_system",
    "conds",
    "linear_systems",
    "matrices",
    "quadratic_batches",
    "quadratics",
    "seeds",
    "system_batches",
]
