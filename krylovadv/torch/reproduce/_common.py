"""Helpers shared by the reproduction experiments (one copy for all of them)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import __version__
from ...data import ImageData, load_mnist10k
from ..checkpoint import atomic_write_bytes
from ..masking import MaskingFlag, MaskingReport
from ..pretrained import load_pretrained, load_registry
from . import ReproduceOptions

__all__ = [
    "CACHE_FORMAT",
    "budget_note",
    "correct_count",
    "digits",
    "flag_from_dict",
    "model",
    "one_thread",
    "per_model",
    "report_from_dict",
    "save_figure",
    "shrink_note",
    "sizes",
    "split_digits",
    "split_note",
    "test_digits",
    "weights_label",
    "write_png",
]


@contextlib.contextmanager
def one_thread(enabled: bool = True) -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the thread count.

    Small CNNs on a 2-core machine run faster on one thread, and the timings do
    not depend on what else the machine runs.
    """
    before = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sizes(options: ReproduceOptions, quick: dict[str, Any], full: dict[str, Any]) -> dict:
    """Return a copy of the size dict of ``options.scale`` (read at call time: tests patch it)."""
    return dict(full if options.scale == "full" else quick)


def test_digits(count: int, seed: int) -> ImageData:
    """Return a seeded subset of ``count`` digits of the mnist10k test split."""
    return load_mnist10k("test").subset(count, seed=seed)


def split_digits(part: str, count: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the first ``count`` digits of the ``"tuning"`` or ``"reporting"`` part as tensors.

    The parts are disjoint (:func:`krylovadv.data.mnist10k_tuning_split`), and
    their prefixes are class-balanced, so a quick scale takes the first digits.
    """
    if part not in ("tuning", "reporting"):
        raise ValueError(f"part must be 'tuning' or 'reporting'; got {part!r}.")
    data = load_mnist10k(part).subset(count)
    x = torch.as_tensor(np.asarray(data.images), dtype=torch.float32, device=device)
    y = torch.as_tensor(np.asarray(data.labels), dtype=torch.long, device=device)
    return x, y


def digits(samples: int, seed: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return :func:`test_digits` as float32 image and int64 label tensors on ``device``."""
    data = test_digits(samples, seed)
    x = torch.as_tensor(np.asarray(data.images), dtype=torch.float32, device=device)
    y = torch.as_tensor(np.asarray(data.labels), dtype=torch.long, device=device)
    return x, y


def model(name: str, device: str) -> torch.nn.Module:
    """Return the zoo model ``name`` (checksum verified, eval mode) on ``device``."""
    return load_pretrained(name, device=device)


def write_png(fig: Any, path: Path, *, dpi: int = 120, **savefig: Any) -> None:
    """Render a matplotlib figure and write it atomically to ``path`` (never half a PNG)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **savefig)
    atomic_write_bytes(path, buffer.getvalue())


def save_figure(fig: Any, folder: Path | None, name: str) -> list[str]:
    """Save ``fig`` as ``folder/name`` and close it; return ``[name]``, or ``[]`` if no folder."""
    import matplotlib.pyplot as plt

    try:
        if folder is None:
            return []
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_png(fig, folder / name, bbox_inches="tight")
        return [name]
    finally:
        plt.close(fig)


def correct_count(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Return how many of ``x`` the network classifies as ``y`` (no gradient)."""
    with torch.no_grad():
        return int((net(x).argmax(1) == y).sum())


def cascade_summary(net: torch.nn.Module, cascade: Any, reporting: Any) -> dict[str, Any]:
    """Run ``cascade`` on the reporting digits and summarise what each part of it did.

    Returns its name, the digits still correct, the digits only its last attack broke,
    and whether that last attack is Square.
    Masking flag (a) compares the cascade with and without its last attack, which is a
    black-box one only when the cascade really ends with Square (not with ``square_queries=0``).
    """
    return {
        "name": cascade.name,
        "count": correct_count(net, cascade(*reporting), reporting[1]),
        "by_last": int((cascade.broken_by == len(cascade.attacks) - 1).sum()),
        "last_is_square": type(cascade.attacks[-1]).__name__ == "Square",
    }


def split_note(n_tune: int, total: int) -> str:
    """Return the report note on which digits tuned the settings and which were reported."""
    return (
        f"Split: settings tuned on the first {n_tune} digits of the tuning part, accuracies on "
        f"the first {total} digits of the disjoint reporting part (krylovadv.data, "
        "mnist10k_tuning_split: 500 tuning / 1,500 reporting of the 2,000 test digits, "
        "stratified, seed 20261130)."
    )


def weights_label(names: Any) -> str:
    """Return ``"name (sha256 0123456789ab), ..."``: which weights the numbers belong to."""
    models = load_registry()["models"]
    return ", ".join(f"{n} (sha256 {models.get(n, {}).get('sha256', '?')[:12]})" for n in names)


#: How reports name each registered architecture (the registry entry's ``model``).
ARCHITECTURE_LABELS = {
    "madry-cnn": "Madry et al.'s MNIST network (conv 32 → pool → conv 64 → pool → fc 1024)",
    "small-cnn": "the zoo's small CNN",
    "resnet18": "pre-activation ResNet-18 (the network Qian et al. train on MNIST)",
    "wide-resnet": "WideResNet",
}


def architecture_of(name: str) -> str:
    """Return the architecture (registry ``model`` field) of a registered model, or ``"?"``."""
    return str(load_registry()["models"].get(name, {}).get("model", "?"))


def architecture_note(names: Any) -> str:
    """Return the report note grouping the models by architecture, as the registry records it.

    Built from the registry rather than written into each report, so that a
    reproduction run on other models (another scale, the GPU's ResNet-18 models)
    never describes networks it did not attack.
    """
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(architecture_of(name), []).append(name)
    described = [
        f"{ARCHITECTURE_LABELS.get(arch, arch)}: {', '.join(members)}"
        for arch, members in groups.items()
    ]
    return (
        "Architectures: "
        + "; ".join(described)
        + ".  Each was trained with the budget its registry entry records (`krylovadv zoo "
        "list`), not taken from the papers' checkpoints."
    )


def shrink_note(size: dict[str, Any], full: dict[str, Any]) -> str:
    """Return the report note naming every size that differs from the full scale.

    ``size`` is the run's size dict, ``full`` the experiment's ``FULL``; the model
    lists are compared elsewhere (the models note).  At full scale nothing differs.
    """
    shrunk = [
        f"{key} {size[key]} (full: {full[key]})"
        for key in size
        if key in full and key not in ("models", "untuned") and size[key] != full[key]
    ]
    if not shrunk:
        return "Sizes: the full scale's."
    return "Sizes below the full scale (the quick scale's budget): " + ", ".join(shrunk) + "."


def machine_description(device: str) -> str:
    """Return where a computation ran: the torch device (a GPU by name) and the CPU count.

    Stored with each per-model result, so that a report assembled from parts
    computed elsewhere names the machines that computed them.
    """
    cpus = os.cpu_count() or 1
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))}, {cpus} CPU cores"
    return f"{device}, {cpus} CPU cores"


