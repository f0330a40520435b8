"""Helpers of the ``krylovadv attack | evaluate | train`` commands (parsing specs to objects).

Each helper turns one command-line string into a library object and raises
:class:`UsageError` (naming the option to fix) when the string is wrong, so
that :mod:`krylovadv.cli` stays a thin layer: parse, call the library, print.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImageData, load_cifar10, load_mnist10k, load_mnist_idx
from .attacks import APGD, FGSM, PGD, SO, SOAE, SOPower
from .checkpoint import CheckpointError, verify_sidecar
from .models import MODELS, build_model
from .outputs import check_output_dir, check_output_file
from .progress import progress_bar

__all__ = [
    "ATTACKS",
    "NORMS",
    "UsageError",
    "attack_summary",
    "build_attack",
    "check_device",
    "check_output",
    "checked_eps",
    "default_eps",
    "load_data",
    "load_data_subset",
    "load_model",
    "parse_attack_list",
    "run_attack",
    "save_examples",
    "write_report",
]

#: Attack names of the command line → class.
ATTACKS: dict[str, type] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "apgd": APGD,
    "so": SO,
    "so-power": SOPower,
    "soae": SOAE,
}
#: Threat models.
NORMS = ("linf", "l2")
#: Default radii per data family and norm (MNIST: Li et al.'s ℓ∞ 0.3 / ℓ2 2.0;
#: CIFAR-10: the usual 8/255 and 0.5).
_DEFAULT_EPS = {"mnist": {"linf": 0.3, "l2": 2.0}, "cifar10": {"linf": 8 / 255, "l2": 0.5}}
#: Labels of the attacks in reports.
_LABELS = {
    "fgsm": "FGSM",
    "pgd": "PGD",
    "apgd": "APGD",
    "so": "SO",
    "so-power": "SOPower",
    "soae": "SOAE",
}


class UsageError(ValueError):
    """A command-line value is wrong; ``option`` names the option to fix."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


# --- models -----------------------------------------------------------------------------


def load_model(spec: str, *, device: str = "cpu") -> tuple[nn.Module, str, str | None]:
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
        only files you trust).  A weights file with a sha256 sidecar
        (``PATH.safetensors.json``, see :func:`~krylovadv.torch.checkpoint.write_sidecar`)
        is verified against it before loading.
    device : str
        Where to put the model.

    Returns
    -------
    (torch.nn.Module, str, str or None)
        The model in eval mode, a description of where it came from, and the
        sha256 of the file it was read from (for a zoo model, the registry's
        checksum, verified on load; ``None`` for TorchScript files).

    Raises
    ------
    UsageError
        For an unknown name, a missing, truncated or corrupt file (a checksum
        mismatch names the file), or weights that do not fit the architecture.
    """
    from . import pretrained

    zoo_names = pretrained.available_models()
    if spec in zoo_names:
        try:
            model = pretrained.load_pretrained(spec, device=device)  # verifies the sha256
        except pretrained.ZooError as error:
            raise UsageError("--model", str(error)) from error
        return model, f"zoo:{spec}", str(pretrained.load_registry()["models"][spec]["sha256"])
    arch, sep, rest = spec.partition(":")
    if sep and arch in MODELS:
        path = Path(rest)
        return _load_arch_weights(arch, path, device), spec, _verified_sha256(path)
    path = Path(spec)
    if path.suffix == ".safetensors":
        digest = _verified_sha256(path)
        try:
            return pretrained.load_weights_file(path, device=device), str(path), digest
        except (pretrained.ZooError, RuntimeError) as error:
            raise UsageError("--model", _weights_problem(path, error)) from None
    if path.suffix in (".pt", ".pth", ".ts"):
        _need_file(path)
        try:
            model = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError) as error:
            raise UsageError(
                "--model", f"{path} is not a TorchScript file (torch.jit.save): {error}"
            ) from error
        return model.eval(), f"torchscript:{path}", None
    if sep:
        raise UsageError(
            "--model", f"unknown architecture {arch!r} in {spec!r}; choose from {sorted(MODELS)}."
        )
    raise UsageError(
        "--model",
        f"unknown model {spec!r}: not a zoo model ({', '.join(zoo_names)}), "
        "not ARCH:WEIGHTS.safetensors, not a .safetensors or TorchScript .pt file.",
    )


def _weights_problem(path: Path, error: Exception) -> str:
    """One clear sentence about a weights file that does not load, with the right hint."""
    text = str(error).rstrip(".")
    if "does not record its architecture" in text:
        return (
            f"{path} does not record its architecture; pass ARCH:{path} with ARCH one of "
            f"{', '.join(sorted(MODELS))}."
        )
    if "not a valid safetensors file" in text or "header" in text:
        return (
            f"{path} is not a readable safetensors file (truncated or corrupt). "
            "Copy or rewrite the file; it cannot be loaded as it is."
        )
    return f"{text}. Check that the file matches its architecture."


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise UsageError("--model", f"file {path} does not exist.")


def _verified_sha256(path: Path) -> str:
    """Return the file's sha256, checked against its sidecar when it has one."""
    _need_file(path)
    try:
        return verify_sidecar(path)
    except CheckpointError as error:
        raise UsageError("--model", str(error)) from None


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
        raise UsageError(
            "--model", _weights_problem(path, ValueError(f"not a valid safetensors file: {error}"))
        ) from None
    kwargs = json.loads(meta.get("model_kwargs", "{}")) if meta.get("model") == arch else {}
    model = build_model(arch, **kwargs)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise UsageError(
            "--model", f"the weights of {path} do not fit architecture {arch!r}: {error}"
        ) from None
    return model.to(device).eval()


