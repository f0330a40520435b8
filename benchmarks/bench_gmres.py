"""GMRES: krylovadv against scipy.sparse.linalg.gmres, and batched against a loop.

Both solvers get the same system, ``x0 = 0``, ``restart=30``, ``rtol=1e-6`` and a
fixed ``maxiter`` (restart cycles in both libraries).  The ``track_matvecs_*``
and ``track_true_residual_*`` benchmarks show that the two did the same work
and reached the same accuracy, so that the times compare like with like.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
import scipy.sparse.linalg as sla

import krylovadv

from .problems import CD_M_1E4, CD_M_1E5, RESTART, RTOL, LinearProblem, cd_problem, dense_batch
from .problems import dense_problem as _dense_problem
from .timing import Comparison, interleaved_min

#: Problem keys and builders.  ``maxiter`` lets cd_1e4 and the dense problems
#: converge; cd_1e5 stops after 5 cycles (150 inner iterations) in both solvers.
_BUILDERS = {
    "cd_1e4": lambda: cd_problem(CD_M_1E4, maxiter=20),
    "cd_1e5": lambda: cd_problem(CD_M_1E5, maxiter=5),
    "dense_200": lambda: _dense_problem(200, maxiter=10),
    "dense_500": lambda: _dense_problem(500, maxiter=10),
}
PROBLEM_KEYS = tuple(_BUILDERS)

#: Interleaved repetitions for the in-process ratios (min over these).
REPEATS = {"cd_1e5": 3}
DEFAULT_REPEATS = 5

BATCH, BATCH_N, BATCH_MAXITER = 32, 100, 10


@functools.cache
def get_problem(key: str) -> LinearProblem:
    """The (cached) problem called ``key``."""
    return _BUILDERS[key]()


def solve_krylovadv(p: LinearProblem) -> krylovadv.GMRESResult:
    """krylovadv.gmres with the comparison settings."""
    return krylovadv.gmres(p.A, p.b, rtol=p.rtol, restart=p.restart, maxiter=p.maxiter)


def solve_scipy(p: LinearProblem, A=None) -> tuple[np.ndarray, int]:
    """scipy.sparse.linalg.gmres with the same settings (optionally another ``A``)."""
    return sla.gmres(
        p.A if A is None else A, p.b, rtol=p.rtol, restart=p.restart, maxiter=p.maxiter
    )


def true_residual(A, b: np.ndarray, x: np.ndarray) -> float:
    """Relative true residual ``||b - A x|| / ||b||``, recomputed in float64."""
    return float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))


def solve_scipy_counted(p: LinearProblem) -> tuple[np.ndarray, int]:
    """scipy's solution and the number of products with ``A`` it made (counted by a wrapper)."""
    count = 0

    def matvec(v):
        nonlocal count
        count += 1
        return p.A @ v

    x, _ = solve_scipy(p, sla.LinearOperator(p.A.shape, matvec=matvec, dtype=p.b.dtype))
    return x, count


def scipy_matvecs(p: LinearProblem) -> int:
    """Number of products with ``A`` scipy's gmres makes."""
    return solve_scipy_counted(p)[1]


def measure_times(key: str, repeats: int | None = None) -> dict[str, float]:
    """Seconds per solve of each library on problem ``key``, interleaved, min of ``repeats``."""
    p = get_problem(key)
    repeats = repeats or REPEATS.get(key, DEFAULT_REPEATS)
    return interleaved_min(
        {"krylovadv": lambda: solve_krylovadv(p), "scipy": lambda: solve_scipy(p)},
        repeats=repeats,
    )


def measure_gmres(key: str) -> Comparison:
    """Times, matvec counts and true residuals of both solvers on problem ``key``."""
    p = get_problem(key)
    times = measure_times(key)
    res = solve_krylovadv(p)
    x_ref, ref_matvecs = solve_scipy_counted(p)
    return Comparison(
        name=f"gmres {p.name}, restart={RESTART}, rtol={RTOL:g}, maxiter={p.maxiter}",
        reference="scipy gmres",
        time_krylovadv=times["krylovadv"],
        time_reference=times["scipy"],
        work_krylovadv=int(res.matvecs),
        work_reference=ref_matvecs,
        error_krylovadv=true_residual(p.A, p.b, res.x),
        error_reference=true_residual(p.A, p.b, x_ref),
    )


