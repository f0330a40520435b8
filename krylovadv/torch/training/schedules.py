"""Pure functions of the global step: learning rate, ε warm-up and the per-step seeds.

Being pure functions of ``(config, global_step)``, they make a resumed run replay
the uninterrupted run exactly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["learning_rate", "step_seed", "warmup_eps"]


def learning_rate(config: TrainConfig, global_step: int, steps_per_epoch: int) -> float:
    r"""Learning rate :math:`\eta_s` of global step :math:`s` (0-based).

    ``constant``: :math:`\eta`; ``multistep``: :math:`\eta\,\gamma^{k}` with
    :math:`k` the number of milestones :math:`\le e = \lfloor s/S\rfloor`;
    ``cosine``: :math:`\frac{\eta}{2}\bigl(1 + \cos(\pi s / (E S))\bigr)`, with
    :math:`S` steps per epoch and :math:`E` epochs.

    Parameters
    ----------
    config : TrainConfig
        ``lr``, ``lr_schedule``, ``milestones``, ``lr_gamma``, ``epochs``.
    global_step : int
        :math:`s`.
    steps_per_epoch : int
        :math:`S`.

    Returns
    -------
    float
    """
    if config.lr_schedule == "constant":
        return float(config.lr)
    if config.lr_schedule == "multistep":
        epoch = global_step // steps_per_epoch
        passed = sum(1 for m in config.milestones if epoch >= m)
        return float(config.lr * config.lr_gamma**passed)
    total = config.epochs * steps_per_epoch
    return float(0.5 * config.lr * (1.0 + math.cos(math.pi * min(global_step, total) / total)))


def warmup_eps(eps: float, warmup_epochs: float, global_step: int, steps_per_epoch: int) -> float:
    r"""ε of global step :math:`s` under a linear warm-up over :math:`W` epochs.

    .. math:: \varepsilon_s = \varepsilon \min\Bigl(1, \frac{s + 1}{W S}\Bigr),

    so the first step already uses a positive radius and the full ε is reached
    after :math:`W S` steps (:math:`S` steps per epoch).  :math:`W = 0`: no warm-up.

    Parameters
    ----------
    eps : float
        Final radius ε.
    warmup_epochs : float
        :math:`W` (fractions allowed).
    global_step : int
        :math:`s`, 0-based.
    steps_per_epoch : int
        :math:`S`.

    Returns
    -------
    float
    """
    if warmup_epochs <= 0:
        return float(eps)
    return float(eps * min(1.0, (global_step + 1) / (warmup_epochs * steps_per_epoch)))


def step_seed(seed: int, global_step: int, rank: int = 0, stream: int = 0) -> int:
    """Seed of the randomness of one training step (attack starts, noise, source draws).

    A function of ``(seed, global_step, rank, stream)`` only (numpy's
    ``SeedSequence``), so a resumed run replays the same random numbers.

    Parameters
    ----------
    seed : int
        The run's seed.
    global_step : int
        The step (or epoch, for evaluations).
    rank : int
        DDP rank.
    stream : int
        Independent purpose (0: training step, 1: evaluation, …).

    Returns
    -------
    int
        In :math:`[0, 2^{31})`.
    """
    sequence = np.random.SeedSequence([int(seed), int(global_step), int(rank), int(stream)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0] >> 1)
