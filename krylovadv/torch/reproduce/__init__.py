"""Reproductions of the papers' tables and figures: ``krylovadv reproduce EXPERIMENT``.

Each experiment is one module of this package that registers a function with
:func:`experiment`; it returns an :class:`ExperimentResult` holding our table
next to the paper's numbers, a one-line verdict (holds / does not hold /
partly, and why), the scale, seeds and sample counts, and a confidence interval
for every accuracy.  ``quick`` is sized for a CPU (fewer digits, steps and grid
values: minutes per experiment with the zoo's small models, about 10 CPU minutes
per madry-cnn model for ``so-table1`` and ``soae-table1``); ``full`` is the
papers' protocol, for a GPU (minutes on one H200).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..evaluate import _atomic_write_text, wilson_interval

__all__ = [
    "EXPERIMENTS",
    "ExperimentResult",
    "ReproduceOptions",
    "Verdict",
    "experiment",
    "format_accuracy",
    "run_experiment",
]

Verdict = Literal["holds", "does not hold", "partly"]
Scale = Literal["quick", "full"]

#: Experiment name → (module, title); modules are imported on first use.
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "so-table1": (
        "so_table1",
        "Li et al., On Norm-Agnostic Robustness of Adversarial Training, Table 1: robust "
        "accuracy of adversarially trained MNIST models under PGD and S-O attacks",
    ),
    "so-fig1": (
        "so_fig1",
        "Li et al., On Norm-Agnostic Robustness of Adversarial Training, Fig. 1: mean "
        "input-gradient norm per attack iteration",
    ),
    "soae-table1": (
        "soae_table1",
        "Qian et al., Hessian-Free Second-Order Adversarial Examples for Adversarial "
        "Learning, Table I: MNIST models under FGSM, PGD and SOAE, with the strongest "
        "first-order baseline",
    ),
    "soae-krylov-dim": (
        "soae_krylov_dim",
        "Qian et al., Hessian-Free Second-Order Adversarial Examples for Adversarial "
        "Learning, Table IV: Krylov dimension m per tau, exact and finite-difference HVPs",
    ),
    "soae-eta": (
        "soae_eta",
        "Qian et al., Hessian-Free Second-Order Adversarial Examples for Adversarial "
        "Learning, Fig. 1: accuracy against the finite-difference step eta",
    ),
    "soae-iters": (
        "soae_iters",
        "Qian et al., Hessian-Free Second-Order Adversarial Examples for Adversarial "
        "Learning, Fig. 3: accuracy against the iteration count N",
    ),
    "soae-psnr": (
        "soae_psnr",
        "Qian et al., Hessian-Free Second-Order Adversarial Examples for Adversarial "
        "Learning, Table V: PSNR and SSIM of FGSM, PGD and SOAE examples",
    ),
}

_RUNNERS: dict[str, Callable[[ReproduceOptions], ExperimentResult]] = {}


@dataclass(frozen=True)
class ReproduceOptions:
    """How to run an experiment.

    Attributes
    ----------
    scale : {"quick", "full"}
        ``quick``: sized for a CPU; ``full``: the papers' protocols (GPU advised).
    seed : int
        Seed of sample subsets and attacks.
    device : str
        Torch device.
    output : Path or None
        Folder for figures (the runner writes ``report.md``/``result.json``).
    progress : bool
        Show progress bars.
    """

    scale: Scale = "quick"
    seed: int = 0
    device: str = "cpu"
    output: Path | None = None
    progress: bool = False


@dataclass
class ExperimentResult:
    """One reproduced table or figure.

    Attributes
    ----------
    name, title : str
        Experiment name and what it reproduces.
    scale : str
        ``quick`` or ``full``.
    seeds : list of int
        Seeds used.
    samples : int
        Test samples per cell.
    table : str
        Markdown: our numbers next to the paper's (accuracies with 95 % CIs).
    verdict : {"holds", "does not hold", "partly"}
        Whether the paper's claim holds at this scale.
    reason : str
        One line: why.
    notes : list of str
        Deviations from the paper's protocol (models, steps, scale).
    data : dict
        Raw numbers (JSON-serialisable).
    figures : list of str
        PNG files written next to the report.
    command : str, optional
        The command line that produced the report (default: ``krylovadv reproduce
        NAME --scale SCALE``; a tool that runs the experiment on other models
        names itself here).
    """

    name: str
    title: str
    scale: str
    seeds: list[int]
    samples: int
    table: str
    verdict: Verdict
    reason: str
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    command: str | None = None

    def to_markdown(self) -> str:
        """Render the report: title, protocol, table, verdict, notes, figures."""
        lines = [
            f"# {self.title}",
            "",
            f"`{self.command or f'krylovadv reproduce {self.name} --scale {self.scale}'}`: "
            f"{self.samples} test digits per cell, seeds {self.seeds}.",
            "",
            self.table,
            "",
            f"**Verdict: {self.verdict}.** {self.reason}",
        ]
        if self.notes:
            lines += ["", "Protocol notes:"] + [f"- {note}" for note in self.notes]
        lines += [""] + [f"![{name}]({name})" for name in self.figures]
        return "\n".join(lines).rstrip() + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write ``report.md`` and ``result.json`` atomically into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(folder / "report.md", self.to_markdown())
        _atomic_write_text(folder / "result.json", json.dumps(asdict(self), indent=2, default=str))
        return folder


def experiment(
    name: str,
) -> Callable[
    [Callable[[ReproduceOptions], ExperimentResult]], Callable[[ReproduceOptions], ExperimentResult]
]:
    """Register the runner of experiment ``name`` (a key of :data:`EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; add it to EXPERIMENTS first.")

    def register(
        runner: Callable[[ReproduceOptions], ExperimentResult],
    ) -> Callable[[ReproduceOptions], ExperimentResult]:
        _RUNNERS[name] = runner
        return runner

    return register


def format_accuracy(correct: int, total: int) -> str:
    """Format an accuracy with its 95 % Wilson interval, e.g. ``73.0 % [66.5, 78.7]``."""
    low, high = wilson_interval(correct, total)
    return f"{100 * correct / max(total, 1):.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def _import_experiment(module: str) -> bool:
    """Import an experiment module; False only if that module itself does not exist."""
    qualified = f"{__name__}.{module}"
    try:
        importlib.import_module(qualified)
    except ModuleNotFoundError as error:
        if error.name != qualified:
            raise  # a missing dependency inside the module is a real error
        return False
    return True


def available() -> list[str]:
    """Return the experiments whose module exists in this installation."""
    names = []
    for name, (module, _) in EXPERIMENTS.items():
        if _import_experiment(module):
            names.append(name)
    return names


def run_experiment(
    name: str,
    *,
    scale: Scale = "quick",
    seed: int = 0,
    device: str = "cpu",
    output: str | Path | None = "krylovadv-reproduce",
    progress: bool = False,
) -> ExperimentResult:
    """Run one experiment and write its report folder ``output/name``.

    Parameters
    ----------
    name : str
        A key of :data:`EXPERIMENTS`.
    scale : {"quick", "full"}
        Protocol size.
    seed : int
        Seed.
    device : str
        Torch device.
    output : str or Path or None
        Parent folder of the report (``None``: write nothing).
    progress : bool
        Show progress bars.

    Returns
    -------
    ExperimentResult
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}.")
    if scale not in ("quick", "full"):
        raise ValueError(f"scale must be 'quick' or 'full'; got {scale!r}.")
    module, _ = EXPERIMENTS[name]
    if not _import_experiment(module):
        raise NotImplementedError(f"experiment {name!r} is not implemented yet in this version.")
    folder = None if output is None else Path(output) / name
    options = ReproduceOptions(
        scale=scale, seed=seed, device=device, output=folder, progress=progress
    )
    result = _RUNNERS[name](options)
    if folder is not None:
        result.write(folder)
    return result
