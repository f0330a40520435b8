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
from .curvature import curvature_diagnostics  # re-exported: evaluate(curvature=True) uses it
from .evaluation_progress import evaluation_fingerprint, load_progress, save_progress
from .interrupts import RunInterrupted
from .intervals import wilson_interval  # re-exported: reports and `reproduce` share it
from .progress import progress_bar

__all__ = [
    "AttackRecord",
    "EvaluationReport",
    "check_adversarial",
    "curvature_diagnostics",
    "evaluate",
    "evaluation_fingerprint",
    "wilson_interval",
]


class _ForwardCounter:
    """Count the samples a module is evaluated on, through a forward pre-hook.

    A hook sees every call of the module object, however an attack reaches it,
    so an attack's cost is measured without the attack's cooperation; the input
    may be passed by position or by keyword (``model(x=x)``).
    """

    def __init__(self, model: nn.Module) -> None:
        self.samples = 0
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        first = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(first, torch.Tensor):
            self.samples += int(first.shape[0])

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
    provenance : dict
        What produced the numbers, filled by :func:`evaluate`: the weights' and
        data's sha256, library and torch versions, dtype, batch size, device,
        each attack's full configuration and the elapsed time.
    """

    total: int
    clean_correct: int
    attacks: list[AttackRecord]
    robust: np.ndarray
    per_attack_robust: dict[str, np.ndarray]
    cascade: bool
    meta: dict[str, Any] = field(default_factory=dict)
    curvature: dict[str, np.ndarray] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

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

    def header(self) -> list[str]:
        """Markdown lines stating what was evaluated (empty without provenance).

        Model (with the weights' sha256), data, split, samples, each attack's
        radius, steps and seed, protocol, library version, dtype and elapsed time.
        """
        prov, meta = self.provenance, self.meta
        if not prov:
            return []
        data = ", ".join(
            str(part)
            for part in (
                meta.get("data", "given arrays"),
                f"split {meta['split']}" if "split" in meta else None,
                f"{self.total} samples",
                f"subset seed {meta['seed']}" if "seed" in meta else None,
            )
            if part is not None
        )
        attacks = "; ".join(
            f"{name}: ε = {config.get('eps', '?'):g}, {config.get('steps', '?')} step(s), "
            f"seed {config.get('seed', '-')}"
            if isinstance(config.get("eps"), (int, float))
            else name
            for name, config in prov.get("attacks", {}).items()
        )
        weights = f"weights sha256 `{prov['model_sha256']}` (of the state dict)"
        if meta.get("model_file_sha256"):
            weights = f"file sha256 `{meta['model_file_sha256']}`; {weights}"
        return [
            f"- model: {meta.get('model', 'given module')}, {weights}",
            f"- data: {data} (sha256 `{prov['data_sha256'][:16]}…`)",
            f"- attacks: {attacks}",
            f"- protocol: {'cascade' if self.cascade else 'independent'}; "
            f"batch size {prov['batch_size']}; dtype {prov['dtype'].removeprefix('torch.')}; "
            f"device {prov['device']}",
            f"- krylovadv {prov['library_version']}, torch {prov['torch_version']}; "
            f"elapsed {prov['elapsed_s']:.1f} s",
            "",
        ]

    def to_markdown(self) -> str:
        """Render the header (:meth:`header`) and the table as GitHub Markdown."""
        header = (
            "| attack | norm | ε | accuracy | 95 % CI | attacked | violations | "
            "forward passes / sample | time (s) |"
        )
        lines = [*self.header(), header, "|" + "---|" * 9]
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
            "provenance": self.provenance,
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


def _checked_data(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x_all, y_all = _as_tensors(data)
    if x_all.shape[0] != y_all.shape[0]:
        raise ValueError(f"{x_all.shape[0]} images but {y_all.shape[0]} labels.")
    if not torch.isfinite(x_all).all() or x_all.min() < 0 or x_all.max() > 1:
        raise ValueError("images must be finite and in [0, 1]; rescale them first.")
    return x_all, y_all


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


def _placement(model: nn.Module, device: Any) -> tuple[torch.device, torch.dtype]:
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    return torch.device(device), dtype


def evaluate(
    model: nn.Module,
    data: Any,
    attacks: Mapping[str, Any] | Sequence[Any],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    cascade: bool = True,
    resume: str | os.PathLike | None = None,
    progress: bool | None = None,
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
        A JSON progress file: written atomically after every finished batch, and
        read on start to skip finished (attack, batch) pairs.  It records the
        run's :func:`evaluation_fingerprint`; a file written by a run with any
        other setting raises :class:`~krylovadv.torch.fingerprint.FingerprintMismatch`
        naming the fields that differ.
    progress : bool or None
        Progress bars; ``None`` (default): only when stderr is a terminal
        (:func:`krylovadv.torch.progress.progress_enabled`).
    meta : dict, optional
        Context stored in the report (and in the fingerprint, except ``device``).
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

    Raises
    ------
    RunInterrupted
        On Ctrl-C (or SIGTERM under
        :func:`~krylovadv.torch.interrupts.terminate_as_interrupt`): the batch
        in flight is discarded, the progress file holds every finished batch,
        and ``saved`` names it.

    Notes
    -----
    The cost column counts the model's forward evaluations per attacked sample
    (a gradient is one forward and one backward; a double-backward Hessian-vector
    product reuses the forward of its gradient).
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    x_all, y_all = _checked_data(data)
    items = _attack_list(attacks)
    device, dtype = _placement(model, device)
    fingerprint = evaluation_fingerprint(
        model, x_all, y_all, items, cascade=cascade, batch_size=batch_size, dtype=dtype, meta=meta
    )
    run = _EvaluationRun(
        model,
        x_all,
        y_all,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        progress=progress,
        resume=resume,
        state=load_progress(resume, fingerprint),
    )
    was_training = model.training
    model.eval()
    try:
        clean = run.clean_correct()
        robust, records, per_attack = run.attack_all(items, clean, cascade)
        diagnostics = (
            run.curvature(curvature if isinstance(curvature, dict) else {}) if curvature else None
        )
    except KeyboardInterrupt:
        # The batch in flight is dropped; the progress file (written atomically
        # after each finished batch) is the state to resume from.
        raise RunInterrupted(None if resume is None else str(resume), run.position) from None
    finally:
        model.train(was_training)
    provenance = {
        "model_sha256": fingerprint["model_sha256"],
        "data_sha256": fingerprint["data_sha256"],
        "library_version": fingerprint["library_version"],
        "torch_version": torch.__version__,
        "dtype": fingerprint["dtype"],
        "batch_size": batch_size,
        "device": str(device),
        "attacks": fingerprint["attacks"],
        "elapsed_s": time.perf_counter() - started,
    }
    report = EvaluationReport(
        total=int(x_all.shape[0]),
        clean_correct=int(clean.sum()),
        attacks=records,
        robust=robust,
        per_attack_robust=per_attack,
        cascade=cascade,
        meta=dict(meta or {}),
        curvature=diagnostics,
        provenance=provenance,
    )
    if masking:
        from .masking import diagnose_evaluation

        model.eval()
        try:
            report.meta["masking"] = diagnose_evaluation(
                model, x_all.to(device, dtype), y_all.to(device), items, report, masking
            )
        finally:
            model.train(was_training)
    return report


class _EvaluationRun:
    """The state of one :func:`evaluate` call: data, placement and progress file."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        batch_size: int,
        progress: bool | None,
        resume: Any,
        state: dict[str, Any],
    ) -> None:
        self.model, self.x, self.y = model, x, y
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.progress, self.resume, self.state = progress, resume, state
        self.total = int(x.shape[0])
        self.position = "before the clean pass"

    def _batch(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index].to(self.device, self.dtype), self.y[index].to(self.device)

    def clean_correct(self) -> np.ndarray:
        """Per sample: the clean input is classified correctly (computed once, then saved)."""
        if self.state["clean"] is None:
            correct = np.zeros(self.total, dtype=bool)
            with torch.no_grad():
                for start in range(0, self.total, self.batch_size):
                    xb, yb = self._batch(slice(start, start + self.batch_size))
                    correct[start : start + self.batch_size] = (
                        (self.model(xb).argmax(1) == yb).cpu().numpy()
                    )
            self.state["clean"] = correct.astype(int).tolist()
            save_progress(self.resume, self.state)
        return np.asarray(self.state["clean"], dtype=bool)

    def attack_all(
        self, items: list[tuple[str, Any]], clean: np.ndarray, cascade: bool
    ) -> tuple[np.ndarray, list[AttackRecord], dict[str, np.ndarray]]:
        """Run every attack under the protocol; return robust flags, records, per-attack flags."""
        robust = clean.copy()
        records, per_attack = [], {}
        for name, attack in items:
            targets = np.flatnonzero(robust if cascade else clean)
            rec, still = self.attack_one(name, attack, targets, robust if cascade else clean)
            if cascade:
                robust &= still
                per_attack[name] = robust.copy()
            else:
                per_attack[name] = still.copy()
                robust &= still
            rec.robust_after = int(per_attack[name].sum())
            records.append(rec)
        return robust, records, per_attack

    def attack_one(
        self, name: str, attack: Any, targets: np.ndarray, start: np.ndarray
    ) -> tuple[AttackRecord, np.ndarray]:
        """Run one attack on ``targets`` batch by batch, skipping batches already saved."""
        norm, eps = _norm_name(attack), float(attack.eps)
        saved = self.state["attacks"].get(name)
        if saved:
            rec = AttackRecord(**saved["record"])
            still = np.asarray(saved["still"], dtype=bool)
            done = set(saved["done_batches"])
        else:
            rec, still, done = AttackRecord(name=name, norm=norm, eps=eps), start.copy(), set()
        size = self.batch_size
        batches = [targets[i : i + size] for i in range(0, targets.size, size)]
        for b, index in enumerate(progress_bar(batches, progress=self.progress, desc=name)):
            self.position = f"{name}: {len(done)} of {len(batches)} batches done"
            if b in done:
                continue
            broken = self.attack_batch(attack, index, rec, eps=eps, norm=norm)
            still[index[broken]] = False
            done.add(b)
            self.state["attacks"][name] = {
                "still": still.astype(int).tolist(),
                "done_batches": sorted(done),
                "record": asdict(rec),
            }
            save_progress(self.resume, self.state)
        return rec, still

    def attack_batch(
        self, attack: Any, index: np.ndarray, rec: AttackRecord, *, eps: float, norm: str
    ) -> np.ndarray:
        """Attack one batch, check every example, update ``rec``; return the broken flags."""
        xb, yb = self._batch(index)
        counter = _ForwardCounter(self.model)
        started = time.perf_counter()
        try:
            x_adv = attack(xb, yb).detach()
        finally:
            counter.close()
        rec.wall_time_s += time.perf_counter() - started
        rec.forward_samples += counter.samples
        checks = check_adversarial(xb, x_adv, eps=eps, norm=norm)
        rec.violations["non_finite"] += int((~checks["finite"]).sum())
        rec.violations["out_of_range"] += int((~checks["in_range"]).sum())
        rec.violations["out_of_ball"] += int((~checks["in_ball"]).sum())
        rec.invalid += int((~checks["valid"]).sum())
        with torch.no_grad():
            safe = torch.where(checks["finite"].view(-1, *([1] * (xb.ndim - 1))), x_adv, xb)
            fooled = self.model(safe).argmax(1) != yb
        # An invalid example is not a successful attack: the sample stays robust.
        broken = (fooled & checks["valid"]).cpu().numpy()
        rec.attacked += int(index.size)
        rec.broken += int(broken.sum())
        return broken

    def curvature(self, options: dict[str, Any]) -> dict[str, np.ndarray]:
        """:func:`curvature_diagnostics` of the clean inputs, batch by batch."""
        self.position = "in the curvature diagnostics"
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, self.total, self.batch_size):
            xb, yb = self._batch(slice(start, start + self.batch_size))
            for key, value in curvature_diagnostics(self.model, xb, yb, **options).items():
                parts.setdefault(key, []).append(value)
        return {k: np.concatenate(v) for k, v in parts.items()}