class GMRESvsScipy:
    """Solve times, matvec counts and true residuals per problem."""

    params: ClassVar[list] = list(PROBLEM_KEYS)
    param_names: ClassVar[list[str]] = ["problem"]
    timeout = 240

    def setup(self, key):
        self.p = get_problem(key)

    def time_krylovadv(self, key):
        solve_krylovadv(self.p)

    def time_scipy(self, key):
        solve_scipy(self.p)

    def track_matvecs_krylovadv(self, key):
        return int(solve_krylovadv(self.p).matvecs)

    track_matvecs_krylovadv.unit = "matvecs"

    def track_matvecs_scipy(self, key):
        return scipy_matvecs(self.p)

    track_matvecs_scipy.unit = "matvecs"

    def track_true_residual_krylovadv(self, key):
        return true_residual(self.p.A, self.p.b, solve_krylovadv(self.p).x)

    track_true_residual_krylovadv.unit = "relative residual"

    def track_true_residual_scipy(self, key):
        return true_residual(self.p.A, self.p.b, solve_scipy(self.p)[0])

    track_true_residual_scipy.unit = "relative residual"


class GMRESRatioVsScipy:
    """Time ratio krylovadv / scipy, both measured in this process, interleaved."""

    timeout = 240

    def _ratio(self, key):
        times = measure_times(key)
        return times["krylovadv"] / times["scipy"]

    def track_ratio_vs_scipy_cd_1e4(self):
        return self._ratio("cd_1e4")

    track_ratio_vs_scipy_cd_1e4.unit = "ratio"

    def track_ratio_vs_scipy_cd_1e5(self):
        return self._ratio("cd_1e5")

    track_ratio_vs_scipy_cd_1e5.unit = "ratio"

    def track_ratio_vs_scipy_dense(self):
        return self._ratio("dense_500")

    track_ratio_vs_scipy_dense.unit = "ratio"

    def track_ratio_vs_scipy_dense_200(self):
        return self._ratio("dense_200")

    track_ratio_vs_scipy_dense_200.unit = "ratio"


# -- batched ------------------------------------------------------------------


@functools.cache
def get_batch() -> tuple[np.ndarray, np.ndarray]:
    """The (cached) batch: ``A`` of shape (32, 100, 100), ``b`` of shape (32, 100)."""
    return dense_batch(BATCH, BATCH_N)


def solve_batched(A, b) -> krylovadv.GMRESResult:
    """One batched krylovadv.gmres call on all systems (numpy or torch)."""
    return krylovadv.gmres(A, b, rtol=RTOL, restart=RESTART, maxiter=BATCH_MAXITER)


def solve_loop(A, b) -> list[krylovadv.GMRESResult]:
    """One krylovadv.gmres call per system, in a Python loop."""
    return [
        krylovadv.gmres(A[i], b[i], rtol=RTOL, restart=RESTART, maxiter=BATCH_MAXITER)
        for i in range(A.shape[0])
    ]


def solve_scipy_loop(A, b) -> list[np.ndarray]:
    """One scipy gmres call per system, in a Python loop."""
    return [
        sla.gmres(A[i], b[i], rtol=RTOL, restart=RESTART, maxiter=BATCH_MAXITER)[0]
        for i in range(A.shape[0])
    ]


