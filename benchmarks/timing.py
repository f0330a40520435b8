"""In-process timing helpers shared by the ``track_*`` benchmarks and ``report.py``.

asv times each ``time_*`` benchmark in its own process, so two of them are never
measured under the same conditions.  A *ratio* is more robust when both sides
run in one process, interleaved (A, B, B, A, A, B, ...) so that drifts in clock
frequency or background load hit both, and the minimum over repetitions is
kept (the least-disturbed run).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


def interleaved_min(
    funcs: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 5,
    min_sample_time: float = 0.05,
    max_number: int = 1000,
) -> dict[str, float]:
    """Best time per call of each function, measured interleaved.

    Parameters
    ----------
    funcs : mapping of name to zero-argument callable
        The contenders.
    repeats : int
        Samples per function (at least 3 is sensible); the minimum is returned.
    min_sample_time : float
        Each sample loops a function ``number`` times so that it lasts at least
        this long (calibrated from one warm-up call, which is not counted).
    max_number : int
        Upper bound for ``number``.

    Returns
    -------
    dict
        Seconds per call, by name.
    """
    names = list(funcs)
    numbers = {}
    for name in names:  # warm-up (caches, lazy imports, BLAS thread pools) and calibration
        start = time.perf_counter()
        funcs[name]()
        elapsed = time.perf_counter() - start
        numbers[name] = max(1, min(max_number, math.ceil(min_sample_time / max(elapsed, 1e-9))))
    best = dict.fromkeys(names, math.inf)
    gc_was_enabled = gc.isenabled()
    try:
        for rep in range(repeats):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                func, number = funcs[name], numbers[name]
                gc.collect()
                gc.disable()
                start = time.perf_counter()
                for _ in range(number):
                    func()
                elapsed = time.perf_counter() - start
                if gc_was_enabled:
                    gc.enable()
                best[name] = min(best[name], elapsed / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


@dataclass
class Comparison:
    """One row of the report: krylovadv against a reference on the same problem.

    ``work_*`` counts operator applications (matvecs, or gradient evaluations per
    product for finite differences); ``error_*`` is the accuracy measure named
    by ``error_name`` (a true relative residual, recomputed from the returned
    solution, unless stated otherwise).
    """

    name: str
    reference: str
    time_krylovadv: float
    time_reference: float
    work_krylovadv: float | None = None
    work_reference: float | None = None
    error_krylovadv: float | None = None
    error_reference: float | None = None
    error_name: str = "relative true residual"

    @property
    def ratio(self) -> float:
        """``time_krylovadv / time_reference`` (below 1: krylovadv is faster)."""
        return self.time_krylovadv / self.time_reference


def interleaved_cpu_min(
    funcs: Mapping[str, Callable[[], object]], *, repeats: int = 5, warmup: bool = True
) -> dict[str, float]:
    """Least CPU time (``time.process_time``) per call of each function, interleaved.

    CPU time rather than wall time: on a shared 2-core machine it measures what a
    call costs whatever else runs.  Rounds alternate the order (A, B, B, A, ...).

    Parameters
    ----------
    funcs : mapping of name to zero-argument callable
        The contenders.
    repeats : int
        Rounds; the minimum per function is returned.
    warmup : bool
        Call each function once before timing (lazy initialisation, graph caches).
        Without it, a slow first call is simply not the minimum.

    Returns
    -------
    dict
        CPU seconds per call, by name.
    """
    names = list(funcs)
    if warmup:
        for name in names:
            funcs[name]()
    best = dict.fromkeys(names, math.inf)
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            gc.collect()
            start = time.process_time()
            funcs[name]()
            best[name] = min(best[name], time.process_time() - start)
    return best
