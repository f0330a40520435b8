"""Clean and PGD robust accuracy of a model (the trainer's per-epoch check, the zoo's metrics)."""

from __future__ import annotations

import torch
from torch import nn

from ..attacks import PGD
from ..attacks.base import eval_mode

__all__ = ["evaluate_accuracy"]


def evaluate_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    norm: str = "linf",
    eps: float = 0.3,
    steps: int = 20,
    alpha: float | None = None,
    batch_size: int = 250,
    seed: int = 0,
    restarts: int = 1,
) -> dict[str, float | int]:
    r"""Measure clean and PGD robust accuracy of ``model`` on ``(images, labels)``.

    A sample counts as robust if it is classified correctly at the PGD example
    (random start, seeded; a clean error is also a robust error).

    Parameters
    ----------
    model : torch.nn.Module
        Classifier (put in eval mode for the evaluation, mode restored after).
    images : torch.Tensor, shape (N, ...)
        Inputs in [0, 1].
    labels : torch.Tensor, shape (N,)
        Labels.
    norm : {"linf", "l2"}
        Ball of the attack.
    eps : float
        Radius (0: robust accuracy = clean accuracy).
    steps : int
        PGD steps.
    alpha : float, optional
        Step size (default :math:`2.5\\,\\varepsilon/\\text{steps}`).
    batch_size : int
        Samples per attack batch.
    seed : int
        Seed of the random starts (batch :math:`i` uses ``seed + i``).
    restarts : int
        PGD restarts.

    Returns
    -------
    dict
        ``{"clean_correct", "robust_correct", "count", "clean_acc", "robust_acc"}``.
    """
    clean = robust = 0
    with eval_mode(model):
        for i, start in enumerate(range(0, images.shape[0], batch_size)):
            x = images[start : start + batch_size]
            y = labels[start : start + batch_size]
            with torch.no_grad():
                clean += int((model(x).argmax(1) == y).sum())
            if eps > 0:
                attack = PGD(
                    model,
                    norm=norm,
                    eps=eps,
                    steps=steps,
                    alpha=alpha,
                    random_start=True,
                    restarts=restarts,
                    seed=seed + i,
                )
                x_adv = attack(x, y)
            else:
                x_adv = x
            with torch.no_grad():
                robust += int((model(x_adv).argmax(1) == y).sum())
    count = int(images.shape[0])
    return {
        "clean_correct": clean,
        "robust_correct": robust,
        "count": count,
        "clean_acc": clean / max(count, 1),
        "robust_acc": robust / max(count, 1),
    }
