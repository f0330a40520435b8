"""Helpers shared by the reproduction experiments (one copy for all of them)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data import ImageData, load_mnist10k
from ..checkpoint import atomic_write_bytes
from ..pretrained import load_pretrained
from . import ReproduceOptions

__all__ = [
    "budget_note",
    "correct_count",
    "digits",
    "model",
    "one_thread",
    "save_figure",
    "sizes",
    "split_digits",
    "split_note",
    "test_digits",
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


def split_note(n_tune: int, total: int) -> str:
    """Return the report note on which digits tuned the settings and which were reported."""
    return (
        f"Split: settings tuned on the first {n_tune} digits of the tuning part, accuracies on "
        f"the first {total} digits of the disjoint reporting part (krylovadv.data, "
        "mnist10k_tuning_split: 500 tuning / 1,500 reporting of the 2,000 test digits, "
        "stratified, seed 20261130)."
    )


def budget_note(elapsed: float, device: str, seconds: dict[str, float]) -> str:
    """Return the report note with the wall time, in all and per model."""
    return (
        f"Budget: {elapsed:.0f} s wall on {device}, one thread ("
        + ", ".join(f"{m} {s:.0f} s" for m, s in seconds.items())
        + "); the machine was shared, so wall time overstates CPU time."
    )
