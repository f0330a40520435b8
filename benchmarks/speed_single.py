"""Single-system GMRES speed against scipy at equal matvecs (issue: speed at every size).

Usage::

    python benchmarks/speed_single.py [--repeats R] [--profile KEY]

Runs with one BLAS/OpenMP thread (the script restarts itself with the thread
variables set), ``restart=30``, ``rtol=1e-8`` and a fixed ``maxiter`` (restart
cycles in both libraries), on convection-diffusion with 10⁴ and 4·10⁴ unknowns
and a dense n = 500 system.  Prints a Markdown table: times (min over
interleaved repetitions), ratio, matvecs and true relative residuals of both.
``--profile KEY`` prints a cProfile of krylovadv on one problem instead.
``--baseline DIR`` also times the ``krylovadv`` package found in ``DIR`` (e.g. an
older commit: ``git archive <commit> krylovadv | tar -x -C /tmp/base``), interleaved in the same
process, for a before/after table that the machine's load affects equally.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
if __name__ == "__main__" and any(os.environ.get(v) != "1" for v in _THREAD_VARS):
    # Thread pools are sized when numpy loads: restart with one thread.  Only as
    # a script: asv and pytest import every module of benchmarks/, and an exec
    # at import would replace their process.
    env = dict(os.environ, **dict.fromkeys(_THREAD_VARS, "1"))
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402

import krylovadv  # noqa: E402
from benchmarks.problems import cd_problem, dense_problem  # noqa: E402
from benchmarks.timing import interleaved_min  # noqa: E402

RTOL = 1e-8
PROBLEMS = {
    "cd_1e4": lambda: cd_problem(100, maxiter=20),
    "cd_4e4": lambda: cd_problem(200, maxiter=6),
    "dense_500": lambda: dense_problem(500, maxiter=10),
}


def _solve_ours(p, module=krylovadv):
    return module.gmres(p.A, p.b, rtol=RTOL, restart=30, maxiter=p.maxiter)


def _load_baseline(directory: str):
    """Import ``DIR/krylovadv`` under another name, beside the current one."""
    import importlib.util

    init = Path(directory) / "krylovadv" / "__init__.py"
    if not init.is_file():
        raise SystemExit(f"--baseline: no krylovadv package in {directory} ({init} missing)")
    name = "krylovadv_baseline"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _solve_scipy(p, A=None):
    return sla.gmres(p.A if A is None else A, p.b, rtol=RTOL, restart=30, maxiter=p.maxiter)


def _scipy_matvecs(p) -> int:
    count = 0

    def matvec(v):
        nonlocal count
        count += 1
        return p.A @ v

    _solve_scipy(p, sla.LinearOperator(p.A.shape, matvec=matvec, dtype=p.b.dtype))
    return count


def _residual(p, x) -> float:
    return float(np.linalg.norm(p.b - p.A @ x) / np.linalg.norm(p.b))


def main() -> None:
    """Print the table (or a profile)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", choices=sorted(PROBLEMS))
    parser.add_argument("--baseline", metavar="DIR", help="also time DIR/krylovadv")
    args = parser.parse_args()
    baseline = _load_baseline(args.baseline) if args.baseline else None
    if args.profile:
        import cProfile
        import pstats

        p = PROBLEMS[args.profile]()
        _solve_ours(p)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            _solve_ours(p)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
        return
    before = "" if baseline is None else " baseline [ms] | baseline ratio |"
    print(
        "| problem | krylovadv [ms] | scipy [ms] | ratio |" + before + " matvecs krylovadv "
        "| matvecs scipy | residual krylovadv | residual scipy |"
    )
    print("|---|---|---|---|" + ("---|---|" if baseline else "") + "---|---|---|---|")
    for build in PROBLEMS.values():
        p = build()
        funcs = {"ours": lambda p=p: _solve_ours(p), "scipy": lambda p=p: _solve_scipy(p)}
        if baseline is not None:
            funcs["baseline"] = lambda p=p: _solve_ours(p, baseline)
        times = interleaved_min(funcs, repeats=args.repeats)
        ours = _solve_ours(p)
        x_ref, _ = _solve_scipy(p)
        then = ""
        if baseline is not None:
            then = f" {1e3 * times['baseline']:.1f} | {times['baseline'] / times['scipy']:.2f} |"
        print(
            f"| {p.name}, maxiter={p.maxiter} | {1e3 * times['ours']:.1f} | "
            f"{1e3 * times['scipy']:.1f} | {times['ours'] / times['scipy']:.2f} |{then} "
            f"{int(ours.matvecs)} | {_scipy_matvecs(p)} | {_residual(p, ours.x):.2e} | "
            f"{_residual(p, x_ref):.2e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
