r"""Measure the input-Hessian facts that ``docs/input-hessian.rst`` states and the code relies on.

Run (one thread, a few minutes on a CPU)::

    OMP_NUM_THREADS=1 nice python docs/tools/measure_input_hessian.py

and paste the printed report into ``docs/input-hessian.rst``.  Everything is
measured on the model zoo's ``natural`` small CNN (ReLU, max-pool) and the
embedded MNIST test digits, with the per-sample cross-entropy
:math:`\ell(f(x), y)`; every random draw is seeded.  ``tests/test_input_hessian_facts.py``
runs a reduced version of :func:`structure`, :func:`block_diagonality` and
:func:`newton_sign` and checks the structural facts, so the page cannot go
stale silently.

The full Hessian :math:`H = \nabla_x^2 \ell` is computed independently of the
library (``torch.func.jacfwd(jacrev(ℓ))``, all 784 directions at once, in
float64) and compared with the Gauss-Newton form :math:`J^T(\operatorname{diag}
p - pp^T)J` and with :class:`krylovadv.torch.InputHessian`'s products.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from krylovadv.data import load_mnist10k
from krylovadv.torch import SO, InputHessian
from krylovadv.torch.pretrained import load_pretrained

#: Eigenvalues below this fraction of the largest count as zero.  float64
#: Hessians of a piecewise-linear net have their null-space eigenvalues at
#: rounding level (about 1e-16 of the largest); 1e-10 leaves six orders of
#: margin on both sides.
RANK_TOL = 1e-10


def digits(count: int, *, seed: int = 0, dtype: torch.dtype = torch.float64):
    """``count`` embedded test digits (a fixed random subset) and their labels."""
    data = load_mnist10k("test").subset(count, seed=seed)
    return torch.as_tensor(data.images).to(dtype), torch.as_tensor(data.labels, dtype=torch.int64)


def natural_model(dtype: torch.dtype = torch.float64, name: str = "natural") -> nn.Module:
    """Return the zoo's small CNN ``name`` (default ``natural``) in eval mode and ``dtype``."""
    model = load_pretrained(name).to(dtype).eval()
    for parameter in model.parameters():  # input derivatives only
        parameter.requires_grad_(False)
    return model