def batch_residual(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    """Largest relative true residual over the batch."""
    r = b - np.einsum("bij,bj->bi", A, x)
    return float(np.max(np.linalg.norm(r, axis=1) / np.linalg.norm(b, axis=1)))


def measure_batch_times(repeats: int = DEFAULT_REPEATS) -> dict[str, float]:
    """Seconds for the whole batch: batched call, krylovadv loop, scipy loop."""
    A, b = get_batch()
    return interleaved_min(
        {
            "batched": lambda: solve_batched(A, b),
            "loop": lambda: solve_loop(A, b),
            "scipy_loop": lambda: solve_scipy_loop(A, b),
        },
        repeats=repeats,
    )


def _torch_batch():
    import torch

    A, b = get_batch()
    return torch.from_numpy(A), torch.from_numpy(b)


def measure_batched() -> list[Comparison]:
    """Batched call against a loop of krylovadv calls and a loop of scipy calls."""
    A, b = get_batch()
    times = measure_batch_times()
    res = solve_batched(A, b)
    loop = solve_loop(A, b)
    x_loop = np.stack([r.x for r in loop])
    x_scipy = np.stack(solve_scipy_loop(A, b))
    count = 0

    def matvec(v, M):
        nonlocal count
        count += 1
        return M @ v

    for i in range(A.shape[0]):
        op = sla.LinearOperator(A[i].shape, matvec=functools.partial(matvec, M=A[i]), dtype=b.dtype)
        sla.gmres(op, b[i], rtol=RTOL, restart=RESTART, maxiter=BATCH_MAXITER)
    label = f"gmres batch B={BATCH} dense {BATCH_N}x{BATCH_N}"
    batched_work = int(np.sum(res.matvecs))
    batched_err = batch_residual(A, b, res.x)
    return [
        Comparison(
            name=f"{label}: batched vs krylovadv loop",
            reference="krylovadv loop",
            time_krylovadv=times["batched"],
            time_reference=times["loop"],
            work_krylovadv=batched_work,
            work_reference=int(sum(r.matvecs for r in loop)),
            error_krylovadv=batched_err,
            error_reference=batch_residual(A, b, x_loop),
            error_name="max relative true residual",
        ),
        Comparison(
            name=f"{label}: batched vs scipy loop",
            reference="scipy loop",
            time_krylovadv=times["batched"],
            time_reference=times["scipy_loop"],
            work_krylovadv=batched_work,
            work_reference=count,
            error_krylovadv=batched_err,
            error_reference=batch_residual(A, b, x_scipy),
            error_name="max relative true residual",
        ),
    ]


def measure_torch_vs_numpy() -> list[Comparison]:
    """Batched solve with torch CPU float64 tensors against numpy arrays.

    Once with torch's default intra-op thread count and once with one thread
    (small tensors can lose more to thread synchronisation than they gain,
    especially on a loaded machine).  Empty without torch.
    """
    try:
        import torch

        At, bt = _torch_batch()
    except ImportError:
        return []
    A, b = get_batch()
    res_n = solve_batched(A, b)
    rows = []
    default_threads = torch.get_num_threads()
    try:
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            times = interleaved_min(
                {"torch": lambda: solve_batched(At, bt), "numpy": lambda: solve_batched(A, b)},
                repeats=DEFAULT_REPEATS,
            )
            res_t = solve_batched(At, bt)
            rows.append(
                Comparison(
                    name=(
                        f"gmres batch B={BATCH} dense {BATCH_N}x{BATCH_N}: torch CPU float64 "
                        f"({threads} thread{'s' if threads > 1 else ''}) vs numpy"
                    ),
                    reference="krylovadv numpy",
                    time_krylovadv=times["torch"],
                    time_reference=times["numpy"],
                    work_krylovadv=int(np.sum(res_t.matvecs)),
                    work_reference=int(np.sum(res_n.matvecs)),
                    error_krylovadv=batch_residual(A, b, res_t.x.numpy()),
                    error_reference=batch_residual(A, b, res_n.x),
                    error_name="max relative true residual",
                )
            )
    finally:
        torch.set_num_threads(default_threads)
    return rows


class GMRESBatched:
    """One batched call on (32, 100, 100) against a Python loop over the 32 systems."""

    timeout = 240

    def setup(self):
        self.A, self.b = get_batch()

    def time_batched_numpy(self):
        solve_batched(self.A, self.b)

    def time_loop_krylovadv(self):
        solve_loop(self.A, self.b)

    def time_loop_scipy(self):
        solve_scipy_loop(self.A, self.b)

    def track_ratio_batched_vs_loop(self):
        times = measure_batch_times()
        return times["batched"] / times["loop"]

    track_ratio_batched_vs_loop.unit = "ratio"

    def track_ratio_batched_vs_scipy_loop(self):
        times = measure_batch_times()
        return times["batched"] / times["scipy_loop"]

    track_ratio_batched_vs_scipy_loop.unit = "ratio"

    def track_matvecs_batched(self):
        return int(np.sum(solve_batched(self.A, self.b).matvecs))

    track_matvecs_batched.unit = "matvecs"

    def track_matvecs_loop(self):
        return int(sum(r.matvecs for r in solve_loop(self.A, self.b)))

    track_matvecs_loop.unit = "matvecs"

    def track_true_residual_batched(self):
        return batch_residual(self.A, self.b, solve_batched(self.A, self.b).x)

    track_true_residual_batched.unit = "relative residual"


class GMRESBatchedTorch:
    """The same batch with torch CPU float64 tensors (time only; compare with
    ``GMRESBatched.time_batched_numpy``), at torch's default thread count and at one thread.
    """

    params: ClassVar[list] = ["default", "1"]
    param_names: ClassVar[list[str]] = ["torch_threads"]
    timeout = 240

    def setup(self, threads):
        try:
            import torch

            self.At, self.bt = _torch_batch()
        except ImportError as exc:  # asv skips a benchmark whose setup raises this
            raise NotImplementedError("torch is not installed") from exc
        self.torch = torch
        self.default_threads = torch.get_num_threads()
        if threads != "default":
            torch.set_num_threads(int(threads))

    def teardown(self, threads):
        self.torch.set_num_threads(self.default_threads)

    def time_batched_torch(self, threads):
        solve_batched(self.At, self.bt)
