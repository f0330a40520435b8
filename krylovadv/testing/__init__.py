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
* :func:`backward_error`, :func:`residual_allowance` and :func:`eps_of` give
  the dtype-aware tolerances the checks use.

Importing this package imports neither torch nor hypothesis.
"""

from __future__ import annotations

from typing import Any

# Each module's __all__ is the one list of its public names; the package re-exports them.
from . import conformance, families, metrics
from ._names import STRATEGIES
from .conformance import *  # noqa: F403
from .families import *  # noqa: F403
from .metrics import *  # noqa: F403

__all__ = [*conformance.__all__, *families.__all__, *metrics.__all__, *STRATEGIES]


def __getattr__(name: str) -> Any:
    # The strategies need hypothesis, a test-only dependency: import it on first use.
    if name in STRATEGIES:
        from . import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
