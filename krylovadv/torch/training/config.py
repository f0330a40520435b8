"""The configuration of a training run: :class:`TrainConfig` (every hyper-parameter, JSON)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models import MODELS
from .methods import METHODS

__all__ = ["RESUMABLE_CHANGES", "SUBSET_SEED", "TrainConfig"]

NORMS = ("linf", "l2")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "multistep", "cosine")
MIXED_MODES = ("alternate", "split")
ENSEMBLE_ATTACKS = ("fgsm", "pgd")
#: Seed of the fixed random subsets ``train_size`` and ``eval_subset`` take (the
#: embedded digits are stored sorted by class, so a prefix would be one class).
SUBSET_SEED = 0
#: Configuration fields that may change between a run and its resumption:
#: they do not affect the computed weights.
RESUMABLE_CHANGES = frozenset({"checkpoint_dir", "checkpoint_every", "keep_checkpoints", "device"})


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
        Inner maximization / outer loss: a name of
        :data:`~krylovadv.torch.training.METHODS` (see :mod:`krylovadv.torch.training`).
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
        (:func:`krylovadv.torch.pretrained.load_pretrained`), checkpoint files or
        directories, or ``.safetensors`` files
        (:func:`~krylovadv.torch.pretrained.save_weights_file`).
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
        METHODS[self.method].check(self)
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
