"""Adversarial training: CPU time per epoch of each method relative to natural training.

One epoch of :class:`krylovadv.torch.training.Trainer` on a fixed subset of 512
embedded MNIST training digits (batch 128, 4 optimizer steps), ``small-cnn``,
float32, with the settings of the model zoo (:mod:`krylovadv.torch.zoo`):
10 inner steps for PGD-AT / TRADES / mixed, 3 SOAE steps with exact Hessian
products and :math:`m \\le 9` for SOAT, FGSM on a drawn source for ensemble.

Times are CPU times of this process with one intra-op thread, minimum over
interleaved repetitions (natural, method, method, natural, ...) after one
warm-up epoch each, so that the ratio is measured under the same conditions on
a shared machine.  Run ``python -m benchmarks.bench_train`` for a Markdown
table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch

from krylovadv.torch.models import build_model
from krylovadv.torch.training import TrainConfig, Trainer

from .timing import interleaved_cpu_min

SUBSET = 512
BATCH = 128
REPEATS = 3
#: Intra-op threads while timing.
THREADS = 1

#: Method name → TrainConfig fields (besides the common ones).
METHODS: dict[str, dict[str, Any]] = {
    "natural": {"method": "natural"},
    "pgd-at ℓ∞ (10 steps)": {"method": "pgd-at", "norm": "linf", "eps": 0.3},
    "pgd-at ℓ2 (10 steps)": {"method": "pgd-at", "norm": "l2", "eps": 2.0},
    "trades (10 steps)": {"method": "trades", "eps": 0.3},
    "mixed, alternate (10 steps)": {"method": "mixed", "mixed_mode": "alternate"},
    "mixed, split (10 steps)": {"method": "mixed", "mixed_mode": "split"},
    "soat (3 SOAE steps, m ≤ 9)": {"method": "soat", "steps": 3, "soat_max_krylov_dim": 9},
    "ensemble (FGSM, 1 source)": {"method": "ensemble", "ensemble_sources": ["random"]},
}


def _cpu_min(funcs: Mapping[str, Callable[[], object]], *, repeats: int = REPEATS) -> dict:
    return interleaved_cpu_min(funcs, repeats=repeats, warmup=True)


@functools.cache
def get_trainer(name: str) -> Trainer:
    """A trainer of method ``name`` on the fixed 512-digit subset (no evaluation)."""
    fields = dict(
        model="small-cnn",
        epochs=1,
        batch_size=BATCH,
        train_size=SUBSET,
        optimizer="adam",
        lr=1e-3,
        steps=10,
        eval_subset=0,
        seed=0,
    )
    fields.update(METHODS[name])
    sources = None
    if fields["method"] == "ensemble":
        torch.manual_seed(123)
        sources = [build_model("small-cnn").eval()]
    return Trainer(TrainConfig(**fields), progress=False, sources=sources)


def run_epoch(trainer: Trainer) -> None:
    """One training epoch (the optimizer steps of :meth:`Trainer.fit`, no evaluation)."""
    for k, index in enumerate(trainer.epoch_batches(0)):
        trainer.train_step(trainer.model, trainer.images[index], trainer.labels[index], k)


def _one_thread(func: Callable[[], Any]) -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return func()
    finally:
        torch.set_num_threads(threads)


def relative_cost(name: str) -> tuple[float, float]:
    """(CPU seconds per epoch of ``name``, ratio to natural), measured interleaved."""

    def measure() -> dict[str, float]:
        funcs = {"natural": lambda: run_epoch(get_trainer("natural"))}
        if name != "natural":
            funcs[name] = lambda: run_epoch(get_trainer(name))
        return _cpu_min(funcs)

    times = _one_thread(measure)
    return times[name], times[name] / times["natural"]


class TrainEpochCost:
    """asv: CPU time of one epoch per method, and its ratio to natural training."""

    params = (list(METHODS),)
    param_names = ("method",)
    timeout = 300

    def setup(self, name: str) -> None:
        get_trainer(name)
        get_trainer("natural")

    def time_epoch(self, name: str) -> None:
        _one_thread(lambda: run_epoch(get_trainer(name)))

    def track_cost_relative_to_natural(self, name: str) -> float:
        return relative_cost(name)[1]

    track_cost_relative_to_natural.unit = "× natural"  # type: ignore[attr-defined]


def main() -> None:
    rows = ["| method | CPU s / epoch (512 digits) | × natural |", "|---|---|---|"]
    for name in METHODS:
        seconds, ratio = relative_cost(name)
        rows.append(f"| {name} | {seconds:.2f} | {ratio:.1f} |")
    print(
        f"small-cnn, batch {BATCH}, {SUBSET} digits ({SUBSET // BATCH} steps), "
        f"{THREADS} thread, CPU time, min of {REPEATS} interleaved repetitions"
    )
    print()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
