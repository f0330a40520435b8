"""Run every in-process comparison once and print a Markdown table.

Usage::

    python benchmarks/report.py [--threads N]

``--threads N`` restarts the script with ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
and ``MKL_NUM_THREADS`` set to ``N`` (BLAS and torch thread pools), which makes the
ratios much less sensitive to other load on a small machine; by default the
libraries' own thread counts are used.  No asv needed.

Each row times krylovadv and its reference in this process, interleaved,
keeping the minimum over the repetitions (see ``timing.py``), and records the
work done (matvecs) and the accuracy reached, so that equal work can be
checked.  Takes under a minute on two idle cores (several times longer on a
loaded machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import scipy

import krylovadv
from benchmarks import bench_fd, bench_gmres, bench_power
from benchmarks.timing import Comparison

HEADER = (
    "| benchmark | reference | krylovadv [ms] | reference [ms] | ratio | "
    "matvecs krylovadv | matvecs reference | residual krylovadv | residual reference |"
)
NOTES = """\
- ratio = krylovadv time / reference time (< 1: krylovadv faster); both timed in one
  process, interleaved, min over >= 3 repetitions.
- GMRES rows: matvecs = products with A (summed over the batch for batched rows);
  residual = ||b - A x|| / ||b|| recomputed from the returned x (batched: max over the batch).
- Power rows: matvecs = products with A; residual = ||A v - lambda v|| / |lambda|.
- FD-HVP rows: reference = one gradient evaluation of the same function, so ratio = cost of
  one product in gradients; matvecs = gradient evaluations per product (operator's counter);
  residual = ||Hv_fd - Hv|| / ||Hv|| against the exact Hessian."""


def _fmt_time(t: float) -> str:
    return f"{1e3 * t:.3g}"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)) or float(value).is_integer():
        return str(int(value))
    return f"{float(value):.3g}"


def _row(c: Comparison) -> str:
    return (
        f"| {c.name} | {c.reference} | {_fmt_time(c.time_krylovadv)} | "
        f"{_fmt_time(c.time_reference)} | {c.ratio:.3g} | {_fmt(c.work_krylovadv)} | "
        f"{_fmt(c.work_reference)} | {_fmt(c.error_krylovadv)} | {_fmt(c.error_reference)} |"
    )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def collect() -> list[Comparison]:
    """Run every comparison once (in a fixed order) and return the rows."""
    rows: list[Comparison] = []
    for key in bench_gmres.PROBLEM_KEYS:
        _progress(f"gmres {key} ...")
        rows.append(bench_gmres.measure_gmres(key))
    _progress("gmres batched vs loops ...")
    rows.extend(bench_gmres.measure_batched())
    _progress("gmres torch vs numpy ...")
    rows.extend(bench_gmres.measure_torch_vs_numpy())
    for key in bench_power.PROBLEM_KEYS:
        _progress(f"power {key} ...")
        rows.append(bench_power.measure_power(key))
    for n in bench_fd.SIZES:
        _progress(f"fd n={n} ...")
        rows.extend(bench_fd.measure_fd(n))
    return rows


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS/OpenMP threads (the script restarts itself with them set)",
    )
    return parser.parse_args()


def main() -> None:
    """Print the environment, the table and the notes."""
    args = _parse_args()
    if args.threads is not None and any(
        os.environ.get(var) != str(args.threads) for var in _THREAD_VARS
    ):
        # Thread pools are sized when numpy/torch load, so restart with the variables set.
        env = dict(os.environ, **dict.fromkeys(_THREAD_VARS, str(args.threads)))
        os.execve(
            sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env
        )
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    rows = collect()
    elapsed = time.perf_counter() - start
    versions = (
        f"krylovadv {krylovadv.__version__}, numpy {np.__version__}, scipy {scipy.__version__}"
    )
    try:
        import torch

        versions += f", torch {torch.__version__} ({torch.get_num_threads()} intra-op threads)"
    except ImportError:
        pass
    threads = ", ".join(f"{var}={os.environ.get(var, 'unset')}" for var in _THREAD_VARS)
    print(
        f"# krylovadv benchmark report\n\n{versions}; {threads}; "
        f"Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; measured in {elapsed:.0f} s "
        f"(1-min load average before the run: {load_before:.2f}).\n"
    )
    print(HEADER)
    print("|" + "---|" * HEADER.count(" |"))
    for c in rows:
        print(_row(c))
    print()
    print(NOTES)


if __name__ == "__main__":
    main()
