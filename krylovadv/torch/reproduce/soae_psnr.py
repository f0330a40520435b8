"""Qian et al., Table V: PSNR and SSIM of FGSM, PGD and SOAE examples on MNIST.

From Qian et al., *Hessian-Free Second-Order Adversarial Examples for Adversarial Learning*.

PSNR is ``10 log10(R^2 / MSE)`` per image, averaged over images, with the data
range R = 1 of our [0, 1] images; the paper's values (72-76 dB) are only
reachable with R = 255 applied to [0, 1] images, so that convention
(``PSNR_1 + 20 log10 255 = PSNR_1 + 48.13 dB``) is reported next to it.  SSIM
is Wang et al. (2004): an 11x11 Gaussian window with sigma = 1.5, K1 = 0.01,
K2 = 0.03, data range 1, 'valid' filtering (as their reference MATLAB code),
averaged over the SSIM map and then over images.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F

from . import EXPERIMENTS, ExperimentResult, ReproduceOptions, experiment
from ._common import digits, model, one_thread, save_figure, sizes

NAME = "soae-psnr"
#: Table V, MNIST column: (PSNR dB, SSIM).
PAPER = {"FGSM": (74.23, 0.86), "PGD": (72.30, 0.83), "AutoAttack": (71.49, 0.82),
         "SOAE": (76.08, 0.87)}  # fmt: skip
PSNR_255_OFFSET = 20 * math.log10(255.0)

QUICK: dict[str, Any] = {
    "samples": 64,
    "eps": (0.3, 8 / 255),
    "pgd_steps": 20,
    "soae_steps": 10,
    "model": "natural",
}
#: The paper averages over 1,000 examples.
FULL: dict[str, Any] = {
    "samples": 1000,
    "eps": (0.3, 8 / 255),
    "pgd_steps": 20,
    "soae_steps": 10,
    "model": "natural",
}


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    """Normalised 2-D Gaussian window, shape ``(size, size)``."""
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    data_range: float = 1.0,
    size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004), images ``(B, C, H, W)`` or ``(H, W)``.

    Channels are averaged.  Computed in float64 with 'valid' Gaussian filtering.
    """
    a = torch.as_tensor(a).double()
    b = torch.as_tensor(b).double()
    squeeze = a.dim() == 2
    if squeeze:
        a, b = a[None, None], b[None, None]
    _n, c, _h, _w = a.shape
    win = gaussian_window(size, sigma).to(a.device)[None, None].repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, groups=c)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    out = smap.mean(dim=(1, 2, 3))
    return out[0] if squeeze else out


