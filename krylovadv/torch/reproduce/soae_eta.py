"""Qian et al., Fig. 1: SOAE accuracy against the finite-difference step eta.

From Qian et al., *Hessian-Free Second-Order Adversarial Examples for Adversarial Learning*.

SOAE with ``hvp="fd-forward"`` at each eta, in float32 and float64 (model and
data converted with ``.double()``), next to SOAE with the exact HVP.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..evaluate import wilson_interval
from . import EXPERIMENTS, ExperimentResult, ReproduceOptions, experiment, format_accuracy
from ._common import digits, model, one_thread, save_figure, sizes

NAME = "soae-eta"
ETAS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)

QUICK: dict[str, Any] = {
    "samples": 32,
    "etas": ETAS,
    "steps": 5,
    "eps": 0.1,
    "models": ("natural",),
}
#: The paper's Fig. 1: standard, PGD- and SOAT-trained models (1,000 test images assumed).
FULL: dict[str, Any] = {
    "samples": 1000,
    "etas": ETAS,
    "steps": 10,
    "eps": 0.1,
    "models": ("natural", "pgd-linf", "soat"),
}


def _correct(net: torch.nn.Module, x, y, dtype, cfg: dict, **kw: Any) -> tuple[int, float]:
    from ..attacks import SOAE

    net = net.to(dtype)
    try:
        atk = SOAE(net, eps=cfg["eps"], steps=cfg["steps"], **kw)
        res = atk.run(x.to(dtype), y, trace=False)
        fallbacks = float(res.num_fallbacks) / max(1, cfg["steps"] * len(y))
        return int((~res.success).sum()), fallbacks
    finally:
        net.float()


@experiment(NAME)
def run(options: ReproduceOptions) -> ExperimentResult:
    """Reproduce Fig. 1 (standard-trained curve at quick scale)."""
    cfg = sizes(options, QUICK, FULL)
    etas = tuple(float(e) for e in cfg["etas"])
    n = int(cfg["samples"])
    start = time.perf_counter()
    fd: dict[str, dict[str, list[int]]] = {}
    fb: dict[str, dict[str, list[float]]] = {}
    exact: dict[str, dict[str, int]] = {}
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    with one_thread(options.device == "cpu"):
        x, y = digits(n, options.seed, options.device)
        for name in cfg["models"]:
            net = model(name, options.device)
            fd[name], fb[name], exact[name] = {}, {}, {}
            for dname, dtype in dtypes.items():
                exact[name][dname] = _correct(net, x, y, dtype, cfg, hvp="exact")[0]
                runs = [_correct(net, x, y, dtype, cfg, hvp="fd-forward", eta=e) for e in etas]
                fd[name][dname] = [c for c, _ in runs]
                fb[name][dname] = [f for _, f in runs]
    seconds = time.perf_counter() - start

    lines = [
        "| model | HVP, dtype | " + " | ".join(f"η = {e:g}" for e in etas) + " | exact HVP |",
        "|---" * (len(etas) + 3) + "|",
    ]
    for name in fd:
        for dname in dtypes:
            cells = " | ".join(format_accuracy(c, n) for c in fd[name][dname])
            lines.append(
                f"| {name} | FD forward, {dname} | {cells} | "
                f"{format_accuracy(exact[name][dname], n)} |"
            )
    lines.append(
        "| paper (ResNet18, STD/PGD/SOAT) | FD forward | accuracy rises for η ≥ 1e-4; "
        "at η = 1e-2 most examples are not adversarial; best for η ≤ 1e-5 |"
        + " |" * (len(etas) - 1)
        + " |"
    )
    table = "\n".join(lines)

    # Claim, float32 (the paper's precision): small eta (<= 1e-5) clearly better than 1e-2.
    name0 = next(iter(fd))
    c32 = dict(zip(etas, fd[name0]["float32"], strict=False))
    small = [c32[e] for e in etas if e <= 1e-5]
    large = c32.get(1e-2, max(c32.values()))
    worst_small = max(small) if small else large
    hi_small = wilson_interval(worst_small, n)[1]
    lo_large = wilson_interval(large, n)[0]
    if lo_large > hi_small and (large - worst_small) / n >= 0.2:
        verdict = "holds"
    elif large > worst_small and lo_large > hi_small:
        verdict = "partly"
    else:
        verdict = "does not hold"
    reason = (
        f"{name0}, float32: accuracy at η = 1e-2 is {100 * large / n:.1f} % vs at most "
        f"{100 * worst_small / n:.1f} % for η ≤ 1e-5 (exact HVP: "
        f"{100 * exact[name0]['float32'] / n:.1f} %); the claim needs η = 1e-2 clearly worse."
    )
    figures: list[str] = []
    if options.output is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for name in fd:
            for dname in dtypes:
                acc = 100 * np.asarray(fd[name][dname]) / n
                ax.plot(etas, acc, "-o", label=f"{name} FD {dname}")
                ax.axhline(
                    100 * exact[name][dname] / n,
                    ls=":",
                    color="grey",
                    label=f"{name} exact {dname}",
                )
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("η")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
        figures = save_figure(fig, options.output, "soae_eta.png")
    notes = [
        f"Models: {', '.join(cfg['models'])} (zoo small CNNs), not ResNet18; {n} MNIST-10k "
        f"test digits (seed {options.seed}); the paper also shows PGD- and SOAT-trained curves "
        "(full scale).",
        f"SOAE: ℓ∞ ε = {cfg['eps']}, {cfg['steps']} steps, α = 2.5ε/steps, τ = 1e-3, m ≤ 20, "
        "fallback to the gradient where the solve is not an ascent direction (fallback "
        "fraction per η, float32: "
        + ", ".join(f"{e:g}: {f:.2f}" for e, f in zip(etas, fb[name0]["float32"], strict=False))
        + ").",
        "ε = 0.1 rather than MNIST's usual 0.3: at ε = 0.3 the natural model falls to 0 % "
        "for every η and the exact HVP alike (measured), which cannot show an η effect; the "
        "paper does not state Fig. 1's ε.",
        f"Runtime {seconds:.1f} s.",
    ]
    return ExperimentResult(
        name=NAME,
        title=EXPERIMENTS[NAME][1],
        scale=options.scale,
        seeds=[options.seed],
        samples=n,
        table=table,
        verdict=verdict,
        reason=reason,
        notes=notes,
        data={
            "etas": list(etas),
            "fd_correct": fd,
            "exact_correct": exact,
            "fallback_fraction": fb,
            "seconds": seconds,
        },
        figures=figures,
    )
