r"""What every training method shares: the step context, the strategy base class, the registry.

A training method is a :class:`TrainingMethod`: an inner maximization
:meth:`~TrainingMethod.perturb` that builds :math:`x'` for a batch and an outer
loss :meth:`~TrainingMethod.loss` (default :func:`adversarial_ce`).  The
trainer looks methods up by name in :data:`METHODS`; a new method is one file
that subclasses :class:`TrainingMethod` and calls :func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attacks import PGD

if TYPE_CHECKING:  # the configuration validates against this registry: no runtime import
    from ..config import TrainConfig

__all__ = [
    "METHODS",
    "StepContext",
    "TrainingMethod",
    "adversarial_ce",
    "pgd_examples",
    "register_method",
    "split_by_norm",
]


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
        Seed of this step's randomness (:func:`~krylovadv.torch.training.step_seed`).
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
        r"""``(ε', α')`` for another radius ε', with the warm-up factor of this step.

        :math:`\alpha' = 2.5\,\varepsilon'/\text{steps}` (Madry et al.'s rule).
        """
        factor = self.eps / self.config.eps if self.config.eps > 0 else 1.0
        eps_now = eps * factor
        return eps_now, 2.5 * eps_now / self.config.steps


def adversarial_ce(
    ctx: StepContext, net: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Outer loss :math:`\frac1B\sum_b \operatorname{CE}(f(x'_b), y_b)` (Qian et al., eq. 15).

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


class TrainingMethod:
    """A training method: inner maximization plus outer loss (a strategy object).

    Subclasses set :attr:`name` and :attr:`summary` and implement
    :meth:`perturb`; they override :meth:`loss` when the outer loss is not
    :func:`adversarial_ce`, and :meth:`check` when the method needs
    configuration fields the generic validation cannot know about.

    Examples
    --------
    A method in one file (then ``TrainConfig(method="noise")`` is valid):

    >>> import torch
    >>> from krylovadv.torch.training import TrainingMethod, register_method
    >>> class UniformNoise(TrainingMethod):
    ...     name = "noise"
    ...     summary = "uniform noise in the ε-ball"
    ...     def perturb(self, ctx, x, y):
    ...         noise = torch.rand(x.shape, generator=ctx.generator(x.device), dtype=x.dtype)
    ...         return (x + ctx.eps * (2 * noise - 1)).clamp(0, 1)
    >>> method = register_method(UniformNoise())  # doctest: +SKIP
    """

    #: Registry key (valid as ``TrainConfig.method`` once registered).
    name: ClassVar[str] = ""
    #: One line for reports.
    summary: ClassVar[str] = ""
    #: Whether the trainer must load ``TrainConfig.ensemble_sources`` for it.
    uses_sources: ClassVar[bool] = False

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the training inputs :math:`x'` of the batch (must not change the weights)."""
        raise NotImplementedError(f"{type(self).__name__} must implement perturb(ctx, x, y).")

    def loss(
        self, ctx: StepContext, net: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return ``(scalar loss, logits)``; default: :func:`adversarial_ce`.

        The logits are those the train accuracy is counted on.
        """
        return adversarial_ce(ctx, net, x, x_adv, y)

    def check(self, config: TrainConfig) -> None:
        """Raise ``ValueError`` naming the field if ``config`` cannot run this method."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


#: Training methods by name (extend with :func:`register_method`).
METHODS: dict[str, TrainingMethod] = {}


def register_method(method: TrainingMethod, *, overwrite: bool = False) -> TrainingMethod:
    """Add a training method to :data:`METHODS` under ``method.name``.

    Parameters
    ----------
    method : TrainingMethod
        An instance of a :class:`TrainingMethod` subclass with a non-empty ``name``.
    overwrite : bool
        Allow replacing an existing entry.

    Returns
    -------
    TrainingMethod
        ``method``.
    """
    if not isinstance(method, TrainingMethod):
        raise TypeError(
            f"register_method takes a TrainingMethod instance; got {type(method).__name__} "
            "(subclass TrainingMethod and pass an instance)."
        )
    if not method.name:
        raise ValueError(f"{type(method).__name__}.name is empty; set the registry key.")
    if method.name in METHODS and not overwrite:
        raise ValueError(f"method {method.name!r} is already registered (pass overwrite=True).")
    METHODS[method.name] = method
    return method


def pgd_examples(
    ctx: StepContext,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str | None = None,
    eps: float | None = None,
    alpha: float | None = None,
) -> torch.Tensor:
    """PGD examples of ``model`` for this step (``x`` itself at ε = 0, e.g. early in a warm-up).

    ``norm``, ``eps`` and ``alpha`` default to the configuration's norm and
    this step's ε and α; steps, random start and seed are the step's.
    """
    eps = ctx.eps if eps is None else eps
    if eps == 0:
        return x
    c = ctx.config
    attack = PGD(
        model,
        norm=c.norm if norm is None else norm,
        eps=eps,
        steps=c.steps,
        alpha=ctx.alpha if alpha is None else alpha,
        random_start=c.random_start,
        seed=ctx.seed,
    )
    return attack(x, y)


def split_by_norm(
    ctx: StepContext,
    x: torch.Tensor,
    y: torch.Tensor,
    perturb: Callable[[torch.Tensor, torch.Tensor, str, float, float], torch.Tensor],
) -> torch.Tensor:
    r"""Li et al.'s mixed :math:`\ell_\infty`/:math:`\ell_2` examples, as ``mixed_mode`` says.

    ``"alternate"``: the whole batch on the :math:`\ell_\infty` ball at even
    global steps, on the :math:`\ell_2` ball at odd ones (the paper's
    "alternating"); ``"split"``: even batch positions :math:`\ell_\infty`, odd
    positions :math:`\ell_2`.

    Parameters
    ----------
    ctx : StepContext
        The step (``config.mixed_mode``, ``global_step``).
    x, y : torch.Tensor
        The batch.
    perturb : callable
        ``perturb(inputs, labels, norm, eps, alpha) -> examples`` on one ball:
        ``mixed_eps_linf`` or ``mixed_eps_l2`` and its step size, both scaled
        by this step's warm-up (:meth:`StepContext.scaled`).

    Returns
    -------
    torch.Tensor
    """
    c = ctx.config
    balls = {"linf": ctx.scaled(c.mixed_eps_linf), "l2": ctx.scaled(c.mixed_eps_l2)}
    if c.mixed_mode == "alternate":
        norm = "linf" if ctx.global_step % 2 == 0 else "l2"
        return perturb(x, y, norm, *balls[norm])
    x_adv = x.clone()
    x_adv[0::2] = perturb(x[0::2], y[0::2], "linf", *balls["linf"])
    if x.shape[0] > 1:
        x_adv[1::2] = perturb(x[1::2], y[1::2], "l2", *balls["l2"])
    return x_adv
