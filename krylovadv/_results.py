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
    status: Any

    @property
    def batch_size(self) -> int:
        """Return the number of samples (``B``); a single problem has 1."""
        return int(getattr(self, self.batch_field).shape[0]) if self.batched else 1

    def status_counts(self) -> dict[str, int]:
        """Return how many samples stopped with each status, by status name (batched results)."""
        return {SolverStatus(s).name: int(np.sum(self.status == s)) for s in np.unique(self.status)}

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


class SolveResult(PerSampleResult):
    """``message``, ``info``, scipy-style unpacking and a short repr for solve results.

    Shared by :class:`~krylovadv.gmres.GMRESResult`, :class:`~krylovadv.cg.CGResult`
    and :class:`~krylovadv.minres.MINRESResult`.  They differ only in what scipy's
    ``info`` reports on failure, which subclasses name in :attr:`info_field`:
    ``"maxiter"`` for GMRES (scipy's ``gmres``), ``"iterations"`` for CG and
    MINRES (scipy's ``cg``/``minres``).
    """

    x: Any
    converged: Any
    status: Any
    iterations: Any
    residual_norm: Any

    info_field: ClassVar[str] = "iterations"

    @property
    def message(self) -> str | list[str]:
        """Readable status message(s)."""
        if not self.batched:
            return SolverStatus(self.status).message
        return [SolverStatus(int(s)).message for s in self.status]

    @property
    def info(self) -> int | np.ndarray:
        """Return scipy's ``info``: 0 on convergence, else :attr:`info_field` (per sample)."""
        failed = getattr(self, self.info_field)
        if not self.batched:
            return 0 if self.converged else int(failed)
        return np.where(self.converged, 0, failed)

    def __iter__(self):
        """Yield ``(x, info)`` so that ``x, info = solver(...)`` works as in scipy."""
        return iter((self.x, self.info))

    def __len__(self) -> int:
        """Return 2, the length of scipy's ``(x, info)``; the batch size is :attr:`batch_size`."""
        return 2

    def __getitem__(self, k: int) -> Any:
        """Return ``(x, info)[k]`` as scipy's tuple; per-sample results are :meth:`sample`."""
        if not isinstance(k, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__} indexes like scipy's (x, info) pair with 0 or 1; "
                f"got {k!r}. Use result.sample(i) for sample i of a batch."
            )
        return (self.x, self.info)[k]

    def __repr__(self) -> str:
        name = type(self).__name__
        if not self.batched:
            return (
                f"{name}(status={SolverStatus(self.status).name}, "
                f"iterations={self.iterations}, residual_norm={self.residual_norm:.3e})"
            )
        counts = self.status_counts()
        iterations = self.iterations.tolist()
        return f"{name}(batch={self.batch_size}, status={counts}, iterations={iterations})"
