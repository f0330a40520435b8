"""Robustness evaluation in the AutoAttack manner, with honest bookkeeping.

:func:`evaluate` measures clean accuracy, then runs each attack and keeps, per
sample, whether it is still robust.  In the default *cascade* mode each attack
only sees the samples that every earlier attack failed on (AutoAttack's
protocol: the worst case costs no more than needed); with ``cascade=False`` every
attack sees every clean-correct sample, which gives per-attack robust
accuracies comparable across attacks (the papers' tables).

Every adversarial example is checked: finite, in [0, 1], and inside its
ε-ball.  A violation is reported, never hidden, and a violating example is not
counted as a successful attack.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImageData
from .checkpoint import atomic_write_bytes

__all__ = [
    "AttackRecord",
    "EvaluationReport",
    "check_adversarial",
    "curvature_diagnostics",
    "evaluate",
    "wilson_interval",
]


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval for a binomial proportion.

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n}
              + \frac{z^2}{4n^2}}}{1 + z^2/n}

    Parameters
    ----------
    successes, total : int
        Counts (``total`` may be 0: the interval is then ``(0, 1)``).
    confidence : float
        Two-sided level (0.95 gives :math:`z = 1.96`).

    Returns
    -------
    tuple of float
        Lower and upper bounds in [0, 1].
    """
    if total == 0:
        return 0.0, 1.0
    z = _normal_quantile(0.5 + confidence / 2)
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