# --- data ---------------------------------------------------------------------------------


def _load_source(spec: str, split: str) -> ImageData:
    kind, _, directory = spec.partition(":")
    try:
        if kind == "mnist10k" and not directory:
            return load_mnist10k(split)
        if kind == "mnist-idx" and directory:
            return load_mnist_idx(directory, split)
        if kind == "cifar10" and directory:
            return load_cifar10(directory, split)
    except (FileNotFoundError, ValueError) as error:
        option = "--split" if "split" in str(error) else "--data"
        raise UsageError(option, str(error)) from error
    raise UsageError(
        "--data", f"unknown data {spec!r}; use mnist10k, mnist-idx:DIR or cifar10:DIR."
    )


def load_data_subset(
    spec: str, *, split: str = "test", samples: int | None = None, seed: int = 0
) -> tuple[ImageData, np.ndarray]:
    """Load the data named by a ``--data`` value and draw a seeded subset.

    Parameters
    ----------
    spec : str
        ``mnist10k`` (embedded digits), ``mnist-idx:DIR`` (MNIST IDX files) or
        ``cifar10:DIR`` (CIFAR-10 python batches).
    split : str
        ``test`` or ``train`` (``all`` for ``mnist10k``).
    samples : int, optional
        Size of the seeded random subset (all if ``None``); more than the
        split holds is an error, never a silent clamp.
    seed : int
        Seed of the subset.

    Returns
    -------
    (ImageData, numpy.ndarray)
        The subset and its sorted indices into the split (the same draw as
        :meth:`krylovadv.data.ImageData.subset`).
    """
    data = _load_source(spec, split)
    available = len(data)
    if samples is None or samples == available:
        return data, np.arange(available)
    if samples > available:
        raise UsageError(
            "--samples",
            f"{samples} samples asked for, but the {split} split of {spec} holds {available}; "
            f"pass --samples {available} or fewer.",
        )
    index = np.sort(np.random.default_rng(seed).choice(available, samples, replace=False))
    subset = ImageData(data.images[index], data.labels[index], f"{data.name}[{samples}]")
    return subset, index


def load_data(
    spec: str, *, split: str = "test", samples: int | None = None, seed: int = 0
) -> ImageData:
    """Return the subset of :func:`load_data_subset` (without its indices)."""
    return load_data_subset(spec, split=split, samples=samples, seed=seed)[0]


def default_eps(data_spec: str, norm: str) -> float:
    """Return the default radius of ``norm`` for a ``--data`` value."""
    family = "cifar10" if data_spec.startswith("cifar10") else "mnist"
    return _DEFAULT_EPS[family][norm]


def checked_eps(
    value: float | None, *, data: str, norm: str, images: ImageData, option: str
) -> float:
    r"""Return ``value`` (or the default radius) after checking it against the pixel range.

    Pixels are in [0, 1], so no two images are further apart than 1 in ℓ∞ or
    :math:`\sqrt{d}` in ℓ2 (``d`` pixels): a larger radius puts every image in
    the ball, and is almost always a radius meant for [0, 255] pixels.

    Raises
    ------
    UsageError
        Naming ``option``, the valid range and the likely intended value.
    """
    if value is None:
        return default_eps(data, norm)
    d = int(np.prod(images.images.shape[1:]))
    largest = 1.0 if norm == "linf" else math.sqrt(d)
    if value > largest:
        bound = "1" if norm == "linf" else f"sqrt({d}) = {largest:.4g}"
        raise UsageError(
            option,
            f"{value:g} is larger than {bound}, the largest {norm} distance between two images "
            f"with pixels in [0, 1], so the ball would hold every image. Radii are in [0, 1] "
            f"pixel units: for {value:g}/255 pass {value / 255:.4g}.",
        )
    return value


def check_output(path: str | Path, option: str, *, folder: bool) -> Path:
    """Check an output location before any work (:mod:`krylovadv.torch.outputs`).

    Raises
    ------
    UsageError
        Naming ``option`` when the folder cannot be created or written.
    """
    try:
        if folder:
            return check_output_dir(path, option)
        return check_output_file(path, option)
    except ValueError as error:
        raise UsageError(option, str(error).removeprefix(f"{option}: ")) from None


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
    attack: Any,
    model: nn.Module,
    data: ImageData,
    *,
    device: str = "cpu",
    batch_size: int = 256,
    progress: bool | None = None,
) -> AttackOutcome:
    """Run an attack over ``data`` in batches; check every example.

    ``progress``: a bar over the batches (``None``: only on a terminal).

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
    starts = range(0, x_all.shape[0], batch_size)
    label = type(attack).__name__
    for start in progress_bar(starts, progress=progress, desc=label, unit="batch"):
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