def psnr(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image, ``10 log10(R^2 / MSE)`` (``inf`` for identical images)."""
    a = torch.as_tensor(a).double()
    b = torch.as_tensor(b).double()
    mse = ((a - b) ** 2).flatten(1 if a.dim() > 2 else 0).mean(dim=-1)
    return 10 * torch.log10(data_range**2 / mse)


def _attacks(net: torch.nn.Module, eps: float, cfg: dict, seed: int) -> dict[str, Any]:
    from ..attacks import FGSM, PGD, SOAE

    return {
        "FGSM": FGSM(net, eps=eps),
        "PGD": PGD(net, eps=eps, steps=cfg["pgd_steps"], seed=seed),
        "SOAE": SOAE(net, eps=eps, steps=cfg["soae_steps"]),
    }


@experiment(NAME)
def run(options: ReproduceOptions) -> ExperimentResult:
    """Reproduce Table V (MNIST column) on the natural zoo model."""
    cfg = sizes(options, QUICK, FULL)
    start = time.perf_counter()
    rows: dict[str, dict[str, float]] = {}
    examples: dict[str, torch.Tensor] = {}
    with one_thread(options.device == "cpu"):
        x, y = digits(cfg["samples"], options.seed, options.device)
        net = model(cfg["model"], options.device)
        for eps in cfg["eps"]:
            for name, atk in _attacks(net, eps, cfg, options.seed).items():
                res = atk.run(x, y, trace=False)
                xa = res.x_adv.detach()
                p = psnr(xa.cpu(), x.cpu())
                finite = torch.isfinite(p)
                s = ssim(xa.cpu(), x.cpu())
                rows[f"{name} ε={eps:.4g}"] = {
                    "attack": name,
                    "eps": float(eps),
                    "psnr1": float(p[finite].mean()) if finite.any() else float("inf"),
                    "unchanged": int((~finite).sum()),
                    "ssim": float(s.mean()),
                    "rms": float(((xa - x) ** 2).flatten(1).mean(1).sqrt().mean()),
                    "accuracy": float(res.robust_accuracy),
                }
                if eps == cfg["eps"][0]:
                    examples[name] = xa[:1].cpu()
    seconds = time.perf_counter() - start

    lines = [
        "| attack | ε (ℓ∞) | PSNR, R=1 (dB) | PSNR, R=255 on [0,1] (dB) | SSIM | "
        "paper PSNR | paper SSIM | robust acc. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        pp, ps = PAPER[r["attack"]]
        lines.append(
            f"| {r['attack']} | {r['eps']:.4g} | {r['psnr1']:.2f} | "
            f"{r['psnr1'] + PSNR_255_OFFSET:.2f} | {r['ssim']:.3f} | {pp:.2f} | {ps:.2f} | "
            f"{100 * r['accuracy']:.1f} % |"
        )
    table = "\n".join(lines)

    # Claim: SOAE has the highest PSNR and SSIM (least distortion) of the three.
    wins, checks = 0, 0
    for eps in cfg["eps"]:
        sub = {r["attack"]: r for r in rows.values() if r["eps"] == float(eps)}
        for metric in ("psnr1", "ssim"):
            checks += 1
            wins += sub["SOAE"][metric] >= max(sub["FGSM"][metric], sub["PGD"][metric])
    if wins == checks:
        verdict = "holds"
    elif wins == 0:
        verdict = "does not hold"
    else:
        verdict = "partly"
    reason = (
        f"SOAE has the highest PSNR/SSIM in {wins} of {checks} (ε, metric) cells; the paper's "
        "absolute dB values are only reachable with R = 255 on [0, 1] images, and SSIM "
        "levels differ (see notes)."
    )
    implied = {
        k: 10 ** ((PSNR_255_OFFSET - v[0]) / 20) for k, v in PAPER.items()
    }  # RMS on [0,1] implied by R=255
    notes = [
        f"Model: the zoo's {cfg['model']!r} small CNN, not the paper's ResNet18; "
        f"{cfg['samples']} test digits (paper: 1,000).",
        f"Attacks: FGSM; PGD {cfg['pgd_steps']} steps, α = 2.5ε/steps, random start; SOAE "
        f"{cfg['soae_steps']} steps, exact HVP, τ = 1e-3. ε = 0.3 (MNIST standard) and "
        "ε = 8/255 (the only ε the paper states, in its attack setup).",
        "Convention: with R = 1 an ℓ∞ perturbation of size ε has PSNR ≥ −20 log10 ε "
        f"({-20 * math.log10(0.3):.2f} dB at 0.3, {-20 * math.log10(8 / 255):.2f} dB at 8/255), "
        "so 72-76 dB is impossible; with R = 255 on [0, 1] images (+48.13 dB) the paper's "
        "values imply an RMS distortion of "
        + ", ".join(f"{k} {v:.4f}" for k, v in implied.items())
        + " on [0, 1] — between our ε = 8/255 and ε = 0.3 RMS values, so the paper most "
        "likely used R = 255 on [0, 1] images (ε for Table V unstated).",
        "PSNR averages per-image dB over images whose perturbation is nonzero "
        f"(unchanged images: {sum(r['unchanged'] for r in rows.values())}); SSIM is Wang et al. "
        "2004 (11×11 Gaussian, σ = 1.5, 'valid', data range 1), float64.",
        f"Runtime {seconds:.1f} s.",
    ]
    figures: list[str] = []
    if options.output is not None and examples:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(examples) + 1, figsize=(2 * (len(examples) + 1), 2.2))
        axes[0].imshow(x[0, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0].set_title("clean")
        for ax, (name, img) in zip(axes[1:], examples.items(), strict=False):
            ax.imshow(img[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name}, ε={cfg['eps'][0]:.3g}", fontsize=8)
        for ax in axes:
            ax.axis("off")
        figures = save_figure(fig, options.output, "soae_psnr_examples.png")
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
        data={"rows": rows, "paper": PAPER, "seconds": seconds},
        figures=figures,
    )