def _loss_of(model: nn.Module, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def loss(x_flat: torch.Tensor) -> torch.Tensor:
        logits = model(x_flat.reshape(1, 1, 28, 28))
        return F.cross_entropy(logits, y.reshape(1), reduction="sum")

    return loss


def full_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the exact (d, d) input Hessian of one sample (forward-over-reverse autodiff)."""
    return torch.func.jacfwd(torch.func.jacrev(_loss_of(model, y)))(x.reshape(-1))


def gauss_newton(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`J^T(\operatorname{diag}p - pp^T)J` of one sample, and the logits' Jacobian J."""
    flat = x.reshape(-1)
    jac = torch.func.jacrev(lambda v: model(v.reshape(1, 1, 28, 28))[0])(flat)  # (K, d)
    with torch.no_grad():
        p = torch.softmax(model(x.reshape(1, 1, 28, 28))[0], 0)
    middle = torch.diag(p) - torch.outer(p, p)
    return jac.T @ middle @ jac, jac


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Return :math:`\nabla_x \ell` of one sample, flattened."""
    return torch.func.grad(_loss_of(model, y))(x.reshape(-1))


def structure(count: int = 5) -> dict:
    """Rank, definiteness, Gauss-Newton form, range of the gradient, the library's products."""
    model = natural_model(torch.float64)
    images, labels = digits(count)
    rows = []
    for i in range(count):
        x, y = images[i], labels[i]
        hessian = full_hessian(model, x, y)
        eig, vectors = torch.linalg.eigh(0.5 * (hessian + hessian.T))
        top = float(eig.abs().max())
        nonzero = eig.abs() > RANK_TOL * top
        rank = int(nonzero.sum())
        gn, _ = gauss_newton(model, x)
        g = input_gradient(model, x, y)
        basis = vectors[:, nonzero]
        outside = g - basis @ (basis.T @ g)
        operator = InputHessian(model, x[None], y[None])
        probe = torch.randn(5, 784, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        library = torch.stack([operator.matvec(v[None])[0] for v in probe])
        rows.append(
            {
                "rank": rank,
                "asymmetry": float((hessian - hessian.T).abs().max()) / top,
                "min_eig_rel": float(eig.min()) / top,
                "null_max_rel": float(eig[~nonzero].abs().max()) / top,
                "gn_rel": float(torch.linalg.norm(hessian - gn) / torch.linalg.norm(hessian)),
                "grad_outside_range": float(outside.norm() / g.norm()),
                "library_rel": float(
                    torch.linalg.norm(library - probe @ hessian.T)
                    / torch.linalg.norm(probe @ hessian.T)
                ),
            }
        )
    return {"count": count, "rows": rows}


def block_diagonality(batch: int = 4) -> dict:
    r"""Leak of a batched HVP of :math:`\sum_b \ell_b` from image 0 into the other images."""
    model = natural_model(torch.float64)
    images, labels = digits(batch)
    x = images.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), labels, reduction="sum")
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    v = torch.zeros_like(x)
    v[0] = torch.randn(x[0].shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    (hv,) = torch.autograd.grad(g, x, v)
    return {
        "batch": batch,
        "own_block_norm": float(hv[0].norm()),
        "other_blocks_max_abs": float(hv[1:].abs().max()),
    }


def fd_accuracy(count: int = 20, vectors: int = 2, *, noise: float = 0.0) -> dict:
    """Relative error of forward differences of gradients against the exact HVP, by dtype and η.

    ``noise > 0`` measures at ``x + noise * u`` (``u`` seeded uniform on
    [-1, 1], not clipped) instead of the clean digit: clean digits have exact
    zero backgrounds, hence exact ties in max-pool windows, where the gradient
    jumps under any perturbation.
    """
    etas = [10.0**-k for k in range(1, 8)]
    reference_model = natural_model(torch.float64)
    images, labels = digits(count)
    if noise > 0:
        u = torch.rand(images.shape, generator=torch.Generator().manual_seed(7), dtype=images.dtype)
        images = images + noise * (2 * u - 1)
    result: dict = {"count": count, "vectors": vectors, "etas": etas, "noise": noise}
    references = []
    directions = []
    for i in range(count):
        x, y = images[i], labels[i]
        for j in range(vectors):
            v = torch.randn(784, generator=torch.Generator().manual_seed(100 * i + j))
            v = (v / v.norm()).to(torch.float64)
            _, hv = torch.func.jvp(
                torch.func.grad(_loss_of(reference_model, y)), (x.reshape(-1),), (v,)
            )
            references.append(hv)
            directions.append((i, v))
    for dtype in (torch.float32, torch.float64):
        model = natural_model(dtype)
        errors: dict[float, list[float]] = {eta: [] for eta in etas}
        applied: dict[float, list[float]] = {eta: [] for eta in etas}
        for (i, v), hv in zip(directions, references, strict=True):
            x = images[i].reshape(-1).to(dtype)
            y = labels[i]
            grad = torch.func.grad(_loss_of(model, y))
            g0 = grad(x)
            for eta in etas:
                shifted = x + eta * v.to(dtype)
                # In float32, x + ηv rounds part of ηv away: measure what happened.
                applied[eta].append(float(((shifted - x).double() - eta * v).norm() / eta))
                estimate = (grad(shifted) - g0).double() / eta
                errors[eta].append(float((estimate - hv).norm() / hv.norm()))
        result[str(dtype).removeprefix("torch.")] = {
            eta: {
                "median": statistics.median(errors[eta]),
                "p90": float(np.quantile(errors[eta], 0.9)),
                "rounded_away": statistics.median(applied[eta]),
            }
            for eta in etas
        }
    return result


def hvp_costs(batch: int = 128, rounds: int = 7) -> dict:
    """Wall time of each HVP variant in input-gradient equivalents (float32, one thread)."""
    model = natural_model(torch.float32)
    images, labels = digits(batch, dtype=torch.float32)
    v = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))

    def loss_sum(x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), labels, reduction="sum")

    def gradient() -> torch.Tensor:
        x = images.clone().requires_grad_(True)
        return torch.autograd.grad(loss_sum(x), x)[0]

    g0 = gradient()
    x_cached = images.clone().requires_grad_(True)
    (g_cached,) = torch.autograd.grad(loss_sum(x_cached), x_cached, create_graph=True)

    def fd_forward() -> torch.Tensor:  # reuses ∇ℓ(x), as an attack step does
        x = (images + 1e-3 * v).requires_grad_(True)
        return (torch.autograd.grad(loss_sum(x), x)[0] - g0) / 1e-3

    def fd_central() -> torch.Tensor:
        plus = (images + 1e-3 * v).requires_grad_(True)
        minus = (images - 1e-3 * v).requires_grad_(True)
        gp = torch.autograd.grad(loss_sum(plus), plus)[0]
        gm = torch.autograd.grad(loss_sum(minus), minus)[0]
        return (gp - gm) / 2e-3

    def double_backward_rebuilt() -> torch.Tensor:
        x = images.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_sum(x), x, create_graph=True)
        return torch.autograd.grad(g, x, v)[0]

    def double_backward_cached() -> torch.Tensor:
        return torch.autograd.grad(g_cached, x_cached, v, retain_graph=True)[0]

    def forward_over_reverse() -> torch.Tensor:
        return torch.func.jvp(torch.func.grad(loss_sum), (images,), (v,))[1]

    variants = {
        "gradient": gradient,
        "fd-forward (reuses the gradient)": fd_forward,
        "fd-central": fd_central,
        "double backward, graph rebuilt": double_backward_rebuilt,
        "double backward, cached graph": double_backward_cached,
        "forward-over-reverse (torch.func.jvp)": forward_over_reverse,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved, so drifting machine load hits all alike
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["gradient"])
    exact = double_backward_cached()
    agreement = float((forward_over_reverse() - exact).norm() / exact.norm())
    return {
        "batch": batch,
        "rounds": rounds,
        "gradient_ms": 1e3 * base,
        "ratios": {name: statistics.median(t) / base for name, t in times.items()},
        "exact_variants_rel_diff": agreement,
    }


