"""The suite's strategies: a thin re-export of the public :mod:`krylovadv.testing`.

Tests import ``from strategies import ...``; the problem families, the
hypothesis strategies and the builders live in :mod:`krylovadv.testing` so that
users can run their own solvers through the same problems.
"""

from __future__ import annotations

import krylovadv.testing
from krylovadv.testing import *  # noqa: F403 (the suite's names are exactly the public ones)

__all__ = list(krylovadv.testing.__all__)
