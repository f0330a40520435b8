"""The names :mod:`krylovadv.testing.strategies` defines, importable without hypothesis.

The package lists them in its ``__all__`` and loads them on first use (hypothesis
is a test-only dependency); the strategies module exports exactly these.  One
list, so the two cannot drift apart.
"""

from __future__ import annotations

STRATEGIES = (
    "conds",
    "linear_systems",
    "matrices",
    "quadratic_batches",
    "quadratics",
    "seeds",
    "system_batches",
)
