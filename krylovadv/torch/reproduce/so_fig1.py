r"""Li et al., Fig. 1: mean input-gradient norm per attack iteration.

From Li et al., *On Norm-Agnostic Robustness of Adversarial Training*.

The paper plots :math:`\frac1B\sum_i\|\nabla_x L(x_i^{(t)})\|_2` for a naturally
trained model attacked by PGD (blue), TRADES attacked by PGD (orange) and TRADES
attacked by S-O (green).  Its claims: orange is much lower than blue (adversarial
training flattens the loss near natural examples, so PGD is inefficient), and
green is above orange (S-O finds the steep directions).  The paper does not state
the figure's threat model; we run ℓ∞ ε = 0.3 and ℓ2 ε = 4.0 (the two of Table 1).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..attacks import PGD, SO
from ..pretrained import load_pretrained
from . import ExperimentResult, ReproduceOptions, experiment
from ._common import one_thread, save_figure, sizes, test_digits

__all__ = ["FULL", "QUICK", "run"]

#: Sizes at ``--scale quick`` (a test monkeypatches these to tiny values).
QUICK: dict[str, int] = {"samples": 100, "steps": 20, "noise_samples": 10}
#: Sizes at ``--scale full``: a batch of 500 digits, the authors' S-O settings.
FULL: dict[str, int] = {"samples": 500, "steps": 20, "noise_samples": 10}

THREATS = {"linf": 0.3, "l2": 4.0}
CURVES = ["natural + PGD", "TRADES + PGD", "TRADES + S-O"]
#: Ratios that decide the claims: orange < FLAT × blue, green > STEEP × orange (means over t).
FLAT, STEEP = 0.5, 1.2


def _curves(size: dict[str, int], options: ReproduceOptions) -> dict[str, dict[str, list[float]]]:
    data = test_digits(size["samples"], options.seed)
    x = torch.from_numpy(data.images).to(options.device)
    y = torch.from_numpy(data.labels).to(options.device)
    natural = load_pretrained("natural", device=options.device)
    trades = load_pretrained("trades", device=options.device)
    steps, seed = size["steps"], options.seed
    out: dict[str, dict[str, list[float]]] = {}
    for norm, eps in THREATS.items():
        alpha = eps / 10 if norm == "linf" else 2.5 * eps / steps
        common = {"norm": norm, "eps": eps, "steps": steps, "alpha": alpha, "loss": "ce"}
        attacks = {
            "natural + PGD": PGD(natural, random_start=False, seed=seed, **common),
            "TRADES + PGD": PGD(trades, random_start=False, seed=seed, **common),
            "TRADES + S-O": SO(trades, samples=size["noise_samples"], seed=seed, **common),
        }
        out[norm] = {}
        for label, attack in attacks.items():
            trace = attack.run(x, y, trace=True).trace
            assert trace is not None
            out[norm][label] = [float(v) for v in trace.mean_grad_norm]
    return out


def _plot(curves: dict[str, dict[str, list[float]]], options: ReproduceOptions) -> list[str]:
    if options.output is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6))
    for ax, (norm, by_curve) in zip(np.atleast_1d(axes), curves.items(), strict=True):
        for label, color in zip(CURVES, ("tab:blue", "tab:orange", "tab:green"), strict=True):
            values = by_curve[label]
            ax.plot(range(len(values)), values, label=label, color=color)
        ax.set_title(f"{'ℓ∞ ε = 0.3' if norm == 'linf' else 'ℓ2 ε = 4.0'}")
        ax.set_xlabel("attack iteration t")
        ax.set_ylabel("mean ‖∇ₓL(xᵗ)‖₂")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, options.output, "so_fig1_grad_norm.png")


@experiment("so-fig1")
def run(options: ReproduceOptions) -> ExperimentResult:
    """Reproduce Li et al.'s Fig. 1: gradient norms along PGD and S-O iterates."""
    size = sizes(options, QUICK, FULL)
    start = time.perf_counter()
    with one_thread():
        curves = _curves(size, options)
    seconds = time.perf_counter() - start
    figures = _plot(curves, options)

    lines = [
        "| Threat | Curve | ours: mean over t | ours: t = 0 | ours: last t | paper |",
        "|---|---|---|---|---|---|",
    ]
    paper = {
        "natural + PGD": "blue: highest",
        "TRADES + PGD": "orange: much lower than blue",
        "TRADES + S-O": "green: above orange",
    }
    flat_ok, steep_ok, summary = [], [], []
    for norm, by_curve in curves.items():
        means = {label: float(np.mean(v)) for label, v in by_curve.items()}
        for label in CURVES:
            v = by_curve[label]
            lines.append(
                f"| {norm} ε = {THREATS[norm]} | {label} | {means[label]:.4g} | "
                f"{v[0]:.4g} | {v[-1]:.4g} | {paper[label]} |"
            )
        flat = means["TRADES + PGD"] / max(means["natural + PGD"], 1e-30)
        steep = means["TRADES + S-O"] / max(means["TRADES + PGD"], 1e-30)
        flat_ok.append(flat < FLAT)
        steep_ok.append(steep > STEEP)
        summary.append(f"{norm}: orange/blue = {flat:.2f}, green/orange = {steep:.2f}")
    table = "\n".join(lines)
    passed = sum(flat_ok) + sum(steep_ok)
    if passed == 2 * len(curves):
        verdict = "holds"
    elif passed == 0:
        verdict = "does not hold"
    else:
        verdict = "partly"
    reason = (
        f"claims 'orange < {FLAT} × blue' and 'green > {STEEP} × orange' (means over "
        f"iterations): {'; '.join(summary)}."
    )
    notes = [
        "Models: zoo small-cnn 'natural' and 'trades' (TRADES ℓ∞ ε = 0.3, β = 6), not the "
        "paper's Madry et al. network.",
        "The paper does not state Fig. 1's threat model or batch; we plot ℓ∞ ε = 0.3 and "
        f"ℓ2 ε = 4.0 on {size['samples']} test digits, {size['steps']} steps.",
        "All curves use the cross-entropy loss (so the three gradient norms are comparable; "
        "the authors' ℓ2 S-O uses a CW loss), step ε/10 (ℓ∞) or 2.5ε/steps (ℓ2), no random "
        f"start; S-O with σ = 0.7 and {size['noise_samples']} noise samples per step.",
        "The norm is that of the gradient at the iterate x^t (not at the noisy points).",
        f"{seconds:.0f} s on {options.device}.",
    ]
    return ExperimentResult(
        name="so-fig1",
        title="Li et al., On Norm-Agnostic Robustness of Adversarial Training, Fig. 1: mean "
        "input-gradient norm per attack iteration",
        scale=options.scale,
        seeds=[options.seed],
        samples=size["samples"],
        table=table,
        verdict=verdict,
        reason=reason,
        notes=notes,
        data={"curves": curves, "sizes": size, "seconds": seconds},
        figures=figures,
    )
