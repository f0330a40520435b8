"""Peak memory per sample of GMRES against MINRES at ImageNet input size, measured.

For ``n = 3 * 224 * 224 = 150528`` (one ImageNet image) and Krylov dimensions
``m`` in {50, 200, 1000}, each solver runs exactly ``m`` steps (``rtol = 0``:
GMRES with ``restart = m, maxiter = 1``, MINRES with ``maxiter = m``) on a
synthetic diagonal operator in float32 (numpy, CPU), and :mod:`tracemalloc`
records the peak of the memory numpy allocated during the solve (numpy reports
its buffers to tracemalloc).  The right-hand side and the operator are
allocated before the measurement starts.  GMRES stores its ``m + 1`` basis
vectors, :math:`4 (m + 1) n` bytes (602 MB at ``m = 1000``); MINRES keeps a
fixed handful of vectors whatever ``m`` is.

The batch-size table divides a 24 GB budget by the per-sample peak: the
solver's memory only, not the network's (an input-Hessian product also holds
the autograd graph of the batch).

Run ``python -m benchmarks.memory_symmetric`` (a few minutes on one core);
``--batch 4`` checks that memory grows linearly with the batch.  Measured
(numpy 2.4, float32, one CPU; the batch-4 run gives the same per-sample
numbers within 10 %):

======  =====  =====================  ================  ===================
solver  m      peak per sample (MB)   vectors of ``n``  batch in 24 GB
======  =====  =====================  ================  ===================
GMRES   50     35.3                   58.7              679
MINRES  50     8.4                    14.0              2841
GMRES   200    125.9                  209.1             190
MINRES  200    8.5                    14.0              2839
GMRES   1000   628.6                  1044.1            38
MINRES  1000   8.5                    14.1              2831
======  =====  =====================  ================  ===================

At Qian et al.'s Table IV dimension (m about 2,200 on 224x224x3 images) GMRES
would need about 1.3 GB per sample; MINRES stays at 8.5 MB.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import numpy as np

import krylovadv

N = 3 * 224 * 224
KRYLOV_DIMS = (50, 200, 1000)
BUDGET_BYTES = 24e9


def _operator(n: int) -> krylovadv.LinearOperator:
    # A diagonal spread over [1, 1e4]: no solver converges within 1000 steps at rtol=0.
    diagonal = np.geomspace(1.0, 1e4, n).astype(np.float32)

    def matvec(x: np.ndarray) -> np.ndarray:
        return x * diagonal

    return krylovadv.aslinearoperator(matvec, shape=(n, n), vectorized=True)


def peak_bytes(solver: str, m: int, batch: int = 1, n: int = N) -> tuple[int, int]:
    """Peak bytes numpy allocated while ``solver`` ran ``m`` steps, and the steps taken."""
    A = _operator(n)
    b = np.random.default_rng(0).standard_normal((batch, n)).astype(np.float32)
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    if solver == "gmres":
        result = krylovadv.gmres(A, b, rtol=0.0, restart=m, maxiter=1)
    else:
        result = krylovadv.minres(A, b, rtol=0.0, maxiter=m)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    steps = int(np.max(result.iterations))
    del result
    gc.collect()
    return peak, steps


def main() -> None:
    """Print the per-sample peak memory table and the 24 GB batch-size table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dims", type=int, nargs="*", default=list(KRYLOV_DIMS))
    args = parser.parse_args()
    print(f"n = {N} (3x224x224), float32, numpy {np.__version__}, batch {args.batch}.\n")
    print("| solver | m | steps | peak per sample (MB) | bytes / (4 n) | batch for 24 GB |")
    print("|---|---|---|---|---|---|")
    for m in args.dims:
        for solver in ("gmres", "minres"):
            peak, steps = peak_bytes(solver, m, args.batch)
            per_sample = peak / args.batch
            fit = int(BUDGET_BYTES // per_sample)
            print(
                f"| {solver} | {m} | {steps} | {per_sample / 1e6:.1f} | "
                f"{per_sample / (4 * N):.1f} | {fit} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
