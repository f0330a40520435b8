"""Input-Hessian products on the Madry CNN (krylovadv.torch.InputHessian), CPU, float32.

Three questions, each answered by a ratio measured in one process with
interleaved repetitions (see ``timing.interleaved_min``), on the Madry et al.
MNIST CNN (conv32-pool-conv64-pool-fc1024) at batch 128 on random images in
[0, 1]:

1. What does one Hessian-vector product cost, in input-gradient equivalents
   (time of ``H.matvec(V)`` on all 128 samples / time of one batched
   ``input_gradient``), for each exact variant and for the finite
   differences, and for the Gauss-Newton product :math:`J^T S J v`?
   (``exact-graph-build`` / ``gauss-newton-graph-build`` are the one-off costs
   of building the cached graphs, which also yield the gradient.)
2. How much does batched GMRES add above its products?  ``gmres`` is timed
   against ``k`` bare ``matvec`` calls on the same operator, ``k`` being the
   number of operator calls gmres made (on an operator that never compacts, so
   that every call costs one full-batch product).  Goal: at most 10 %.
3. How much does active-set compaction save when 90 % of the samples have
   converged?  Ten products on the 13 remaining samples, with the graph rebuilt
   for them (the default) against products through the full-batch graph.

Run ``python benchmarks/bench_torch_hvp.py`` for a Markdown table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import torch

import krylovadv
from krylovadv.torch import InputHessian, input_gradient

from .timing import interleaved_cpu_min
from .torch_problem import BATCH, get_problem

REPEATS = 5
#: Intra-op threads while timing: one thread makes the ratios far less sensitive to
#: other processes on the machine (an OpenMP team waits for its slowest thread).
THREADS = 1
PRODUCTS = (
    "exact-double-backward",
    "exact-forward-over-reverse",
    "fd-forward",
    "fd-central",
    "gauss-newton",
    "exact-graph-build",
    "gauss-newton-graph-build",
)
#: Fraction of converged samples in the compaction benchmark, and products timed.
CONVERGED_FRACTION = 0.9
COMPACTION_PRODUCTS = 10
#: One restart cycle of 5 steps: 5 products and 1 for the true residual per sample.
GMRES_OPTIONS = {"rtol": 1e-6, "restart": 5, "maxiter": 1}
GMRES_REPEATS = 3


def _cpu_min(funcs: Mapping[str, Callable[[], object]], *, repeats: int = REPEATS) -> dict:
    return interleaved_cpu_min(funcs, repeats=repeats, warmup=True)


def _directions(n: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(BATCH, n, generator=torch.Generator().manual_seed(seed))


def _operator(product: str, model, x, y) -> InputHessian:
    if product == "exact-double-backward":
        return InputHessian(model, x, y)
    if product == "exact-forward-over-reverse":
        return InputHessian(model, x, y, exact_variant="forward-over-reverse")
    return InputHessian(model, x, y, method=product)


def _contender(product: str):
    model, x, y = get_problem()
    if product == "exact-graph-build":
        return lambda: InputHessian(model, x, y)
    if product == "gauss-newton-graph-build":
        return lambda: InputHessian(model, x, y, method="gauss-newton")
    op = _operator(product, model, x, y)
    v = _directions(op.n)
    return lambda: op.matvec(v)


def product_costs(products=PRODUCTS, repeats: int = REPEATS) -> dict[str, float]:
    """One product on the whole batch, in input-gradient equivalents, for each product.

    All contenders and the reference gradient are timed in one interleaved loop.
    """
    model, x, y = get_problem()
    funcs = {"gradient": lambda: input_gradient(model, x, y)}
    funcs.update({product: _contender(product) for product in products})
    times = _cpu_min(funcs, repeats=repeats)
    return {product: times[product] / times["gradient"] for product in products}


def gmres_overhead(repeats: int = GMRES_REPEATS) -> dict[str, object]:
    """Time of gmres above the time of its operator calls, relative to the latter.

    Two measurements: ``interleaved`` compares a gmres solve with ``k`` bare
    full-batch ``matvec`` calls (``k`` = the calls gmres made); ``in_run`` times
    the operator calls inside the same solve (no drift between the two sides).
    """
    model, x, y = get_problem()
    op = InputHessian(model, x, y, rebuild_fraction=0.0)  # every call: one full product
    b = op.gradient.clone()
    v = _directions(op.n)
    calls, inside = [0], [0.0]
    plain_matvec = op.matvec

    def timed_matvec(rows, indices=None):
        start = time.process_time()
        out = plain_matvec(rows, indices)
        inside[0] += time.process_time() - start
        calls[0] += 1
        return out

    op.matvec = timed_matvec
    result = krylovadv.gmres(op, b, **GMRES_OPTIONS)
    k = calls[0]
    in_run = float("inf")

    def solve() -> object:
        nonlocal in_run
        inside[0] = 0.0
        start = time.process_time()
        krylovadv.gmres(op, b, **GMRES_OPTIONS)
        total = time.process_time() - start
        in_run = min(in_run, total / inside[0] - 1.0)

    def bare() -> object:
        for _ in range(k):
            plain_matvec(v)

    times = _cpu_min({"gmres": solve, "matvecs": bare}, repeats=repeats)
    return {
        "interleaved": times["gmres"] / times["matvecs"] - 1.0,
        "in_run": in_run,
        "calls": k,
        "iterations": np.asarray(result.iterations),
    }


def compaction_speedup(repeats: int = REPEATS) -> float:
    """Time without compaction / time with it, for products on the 10 % unconverged."""
    model, x, y = get_problem()
    active = max(1, round((1 - CONVERGED_FRACTION) * BATCH))
    idx = torch.as_tensor(np.random.default_rng(0).choice(BATCH, active, replace=False))
    v = _directions(x[0].numel())[:active]
    compacting = InputHessian(model, x, y)
    full_graph = InputHessian(model, x, y, rebuild_fraction=0.0)

    def with_compaction() -> object:
        compacting.clear_cache()  # the rebuild for the active samples is part of the cost
        for _ in range(COMPACTION_PRODUCTS):
            compacting.matvec(v, idx)

    def without() -> object:
        for _ in range(COMPACTION_PRODUCTS):
            full_graph.matvec(v, idx)

    times = _cpu_min({"with": with_compaction, "without": without}, repeats=repeats)
    return times["without"] / times["with"]


# -- asv ------------------------------------------------------------------------------
class TorchHVPCost:
    """Cost of one batched Hessian-vector product, in input-gradient equivalents."""

    params = (list(PRODUCTS),)
    param_names = ("product",)
    unit = "input-gradient equivalents"
    timeout = 120

    def setup(self, product: str) -> None:
        torch.set_num_threads(THREADS)
        get_problem()

    def track_cost(self, product: str) -> float:
        return product_costs((product,))[product]


class TorchGMRESOverhead:
    """Batched GMRES time above the time of its operator calls (goal: <= 10 %)."""

    unit = "percent"
    timeout = 120

    def setup(self) -> None:
        torch.set_num_threads(THREADS)
        get_problem()

    def track_overhead(self) -> float:
        # The in-run ratio (gmres vs its own operator calls) is immune to load drift.
        return 100.0 * gmres_overhead()["in_run"]


class TorchCompaction:
    """Speed-up of active-set compaction when 90 % of the samples have converged."""

    unit = "x"
    timeout = 120

    def setup(self) -> None:
        torch.set_num_threads(THREADS)
        get_problem()

    def track_speedup(self) -> float:
        return compaction_speedup()


def main() -> None:
    """Print every measurement as a Markdown table."""
    torch.set_num_threads(THREADS)
    print(
        f"Madry CNN, batch {BATCH}, float32, CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; min of {REPEATS} interleaved repetitions.\n"
    )
    print("| measurement | value |")
    print("|---|---|")
    for product, cost in product_costs().items():
        print(f"| {product} (gradient equivalents) | {cost:.2f} |")
    g = gmres_overhead()
    its = g["iterations"]
    print(
        f"| batched GMRES time above {g['calls']} bare matvecs "
        f"(iterations {its.min()}-{its.max()}) | {100 * g['interleaved']:.1f} % |"
    )
    print(
        f"| batched GMRES time above its own operator calls, same run | {100 * g['in_run']:.1f} % |"
    )
    print(
        f"| compaction speed-up, {100 * CONVERGED_FRACTION:.0f} % converged, "
        f"{COMPACTION_PRODUCTS} products | {compaction_speedup():.2f}x |"
    )


if __name__ == "__main__":
    main()
