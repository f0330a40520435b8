r"""Adversarial training: one trainer, the inner maximization as a plug-in.

Adversarial training solves Madry et al.'s saddle-point problem (seed 000,
§3.2; seed 004, eq. 15)

.. math:: \min_\theta\ \mathbb E_{(x, y)}\Bigl[\max_{\delta \in B_p(\varepsilon)}
          L\bigl(f_\theta(x + \delta), y\bigr)\Bigr],

alternating an *inner maximization* that builds :math:`x' = x + \delta` for
each training batch and an *outer* optimizer step on :math:`\theta`.  The
methods differ in the inner maximization and (TRADES, ensemble) in the outer
loss; each is one entry of :data:`METHODS`:

``natural``
    :math:`x' = x` (standard training, eq. 1 of seed 004).
``pgd-at``
    Madry et al.: :math:`x'` from PGD (:class:`~krylovadv.torch.attacks.PGD`,
    random start) on the :math:`\ell_\infty` or :math:`\ell_2` ball; loss
    :math:`\operatorname{CE}(f(x'), y)`.
``trades``
    Zhang et al. (2019), as in their reference code: from
    :math:`x' = x + 0.001\,\mathcal N(0, I)`, sign-gradient steps on
    :math:`\operatorname{KL}(f(x)\,\|\,f(x'))` projected to the
    :math:`\ell_\infty` ball (normalised-gradient steps for :math:`\ell_2`),
    the model in eval mode; outer loss
    :math:`\operatorname{CE}(f(x), y) + \beta\,\frac1B\sum_b
    \operatorname{KL}(f(x_b)\,\|\,f(x'_b))` (see :func:`trades_loss`).
``mixed``
    Seed 000's mixed training on :math:`\ell_2` and :math:`\ell_\infty` PGD
    examples, ``mixed_mode="alternate"`` (even global steps
    :math:`\ell_\infty`, odd steps :math:`\ell_2`: the paper's "alternating")
    or ``"split"`` (within every batch, even positions :math:`\ell_\infty`,
    odd positions :math:`\ell_2`).
``trades-mix``
    TRADES with seed 000's mixed inner maximization: the TRADES KL ascent
    (``trades``) on the :math:`\ell_\infty` ball of ``mixed_eps_linf`` and
    the :math:`\ell_2` ball of ``mixed_eps_l2``, split as ``mixed_mode``
    splits ``mixed``'s PGD examples; the TRADES outer loss.
``soat``
    Qian et al.'s SOAT (seed 004, eq. 15): :math:`x'` from
    :class:`~krylovadv.torch.attacks.SOAE`, loss :math:`\operatorname{CE}(f(x'), y)`.
``ensemble``
    Tramèr et al. (2018): for every batch a source is drawn (seeded) uniformly
    among the current model and the fixed pre-trained ``ensemble_sources``;
    :math:`x'` is FGSM (or PGD) on that source; loss
    :math:`(1 - w)\operatorname{CE}(f(x), y) + w\operatorname{CE}(f(x'), y)`.

Determinism: the data order of epoch :math:`e` is ``torch.randperm`` with a
``torch.Generator`` seeded by ``seed + e`` (:class:`DistributedSampler`'s
rule, for one process and for DDP alike), and every attack is seeded from
``(seed, global_step, rank)``; the learning rate and ε are pure functions of
the global step.  Together with checkpoints of the weights, the optimizer
state and the RNG states (:mod:`krylovadv.torch.checkpoint`), a run killed at
any moment resumes to the same final weights on the CPU.

Run ``python -m krylovadv.torch.train --help`` for the command line; under
``torchrun --nproc_per_node=N`` the same command trains with
DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import MNIST10K_SPLIT_SEED, MNIST10K_TEST_SIZE, ImageData, load_mnist10k
from .checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .models import MODELS, build_model

__all__ = [
    "METHODS",
    "Method",
    "StepContext",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "adversarial_ce",
    "evaluate_accuracy",
    "learning_rate",
    "load_source_model",
    "main",
    "register_method",
    "step_seed",
    "trades_kl",
    "trades_loss",
    "trades_perturb",
    "train",
    "warmup_eps",
]

logger = logging.getLogger(__name__)

NORMS = ("linf", "l2")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "multistep", "cosine")
MIXED_MODES = ("alternate", "split")
ENSEMBLE_ATTACKS = ("fgsm", "pgd")
#: Seed of the fixed random subsets ``train_size`` and ``eval_subset`` take (the
#: embedded digits are stored sorted by class, so a prefix would be one class).
SUBSET_SEED = 0
# Configuration fields that may change between a run and its resumption:
# they do not affect the computed weights.
_RESUMABLE_CHANGES = frozenset({"checkpoint_dir", "checkpoint_every", "keep_checkpoints", "device"})


# --- configuration -----------------------------------------------------------


@dataclass
class TrainConfig:
    r"""Every hyper-parameter of a training run (JSON-serialisable).

    Parameters
    ----------
    model : str
        Architecture name of :data:`krylovadv.torch.models.MODELS`.
    model_kwargs : dict
        Keyword arguments of the architecture.
    method : {"natural", "pgd-at", "trades", "mixed", "trades-mix", "soat", "ensemble"}
        Inner maximization / outer loss (see the module docstring).
    epochs : int
        Passes over the training data.
    batch_size : int
        *Global* batch size :math:`B`; under DDP each of the :math:`W` ranks
        takes :math:`B/W` of every batch.
    optimizer : {"sgd", "adam"}
        Outer optimizer.
    lr : float
        Base learning rate.
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 weight decay.
    lr_schedule : {"constant", "multistep", "cosine"}
        See :func:`learning_rate`.
    milestones : list of int
        Epochs at which ``multistep`` multiplies the rate by ``lr_gamma``.
    lr_gamma : float
        Decay factor of ``multistep``.
    norm : {"linf", "l2"}
        Threat model of training (``pgd-at``, ``trades``, ``soat``,
        ``ensemble``) and of the per-epoch robust evaluation.
    eps : float
        Radius :math:`\varepsilon` (pixel scale [0, 1]).
    steps : int
        Steps of the inner maximization (PGD, TRADES, SOAE; PGD sources of
        ``ensemble``).
    alpha : float, optional
        Step size; default :math:`2.5\,\varepsilon/\text{steps}` (Madry et al.).
        Scaled with ε during the warm-up.
    random_start : bool
        PGD's random start (``pgd-at``, ``mixed``, ``ensemble`` with PGD).
    eps_warmup_epochs : float
        Ramp ε linearly from 0 over this many epochs (see :func:`warmup_eps`).
    trades_beta : float
        TRADES :math:`\beta` (Zhang et al.'s :math:`1/\lambda`).
    mixed_mode : {"alternate", "split"}
        ``alternate``: a whole batch per norm, alternating per global step;
        ``split``: half of every batch per norm (even/odd positions).
    mixed_eps_linf, mixed_eps_l2 : float
        Radii of the two norms of ``mixed`` and ``trades-mix`` (step sizes
        :math:`2.5\,\varepsilon/\text{steps}` each).
    ensemble_sources : list of str
        Pre-trained source models of ``ensemble``: model-zoo names
        (:func:`krylovadv.torch.zoo.load_pretrained`), checkpoint files or
        directories, or ``.safetensors`` files written by the zoo.
    ensemble_attack : {"fgsm", "pgd"}
        Attack crafted on the drawn source (Tramèr et al. use single-step attacks).
    ensemble_adv_weight : float
        Weight :math:`w` of the adversarial term of ``ensemble``'s loss.
    soat_hvp : {"exact", "fd-forward", "fd-central"}
        Hessian-vector products of SOAE.
    soat_max_krylov_dim : int
        Cap :math:`m` on SOAE's Krylov dimension.
    soat_tau : float
        SOAE's GMRES threshold :math:`\tau`.
    soat_shift : float
        SOAE's damping :math:`\lambda` in :math:`(H + \lambda I)\delta = g`.
    soat_eta : float, optional
        Finite-difference step of SOAE's ``fd-*`` products.
    soat_step_mode : {"norm", "raw"}
        SOAE's step (see :class:`~krylovadv.torch.attacks.SOAE`).
    dataset : str
        ``"mnist10k"``: the embedded digits, train split 8,000 / test split
        2,000 (:func:`krylovadv.data.load_mnist10k`); ``"custom"``: data passed
        to :class:`Trainer`.
    train_size : int, optional
        Train on a fixed random subset of ``train_size`` samples of the train
        split (drawn with :data:`SUBSET_SEED`, whatever ``seed``).
    eval_subset : int
        Held-out samples (a fixed random subset of the test split, drawn with
        :data:`SUBSET_SEED`) for the per-epoch clean and robust accuracy; 0
        disables the evaluation.
    eval_steps : int
        PGD steps of the per-epoch robust accuracy.
    drop_last : bool
        Drop the last incomplete batch of every epoch.
    seed : int
        Seeds the initial weights, the data order and every attack.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``; under DDP on CUDA each rank uses
        ``cuda:LOCAL_RANK``.
    checkpoint_dir : str, optional
        Where checkpoints go (none are written if ``None``).
    checkpoint_every : int
        Also checkpoint every this many global steps inside epochs (0: only
        at the end of each epoch).
    keep_checkpoints : int
        Number of newest checkpoints kept in ``checkpoint_dir``.
    """

    model: str = "small-cnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "pgd-at"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    norm: str = "linf"
    eps: float = 0.3
    steps: int = 10
    alpha: float | None = None
    random_start: bool = True
    eps_warmup_epochs: float = 0.0
    trades_beta: float = 6.0
    mixed_mode: str = "alternate"
    mixed_eps_linf: float = 0.3
    mixed_eps_l2: float = 2.0
    ensemble_sources: list[str] = field(default_factory=list)
    ensemble_attack: str = "fgsm"
    ensemble_adv_weight: float = 0.5
    soat_hvp: str = "exact"
    soat_max_krylov_dim: int = 10
    soat_tau: float = 1e-3
    soat_shift: float = 0.0
    soat_eta: float | None = None
    soat_step_mode: str = "norm"
    dataset: str = "mnist10k"
    train_size: int | None = None
    eval_subset: int = 500
    eval_steps: int = 20
    drop_last: bool = False
    seed: int = 0
    device: str = "cpu"
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ``ValueError`` naming the first bad one."""

        def choice(name: str, options: Sequence[str]) -> None:
            if getattr(self, name) not in options:
                raise ValueError(
                    f"TrainConfig.{name} must be one of {list(options)}; got "
                    f"{getattr(self, name)!r}."
                )

        def at_least(name: str, low: float, *, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (value >= low and math.isfinite(value))
            ):
                raise ValueError(
                    f"TrainConfig.{name} must be a finite number >= {low}; got {value!r}."
                )

        if self.model not in MODELS:
            raise ValueError(
                f"TrainConfig.model must be one of {sorted(MODELS)}; got {self.model!r}."
            )
        choice("method", tuple(METHODS))
        choice("optimizer", OPTIMIZERS)
        choice("lr_schedule", LR_SCHEDULES)
        choice("norm", NORMS)
        choice("mixed_mode", MIXED_MODES)
        choice("ensemble_attack", ENSEMBLE_ATTACKS)
        choice("soat_step_mode", ("norm", "raw"))
        choice("soat_hvp", ("exact", "fd-forward", "fd-central"))
        choice("dataset", ("mnist10k", "custom"))
        for name in (
            "epochs",
            "batch_size",
            "steps",
            "eval_steps",
            "soat_max_krylov_dim",
            "keep_checkpoints",
        ):
            at_least(name, 1)
        for name in (
            "lr",
            "momentum",
            "weight_decay",
            "lr_gamma",
            "eps",
            "eps_warmup_epochs",
            "trades_beta",
            "mixed_eps_linf",
            "mixed_eps_l2",
            "soat_shift",
            "eval_subset",
            "checkpoint_every",
            "seed",
        ):
            at_least(name, 0)
        at_least("alpha", 0, allow_none=True)
        at_least("soat_eta", 0, allow_none=True)
        at_least("train_size", 1, allow_none=True)
        if not 0 < self.soat_tau < 1:
            raise ValueError(f"TrainConfig.soat_tau must lie in (0, 1); got {self.soat_tau}.")
        if not 0 <= self.ensemble_adv_weight <= 1:
            raise ValueError(
                "TrainConfig.ensemble_adv_weight must lie in [0, 1]; got "
                f"{self.ensemble_adv_weight}."
            )
        if self.method == "ensemble" and not self.ensemble_sources:
            raise ValueError(
                "method 'ensemble' needs TrainConfig.ensemble_sources: zoo names or "
                "checkpoint paths of fixed pre-trained models."
            )
        if any(int(m) != m or m < 0 for m in self.milestones):
            raise ValueError(f"TrainConfig.milestones must be epochs >= 0; got {self.milestones}.")

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a plain dict (JSON-serialisable)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        """Return the configuration as indented JSON."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build a configuration from a dict; unknown keys are an error.

        Parameters
        ----------
        values : mapping
            Field name → value (missing fields take their defaults).

        Returns
        -------
        TrainConfig
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid: {sorted(known)}.")
        return cls(**dict(values))

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Parse :meth:`to_json`'s output (or any JSON object of fields)."""
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def step_size(self) -> float:
        r"""The inner step size :math:`\alpha` (default :math:`2.5\,\varepsilon/\text{steps}`)."""
        return 2.5 * self.eps / self.steps if self.alpha is None else float(self.alpha)


# --- schedules and seeds -----------------------------------------------------


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


# --- TRADES --------------------------------------------------------------------


def trades_kl(logits_natural: torch.Tensor, logits_adversarial: torch.Tensor) -> torch.Tensor:
    r"""Per-sample :math:`\operatorname{KL}(f(x_b)\,\|\,f(x'_b))` of TRADES.

    .. math:: \operatorname{KL}_b = \sum_k p_{bk}\bigl(\log p_{bk} - \log q_{bk}\bigr),
              \qquad p_b = \operatorname{softmax} f(x_b),\ q_b = \operatorname{softmax} f(x'_b),

    the value of the reference code's ``nn.KLDivLoss(size_average=False)(
    log_softmax(f(x')), softmax(f(x)))`` per sample, differentiable in both
    arguments.

    Parameters
    ----------
    logits_natural : torch.Tensor, shape (B, K)
        :math:`f(x)`.
    logits_adversarial : torch.Tensor, shape (B, K)
        :math:`f(x')`.

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    log_p = F.log_softmax(logits_natural, dim=1)
    log_q = F.log_softmax(logits_adversarial, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def trades_perturb(
    model: nn.Module,
    x: torch.Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    norm: str = "linf",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""TRADES inner maximization, as in Zhang et al.'s reference code.

    Approximately solves :math:`\max_{x' \in B_p(x, \varepsilon)}
    \operatorname{KL}(f(x)\,\|\,f(x'))`.
    Start :math:`x'_0 = x + 0.001\,\xi`, :math:`\xi \sim \mathcal N(0, I)`; with
    :math:`g_t = \nabla_{x'}\sum_b \operatorname{KL}(f(x_b)\|f(x'_{t,b}))`:

    - :math:`\ell_\infty`: :math:`x'_{t+1} = \operatorname{clip}_{[0,1]}\bigl(
      \Pi_{\|x'-x\|_\infty \le \varepsilon}(x'_t + \alpha \operatorname{sign} g_t)\bigr)`;
    - :math:`\ell_2`: :math:`\delta_{t+1} = \delta_t + \alpha\, g_t/\|g_t\|_2`
      (a random direction where :math:`g_t = 0`), then :math:`x + \delta` is
      clipped to [0, 1] and :math:`\delta` renormed to :math:`\|\delta\|_2 \le
      \varepsilon` (the reference uses :math:`\alpha = 2\varepsilon/\text{steps}`).

    The model is in eval mode throughout (each submodule's mode restored
    afterwards); :math:`f(x)` is computed once, without gradient.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier.
    x : torch.Tensor, shape (B, ...)
        Natural inputs in [0, 1].
    eps : float
        Radius ε.
    steps : int
        Number of ascent steps.
    alpha : float
        Step size.
    norm : {"linf", "l2"}
        Ball.
    generator : torch.Generator, optional
        Source of the start noise (and of the ℓ2 zero-gradient directions).

    Returns
    -------
    torch.Tensor
        :math:`x'`, detached, in [0, 1] and the ε-ball.
    """
    from .attacks.base import eval_mode

    x = x.detach()
    batch = x.shape[0]
    noise = 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    with eval_mode(model), torch.enable_grad():
        with torch.no_grad():
            p_logits = model(x)
        if norm == "linf":
            x_adv = x + noise
            for _ in range(steps):
                x_adv = x_adv.detach().requires_grad_(True)
                loss = trades_kl(p_logits, model(x_adv)).sum()
                (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = x_adv.detach() + alpha * grad.sign()
                x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
            return x_adv.detach().clamp(0.0, 1.0)
        delta = noise
        for _ in range(steps):
            delta = delta.detach().requires_grad_(True)
            loss = trades_kl(p_logits, model(x + delta)).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            norms = grad.reshape(batch, -1).norm(dim=1)
            zero = norms == 0
            if bool(zero.any()):  # reference: a random direction where g = 0
                grad[zero] = torch.randn(
                    grad[zero].shape, generator=generator, device=x.device, dtype=x.dtype
                )
                norms = grad.reshape(batch, -1).norm(dim=1)
            delta = delta.detach() + alpha * grad / norms.view(-1, *([1] * (x.ndim - 1)))
            delta = (x + delta).clamp(0.0, 1.0) - x
            delta = delta.renorm(p=2, dim=0, maxnorm=eps)
    return (x + delta).detach().clamp(0.0, 1.0)


def trades_loss(
    logits_natural: torch.Tensor, logits_adversarial: torch.Tensor, y: torch.Tensor, beta: float
) -> torch.Tensor:
    r"""TRADES outer loss, reduced as in the reference code.

    .. math:: \frac1B\sum_b \operatorname{CE}(f(x_b), y_b)
              + \beta\,\frac1B\sum_b \operatorname{KL}(f(x_b)\,\|\,f(x'_b)),

    i.e. the KL term is the per-sample *sum* over classes divided by the batch
    size (``KLDivLoss(size_average=False) / B``, PyTorch's ``"batchmean"``),
    not the mean over :math:`B \times K` entries.

    Parameters
    ----------
    logits_natural, logits_adversarial : torch.Tensor, shape (B, K)
        :math:`f(x)`, :math:`f(x')`, both with gradient.
    y : torch.Tensor, shape (B,)
        Labels.
    beta : float
        :math:`\beta`.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    batch = logits_natural.shape[0]
    robust = trades_kl(logits_natural, logits_adversarial).sum() / batch
    return F.cross_entropy(logits_natural, y) + beta * robust


# --- methods ---------------------------------------------------------------------


@dataclass
class StepContext:
    """What an inner maximization knows about the current training step.

    Attributes
    ----------
    model : torch.nn.Module
        The model being trained (the plain module, never the DDP wrapper).
    config : TrainConfig
        The run's configuration.
    eps : float
        ε of this step (after the warm-up).
    alpha : float
        Step size of this step (scaled with ε during the warm-up).
    global_step : int
        0-based optimizer step.
    seed : int
        Seed of this step's randomness (:func:`step_seed`).
    sources : list of torch.nn.Module
        Fixed source models (``ensemble``).
    """

    model: nn.Module
    config: TrainConfig
    eps: float
    alpha: float
    global_step: int
    seed: int
    sources: list[nn.Module] = field(default_factory=list)

    def generator(self, device: torch.device) -> torch.Generator:
        """Return a fresh generator on ``device`` seeded with :attr:`seed`."""
        return torch.Generator(device=device).manual_seed(self.seed)

    def scaled(self, eps: float) -> tuple[float, float]:
        """``(ε', α')`` for another radius ε', with the warm-up factor of this step."""
        factor = self.eps / self.config.eps if self.config.eps > 0 else 1.0
        eps_now = eps * factor
        return eps_now, 2.5 * eps_now / self.config.steps


#: ``perturb(ctx, x, y) -> x_adv``.
Perturb = Callable[[StepContext, torch.Tensor, torch.Tensor], torch.Tensor]
#: ``loss(ctx, net, x, x_adv, y) -> (scalar loss, logits used for the train accuracy)``.
OuterLoss = Callable[
    [StepContext, nn.Module, torch.Tensor, torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, torch.Tensor],
]


def adversarial_ce(
    ctx: StepContext, net: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Outer loss :math:`\frac1B\sum_b \operatorname{CE}(f(x'_b), y_b)` (Madry; SOAT eq. 15).

    Parameters
    ----------
    ctx : StepContext
        The step.
    net : torch.nn.Module
        The model to differentiate (the DDP wrapper under DDP).
    x, x_adv : torch.Tensor
        Natural and adversarial inputs.
    y : torch.Tensor
        Labels.

    Returns
    -------
    loss : torch.Tensor
        Scalar.
    logits : torch.Tensor
        :math:`f(x')`.
    """
    logits = net(x_adv)
    return F.cross_entropy(logits, y), logits


def _trades_outer(
    ctx: StepContext, net: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits_natural = net(x)
    logits_adversarial = net(x_adv)
    return (
        trades_loss(logits_natural, logits_adversarial, y, ctx.config.trades_beta),
        logits_adversarial,
    )


def _ensemble_outer(
    ctx: StepContext, net: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    w = ctx.config.ensemble_adv_weight
    logits_natural = net(x)
    logits_adversarial = net(x_adv)
    loss = (1 - w) * F.cross_entropy(logits_natural, y) + w * F.cross_entropy(logits_adversarial, y)
    return loss, logits_adversarial


def _natural(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x


def _pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    alpha: float,
    random_start: bool,
    seed: int,
) -> torch.Tensor:
    from .attacks import PGD

    if eps == 0:
        return x
    attack = PGD(
        model, norm=norm, eps=eps, steps=steps, alpha=alpha, random_start=random_start, seed=seed
    )
    return attack(x, y)


def _pgd_at(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    c = ctx.config
    return _pgd(
        ctx.model,
        x,
        y,
        norm=c.norm,
        eps=ctx.eps,
        steps=c.steps,
        alpha=ctx.alpha,
        random_start=c.random_start,
        seed=ctx.seed,
    )


def _trades(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    c = ctx.config
    return trades_perturb(
        ctx.model,
        x,
        eps=ctx.eps,
        steps=c.steps,
        alpha=ctx.alpha,
        norm=c.norm,
        generator=ctx.generator(x.device),
    )


def _mixed(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    c = ctx.config
    eps_inf, alpha_inf = ctx.scaled(c.mixed_eps_linf)
    eps_two, alpha_two = ctx.scaled(c.mixed_eps_l2)
    common = {"steps": c.steps, "random_start": c.random_start, "seed": ctx.seed}
    if c.mixed_mode == "alternate":
        if ctx.global_step % 2 == 0:
            return _pgd(ctx.model, x, y, norm="linf", eps=eps_inf, alpha=alpha_inf, **common)
        return _pgd(ctx.model, x, y, norm="l2", eps=eps_two, alpha=alpha_two, **common)
    x_adv = x.clone()
    x_adv[0::2] = _pgd(
        ctx.model, x[0::2], y[0::2], norm="linf", eps=eps_inf, alpha=alpha_inf, **common
    )
    if x.shape[0] > 1:
        x_adv[1::2] = _pgd(
            ctx.model, x[1::2], y[1::2], norm="l2", eps=eps_two, alpha=alpha_two, **common
        )
    return x_adv


def _trades_mix(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    c = ctx.config
    balls = {"linf": ctx.scaled(c.mixed_eps_linf), "l2": ctx.scaled(c.mixed_eps_l2)}

    def perturb(inputs: torch.Tensor, norm: str) -> torch.Tensor:
        eps, alpha = balls[norm]
        if eps == 0:
            return inputs
        return trades_perturb(
            ctx.model,
            inputs,
            eps=eps,
            steps=c.steps,
            alpha=alpha,
            norm=norm,
            generator=ctx.generator(x.device),
        )

    if c.mixed_mode == "alternate":
        return perturb(x, "linf" if ctx.global_step % 2 == 0 else "l2")
    x_adv = x.clone()
    x_adv[0::2] = perturb(x[0::2], "linf")
    if x.shape[0] > 1:
        x_adv[1::2] = perturb(x[1::2], "l2")
    return x_adv


def _soat(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from .attacks import SOAE

    c = ctx.config
    if ctx.eps == 0:
        return x
    attack = SOAE(
        ctx.model,
        norm=c.norm,
        eps=ctx.eps,
        steps=c.steps,
        alpha=ctx.alpha,
        tau=c.soat_tau,
        max_krylov_dim=c.soat_max_krylov_dim,
        shift=c.soat_shift,
        hvp=c.soat_hvp,
        eta=c.soat_eta,
        step_mode=c.soat_step_mode,
        seed=ctx.seed,
    )
    return attack(x, y)


def _ensemble(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from .attacks import FGSM

    c = ctx.config
    candidates = [ctx.model, *ctx.sources]
    draw = torch.Generator().manual_seed(ctx.seed)
    source = candidates[int(torch.randint(len(candidates), (1,), generator=draw))]
    if ctx.eps == 0:
        return x
    if c.ensemble_attack == "fgsm":
        return FGSM(source, eps=ctx.eps, norm=c.norm)(x, y)
    return _pgd(
        source,
        x,
        y,
        norm=c.norm,
        eps=ctx.eps,
        steps=c.steps,
        alpha=ctx.alpha,
        random_start=c.random_start,
        seed=ctx.seed,
    )


@dataclass(frozen=True)
class Method:
    """A training method: inner maximization plus outer loss.

    Attributes
    ----------
    name : str
        Registry key.
    perturb : callable
        ``perturb(ctx, x, y) -> x_adv`` (the inner maximization).
    loss : callable
        ``loss(ctx, net, x, x_adv, y) -> (loss, logits)``; default
        :func:`adversarial_ce`.
    summary : str
        One line for reports.
    """

    name: str
    perturb: Perturb
    loss: OuterLoss = adversarial_ce
    summary: str = ""


#: Training methods by name (extend with :func:`register_method`).
METHODS: dict[str, Method] = {
    "natural": Method("natural", _natural, summary="clean examples (ERM)"),
    "pgd-at": Method("pgd-at", _pgd_at, summary="Madry et al. PGD adversarial training"),
    "trades": Method(
        "trades", _trades, _trades_outer, summary="Zhang et al. TRADES (KL inner max, CE + β·KL)"
    ),
    "mixed": Method("mixed", _mixed, summary="ℓ2 and ℓ∞ PGD examples (seed 000)"),
    "trades-mix": Method(
        "trades-mix",
        _trades_mix,
        _trades_outer,
        summary="TRADES on ℓ∞ and ℓ2 KL examples (mixed_mode, seed 000)",
    ),
    "soat": Method("soat", _soat, summary="Qian et al. SOAT on SOAE examples (eq. 15)"),
    "ensemble": Method(
        "ensemble",
        _ensemble,
        _ensemble_outer,
        summary="Tramèr et al. ensemble adversarial training",
    ),
}


def register_method(
    name: str,
    perturb: Perturb,
    loss: OuterLoss = adversarial_ce,
    *,
    summary: str = "",
    overwrite: bool = False,
) -> Method:
    """Add a training method to :data:`METHODS`.

    Parameters
    ----------
    name : str
        Registry key (then valid as ``TrainConfig.method``).
    perturb : callable
        ``perturb(ctx, x, y) -> x_adv``; must not change the model's weights.
    loss : callable
        ``loss(ctx, net, x, x_adv, y) -> (scalar, logits)``.
    summary : str
        One line for reports.
    overwrite : bool
        Allow replacing an existing entry.

    Returns
    -------
    Method
    """
    if name in METHODS and not overwrite:
        raise ValueError(f"method {name!r} is already registered (pass overwrite=True).")
    METHODS[name] = Method(name, perturb, loss, summary)
    return METHODS[name]


# --- evaluation --------------------------------------------------------------------


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
    from .attacks import PGD
    from .attacks.base import eval_mode

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


# --- distributed helpers -----------------------------------------------------------


@dataclass(frozen=True)
class _Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str) -> _Distributed:
    """Join the process group when launched by ``torchrun`` (RANK/WORLD_SIZE set)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return _Distributed()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        initialized_here = True
    return _Distributed(rank, world, local_rank, initialized_here)


# --- the trainer ---------------------------------------------------------------------


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (plain module, eval mode).
    config : TrainConfig
        The configuration.
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``train_acc`` (on the
        training inputs, adversarial for adversarial methods), ``clean_acc``,
        ``robust_acc``, ``eval_count``, ``lr``, ``eps``, ``time_s``.
    global_step : int
        Optimizer steps taken (in total, across resumptions).
    checkpoint : Path or None
        Last checkpoint written or resumed from.
    resumed_from : int or None
        Global step of the checkpoint the run resumed from.
    """

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, Any]]
    global_step: int
    checkpoint: Path | None = None
    resumed_from: int | None = None


class Trainer:
    """Adversarial training of one model by one method, seeded and resumable.

    Parameters
    ----------
    config : TrainConfig
        All hyper-parameters.
    train_data : ImageData, optional
        Training data (default: the train split of ``config.dataset``).
    eval_data : ImageData, optional
        Held-out data of the per-epoch evaluation (default: the test split);
        a fixed random subset of ``config.eval_subset`` samples is used.
    progress : bool
        Show tqdm progress bars (only on a TTY, only on rank 0).
    sources : sequence of torch.nn.Module, optional
        Source models of ``ensemble`` (default: loaded from
        ``config.ensemble_sources``).

    Attributes
    ----------
    model : torch.nn.Module
        The model being trained (never the DDP wrapper).
    optimizer : torch.optim.Optimizer
        Its optimizer (the learning rate is set before every step).
    steps_per_epoch : int
        Optimizer steps per epoch :math:`S`.
    device : torch.device
        Where the model and the data live.

    Examples
    --------
    >>> from krylovadv.torch.train import TrainConfig, Trainer
    >>> config = TrainConfig(method="natural", epochs=1, train_size=64, batch_size=32,
    ...                      eval_subset=0)
    >>> result = Trainer(config, progress=False).fit()
    >>> result.global_step
    2
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        train_data: ImageData | None = None,
        eval_data: ImageData | None = None,
        progress: bool = True,
        sources: Sequence[nn.Module] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.dist = _setup_distributed(config.device)
        device = config.device
        if self.dist.enabled and device.startswith("cuda"):
            device = f"cuda:{self.dist.local_rank}"
            torch.cuda.set_device(device)
        self.device = torch.device(device)
        if config.batch_size % self.dist.world_size != 0:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the number "
                f"of processes {self.dist.world_size}."
            )
        self.progress = bool(progress) and self.dist.is_main
        self.method = METHODS[config.method]
        self.train_data, self.eval_data = self._data(train_data, eval_data)
        self.images = torch.as_tensor(self.train_data.images).to(self.device)
        self.labels = torch.as_tensor(self.train_data.labels, dtype=torch.int64).to(self.device)
        held_out = (
            self.eval_data.subset(config.eval_subset, seed=SUBSET_SEED)
            if config.eval_subset > 0
            else None
        )
        self.eval_images = torch.as_tensor(
            held_out.images if held_out is not None else self.eval_data.images[:0]
        ).to(self.device)
        self.eval_labels = torch.as_tensor(
            held_out.labels if held_out is not None else self.eval_data.labels[:0],
            dtype=torch.int64,
        ).to(self.device)
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, **config.model_kwargs).to(self.device)
        self.optimizer = self._optimizer()
        self.sources = list(sources) if sources is not None else self._load_sources()
        self.steps_per_epoch = len(self.epoch_batches(0))

    # -- construction ------------------------------------------------------------------
    def _data(
        self, train_data: ImageData | None, eval_data: ImageData | None
    ) -> tuple[ImageData, ImageData]:
        config = self.config
        if config.dataset == "custom" and train_data is None:
            raise ValueError("dataset='custom' needs train_data (and eval_data).")
        if train_data is None:
            train_data = load_mnist10k("train")
        if eval_data is None:
            eval_data = load_mnist10k("test") if config.dataset == "mnist10k" else train_data
        if config.train_size is not None:
            train_data = train_data.subset(config.train_size, seed=SUBSET_SEED)
        return train_data, eval_data

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        params = self.model.parameters()
        if c.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
            )
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)

    def _load_sources(self) -> list[nn.Module]:
        if self.config.method != "ensemble":
            return []
        models = []
        for spec in self.config.ensemble_sources:
            model = load_source_model(spec, device=self.device)
            for p in model.parameters():
                p.requires_grad_(False)
            models.append(model.eval())
        return models

    def split_info(self) -> dict[str, Any]:
        """Describe the data of the run (recorded in checkpoints)."""
        info: dict[str, Any] = {
            "dataset": self.config.dataset,
            "train": self.train_data.name,
            "train_count": len(self.train_data),
            "eval": self.eval_data.name,
            "eval_count": int(self.eval_labels.shape[0]),
        }
        if self.config.dataset == "mnist10k":
            info.update(
                {
                    "split_seed": MNIST10K_SPLIT_SEED,
                    "test_size": MNIST10K_TEST_SIZE,
                    "split": "krylovadv.data.mnist10k_split (stratified 8000/2000)",
                }
            )
        return info

    # -- data order ----------------------------------------------------------------------
    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        r"""Return this rank's index batches of ``epoch``.

        The permutation is :class:`DistributedSampler`'s (``randperm`` seeded by
        ``seed + epoch``); rank :math:`r` of :math:`W` takes positions
        :math:`r, r + W, \dots`, so its :math:`k`-th batch of :math:`B/W` indices
        and the other ranks' together are exactly positions
        :math:`[kB, (k+1)B)` of the permutation: the single-process global batch.
        (If :math:`W` does not divide the data, the sampler pads by repeating
        indices, and the equality holds up to the last batch.)

        Parameters
        ----------
        epoch : int
            0-based epoch.

        Returns
        -------
        list of torch.Tensor
            int64 indices into the training data, :math:`B/W` per batch (the
            last may be shorter unless ``drop_last``).
        """
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(
            range(len(self.train_data)),  # type: ignore[arg-type]
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=self.config.seed,
            drop_last=False,
        )
        sampler.set_epoch(epoch)
        indices = torch.tensor(list(sampler), dtype=torch.int64)
        per_rank = self.config.batch_size // self.dist.world_size
        batches = list(torch.split(indices, per_rank))
        if self.config.drop_last and batches and batches[-1].numel() < per_rank:
            batches.pop()
        return batches

    # -- checkpoints ---------------------------------------------------------------------
    def _save(
        self,
        *,
        epoch: int,
        step_in_epoch: int,
        global_step: int,
        history: list[dict[str, Any]],
        epoch_stats: dict[str, float],
    ) -> Path | None:
        if self.config.checkpoint_dir is None or not self.dist.is_main:
            return None
        metadata = {
            "kind": "krylovadv.torch.train",
            "method": self.config.method,
            "config": self.config.to_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "complete": epoch >= self.config.epochs,
            "epoch_stats": epoch_stats,
            "history": history,
            "rng": capture_rng_state(),
            "data": self.split_info(),
            "world_size": self.dist.world_size,
        }
        path = save_checkpoint(
            self.config.checkpoint_dir,
            step=global_step,
            model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            metadata=metadata,
            keep_last=self.config.keep_checkpoints,
        )
        log = [json.dumps(record, sort_keys=True) for record in history]
        atomic_write_bytes(
            Path(self.config.checkpoint_dir) / "history.jsonl",
            ("\n".join(log) + "\n" if log else "").encode("utf-8"),
        )
        return path

    def _restore(self, path: Path) -> dict[str, Any]:
        checkpoint = load_checkpoint(path)
        meta = checkpoint.metadata
        saved = TrainConfig.from_dict(meta["config"]).to_dict()
        current = self.config.to_dict()
        differ = sorted(
            k for k in current if current[k] != saved.get(k) and k not in _RESUMABLE_CHANGES
        )
        if differ:
            raise CheckpointError(
                f"cannot resume from {path}: its configuration differs in {differ} "
                f"(checkpoint: {[saved.get(k) for k in differ]}, now: "
                f"{[current[k] for k in differ]}). Use another checkpoint_dir for a new run."
            )
        if meta.get("steps_per_epoch") != self.steps_per_epoch:
            raise CheckpointError(
                f"cannot resume from {path}: {meta.get('steps_per_epoch')} "
                f"steps per epoch there, {self.steps_per_epoch} now (different "
                "data or batch size)."
            )
        self.model.load_state_dict(
            {k: v.to(self.device) for k, v in checkpoint.model_state.items()}
        )
        if checkpoint.optimizer_state is not None:
            self.optimizer.load_state_dict(checkpoint.optimizer_state)
        restore_rng_state(meta["rng"])
        return meta

    # -- training --------------------------------------------------------------------------
    def _context(self, global_step: int) -> StepContext:
        c = self.config
        eps = warmup_eps(c.eps, c.eps_warmup_epochs, global_step, self.steps_per_epoch)
        alpha = c.step_size * (eps / c.eps if c.eps > 0 else 1.0)
        return StepContext(
            model=self.model,
            config=c,
            eps=eps,
            alpha=alpha,
            global_step=global_step,
            seed=step_seed(c.seed, global_step, self.dist.rank),
            sources=self.sources,
        )

    def train_step(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, global_step: int
    ) -> tuple[float, int]:
        """One optimizer step on a batch; return ``(loss, correct)`` of this rank.

        Parameters
        ----------
        net : torch.nn.Module
            :attr:`model` or its DDP wrapper (the outer forward goes through it).
        x, y : torch.Tensor
            This rank's batch.
        global_step : int
            0-based step (sets the learning rate, ε and the seeds).

        Returns
        -------
        loss : float
            The batch's outer loss.
        correct : int
            Correctly classified training inputs (adversarial ones where the
            method makes them).
        """
        ctx = self._context(global_step)
        lr = learning_rate(self.config, global_step, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x_adv = self.method.perturb(ctx, x, y).detach()
        self.model.train()
        loss, logits = self.method.loss(ctx, net, x, x_adv, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), int((logits.detach().argmax(1) == y).sum())

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """Clean and PGD accuracy on the held-out subset (sharded over DDP ranks).

        Parameters
        ----------
        epoch : int
            Seeds the attack.

        Returns
        -------
        dict
            ``clean_acc``, ``robust_acc``, ``eval_count`` (``None`` accuracies
            when ``eval_subset`` is 0).
        """
        c = self.config
        n = int(self.eval_labels.shape[0])
        if n == 0:
            return {"clean_acc": None, "robust_acc": None, "eval_count": 0}
        shard = slice(self.dist.rank, None, self.dist.world_size)
        images, labels = self.eval_images[shard], self.eval_labels[shard]
        if images.shape[0] > 0:
            counts = evaluate_accuracy(
                self.model,
                images,
                labels,
                norm=c.norm,
                eps=c.eps,
                steps=c.eval_steps,
                seed=step_seed(c.seed, epoch, self.dist.rank, 1),
            )
            tally = torch.tensor(
                [counts["clean_correct"], counts["robust_correct"]], dtype=torch.int64
            )
        else:
            tally = torch.zeros(2, dtype=torch.int64)
        if self.dist.enabled:
            import torch.distributed as dist

            tally = tally.to(self.device)
            dist.all_reduce(tally)
            tally = tally.cpu()
        return {"clean_acc": int(tally[0]) / n, "robust_acc": int(tally[1]) / n, "eval_count": n}

    def fit(self, resume: bool = False) -> TrainResult:
        """Train for ``config.epochs`` epochs (or finish a checkpointed run).

        Parameters
        ----------
        resume : bool
            Continue from the newest valid checkpoint of ``config.checkpoint_dir``
            (if there is none, start from scratch).  The resumed run replays the
            same data order, attacks and learning rates, so it reaches the same
            final weights as an uninterrupted run.

        Returns
        -------
        TrainResult
        """
        c = self.config
        epoch, start_k, global_step = 0, 0, 0
        history: list[dict[str, Any]] = []
        stats = {"loss_sum": 0.0, "correct": 0, "count": 0, "time_s": 0.0}
        last_path: Path | None = None
        resumed_from = None
        if resume and c.checkpoint_dir is not None:
            path = latest_checkpoint(c.checkpoint_dir)
            if path is not None:
                meta = self._restore(path)
                epoch, start_k = int(meta["epoch"]), int(meta["step_in_epoch"])
                global_step = int(meta["global_step"])
                history = list(meta["history"])
                stats = dict(meta["epoch_stats"])
                last_path, resumed_from = path, global_step
                if self.dist.is_main:
                    logger.info(
                        "resumed from %s (epoch %d, step %d of the epoch, global step %d)",
                        path,
                        epoch,
                        start_k,
                        global_step,
                    )
        net: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(self.model, device_ids=ids)
        S = self.steps_per_epoch
        while epoch < c.epochs:
            batches = self.epoch_batches(epoch)
            bar = self._bar(epoch, start_k)
            started = time.perf_counter()
            for k in range(start_k, S):
                index = batches[k]
                x, y = self.images[index], self.labels[index]
                loss, correct = self.train_step(net, x, y, global_step)
                global_step += 1
                stats["loss_sum"] += loss * int(y.shape[0])
                stats["correct"] += correct
                stats["count"] += int(y.shape[0])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{stats['loss_sum'] / stats['count']:.3f}",
                        acc=f"{stats['correct'] / stats['count']:.3f}",
                    )
                if c.checkpoint_every and global_step % c.checkpoint_every == 0 and k + 1 < S:
                    stats["time_s"] += time.perf_counter() - started
                    started = time.perf_counter()
                    last_path = (
                        self._save(
                            epoch=epoch,
                            step_in_epoch=k + 1,
                            global_step=global_step,
                            history=history,
                            epoch_stats=stats,
                        )
                        or last_path
                    )
            if bar is not None:
                bar.close()
            stats["time_s"] += time.perf_counter() - started
            record = self._epoch_record(epoch, global_step, stats)
            history.append(record)
            if self.dist.is_main:
                logger.info("epoch %d: %s", epoch + 1, json.dumps(record))
            epoch, start_k = epoch + 1, 0
            stats = {"loss_sum": 0.0, "correct": 0, "count": 0, "time_s": 0.0}
            last_path = (
                self._save(
                    epoch=epoch,
                    step_in_epoch=0,
                    global_step=global_step,
                    history=history,
                    epoch_stats=stats,
                )
                or last_path
            )
        if self.dist.enabled:
            import torch.distributed as dist

            dist.barrier()
        self.model.eval()
        return TrainResult(
            model=self.model,
            config=c,
            history=history,
            global_step=global_step,
            checkpoint=last_path,
            resumed_from=resumed_from,
        )

    def _epoch_record(
        self, epoch: int, global_step: int, stats: Mapping[str, float]
    ) -> dict[str, Any]:
        c = self.config
        totals = torch.tensor(
            [stats["loss_sum"], stats["correct"], stats["count"]], dtype=torch.float64
        )
        if self.dist.enabled:
            import torch.distributed as dist

            totals = totals.to(self.device)
            dist.all_reduce(totals)
            totals = totals.cpu()
        count = max(float(totals[2]), 1.0)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "train_loss": float(totals[0]) / count,
            "train_acc": float(totals[1]) / count,
            "lr": learning_rate(c, max(global_step - 1, 0), self.steps_per_epoch),
            "eps": warmup_eps(
                c.eps, c.eps_warmup_epochs, max(global_step - 1, 0), self.steps_per_epoch
            ),
            "time_s": float(stats["time_s"]),
        }
        record.update(self.evaluate(epoch))
        return record

    def _bar(self, epoch: int, initial: int) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        # disable=None: tqdm turns itself off when stderr is not a terminal.
        return tqdm(
            total=self.steps_per_epoch,
            initial=initial,
            leave=False,
            disable=None,
            desc=f"{self.config.method} epoch {epoch + 1}/{self.config.epochs}",
        )

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self.dist.initialized_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def load_source_model(spec: str, *, device: torch.device | str = "cpu") -> nn.Module:
    """Load a fixed source model of ensemble training.

    Parameters
    ----------
    spec : str
        A model-zoo name, a checkpoint (``ckpt-*.json`` or its directory), or a
        ``.safetensors`` file written by the zoo (architecture in its header).

    Returns
    -------
    torch.nn.Module
        In eval mode.
    """
    from . import zoo

    if spec in zoo.available_models():
        return zoo.load_pretrained(spec, device=device)
    path = Path(spec)
    if path.suffix == ".safetensors":
        return zoo.load_weights_file(path, device=device)
    if path.is_dir() or path.suffix == ".json":
        checkpoint = load_checkpoint(path)
        config = TrainConfig.from_dict(checkpoint.metadata["config"])
        model = build_model(config.model, **config.model_kwargs)
        model.load_state_dict(checkpoint.model_state)
        return model.to(device).eval()
    raise ValueError(
        f"ensemble source {spec!r} is neither a zoo model "
        f"({zoo.available_models()}) nor a checkpoint or .safetensors file."
    )


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    train_data: ImageData | None = None,
    eval_data: ImageData | None = None,
) -> TrainResult:
    """Train a model as configured (convenience wrapper of :class:`Trainer`).

    Parameters
    ----------
    config : TrainConfig
        All hyper-parameters.
    resume : bool
        Continue from the newest valid checkpoint of ``config.checkpoint_dir``.
    progress : bool
        Progress bars (TTY and rank 0 only).
    train_data, eval_data : ImageData, optional
        Custom data (default: the embedded MNIST split).

    Returns
    -------
    TrainResult
    """
    trainer = Trainer(config, train_data=train_data, eval_data=eval_data, progress=progress)
    try:
        return trainer.fit(resume=resume)
    finally:
        trainer.close()


