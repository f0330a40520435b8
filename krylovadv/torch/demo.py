"""The MNIST attack demo run by ``krylovadv demo`` (the README's main job).

On the embedded MNIST test split, with the zoo's naturally trained and PGD-ℓ∞
trained small CNNs, it runs FGSM, PGD-ℓ∞/ℓ2, S-O-ℓ∞/ℓ2 and SOAE, evaluates
every attack on every clean-correct digit (independent protocol, so the
columns compare attacks), and writes a report folder: Markdown, JSON and PNG
plots (robust accuracy per attack; seed 000's Fig. 1 quantity, the mean input
gradient norm per attack iteration).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import load_mnist10k
from .attacks import FGSM, PGD, SO, SOAE
from .evaluate import EvaluationReport, _atomic_write_text, evaluate
from .pretrained import load_pretrained
from .reproduce._common import write_png

__all__ = ["DEMO_MODELS", "DemoResult", "build_demo_attacks", "run_attack_demo"]

#: Zoo models the demo attacks.
DEMO_MODELS = ("natural", "pgd-linf")

#: Threat models of the demo (seed 000's MNIST radii: ℓ∞ 0.3; ℓ2 2.0, its smaller ℓ2 radius).
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
    """

    reports: dict[str, EvaluationReport]
    traces: dict[str, dict[str, list[float]]]
    folder: Path | None
    seconds: float

    def to_markdown(self) -> str:
        """Render all tables as Markdown."""
        parts = ["# krylovadv demo: attacks on the embedded MNIST test split", ""]
        for name, report in self.reports.items():
            meta = report.meta
            parts += [
                f"## Model `{name}`",
                "",
                f"{meta['samples']} test digits (seed {meta['seed']}), "
                f"ℓ∞ ε = {EPS_LINF}, ℓ2 ε = {EPS_L2}, {meta['steps']} steps.",
                "",
                report.to_markdown(),
                "",
            ]
        parts.append(f"Total wall time: {self.seconds:.1f} s.")
        return "\n".join(parts)


def run_attack_demo(
    *,
    samples: int = 200,
    steps: int = 20,
    seed: int = 0,
    device: str = "cpu",
    output: str | Path | None = "krylovadv-report",
    progress: bool = True,
    models: tuple[str, ...] = DEMO_MODELS,
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
    progress : bool
        Show progress bars.
    models : tuple of str
        Zoo names to attack.

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
        # Seed 000's Fig. 1: the mean input-gradient norm along the iterations.
        traces[name] = {}
        for label in ("PGD-linf", "SO-linf"):
            run = attacks[label].run(x, y, trace=True)
            traces[name][label] = run.trace.mean_grad_norm.tolist()
    result = DemoResult(reports, traces, None, time.perf_counter() - started)
    if output is not None:
        result.folder = _write_report(result, Path(output))
    return result


def _write_report(result: DemoResult, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(folder / "report.md", result.to_markdown() + "\n")
    payload = {
        "seconds": result.seconds,
        "traces": result.traces,
        "reports": {k: v.to_dict() for k, v in result.reports.items()},
    }
    _atomic_write_text(folder / "report.json", json.dumps(payload, indent=2, default=str))
    _plot(result, folder)
    return folder


def _plot(result: DemoResult, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.reports)
    attacks = [rec.name for rec in next(iter(result.reports.values())).attacks]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(names), 1)
    positions = np.arange(len(attacks) + 1)
    for k, name in enumerate(names):
        report = result.reports[name]
        values = [report.clean_accuracy] + [report.accuracy(a) for a in attacks]
        ax.bar(positions + k * width, [100 * v for v in values], width, label=name)
    ax.set_xticks(positions + width * (len(names) - 1) / 2, ["clean", *attacks], rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Robust accuracy on embedded MNIST test digits")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    _save_figure(fig, folder / "robust_accuracy.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, per_attack in result.traces.items():
        for label, values in per_attack.items():
            ax.plot(values, label=f"{name} + {label}")
    ax.set_xlabel("attack iteration")
    ax.set_ylabel("mean ‖∇ₓL‖₂")
    ax.set_yscale("log")
    ax.set_title("Input-gradient norm along the attack (seed 000, Fig. 1)")
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, folder / "gradient_norm.png")
    plt.close(fig)


def _save_figure(fig: Any, path: Path) -> None:
    write_png(fig, path, dpi=120)
