"""Qian et al., Table IV: Krylov dimension m reached per threshold tau.

From Qian et al., *Hessian-Free Second-Order Adversarial Examples for Adversarial Learning*.

For each clean test digit the SOAE inner solve (Algorithm 1, lines 4-17) runs
GMRES on ``H delta = g`` from ``delta^(0) = g``: the correction system
``H e = r_0 = g - H g`` from ``e = 0`` with the stop rule ``||r~_m|| / beta < tau``,
``beta = ||r_0||`` (exactly what :meth:`SOAE.solve` does).  One solve at the
smallest tau with a large cap gives m for every tau, read off the GMRES residual
history (the Arnoldi process up to step m does not depend on tau).  The Hessian
product is either exact (double backward) or the paper's forward finite
difference at eta = 1e-5, in float32 and in float64.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from . import EXPERIMENTS, ExperimentResult, ReproduceOptions, experiment
from ._common import digits, model, one_thread, save_figure, sizes

NAME = "soae-krylov-dim"
PAPER_TAUS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
#: Table IV, MNIST row (ResNet18 in the paper).
PAPER_M = {1e-5: 152, 1e-4: 71, 1e-3: 43, 1e-2: 26, 1e-1: 17}

#: Sizes at ``--scale quick`` (tests shrink them by monkeypatching).
QUICK: dict[str, Any] = {
    "samples": 32,
    "taus": PAPER_TAUS,
    "cap": 256,
    "eta": 1e-5,
    "model": "natural",
    "batch": 32,
}
#: Sizes at ``--scale full``: 1,000 test digits (the paper's sample count for Fig. 2/Table V).
FULL: dict[str, Any] = {
    "samples": 1000,
    "taus": PAPER_TAUS,
    "cap": 784,
    "eta": 1e-5,
    "model": "natural",
    "batch": 50,
}


def m_per_tau(history: Any, iterations: Any, taus: tuple[float, ...]) -> np.ndarray:
    """Krylov dimension per sample and tau from GMRES residual histories.

    ``m(tau)`` is the first inner iteration ``k >= 1`` whose residual estimate
    satisfies ``||r~_k|| / ||r~_0|| < tau``; a sample whose history never gets
    there (cap reached, or a breakdown) gets its total iteration count.
    """
    iterations = np.atleast_1d(np.asarray(iterations))
    if isinstance(history, np.ndarray) and history.ndim == 1:
        history = [history]
    out = np.zeros((len(taus), len(iterations)), dtype=np.int64)
    for i, h in enumerate(history):
        h = np.asarray(h, dtype=np.float64)
        beta = h[0] if h.size else 0.0
        for j, tau in enumerate(taus):
            if beta == 0 or not np.isfinite(beta):
                out[j, i] = 0
                continue
            hit = np.nonzero(h[1:] / beta < tau)[0]
            out[j, i] = int(hit[0]) + 1 if hit.size else int(iterations[i])
        # the stop rule of GMRES itself is rtol on the same estimate
    return out


def krylov_dims(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    hvp: str,
    dtype: torch.dtype,
    taus: tuple[float, ...],
    cap: int,
    eta: float,
    batch: int,
) -> np.ndarray:
    """Return m per tau (rows) and sample (columns) for one HVP method and dtype."""
    from ..attacks import SOAE

    net = net.to(dtype)
    attack = SOAE(
        net,
        eps=0.3,
        steps=1,
        tau=min(taus),
        max_krylov_dim=cap,
        hvp=hvp,
        eta=eta if hvp != "exact" else None,
    )
    parts = []
    for start in range(0, len(y), batch):
        xb, yb = x[start : start + batch].to(dtype), y[start : start + batch]
        found = attack.solve(xb, yb)
        parts.append(m_per_tau(found.gmres.residual_history, found.gmres.iterations, taus))
    net.float()
    return np.concatenate(parts, axis=1)


@experiment(NAME)
def run(options: ReproduceOptions) -> ExperimentResult:
    """Reproduce Table IV (MNIST row) with exact and finite-difference HVPs."""
    cfg = sizes(options, QUICK, FULL)
    taus = tuple(float(t) for t in cfg["taus"])
    start = time.perf_counter()
    cells: dict[str, np.ndarray] = {}
    with one_thread(options.device == "cpu"):
        x, y = digits(cfg["samples"], options.seed, options.device)
        net = model(cfg["model"], options.device)
        for hvp in ("exact", "fd-forward"):
            for dtype in (torch.float32, torch.float64):
                key = f"{hvp} {str(dtype).replace('torch.', '')}"
                cells[key] = krylov_dims(
                    net,
                    x,
                    y,
                    hvp=hvp,
                    dtype=dtype,
                    taus=taus,
                    cap=cfg["cap"],
                    eta=cfg["eta"],
                    batch=cfg["batch"],
                )
    seconds = time.perf_counter() - start
    cap = cfg["cap"]

    header = "| HVP, dtype | " + " | ".join(f"τ = {t:g}" for t in taus) + " |"
    lines = [header, "|---" * (len(taus) + 1) + "|"]
    lines.append(
        "| paper (MNIST, ResNet18, FD) | "
        + " | ".join(str(PAPER_M.get(t, "–")) for t in taus)
        + " |"
    )
    for key, m in cells.items():
        row = []
        for j in range(len(taus)):
            med, top = float(np.median(m[j])), int(m[j].max())
            capped = int((m[j] >= cap).sum())
            cell = f"{med:g} / {top}"
            if capped:
                cell += f" ({capped} at cap)"
            row.append(cell)
        name = key.replace("fd-forward", f"FD forward η={cfg['eta']:g}")
        lines.append(f"| ours: {name} (median / max) | " + " | ".join(row) + " |")
    table = "\n".join(lines)

    exact_max = max(int(cells[k].max()) for k in cells if k.startswith("exact"))
    paper_cols = [j for j, t in enumerate(taus) if t in PAPER_M]

    def close(key: str) -> bool:
        # within a factor 2 of the paper at every paper tau
        return all(
            0.5 * PAPER_M[taus[j]] <= np.median(cells[key][j]) <= 2 * PAPER_M[taus[j]]
            for j in paper_cols
        )

    def large(key: str) -> bool:
        # at least the paper's order of magnitude (or the cap) at the smallest tau
        j = int(np.argmin(taus))
        return float(np.median(cells[key][j])) >= 0.5 * PAPER_M.get(taus[j], 0)

    fd_like = [k for k in cells if k.startswith("fd") and (close(k) or large(k))]
    if any(close(k) for k in cells if k.startswith("exact")):
        verdict, reason = "holds", "the exact-Hessian solve needs m close to the paper's."
    elif fd_like:
        verdict = "partly"
        reason = (
            f"with the exact Hessian m ≤ {exact_max} at every τ (rank H ≤ K−1 = 9, so GMRES "
            "breaks down within ~10 steps); the paper's large m is reproduced only by the "
            f"finite-difference product ({', '.join(fd_like)}), i.e. it measures FD noise, "
            "not the Hessian's spectrum."
        )
    else:
        verdict = "does not hold"
        reason = (
            f"exact Hessian: m ≤ {exact_max} at every τ (rank ≤ K−1); FD products also "
            "do not give the paper's m."
        )

    figures: list[str] = []
    if options.output is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ax.plot(
            [t for t in taus if t in PAPER_M],
            [PAPER_M[t] for t in taus if t in PAPER_M],
            "k--o",
            label="paper (MNIST)",
        )
        for key, m in cells.items():
            ax.plot(taus, np.median(m, axis=1), "-o", label=f"ours: {key} (median)")
        ax.axhline(cap, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=10)
        ax.set_xlabel("τ")
        ax.set_ylabel("Krylov dimension m")
        ax.legend(fontsize=7)
        figures = save_figure(fig, options.output, "soae_krylov_dim.png")

    notes = [
        f"Model: the zoo's {cfg['model']!r} small CNN (ReLU, max-pool), not the paper's ResNet18.",
        f"{cfg['samples']} clean MNIST-10k test digits (seed {options.seed}); the paper does "
        "not state its sample count for Table IV.",
        "GMRES starts from δ⁽⁰⁾ = g (as Algorithm 1 and SOAE.solve): it solves H e = g − H g "
        "from e = 0 and stops at ‖r̃‖/β < τ with β = ‖g − H g‖; m is read per τ from the "
        f"residual-estimate history of one solve at τ = {min(taus):g}, capped at m = {cap}.",
        f"FD forward: (∇L(x + ηv) − ∇L(x))/η with η = {cfg['eta']:g}, as in the paper.",
        f"Runtime {seconds:.1f} s.",
    ]
    data = {
        "taus": list(taus),
        "paper": {str(t): PAPER_M[t] for t in taus if t in PAPER_M},
        "m": {k: v.tolist() for k, v in cells.items()},
        "cap": cap,
        "seconds": seconds,
    }
    return ExperimentResult(
        name=NAME,
        title=EXPERIMENTS[NAME][1],
        scale=options.scale,
        seeds=[options.seed],
        samples=int(cfg["samples"]),
        table=table,
        verdict=verdict,
        reason=reason,
        notes=notes,
        data=data,
        figures=figures,
    )
