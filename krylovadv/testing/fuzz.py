"""Tally of a fuzz run: how many problems ran and how many failed silently.

A *silent failure* is a wrong answer reported as a success: a converged flag
(or ``info == 0``) whose true residual, recomputed in double precision, misses
the requested tolerance by more than the rounding of a working-precision
residual, or an eigenvalue reported as converged that is not an eigenvalue.
``tests/test_fuzz.py`` records every problem here; the test session's
closing line is :meth:`FuzzTally.summary`.

Examples
--------
>>> t = FuzzTally()
>>> t.record("gmres", silent=False); t.record("gmres", silent=True)
>>> t.summary()
'fuzz: 2 problems (gmres 2), 1 silent failures'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["TALLY", "FuzzTally"]


@dataclass
class FuzzTally:
    """Counts of problems run and silent failures found, per solver."""

    problems: int = 0
    silent: int = 0
    per_solver: Counter = field(default_factory=Counter)

    def record(self, solver: str, *, silent: bool) -> None:
        """Count one problem run by ``solver``; ``silent`` if it failed silently."""
        self.problems += 1
        self.silent += int(silent)
        self.per_solver[solver] += 1

    def summary(self) -> str:
        """Return the closing line of a fuzz run."""
        solvers = ", ".join(f"{k} {v}" for k, v in sorted(self.per_solver.items()))
        return f"fuzz: {self.problems} problems ({solvers}), {self.silent} silent failures"


#: The tally ``tests/test_fuzz.py`` writes to.
TALLY = FuzzTally()