def budget_note(device: str, runs: dict[str, dict[str, Any]]) -> str:
    """Return the report note on the budget: per model, CPU and wall seconds, where and when.

    ``runs`` maps a model to the ``"run"`` entry of its :func:`per_model` payload.
    Wall time above CPU time is explained by what it can be (a shared machine, or
    a process waiting for its GPU), never by a machine the run did not use.
    """
    cpu = sum(r["cpu_seconds"] for r in runs.values())
    wall = sum(r["wall_seconds"] for r in runs.values())
    resumed = [m for m, r in runs.items() if r.get("resumed")]
    machines = sorted({r["machine"] for r in runs.values() if r.get("machine")})
    if wall > 1.2 * cpu:
        why = (
            "  Wall time exceeds CPU time: "
            + ("the processes waited for the GPU or " if device.startswith("cuda") else "")
            + "the machine was shared with other work."
        )
    else:
        why = ""
    return (
        f"Budget: {cpu:.0f} s of CPU in all on {device}, one thread per model ("
        + "; ".join(
            f"{m}: {r['cpu_seconds']:.0f} s CPU, {r['wall_seconds']:.0f} s wall, "
            f"finished {r['finished']}"
            for m, r in runs.items()
        )
        + ")."
        + (f"  Machines: {'; '.join(machines)}." if machines else "")
        + why
        + (
            f"  Read back from the per-model results of an earlier run with the same "
            f"weights, sizes, seed and versions (models/<model>.json): {', '.join(resumed)}."
            if resumed
            else ""
        )
    )