def newton_sign(count: int = 5, shift: float = 1e-6) -> dict:
    r"""Sign of Qian et al.'s step :math:`\delta = +(H + \lambda I)^{-1} g` (float64, full H)."""
    model = natural_model(torch.float64)
    images, labels = digits(count, seed=1)
    rows = []
    for i in range(count):
        x, y = images[i], labels[i]
        hessian = full_hessian(model, x, y)
        g = input_gradient(model, x, y)
        delta = torch.linalg.solve(hessian + shift * torch.eye(784, dtype=hessian.dtype), g)
        loss = _loss_of(model, y)
        step = 1e-2 * delta / delta.norm()
        with torch.no_grad():
            rise_plus = float(loss(x.reshape(-1) + step) - loss(x.reshape(-1)))
            rise_minus = float(loss(x.reshape(-1) - step) - loss(x.reshape(-1)))
        rows.append(
            {
                "g_dot_delta": float(g @ delta),
                "cos_g_delta": float(g @ delta / (g.norm() * delta.norm())),
                "loss_change_plus": rise_plus,
                "loss_change_minus": rise_minus,
            }
        )
    return {"count": count, "shift": shift, "rows": rows}


def so_sigma(count: int = 100, sigmas=(0.1, 0.3, 0.5, 0.7), eps: float = 2.0) -> dict:
    """Accuracy of the ``pgd-linf`` zoo model under Li et al.'s S-O attack (ℓ2) for several σ.

    The natural model has 0 % accuracy under every σ at these radii, so the
    robust (ℓ∞-trained) model is the one where σ can matter.
    """
    model = natural_model(torch.float32, "pgd-linf")
    images, labels = digits(count, seed=2, dtype=torch.float32)
    accuracy = {}
    for sigma in sigmas:
        attack = SO(model, eps=eps, norm="l2", steps=20, samples=10, sigma=sigma, seed=0)
        with torch.no_grad():
            correct = model(attack(images, labels)).argmax(1) == labels
        accuracy[sigma] = float(correct.double().mean())
    return {"count": count, "eps": eps, "accuracy": accuracy}


