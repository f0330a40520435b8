"""The MNIST attack demo run by ``krylovadv demo`` (the README's main job).

On the embedded MNIST test split, with the zoo's naturally trained and PGD-ℓ∞
trained small CNNs, it runs FGSM, PGD-ℓ∞/ℓ2, S-O-ℓ∞/ℓ2 and SOAE, evaluates
every attack on every clean-correct digit (independent protocol, so the
columns compare attacks), and writes a report folder: Markdown, JSON and PNG
plots (robust accuracy per attack; Li et al.'s Fig. 1 quantity, the mean input
gradient norm per attack iteration).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import load_mnist10k
from .attacks import FGSM, PGD, SO, SOAE
from .evaluate import EvaluationReport, _atomic_write_text, evaluate
from .pretrained import load_pretrained, load_registry
from .reproduce._common import write_png

__all__ = [
    "DEMO_MODELS",
    "DemoResult",
    "accuracy_figure",
    "build_demo_attacks",
    "gradient_figure",
    "run_attack_demo",
]

#: Zoo models the demo attacks.
DEMO_MODELS = ("natural", "pgd-linf")

#: Threat models of the demo (Li et al.'s MNIST radii: ℓ∞ 0.3; ℓ2 2.0, its smaller ℓ2 radius).
EPS_LINF = 0.3
EPS_L2 = 2.0


def build_demo_attacks(model: torch.nn.Module, *, steps: int = 20, seed: int = 0) -> dict[str, Any]:
    """Build the demo's attacks on ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    steps : int
        Iterations of the iterative attacks (S-O and SOAE use their own defaults
        scaled to this budget).
    seed : int
        Seed of every attack.

    Returns
    -------
    dict of str to Attack
        FGSM, PGD-ℓ∞, PGD-ℓ2, S-O-ℓ∞, S-O-ℓ2 and SOAE-ℓ∞.
    """
    return {
        "FGSM-linf": FGSM(model, eps=EPS_LINF, norm="linf"),
        "PGD-linf": PGD(model, norm="linf", eps=EPS_LINF, steps=steps, seed=seed),
        "PGD-l2": PGD(model, norm="l2", eps=EPS_L2, steps=steps, seed=seed),
        "SO-linf": SO(model, norm="linf", eps=EPS_LINF, steps=steps, seed=seed),
        "SO-l2": SO(model, norm="l2", eps=EPS_L2, steps=steps, seed=seed),
        "SOAE-linf": SOAE(model, norm="linf", eps=EPS_LINF, steps=max(1, steps // 2), seed=seed),
    }


@dataclass
class DemoResult:
    """Reports of the demo, one per model, and where they were written.

    Attributes
    ----------
    reports : dict of str to EvaluationReport
        Model name → evaluation.
    traces : dict
        Model name → attack name → mean ‖∇ₓL‖₂ per iteration.
    folder : Path or None
        The report folder.
    seconds : float
        Wall time.
    solver_rows : list of dict
        The solver demo's table (:func:`krylovadv.demo.run_solver_demo`), if it ran.
    settings : dict
        Samples, steps, seed, device and the models' weights sha256 (registry).
    """

    reports: dict[str, EvaluationReport]
    traces: dict[str, dict[str, list[float]]]
    folder: Path | None
    seconds: float
    solver_rows: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def header(self) -> list[str]:
        """Markdown lines stating what the demo ran: models, data, radii, steps, seeds, version."""
        from .. import __version__

        s = self.settings
        models = "; ".join(
            f"`{name}` (weights sha256 `{s.get('weights_sha256', {}).get(name, '?')}`)"
            for name in self.reports
        )
        return [
            f"- models: {models}",
            f"- data: embedded MNIST, split test, {s.get('samples', '?')} samples "
            f"(subset seed {s.get('seed', '?')})",
            f"- attacks: ε = {EPS_LINF} (ℓ∞), {EPS_L2} (ℓ2); {s.get('steps', '?')} steps "
            f"(SOAE: half as many); attack seed {s.get('seed', '?')}",
            "- protocol: independent (every attack on every clean-correct digit), "
            "95 % Wilson intervals",
            f"- krylovadv {__version__}, torch {torch.__version__}, device "
            f"{s.get('device', '?')}; elapsed {self.seconds:.1f} s",
            "",
        ]

    def to_markdown(self, *, solvers: bool = True) -> str:
        """Render the header, the solver table, the attack tables and the plots as Markdown.

        ``solvers=False`` leaves out the solver table (already printed by the CLI).
        """
        parts = ["# krylovadv demo: solvers, then attacks on the embedded MNIST test split", ""]
        parts += self.header()
        if solvers and self.solver_rows:
            parts += ["## Solvers: krylovadv.gmres against scipy", "", *_solver_table(self), ""]
        for name, report in self.reports.items():
            parts += [f"## Model `{name}`", "", report.to_markdown(), ""]
        parts += [
            "## Plots",
            "",
            "![Accuracy per attack with 95 % intervals](robust_accuracy.png)",
            "",
            "![Input-gradient norm along the attack (Li et al., Fig. 1)](gradient_norm.png)",
            "",
            f"Total wall time: {self.seconds:.1f} s.",
        ]
        return "\n".join(parts)


#: Columns of the solver table (those of ``krylovadv demo``'s printed table).
SOLVER_COLUMNS = ("experiment", "solver", "time_s", "matvecs", "relative_residual", "note")


def _solver_table(result: DemoResult) -> list[str]:
    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(SOLVER_COLUMNS) + " |", "|" + "---|" * len(SOLVER_COLUMNS)]
    for row in result.solver_rows:
        lines.append("| " + " | ".join(cell(row.get(c, "")) for c in SOLVER_COLUMNS) + " |")
    return lines


def run_attack_demo(
    *,
    samples: int = 200,
    steps: int = 20,
    seed: int = 0,
    device: str = "cpu",
    output: str | Path | None = "krylovadv-report",
    progress: bool | None = None,
    models: tuple[str, ...] = DEMO_MODELS,
    solver_rows: list[dict[str, Any]] | None = None,
) -> DemoResult:
    """Attack the zoo's MNIST models and write the report folder.

    Parameters
    ----------
    samples : int
        Test digits (a seeded random subset of the 2,000-digit test split).
    steps : int
        Iterations of the iterative attacks.
    seed : int
        Seed of the subset and of the attacks.
    device : str
        ``"cpu"`` or ``"cuda"``.
    output : str or Path or None
        Report folder (``report.md``, ``report.json``, ``robust_accuracy.png``,
        ``gradient_norm.png``); ``None`` writes nothing.
    progress : bool or None
        Progress bars; ``None`` (default): only when stderr is a terminal.
    models : tuple of str
        Zoo names to attack.
    solver_rows : list of dict, optional
        The solver demo's rows, to include in the report.

    Returns
    -------
    DemoResult
    """
    if samples < 1 or steps < 1:
        raise ValueError(f"samples and steps must be >= 1; got {samples}, {steps}.")
    started = time.perf_counter()
    data = load_mnist10k("test").subset(samples, seed=seed)
    x = torch.as_tensor(data.images, device=device)
    y = torch.as_tensor(data.labels, device=device)
    reports, traces = {}, {}
    for name in models:
        model = load_pretrained(name, device=device)
        attacks = build_demo_attacks(model, steps=steps, seed=seed)
        reports[name] = evaluate(
            model,
            data,
            attacks,
            cascade=False,
            device=device,
            progress=progress,
            meta={
                "model": name,
                "samples": samples,
                "seed": seed,
                "steps": steps,
                "data": data.name,
                "device": device,
            },
        )
        # Li et al.'s Fig. 1: the mean input-gradient norm along the iterations.
        traces[name] = {}
        for label in ("PGD-linf", "SO-linf"):
            run = attacks[label].run(x, y, trace=True, progress=progress)
            traces[name][label] = run.trace.mean_grad_norm.tolist()
    registry = load_registry()["models"]
    settings = {
        "samples": samples,
        "steps": steps,
        "seed": seed,
        "device": device,
        "weights_sha256": {name: registry[name]["sha256"] for name in models},
    }
    result = DemoResult(
        reports, traces, None, time.perf_counter() - started, list(solver_rows or []), settings
    )
    if output is not None:
        result.folder = _write_report(result, Path(output))
    return result


def _write_report(result: DemoResult, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(folder / "report.md", result.to_markdown() + "\n")
    payload = {
        "seconds": result.seconds,
        "settings": result.settings,
        "solvers": result.solver_rows,
        "traces": result.traces,
        "reports": {k: v.to_dict() for k, v in result.reports.items()},
    }
    _atomic_write_text(folder / "report.json", json.dumps(payload, indent=2, default=str))
    _plot(result, folder)
    return folder


def accuracy_figure(result: DemoResult) -> Any:
    """Bar chart of clean and robust accuracy per attack and model, with 95 % Wilson intervals.

    Every bar carries its value as a label, so a 0 % bar (no height) is still seen.
    """
    import matplotlib.pyplot as plt

    names = list(result.reports)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(names), 1)
    labels: list[str] = []
    for k, name in enumerate(names):
        rows = result.reports[name].rows()[:-1]  # clean and one per attack (no worst case)
        labels = [r["attack"] for r in rows]
        positions = np.arange(len(rows)) + k * width
        values = np.array([100 * r["accuracy"] for r in rows])
        errors = np.array(
            [
                [100 * (r["accuracy"] - r["ci_low"]) for r in rows],
                [100 * (r["ci_high"] - r["accuracy"]) for r in rows],
            ]
        )
        bars = ax.bar(positions, values, width, yerr=errors, capsize=3, label=name)
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], padding=2, fontsize=7)
    ax.set_xticks(np.arange(len(labels)) + width * (len(names) - 1) / 2, labels, rotation=20)
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%), 95 % Wilson interval")
    ax.set_title("Accuracy on embedded MNIST test digits")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def gradient_figure(result: DemoResult) -> Any:
    """Mean input-gradient norm per attack iteration (Li et al., Fig. 1), integer ticks."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, per_attack in result.traces.items():
        for label, values in per_attack.items():
            ax.plot(np.arange(len(values)), values, marker=".", label=f"{name} + {label}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("attack iteration")
    ax.set_ylabel("mean ‖∇ₓL‖₂")
    ax.set_yscale("log")
    ax.set_title("Input-gradient norm along the attack (Li et al., Fig. 1)")
    ax.legend()
    fig.tight_layout()
    return fig


def _plot(result: DemoResult, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for make, name in (
        (accuracy_figure, "robust_accuracy.png"),
        (gradient_figure, "gradient_norm.png"),
    ):
        fig = make(result)
        _save_figure(fig, folder / name)
        plt.close(fig)


def _save_figure(fig: Any, path: Path) -> None:
    write_png(fig, path, dpi=120)
