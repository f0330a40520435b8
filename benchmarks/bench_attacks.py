"""Attack steps on the Madry CNN (krylovadv.torch.attacks), CPU, float32.

Two questions, each answered by a ratio measured in one process with
interleaved repetitions, on the Madry et al. MNIST CNN
(conv32-pool-conv64-pool-fc1024, untrained weights) at batch 128 on random
images in [0, 1]:

1. What does one attack step cost, in input-gradient equivalents (time of the
   attack with ``steps=1`` / time of one batched ``input_gradient``)?
   Expected: PGD about 1, S-O about ``samples`` (10), SOAE about
   ``1.15 (m + 2) + 1`` with exact products (one gradient graph, then
   :math:`Hg`, :math:`m` Arnoldi products and GMRES's true-residual check, at
   about 1.15 gradients each) and about ``m + 3`` with forward differences.
   The mean Krylov dimension ``m`` of that step is reported with it.
2. How long does a 10-step PGD take against ``torchattacks.PGD`` on the same
   model and batch (goal: ratio at most 1.0)?

Times are CPU times of this process with one intra-op thread, minimum over
interleaved repetitions (A, B, B, A, ...): on a shared machine that is what a
step costs, whatever else runs (cache and memory-bandwidth contention still
show up as noise of a few percent).  Run ``python benchmarks/bench_attacks.py``
(or ``python -m benchmarks.bench_attacks``) for a Markdown table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np
import torch

from krylovadv.torch import input_gradient
from krylovadv.torch.attacks import PGD, SO, SOAE, SOPower

from .timing import interleaved_cpu_min
from .torch_problem import BATCH, get_problem

REPEATS = 4
#: Intra-op threads while timing (one thread: ratios insensitive to other processes).
THREADS = 1
EPS = 0.3
PGD_STEPS = 10

#: The attacks whose single step is timed, by name.
ATTACKS: dict[str, Callable[[torch.nn.Module], object]] = {
    "PGD": lambda model: PGD(model, eps=EPS, steps=1, random_start=False),
    "SO (10 samples)": lambda model: SO(model, eps=EPS, steps=1, samples=10),
    "SOPower (exact, 10 products)": lambda model: SOPower(model, eps=EPS, steps=1, power_iters=10),
    "SOAE (exact)": lambda model: SOAE(model, eps=EPS, steps=1),
    "SOAE (fd-forward)": lambda model: SOAE(model, eps=EPS, steps=1, hvp="fd-forward"),
}


def _cpu_min(funcs: Mapping[str, Callable[[], object]], *, repeats: int = REPEATS) -> dict:
    return interleaved_cpu_min(funcs, repeats=repeats, warmup=False)


def step_costs(names=tuple(ATTACKS), repeats: int = REPEATS) -> dict[str, float]:
    """One step of each attack on the whole batch, in input-gradient equivalents."""
    model, x, y = get_problem()
    funcs = {"gradient": lambda: input_gradient(model, x, y)}
    for name in names:
        attack = ATTACKS[name](model)
        funcs[name] = functools.partial(attack, x, y)
    times = _cpu_min(funcs, repeats=repeats)
    return {name: times[name] / times["gradient"] for name in names}


def krylov_dims(name: str) -> np.ndarray:
    """Krylov dimension ``m`` per sample of the first step of an SOAE variant."""
    model, x, y = get_problem()
    return ATTACKS[name](model).run(x, y, trace=False).diagnostics["krylov_dim"][0]


def pgd_vs_torchattacks(repeats: int = REPEATS) -> dict[str, float]:
    """Seconds of a 10-step Linf PGD, ours and torchattacks', and their ratio."""
    import torchattacks

    model, x, y = get_problem()
    alpha = 2.5 * EPS / PGD_STEPS
    ours = PGD(model, eps=EPS, alpha=alpha, steps=PGD_STEPS)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=alpha, steps=PGD_STEPS, random_start=True)
    times = _cpu_min(
        {"krylovadv": lambda: ours(x, y), "torchattacks": lambda: theirs(x, y)}, repeats=repeats
    )
    return {**times, "ratio": times["krylovadv"] / times["torchattacks"]}


# -- asv ------------------------------------------------------------------------------
class AttackStepCost:
    """Cost of one attack step on a batch of 128, in input-gradient equivalents."""

    params = (list(ATTACKS),)
    param_names = ("attack",)
    unit = "input-gradient equivalents"
    timeout = 60

    def setup(self, name: str) -> None:
        torch.set_num_threads(THREADS)
        get_problem()

    def track_step_cost(self, name: str) -> float:
        return step_costs((name,))[name]


class SOAEKrylovDimension:
    """Mean Krylov dimension ``m`` of SOAE's first step (exact products vs differences)."""

    params = (["SOAE (exact)", "SOAE (fd-forward)"],)
    param_names = ("attack",)
    unit = "Krylov dimension"
    timeout = 60

    def setup(self, name: str) -> None:
        torch.set_num_threads(THREADS)
        get_problem()

    def track_mean_krylov_dim(self, name: str) -> float:
        return float(np.mean(krylov_dims(name)))


class PGDVsTorchattacks:
    """Time of a 10-step Linf PGD over torchattacks.PGD's (goal: <= 1.0)."""

    unit = "ratio"
    timeout = 60

    def setup(self) -> None:
        try:
            import torchattacks  # noqa: F401
        except ImportError as error:  # asv skips a benchmark whose setup raises this
            raise NotImplementedError("torchattacks is not installed") from error
        torch.set_num_threads(THREADS)
        get_problem()

    def track_time_ratio(self) -> float:
        return pgd_vs_torchattacks()["ratio"]


def main() -> None:
    """Print every measurement as a Markdown table."""
    torch.set_num_threads(THREADS)
    print(
        f"Madry CNN, batch {BATCH}, float32, CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread; CPU time, min of {REPEATS} interleaved "
        "repetitions.\n"
    )
    print("| attack step | input-gradient equivalents | Krylov dimension m (min/mean/max) |")
    print("|---|---|---|")
    for name, cost in step_costs().items():
        dims = (
            ""
            if not name.startswith("SOAE")
            else (
                "{:.0f} / {:.1f} / {:.0f}".format(
                    *(f(krylov_dims(name)) for f in (np.min, np.mean, np.max))
                )
            )
        )
        print(f"| {name} | {cost:.2f} | {dims} |")
    pgd = pgd_vs_torchattacks()
    print(f"\n| {PGD_STEPS}-step Linf PGD | seconds |")
    print("|---|---|")
    print(f"| krylovadv | {pgd['krylovadv']:.3f} |")
    print(f"| torchattacks | {pgd['torchattacks']:.3f} |")
    print(f"| ratio (goal <= 1.0) | {pgd['ratio']:.3f} |")


if __name__ == "__main__":
    main()