#: Layout version of the per-model result files (bump when the payload changes).
CACHE_FORMAT = 1


def per_model(
    options: ReproduceOptions,
    name: str,
    key: dict[str, Any],
    compute: Callable[[], dict[str, Any]],
    *,
    part: str | None = None,
) -> dict[str, Any]:
    """Run one model's part of a reproduction, or read it back from an earlier run.

    A reproduction at Madry et al.'s network takes tens of CPU minutes per model,
    so each model's results are written to ``options.output/models/NAME.json``
    as soon as they are complete, and a later run reuses them when everything
    they depend on is unchanged: the weights' sha256 (from the zoo registry),
    ``key`` (the sizes and switches of this model's computation), the seed, the
    device, and the krylovadv and torch versions.  Anything else (a changed
    attack in a development checkout of the same version) is not detected:
    delete the ``models`` folder to recompute.  Models are independent, and so
    are the parts of one model (``part``: one tuned column, or the baseline),
    so they may also be computed by separate processes.

    Parameters
    ----------
    options : ReproduceOptions
        The run (``output=None``: nothing is read or written).
    name : str
        Zoo model.
    key : dict
        JSON-serialisable description of this model's computation.
    compute : callable
        ``compute() -> payload`` (JSON-serialisable dict), run on one thread.  A
        payload assembled from parts lists their ``"run"`` entries under
        ``"part_runs"``; its CPU and wall seconds are then their sums.
    part : str, optional
        Name of a part of the model's results, kept in ``models/NAME/PART.json``.

    Returns
    -------
    dict
        The payload, with ``payload["run"]`` = ``{"cpu_seconds", "wall_seconds",
        "finished", "resumed"}``.
    """
    entry = load_registry()["models"].get(name, {})
    identity = {
        "format": CACHE_FORMAT,
        "model": name,
        "sha256": entry.get("sha256"),
        "key": key,
        "seed": options.seed,
        "device": options.device,
        "krylovadv": __version__,
        "torch": torch.__version__,
    }
    if part is not None:
        identity["part"] = part
    # Round-trip through JSON so that tuples and lists compare equal to the stored key.
    identity = json.loads(json.dumps(identity, default=str))
    path = None
    if options.output is not None:
        folder = Path(options.output) / "models"
        path = folder / f"{name}.json" if part is None else folder / name / f"{_slug(part)}.json"
    if path is not None and path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("identity") == identity:
            stored["payload"]["run"]["resumed"] = True
            return stored["payload"]
    cpu, wall = time.process_time(), time.perf_counter()
    with one_thread():
        payload = compute()
    parts = payload.pop("part_runs", None)
    if parts:
        # Parts may come from other processes (or earlier runs): add up their own costs.
        payload["run"] = {
            "cpu_seconds": sum(r["cpu_seconds"] for r in parts.values()),
            "wall_seconds": sum(r["wall_seconds"] for r in parts.values()),
            "finished": max(r["finished"] for r in parts.values()),
            "resumed": False,
            "parts": parts,
        }
        machines = sorted({r["machine"] for r in parts.values() if r.get("machine")})
        if machines:  # parts stored before machines were recorded have none
            payload["run"]["machine"] = "; ".join(machines)
    else:
        payload["run"] = {
            "cpu_seconds": time.process_time() - cpu,
            "wall_seconds": time.perf_counter() - wall,
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "resumed": False,
            "machine": machine_description(options.device),
        }
    payload = json.loads(json.dumps(payload, default=str))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"identity": identity, "payload": payload}, indent=1)
        atomic_write_bytes(path, text.encode("utf-8"))
    return payload


def _slug(part: str) -> str:
    # "S-O (ℓ2, 4.0)" -> "S-O_l2_4.0": a portable file name for a part.
    text = part.replace("ℓ∞", "linf").replace("ℓ2", "l2")
    return "_".join("".join(c if c.isalnum() or c in "-." else " " for c in text).split())


def flag_from_dict(data: dict[str, Any]) -> MaskingFlag:
    """Rebuild a :class:`~krylovadv.torch.masking.MaskingFlag` from its ``asdict`` form."""
    return MaskingFlag(**data)


def report_from_dict(data: dict[str, Any]) -> MaskingReport:
    """Rebuild a :class:`~krylovadv.torch.masking.MaskingReport` from ``to_dict()``."""
    return MaskingReport([flag_from_dict(f) for f in data["flags"]], int(data["total"]))
