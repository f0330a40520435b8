"""Per-sample result records shared by the solvers."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar

import numpy as np

from .status import SolverStatus


class PerSampleResult:
    """Mixin for dataclass results holding one entry per sample.

    A batched result stores arrays of length ``B`` (lists for ragged histories);
    ``result.sample(i)`` is sample ``i``'s own result with scalars, which is also
    how a solver returns the result of a single problem.  Subclasses are dataclasses
    with a ``batched`` field and name the field whose first axis is the batch in
    :attr:`batch_field`.
    """

    batch_field: ClassVar[str]
    batched: bool

    @property
    def batch_size(self) -> int:
        """Return the number of samples (``B``); a single problem has 1."""
        return int(getattr(self, self.batch_field).shape[0]) if self.batched else 1

    def sample(self, i: int) -> Any:
        """Return the result of sample ``i`` alone (scalars, as a single solve returns)."""
        if not self.batched:
            if i in (0, -1):
                return self
            raise IndexError("a single-problem result only has sample 0.")
        values = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "batched":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            item = value[i]
            if f.name == "status":
                item = SolverStatus(int(item))
            elif isinstance(item, np.generic):
                item = item.item()
            values[f.name] = item
        return type(self)(**values, batched=False)
