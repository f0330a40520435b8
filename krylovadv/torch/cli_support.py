"""Helpers of the ``krylovadv attack | evaluate | train`` commands (parsing specs to objects).

Each helper turns one command-line string into a library object and raises
:class:`UsageError` (naming the option to fix) when the string is wrong, so
that :mod:`krylovadv.cli` stays a thin layer: parse, call the library, print.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImageData, load_cifar10, load_mnist10k, load_mnist_idx
from .attacks import FGSM, PGD, SO, SOAE, SOPower
from .models import MODELS, build_model

__all__ = [
    "ATTACKS",
    "NORMS",
    "UsageError",
    "attack_summary",
    "build_attack",
    "check_device",
    "default_eps",
    "load_data",
    "load_model",
    "parse_attack_list",
    "run_attack",
    "save_examples",
    "write_report",
]

#: Attack names of the command line → class.
ATTACKS: dict[str, type] = {"fgsm": FGSM, "pgd": PGD, "so": SO, "so-power": SOPower, "soae": SOAE}
#: Threat models.
NORMS = ("linf", "l2")
#: Default radii per data family and norm (MNIST: seed 000's ℓ∞ 0.3 / ℓ2 2.0;
#: CIFAR-10: the usual 8/255 and 0.5).
_DEFAULT_EPS = {"mnist": {"linf": 0.3, "l2": 2.0}, "cifar10": {"linf": 8 / 255, "l2": 0.5}}
#: Labels of the attacks in reports.
_LABELS = {"fgsm": "FGSM", "pgd": "PGD", "so": "SO", "so-power": "SOPower", "soae": "SOAE"}


class UsageError(ValueError):
    """A command-line value is wrong; ``option`` names the option to fix."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


# --- models -----------------------------------------------------------------------------


def load_model(spec: str, *, device: str = "cpu") -> tuple[nn.Module, str]:
    """Load the model named by a ``--model`` value.

    Parameters
    ----------
    spec : str
        A zoo name (:func:`krylovadv.torch.pretrained.available_models`);
        ``ARCH:PATH.safetensors`` (an architecture of
        :data:`krylovadv.torch.models.MODELS` and its weights, read with
        safetensors); ``PATH.safetensors`` written by the zoo or ``krylovadv
        train`` (architecture in the header); or a TorchScript file ``PATH.pt``
        (read with :func:`torch.jit.load`, which runs code from the file: load
        only files you trust).
    device : str
        Where to put the model.

    Returns
    -------
    (torch.nn.Module, str)
        The model in eval mode and a description of where it came from.

    Raises
    ------
    UsageError
        For an unknown name, a missing or unreadable file, or weights that do
        not fit the architecture.
    """
    from . import pretrained

    zoo_names = pretrained.available_models()
    if spec in zoo_names:
        try:
            return pretrained.load_pretrained(spec, device=device), f"zoo:{spec}"
        except pretrained.ZooError as error:
            raise UsageError("--model", str(error)) from error
    arch, sep, rest = spec.partition(":")
    if sep and arch in MODELS:
        return _load_arch_weights(arch, Path(rest), device), spec
    path = Path(spec)
    if path.suffix == ".safetensors":
        _need_file(path)
        try:
            return pretrained.load_weights_file(path, device=device), str(path)
        except (pretrained.ZooError, RuntimeError) as error:
            raise UsageError(
                "--model", f"{error} Pass ARCH:{path} with an architecture of {sorted(MODELS)}."
            ) from error
    if path.suffix in (".pt", ".pth", ".ts"):
        _need_file(path)
        try:
            model = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError) as error:
            raise UsageError(
                "--model", f"{path} is not a TorchScript file (torch.jit.save): {error}"
            ) from error
        return model.eval(), f"torchscript:{path}"
    if sep:
        raise UsageError(
            "--model", f"unknown architecture {arch!r} in {spec!r}; choose from {sorted(MODELS)}."
        )
    raise UsageError(
        "--model",
        f"unknown model {spec!r}: not a zoo model ({zoo_names}), "
        "not ARCH:WEIGHTS.safetensors, not a .safetensors or TorchScript .pt file.",
    )


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise UsageError("--model", f"file {path} does not exist.")


def _load_arch_weights(arch: str, path: Path, device: str) -> nn.Module:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if path.suffix != ".safetensors":
        raise UsageError(
            "--model",
            f"{path}: weights must be a .safetensors file "
            "(pickled .pt/.pth state dicts are not loaded).",
        )
    _need_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UsageError("--model", f"{path} is not a valid safetensors file: {error}") from error
    kwargs = json.loads(meta.get("model_kwargs", "{}")) if meta.get("model") == arch else {}
    model = build_model(arch, **kwargs)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise UsageError(
            "--model", f"the weights of {path} do not fit architecture {arch!r}: {error}"
        ) from error
    return model.to(device).eval()