# --- command line ----------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m krylovadv.torch.train",
        description="Adversarial training on the embedded MNIST digits (or resume a run). "
        "Under `torchrun --nproc_per_node=N` the same command trains with DDP.",
    )
    parser.add_argument("--config", type=Path, help="JSON file of TrainConfig fields.")
    parser.add_argument(
        "--set",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help="override a field (VALUE parsed as JSON if possible); repeatable.",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest valid checkpoint of checkpoint_dir.",
    )
    parser.add_argument(
        "--out", type=Path, help="write the final weights here (.safetensors, rank 0)."
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m krylovadv.torch.train``).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    args = _build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(json.loads(args.config.read_text(encoding="utf-8")))
    for item in args.set:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs FIELD=VALUE; got {item!r}.")
        values[name.strip()] = _parse_value(text)
    config = TrainConfig.from_dict(values)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    trainer = Trainer(config, progress=not args.no_progress)
    try:
        result = trainer.fit(resume=args.resume)
        if trainer.dist.is_main:
            if args.out is not None:
                from .zoo import save_weights_file

                save_weights_file(args.out, result.model, config=config)
            summary = {
                "global_step": result.global_step,
                "checkpoint": str(result.checkpoint) if result.checkpoint else None,
                "resumed_from": result.resumed_from,
                "last_epoch": result.history[-1] if result.history else None,
            }
            print(json.dumps(summary, sort_keys=True))
    finally:
        trainer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