def _report(quick: bool) -> str:
    torch.set_num_threads(1)
    lines = [
        f"torch {torch.__version__}, numpy {np.__version__}, one thread; model: zoo 'natural' "
        "small CNN (ReLU, max-pool); embedded MNIST test digits; per-sample cross-entropy.",
        "",
    ]
    s = structure(2 if quick else 5)
    lines.append(f"1. Structure (float64, full 784x784 Hessian, {s['count']} digits)")
    lines.append(
        "   rank | max|H-H^T|/|H| | min eig/max | max null eig/max | "
        "|H-J^T(diag p-pp^T)J|/|H| | |g - P_range g|/|g| | InputHessian rel. err."
    )
    for r in s["rows"]:
        lines.append(
            f"   {r['rank']:4d} | {r['asymmetry']:.1e} | {r['min_eig_rel']:+.1e} | "
            f"{r['null_max_rel']:.1e} | {r['gn_rel']:.1e} | {r['grad_outside_range']:.1e} | "
            f"{r['library_rel']:.1e}"
        )
    b = block_diagonality()
    lines += [
        "",
        f"2. Block diagonality (eval mode, batch {b['batch']}, float64): v on image 0 only;"
        f" |Hv| on image 0 = {b['own_block_norm']:.3e}, max |Hv| on images 1..{b['batch'] - 1}"
        f" = {b['other_blocks_max_abs']:.1e}",
    ]
    lines.append("")
    for noise, where in ((0.0, "clean digits"), (0.01, "digits + 0.01 uniform noise")):
        f = fd_accuracy(4 if quick else 20, 1 if quick else 2, noise=noise)
        lines += [
            f"3. Forward-difference HVP accuracy vs the exact float64 HVP at {where} "
            f"({f['count']} digits x {f['vectors']} unit directions): relative error "
            "median / 90th percentile; 'rounded' = median |(x+eta v) - x - eta v| / eta",
            "   eta   | float32 median | float32 p90 | float32 rounded | float64 median | "
            "float64 p90",
        ]
        for eta in f["etas"]:
            a, d = f["float32"][eta], f["float64"][eta]
            lines.append(
                f"   {eta:.0e} | {a['median']:.1e} | {a['p90']:.1e} | {a['rounded_away']:.1e} | "
                f"{d['median']:.1e} | {d['p90']:.1e}"
            )
    c = hvp_costs(32 if quick else 128, 3 if quick else 7)
    lines += [
        "",
        f"4. Cost per product, in input-gradient equivalents (float32, batch {c['batch']}, "
        f"median of {c['rounds']} interleaved rounds; one gradient = {c['gradient_ms']:.1f} ms)",
    ]
    lines += [f"   {name}: {ratio:.2f}" for name, ratio in c["ratios"].items()]
    lines.append(
        f"   forward-over-reverse vs double backward, relative difference: "
        f"{c['exact_variants_rel_diff']:.1e}"
    )
    n = newton_sign(2 if quick else 5)
    lines += [
        "",
        f"5. Sign of delta = +(H + {n['shift']:g} I)^-1 g (float64, {n['count']} digits): "
        "g.delta, cos(g, delta), loss change at x +/- 0.01 delta/|delta|",
    ]
    for r in n["rows"]:
        lines.append(
            f"   g.delta = {r['g_dot_delta']:.3e}, cos = {r['cos_g_delta']:.3f}, "
            f"+: {r['loss_change_plus']:+.3e}, -: {r['loss_change_minus']:+.3e}"
        )
    if not quick:
        o = so_sigma()
        lines += [
            "",
            f"6. S-O attack on the zoo's 'pgd-linf' model (l2, eps {o['eps']:g}, 20 steps, "
            f"10 noise samples, seed 0), {o['count']} digits: accuracy by sigma",
        ]
        lines += [f"   sigma {sigma:g}: {acc:.2f}" for sigma, acc in o["accuracy"].items()]
    return "\n".join(lines)


def main() -> None:
    """Print the measurements (``--quick``: a reduced, faster run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer digits, no S-O sweep")
    args = parser.parse_args()
    print(_report(args.quick))


if __name__ == "__main__":
    main()