class _ForwardCounter:
    """Count the samples a module is evaluated on, through a forward pre-hook.

    A hook sees every call of the module object, however an attack reaches it,
    so an attack's cost is measured without the attack's cooperation.
    """

    def __init__(self, model: nn.Module) -> None:
        self.samples = 0
        self._handle = model.register_forward_pre_hook(self._count)

    def _count(self, module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            self.samples += int(args[0].shape[0])

    def close(self) -> None:
        self._handle.remove()


def _norm_name(attack: Any) -> str:
    norm = getattr(attack, "norm", None)
    name = getattr(norm, "name", norm)
    if not isinstance(name, str):
        raise ValueError(f"attack {attack!r} has no norm attribute ('linf' or 'l2').")
    name = name.lower().replace("ℓ", "l").replace("_", "")
    if name in ("linf", "inf", "l∞"):
        return "linf"
    if name in ("l2", "2"):
        return "l2"
    raise ValueError(f"unknown attack norm {norm!r}; expected 'linf' or 'l2'.")


def check_adversarial(
    x: torch.Tensor, x_adv: torch.Tensor, *, eps: float, norm: str
) -> dict[str, torch.Tensor]:
    r"""Check adversarial examples against the threat model, per sample.

    Parameters
    ----------
    x, x_adv : torch.Tensor
        Clean and adversarial batches, same shape.
    eps : float
        Radius of the ball.
    norm : {"linf", "l2"}
        Which ball.

    Returns
    -------
    dict of torch.Tensor (bool, shape (B,))
        ``finite``, ``in_range`` (inside [0, 1]), ``in_ball``
        (:math:`\|x_{adv} - x\|_p \le \epsilon` up to a dtype-aware slack of a
        few ulps of :math:`\max(1, \epsilon)`), and ``valid`` (all three).
    """
    if x.shape != x_adv.shape:
        raise ValueError(f"x_adv has shape {tuple(x_adv.shape)} but x has {tuple(x.shape)}.")
    flat = (x_adv - x).reshape(x.shape[0], -1).double()
    finite = torch.isfinite(x_adv.reshape(x.shape[0], -1)).all(dim=1)
    slack = 8 * torch.finfo(x_adv.dtype).eps * max(1.0, eps)
    in_range = ((x_adv >= -slack) & (x_adv <= 1 + slack)).reshape(x.shape[0], -1).all(dim=1)
    if norm == "linf":
        size = flat.abs().amax(dim=1)
    elif norm == "l2":
        size = flat.norm(dim=1)
    else:
        raise ValueError(f"norm must be 'linf' or 'l2'; got {norm!r}.")
    in_ball = size <= eps * (1 + slack) + slack
    return {
        "finite": finite,
        "in_range": in_range,
        "in_ball": in_ball,
        "valid": finite & in_range & in_ball,
    }


@dataclass
class AttackRecord:
    """What one attack did (one row of the report).

    Attributes
    ----------
    name : str
        The attack's label.
    norm : str
        ``"linf"`` or ``"l2"``.
    eps : float
        Radius.
    attacked : int
        Samples the attack was run on.
    broken : int
        Samples it turned into valid misclassified examples.
    robust_after : int
        Samples robust after this attack (cascade: after all attacks so far).
    invalid : int
        Examples that broke the threat model in any way (not counted as broken).
    violations : dict
        Counts of non-finite, out-of-range and out-of-ball examples.
    forward_samples : int
        Model evaluations (samples) the attack spent.
    wall_time_s : float
        Its wall time.
    """

    name: str
    norm: str
    eps: float
    attacked: int = 0
    broken: int = 0
    robust_after: int = 0
    invalid: int = 0
    violations: dict[str, int] = field(
        default_factory=lambda: {"non_finite": 0, "out_of_range": 0, "out_of_ball": 0}
    )
    forward_samples: int = 0
    wall_time_s: float = 0.0


@dataclass
class EvaluationReport:
    """Result of :func:`evaluate`: a table that renders to text, Markdown and JSON.

    Attributes
    ----------
    total : int
        Samples evaluated.
    clean_correct : int
        Correctly classified clean samples.
    attacks : list of AttackRecord
        One row per attack, in order.
    robust : numpy.ndarray of bool
        Per sample: correct and robust to every attack.
    per_attack_robust : dict of str to numpy.ndarray
        Per attack and sample: still correct after that attack (cascade: after
        that attack and every earlier one).
    cascade : bool
        The protocol used.
    meta : dict
        Free-form context (data set, model, seeds, scale).
    curvature : dict of str to numpy.ndarray or None
        Per-sample :func:`curvature_diagnostics` of the clean inputs, if requested.
    """

    total: int
    clean_correct: int
    attacks: list[AttackRecord]
    robust: np.ndarray
    per_attack_robust: dict[str, np.ndarray]
    cascade: bool
    meta: dict[str, Any] = field(default_factory=dict)
    curvature: dict[str, np.ndarray] | None = None

    @property
    def clean_accuracy(self) -> float:
        """Fraction of correctly classified clean samples."""
        return self.clean_correct / max(self.total, 1)

    @property
    def robust_accuracy(self) -> float:
        """Worst-case robust accuracy over all attacks."""
        return int(self.robust.sum()) / max(self.total, 1)

    def accuracy(self, attack: str) -> float:
        """Return robust accuracy after ``attack`` (see ``per_attack_robust``)."""
        return int(self.per_attack_robust[attack].sum()) / max(self.total, 1)

    def rows(self) -> list[dict[str, Any]]:
        """Return the table as rows: clean, one per attack, worst case (with 95 % CIs)."""
        rows = []

        def add(name: str, norm: str, eps: Any, correct: int, **extra: Any) -> None:
            low, high = wilson_interval(correct, self.total)
            rows.append(
                {
                    "attack": name,
                    "norm": norm,
                    "eps": eps,
                    "accuracy": correct / max(self.total, 1),
                    "ci_low": low,
                    "ci_high": high,
                    **extra,
                }
            )

        add(
            "clean",
            "-",
            "-",
            self.clean_correct,
            attacked=self.total,
            violations=0,
            forward_per_sample=1.0,
            wall_time_s=0.0,
        )
        for rec in self.attacks:
            add(
                rec.name,
                rec.norm,
                rec.eps,
                int(self.per_attack_robust[rec.name].sum()),
                attacked=rec.attacked,
                violations=rec.invalid,
                forward_per_sample=rec.forward_samples / max(rec.attacked, 1),
                wall_time_s=rec.wall_time_s,
            )
        add(
            "worst case",
            "-",
            "-",
            int(self.robust.sum()),
            attacked=self.total,
            violations=sum(r.invalid for r in self.attacks),
            forward_per_sample=float("nan"),
            wall_time_s=sum(r.wall_time_s for r in self.attacks),
        )
        return rows

    def to_markdown(self) -> str:
        """Render the table as GitHub Markdown."""
        header = (
            "| attack | norm | ε | accuracy | 95 % CI | attacked | violations | "
            "forward passes / sample | time (s) |"
        )
        lines = [header, "|" + "---|" * 9]
        for r in self.rows():
            eps = r["eps"] if isinstance(r["eps"], str) else f"{r['eps']:g}"
            fwd = "-" if math.isnan(r["forward_per_sample"]) else f"{r['forward_per_sample']:.1f}"
            lines.append(
                f"| {r['attack']} | {r['norm']} | {eps} | {100 * r['accuracy']:.1f} % | "
                f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] | {r['attacked']} | "
                f"{r['violations']} | {fwd} | {r['wall_time_s']:.1f} |"
            )
        mode = (
            "cascade (each attack on still-robust samples)"
            if self.cascade
            else "independent (each attack on all clean-correct samples)"
        )
        lines.append("")
        lines.append(f"{self.total} samples; protocol: {mode}.")
        if self.curvature is not None:
            lines += [
                "",
                "| curvature (clean inputs) | median | 10 % | 90 % |",
                "|---|---|---|---|",
            ]
            for key in ("top_eigenvalue", "krylov_dim", "fd_gap"):
                values = np.asarray(self.curvature[key], dtype=float)
                q10, q50, q90 = np.nanpercentile(values, [10, 50, 90])
                lines.append(f"| {key} | {q50:.3g} | {q10:.3g} | {q90:.3g} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (per-sample flags as lists)."""
        return {
            "total": self.total,
            "clean_correct": self.clean_correct,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "cascade": self.cascade,
            "attacks": [asdict(a) for a in self.attacks],
            "rows": self.rows(),
            "robust": self.robust.astype(int).tolist(),
            "per_attack_robust": {
                k: v.astype(int).tolist() for k, v in self.per_attack_robust.items()
            },
            "meta": self.meta,
            "curvature": None
            if self.curvature is None
            else {k: np.asarray(v).tolist() for k, v in self.curvature.items()},
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Serialise to JSON; write it atomically to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2, default=_json_default)
        if path is not None:
            _atomic_write_text(Path(path), text)
        return text


def curvature_diagnostics(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    tau: float = 1e-3,
    max_krylov_dim: int = 50,
    power_tol: float = 1e-3,
    power_maxiter: int = 100,
    eta: float | None = 1e-5,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    r"""Per-sample curvature of the loss around each input.

    For each sample :math:`b`, with :math:`H_b = \nabla_x^2 \ell_b` and
    :math:`g_b = \nabla_x \ell_b` (exact products,
    :class:`~krylovadv.torch.hessian.InputHessian`):

    - ``top_eigenvalue``: the eigenvalue of largest magnitude of :math:`H_b`, by
      power iteration to a relative eigen-residual ``power_tol``;
    - ``krylov_dim``: the Krylov dimension :math:`m` at which GMRES on
      :math:`H_b\delta = g_b` reaches :math:`\|\tilde r\|/\beta < \tau` (seed
      004's stopping rule, from :math:`\delta^{(0)} = 0`), capped at
      ``max_krylov_dim``, and ``krylov_converged``;
    - ``fd_gap``: :math:`\|H^{\mathrm{FD}}_b g_b - H_b g_b\| / \|H_b g_b\|`, the
      relative error of the forward-difference product at the papers' step
      :math:`\eta` (``eta=None``: the dtype-aware default step).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (eval mode; samples must not be coupled).
    x, y : torch.Tensor
        Inputs in [0, 1] and labels.
    tau : float
        GMRES relative tolerance :math:`\tau`.
    max_krylov_dim : int
        Cap on :math:`m`.
    power_tol, power_maxiter : float, int
        Power-iteration stopping rule.
    eta : float or None
        Finite-difference step for ``fd_gap``: the papers' :math:`\eta = 10^{-5}`
        by default (``None``: the dtype-aware default step).  Expect large gaps
        on clean MNIST digits: exact-zero backgrounds put max-pool ties on the
        segment, where the gradient jumps, and confidently classified digits have
        tiny :math:`\|H g\|`.
    seed : int
        Seed of the power iteration's start vectors.

    Returns
    -------
    dict of str to numpy.ndarray
        One array of length ``B`` per diagnostic.
    """
    from ..gmres import gmres
    from ..power import power_iteration
    from .hessian import InputHessian

    H = InputHessian(model, x, y)
    g = H.gradient
    batch, d = g.shape
    start = torch.randn(batch, d, generator=torch.Generator().manual_seed(seed))
    top = power_iteration(H, v0=start.to(g.device, g.dtype), tol=power_tol, maxiter=power_maxiter)
    solve = gmres(H, g, rtol=tau, restart=max_krylov_dim, maxiter=1)
    exact = H.matvec(g)
    fd = InputHessian(model, x, y, method="fd-forward", eta=eta).matvec(g)
    scale = torch.linalg.vector_norm(exact, dim=1).clamp_min(torch.finfo(exact.dtype).tiny)
    gap = torch.linalg.vector_norm(fd - exact, dim=1) / scale
    return {
        "top_eigenvalue": np.asarray(top.eigenvalue, dtype=float),
        "top_converged": np.asarray(top.converged),
        "krylov_dim": np.asarray(solve.iterations),
        "krylov_converged": np.asarray(
            solve.residual_history_reached(tau)
            if hasattr(solve, "residual_history_reached")
            else [h[-1] < tau * h[0] for h in solve.residual_history]
        ),
        "fd_gap": gap.detach().cpu().double().numpy(),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))


def _as_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, ImageData):
        return torch.as_tensor(data.images), torch.as_tensor(data.labels, dtype=torch.int64)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        return torch.as_tensor(x), torch.as_tensor(y, dtype=torch.int64)
    raise TypeError("data must be an ImageData or a pair (images, labels).")