# --- data ---------------------------------------------------------------------------------


def load_data(
    spec: str, *, split: str = "test", samples: int | None = None, seed: int = 0
) -> ImageData:
    """Load the data named by a ``--data`` value and draw a seeded subset.

    Parameters
    ----------
    spec : str
        ``mnist10k`` (embedded digits), ``mnist-idx:DIR`` (MNIST IDX files) or
        ``cifar10:DIR`` (CIFAR-10 python batches).
    split : str
        ``test`` or ``train`` (``all`` for ``mnist10k``).
    samples : int, optional
        Size of the seeded random subset (all if ``None``).
    seed : int
        Seed of the subset.

    Returns
    -------
    ImageData
    """
    kind, _, directory = spec.partition(":")
    try:
        if kind == "mnist10k" and not directory:
            data = load_mnist10k(split)
        elif kind == "mnist-idx" and directory:
            data = load_mnist_idx(directory, split)
        elif kind == "cifar10" and directory:
            data = load_cifar10(directory, split)
        else:
            raise UsageError(
                "--data", f"unknown data {spec!r}; use mnist10k, mnist-idx:DIR or cifar10:DIR."
            )
    except (FileNotFoundError, ValueError) as error:
        if isinstance(error, UsageError):
            raise
        option = "--split" if "split" in str(error) else "--data"
        raise UsageError(option, str(error)) from error
    return data.subset(samples, seed=seed)


def default_eps(data_spec: str, norm: str) -> float:
    """Return the default radius of ``norm`` for a ``--data`` value."""
    family = "cifar10" if data_spec.startswith("cifar10") else "mnist"
    return _DEFAULT_EPS[family][norm]


# --- attacks ------------------------------------------------------------------------------


def build_attack(
    name: str, model: nn.Module, *, norm: str, eps: float, steps: int, seed: int
) -> Any:
    """Build an attack by command-line name (case-insensitive).

    Parameters
    ----------
    name : {"fgsm", "pgd", "so", "so-power", "soae"}
    model : torch.nn.Module
    norm : {"linf", "l2"}
    eps : float
    steps : int
        Iterations (FGSM takes one step whatever this is).
    seed : int

    Returns
    -------
    Attack
    """
    key = name.lower()
    if key not in ATTACKS:
        raise UsageError("--attack", f"unknown attack {name!r}; valid names: {', '.join(ATTACKS)}.")
    if norm not in NORMS:
        raise UsageError("--norm", f"unknown norm {norm!r}; valid: {', '.join(NORMS)}.")
    if key == "fgsm":
        return FGSM(model, eps=eps, norm=norm)
    return ATTACKS[key](model, norm=norm, eps=eps, steps=steps, seed=seed)


