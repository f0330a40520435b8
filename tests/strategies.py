"""The suite's strategies (a thin re-export of the public :mod:`krylovadv.testing`) and checks.

Tests import ``from strategies import ...``; the problem families, the
hypothesis strategies and the builders live in :mod:`krylovadv.testing` so that
users can run their own solvers through the same problems.  The checks below
are the ones several solver test modules make.
"""

from __future__ import annotations

import numpy as np

import krylovadv.testing
from krylovadv import aslinearoperator
from krylovadv.testing import *  # noqa: F403 (the suite's names are exactly the public ones)

__all__ = [
    *krylovadv.testing.__all__,
    "assert_batch_equals_loop",
    "recording_operator",
    "solve_with_and_without_a_meta_default_device",
]


# --- checks shared by the solver test modules ---------------------------------------------


def assert_batch_equals_loop(solve, A, b, x0, systems, **kwargs):
    """Assert that sample ``i`` of ``solve(A, b, x0)`` is what solving system ``i`` alone gives.

    The same status, iterations and products, and the same ``x`` up to rounding
    amplified by the system's condition number.  Returns the batched result.
    """
    batch = solve(A, b, x0, **kwargs)
    for i, system in enumerate(systems):
        single = solve(A[i], b[i], x0[i], **kwargs)
        assert single.status == batch.sample(i).status
        assert single.iterations == batch.sample(i).iterations
        assert single.matvecs == batch.sample(i).matvecs
        scale = np.linalg.norm(single.x) + 1.0
        np.testing.assert_allclose(batch.x[i], single.x, atol=1e-9 * scale * system.cond)
    return batch


def recording_operator(A: np.ndarray):
    """Return a batched operator over the stack ``A`` and the list of sample indices it saw.

    Every product appends the indices it was called with, so a test can check that
    only unfinished samples reach the operator.
    """
    seen: list[list[int]] = []

    def matvec(X, idx):
        idx = np.asarray(idx)
        seen.append(idx.tolist())
        return np.einsum("kij,kj->ki", A[idx], X)

    B, n, _ = A.shape
    op = aslinearoperator(matvec, shape=(n, n), batch_size=B, vectorized=True, pass_indices=True)
    return op, seen


def solve_with_and_without_a_meta_default_device(calls, fields=("status", "iterations")):
    """Run each solver call plainly and under torch's "meta" default device; return the first.

    A default device that is not the inputs' (as a GPU default would be, with CPU
    inputs) must change nothing: ``x`` stays on the CPU and is bitwise the same, and so
    are the per-sample ``fields``.  On a machine without a GPU this is what tells a
    dropped ``device=`` argument apart.
    """
    import torch  # here, not at the top: most solver tests never need torch

    expected = [call() for call in calls]
    with torch.device("meta"):
        results = [call() for call in calls]
    for got, want in zip(results, expected, strict=True):
        assert got.x.device == torch.device("cpu")
        torch.testing.assert_close(got.x, want.x, rtol=0, atol=0)
        for field in fields:
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    return expected