def _attack_list(attacks: Mapping[str, Any] | Sequence[Any]) -> list[tuple[str, Any]]:
    if isinstance(attacks, Mapping):
        items = list(attacks.items())
    else:
        items = [(getattr(a, "name", type(a).__name__), a) for a in attacks]
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"attack names must be unique; got {names}.")
    if not items:
        raise ValueError("attacks is empty; pass at least one attack.")
    return items


def evaluate(
    model: nn.Module,
    data: Any,
    attacks: Mapping[str, Any] | Sequence[Any],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    cascade: bool = True,
    resume: str | os.PathLike | None = None,
    progress: bool = False,
    meta: dict[str, Any] | None = None,
    curvature: bool | dict[str, Any] = False,
    masking: bool | dict[str, Any] = False,
) -> EvaluationReport:
    """Evaluate clean and robust accuracy under a list of attacks.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (inputs in [0, 1]); put in eval mode for the evaluation and
        restored afterwards.
    data : ImageData or (images, labels)
        Images ``(N, C, H, W)`` in [0, 1] and integer labels.
    attacks : mapping name → attack, or sequence of attacks
        Each attack is a callable ``attack(x, y) -> x_adv`` with attributes
        ``eps`` and ``norm`` (``"linf"``/``"l2"``), e.g.
        :class:`krylovadv.torch.attacks.PGD`, built on the same module object as
        ``model`` (its forward passes are counted with a hook on ``model``).
    batch_size : int
        Samples per attack call.
    device : str or torch.device, optional
        Where to run (default: the model's device).
    cascade : bool
        AutoAttack protocol (each attack only on still-robust samples) if True;
        every attack on every clean-correct sample if False.
    resume : path, optional
        A JSON file of progress: written atomically after every batch, and read
        on start to skip finished (attack, batch) pairs.
    progress : bool
        Show tqdm progress bars.
    meta : dict, optional
        Context stored in the report.
    curvature : bool or dict
        Also compute :func:`curvature_diagnostics` on the clean inputs (a dict
        passes its keyword arguments, e.g. ``{"tau": 1e-4, "eta": None}``).
    masking : bool or dict
        Also run the gradient-masking diagnostics of
        :func:`krylovadv.torch.masking.diagnose` (threat model of the first attack;
        the gradient attacks' counts join its white-box reference; a dict passes
        keyword arguments) and store them in ``report.meta["masking"]``.

    Returns
    -------
    EvaluationReport

    Notes
    -----
    The cost column counts the model's forward evaluations per attacked sample
    (a gradient is one forward and one backward; a double-backward Hessian-vector
    product reuses the forward of its gradient).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    x_all, y_all = _as_tensors(data)
    if x_all.shape[0] != y_all.shape[0]:
        raise ValueError(f"{x_all.shape[0]} images but {y_all.shape[0]} labels.")
    if not torch.isfinite(x_all).all() or x_all.min() < 0 or x_all.max() > 1:
        raise ValueError("images must be finite and in [0, 1]; rescale them first.")
    items = _attack_list(attacks)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    total = int(x_all.shape[0])

    state = _load_progress(resume, total, [n for n, _ in items], cascade)
    was_training = model.training
    model.eval()
    try:
        if state["clean"] is None:
            correct = np.zeros(total, dtype=bool)
            with torch.no_grad():
                for start in range(0, total, batch_size):
                    xb = x_all[start : start + batch_size].to(device, dtype)
                    yb = y_all[start : start + batch_size].to(device)
                    correct[start : start + batch_size] = (model(xb).argmax(1) == yb).cpu().numpy()
            state["clean"] = correct.tolist()
            _save_progress(resume, state)
        clean = np.asarray(state["clean"], dtype=bool)
        robust = clean.copy()
        records, per_attack = [], {}
        for name, attack in items:
            norm = _norm_name(attack)
            eps = float(attack.eps)
            saved = state["attacks"].get(name)
            rec = AttackRecord(name=name, norm=norm, eps=eps)
            still = (
                np.asarray(saved["still"], dtype=bool)
                if saved
                else (robust.copy() if cascade else clean.copy())
            )
            done_batches = set(saved["done_batches"]) if saved else set()
            if saved:
                rec = AttackRecord(**saved["record"])
            targets = np.flatnonzero(robust if cascade else clean)
            batches = [targets[i : i + batch_size] for i in range(0, targets.size, batch_size)]
            iterator = _progress(batches, progress, name)
            for b, index in enumerate(iterator):
                if b in done_batches:
                    continue
                xb = x_all[index].to(device, dtype)
                yb = y_all[index].to(device)
                counter = _ForwardCounter(model)
                started = time.perf_counter()
                try:
                    x_adv = attack(xb, yb)
                finally:
                    counter.close()
                rec.wall_time_s += time.perf_counter() - started
                rec.forward_samples += counter.samples
                checks = check_adversarial(xb, x_adv.detach(), eps=eps, norm=norm)
                rec.violations["non_finite"] += int((~checks["finite"]).sum())
                rec.violations["out_of_range"] += int((~checks["in_range"]).sum())
                rec.violations["out_of_ball"] += int((~checks["in_ball"]).sum())
                rec.invalid += int((~checks["valid"]).sum())
                with torch.no_grad():
                    safe = torch.where(
                        checks["finite"].view(-1, *([1] * (xb.ndim - 1))), x_adv.detach(), xb
                    )
                    fooled = model(safe).argmax(1) != yb
                # An invalid example is not a successful attack: the sample stays robust.
                broken = (fooled & checks["valid"]).cpu().numpy()
                rec.attacked += int(index.size)
                rec.broken += int(broken.sum())
                still[index[broken]] = False
                done_batches.add(b)
                state["attacks"][name] = {
                    "still": still.astype(int).tolist(),
                    "done_batches": sorted(done_batches),
                    "record": asdict(rec),
                }
                _save_progress(resume, state)
            if cascade:
                robust &= still
                per_attack[name] = robust.copy()
            else:
                per_attack[name] = still.copy()
                robust &= still
            rec.robust_after = int(per_attack[name].sum())
            records.append(rec)
        diagnostics = None
        if curvature:
            options = curvature if isinstance(curvature, dict) else {}
            parts: dict[str, list[np.ndarray]] = {}
            for start in range(0, total, batch_size):
                xb = x_all[start : start + batch_size].to(device, dtype)
                yb = y_all[start : start + batch_size].to(device)
                for key, value in curvature_diagnostics(model, xb, yb, **options).items():
                    parts.setdefault(key, []).append(value)
            diagnostics = {k: np.concatenate(v) for k, v in parts.items()}
    finally:
        model.train(was_training)
    report = EvaluationReport(
        total=total,
        clean_correct=int(clean.sum()),
        attacks=records,
        robust=robust,
        per_attack_robust=per_attack,
        cascade=cascade,
        meta=dict(meta or {}),
        curvature=diagnostics,
    )
    if masking:
        from .masking import diagnose_evaluation

        report.meta["masking"] = diagnose_evaluation(
            model, x_all.to(device, dtype), y_all.to(device), items, report, masking
        )
    return report


def _progress(items: list, enabled: bool, label: str) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=label, leave=False)


def _load_progress(path: Any, total: int, names: list[str], cascade: bool) -> dict[str, Any]:
    fresh = {"total": total, "names": names, "cascade": cascade, "clean": None, "attacks": {}}
    if path is None or not Path(path).is_file():
        return fresh
    with open(path, encoding="utf-8") as handle:
        state = json.load(handle)
    if (state.get("total"), state.get("names"), state.get("cascade")) != (total, names, cascade):
        raise ValueError(
            f"resume file {path} belongs to a different evaluation (samples, attacks or "
            "protocol differ); delete it or choose another path."
        )
    return state


def _save_progress(path: Any, state: dict[str, Any]) -> None:
    if path is not None:
        _atomic_write_text(Path(path), json.dumps(state))