def parse_attack_list(
    text: str, model: nn.Module, *, eps: Mapping[str, float], steps: int, seed: int
) -> dict[str, Any]:
    """Build the attacks of an ``--attacks`` list such as ``pgd-linf,pgd-l2,soae-linf``.

    Parameters
    ----------
    text : str
        Comma-separated ``NAME-NORM`` items (NAME of :data:`ATTACKS`, NORM of :data:`NORMS`).
    model : torch.nn.Module
    eps : mapping
        Radius per norm.
    steps, seed : int

    Returns
    -------
    dict of str to Attack
        Label (e.g. ``PGD-linf``) → attack, in the given order.
    """
    items = [item.strip().lower() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError("--attacks", "give at least one attack, e.g. pgd-linf,soae-linf.")
    valid = [f"{a}-{n}" for a in ATTACKS for n in NORMS]
    attacks: dict[str, Any] = {}
    for item in items:
        name, _, norm = item.rpartition("-")
        if name not in ATTACKS or norm not in NORMS:
            raise UsageError("--attacks", f"unknown attack {item!r}; valid: {', '.join(valid)}.")
        label = f"{_LABELS[name]}-{norm}"
        if label in attacks:
            raise UsageError("--attacks", f"{item!r} is listed twice.")
        attacks[label] = build_attack(name, model, norm=norm, eps=eps[norm], steps=steps, seed=seed)
    return attacks


@dataclass
class AttackOutcome:
    """What ``krylovadv attack`` computed.

    Attributes
    ----------
    x, x_adv : torch.Tensor
        Clean and adversarial images (CPU).
    y, clean_pred, adv_pred : torch.Tensor
        Labels and predictions (CPU).
    valid : torch.Tensor of bool
        Per sample: the example is finite, in [0, 1] and inside the ε-ball.
    diagnostics : dict of str to numpy.ndarray
        The attack's per-step, per-sample records (batches concatenated).
    seconds : float
        Wall time of the attack.
    """

    x: torch.Tensor
    x_adv: torch.Tensor
    y: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    valid: torch.Tensor
    diagnostics: dict[str, np.ndarray]
    seconds: float

    @property
    def clean_accuracy(self) -> float:
        """Fraction of correctly classified clean samples."""
        return float((self.clean_pred == self.y).float().mean())

    @property
    def robust_accuracy(self) -> float:
        """Fraction correct on the clean and on the adversarial input.

        An invalid example (outside the threat model) does not count as broken.
        """
        fooled = (self.adv_pred != self.y) & self.valid
        return float(((self.clean_pred == self.y) & ~fooled).float().mean())


def run_attack(
    attack: Any, model: nn.Module, data: ImageData, *, device: str = "cpu", batch_size: int = 256
) -> AttackOutcome:
    """Run an attack over ``data`` in batches; check every example.

    Returns
    -------
    AttackOutcome
    """
    import time

    from .evaluate import check_adversarial

    x_all = torch.as_tensor(data.images)
    y_all = torch.as_tensor(data.labels, dtype=torch.int64)
    parts: dict[str, list] = {"x_adv": [], "clean": [], "adv": [], "valid": []}
    diagnostics: dict[str, list[np.ndarray]] = {}
    seconds = 0.0
    norm = getattr(attack.norm, "name", attack.norm)
    for start in range(0, x_all.shape[0], batch_size):
        xb = x_all[start : start + batch_size].to(device)
        yb = y_all[start : start + batch_size].to(device)
        started = time.perf_counter()
        result = attack.run(xb, yb, trace=False)
        seconds += time.perf_counter() - started
        x_adv = result.x_adv.detach()
        with torch.no_grad():
            parts["clean"].append(model(xb).argmax(1).cpu())
            parts["adv"].append(model(x_adv).argmax(1).cpu())
        checks = check_adversarial(xb, x_adv, eps=float(attack.eps), norm=norm)
        parts["valid"].append(checks["valid"].cpu())
        parts["x_adv"].append(x_adv.cpu())
        for key, values in result.diagnostics.items():
            diagnostics.setdefault(key, []).append(np.asarray(values, dtype=np.float64))
    return AttackOutcome(
        x=x_all,
        x_adv=torch.cat(parts["x_adv"]),
        y=y_all,
        clean_pred=torch.cat(parts["clean"]),
        adv_pred=torch.cat(parts["adv"]),
        valid=torch.cat(parts["valid"]),
        diagnostics={k: np.concatenate(v, axis=1) for k, v in diagnostics.items()},
        seconds=seconds,
    )


def attack_summary(outcome: AttackOutcome) -> list[str]:
    """One line per diagnostic: mean, min and max over steps and samples (NaN ignored)."""
    lines = []
    for key, values in sorted(outcome.diagnostics.items()):
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            lines.append(f"{key}: no values")
            continue
        total = f", total {finite.sum():g}" if key in ("fallback", "hvps") else ""
        lines.append(
            f"{key}: mean {finite.mean():.4g}, min {finite.min():.4g}, "
            f"max {finite.max():.4g}{total}"
        )
    return lines


def save_examples(path: str | Path, outcome: AttackOutcome, meta: Mapping[str, Any]) -> Path:
    """Write the adversarial examples as ``.npz`` (numpy) or ``.safetensors`` (never pickle).

    Arrays: ``x_adv``, ``x``, ``y``, ``clean_pred``, ``adv_pred``, ``valid``.
    """
    path = Path(path)
    arrays = {
        "x_adv": outcome.x_adv,
        "x": outcome.x,
        "y": outcome.y,
        "clean_pred": outcome.clean_pred,
        "adv_pred": outcome.adv_pred,
        "valid": outcome.valid,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez_compressed(
            path,
            **{k: v.numpy() for k, v in arrays.items()},
            meta=np.asarray(json.dumps(dict(meta), sort_keys=True)),
        )
    elif path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in arrays.items()},
            str(path),
            metadata={
                "krylovadv": "adversarial-examples",
                "meta": json.dumps(dict(meta), sort_keys=True),
            },
        )
    else:
        raise UsageError(
            "--output",
            f"{path}: use a .npz or .safetensors file (pickled .pt files are not written).",
        )
    return path


def check_device(text: str) -> str:
    """Return ``text`` if it names a usable torch device; raise :class:`UsageError` otherwise."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as error:
        raise UsageError(
            "--device", f"{text!r} is not a torch device (e.g. cpu, cuda, cuda:1)."
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device", f"{text!r}: CUDA is not available here; use --device cpu.")
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise UsageError(
            "--device", f"{text!r}: only {torch.cuda.device_count()} CUDA device(s) here."
        )
    return text


def write_report(report: Any, folder: str | Path) -> Path:
    """Write ``report.md`` and ``report.json`` of an :class:`EvaluationReport` (atomically)."""
    from .evaluate import _atomic_write_text

    folder = Path(folder)
    _atomic_write_text(folder / "report.md", report.to_markdown() + "\n")
    report.to_json(folder / "report.json")
    return folder
