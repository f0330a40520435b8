r"""Projected gradient descent (Madry et al.) on an :math:`\ell_\infty` or :math:`\ell_2` ball."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .base import Attack, StepState
from .norms import Norm

__all__ = ["PGD"]


class PGD(Attack):
    r"""PGD in the paper 'Towards Deep Learning Models Resistant to Adversarial Attacks'.

    [https://arxiv.org/abs/1706.06083]

    Distance Measure : Linf or L2

    Shape : ``x`` :math:`(B, C, H, W)` (any ``(B, ...)``) in [0, 1], float32 or float64;
    ``y`` :math:`(B,)` integer labels; output: same as ``x``.

    .. math:: x^{t+1} = \Pi_{x + \mathcal S}\bigl(x^t + \alpha\,u(\nabla_x L(x^t, y))\bigr),

    with :math:`u(g) = \operatorname{sign}(g)` for :math:`\ell_\infty` and
    :math:`g/\|g\|_2` for :math:`\ell_2` (Li et al., eq. 2).  The loss is the
    sum of per-sample losses, so each sample's step is its own (torchattacks
    uses the batch mean, which gives the same :math:`\ell_\infty` step and, up
    to its 1e-10 guard, the same :math:`\ell_2` step).

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits for inputs in [0, 1].
    norm : {"linf", "l2"} or Norm
        Threat model.  (Default: ``"linf"``)
    eps : float
        Radius ε of the ball (no default: state the threat model).
    steps : int
        Number of steps.  (Default: 40, Madry et al.'s MNIST setting)
    alpha : float, optional
        Step size.  (Default: ``2.5 * eps / steps``, Madry et al.'s rule of thumb)
    loss : {"ce", "cw"}
        Cross-entropy or CW margin loss.  (Default: ``"ce"``)
    kappa : float
        CW margin.  (Default: 50)
    random_start : bool
        Uniform random start in the ball.  (Default: True)
    restarts : int
        Random restarts, keeping each sample's worst case.  (Default: 1)
    early_stop : bool
        Stop updating misclassified samples.  (Default: False)
    seed : int, optional
        Seed of the random start.  (Default: ``None``, i.e. ``DEFAULT_SEED`` = 0)

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import PGD
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    >>> atk = PGD(model, eps=8 / 255, steps=10)
    >>> x_adv = atk(x, y)
    >>> bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
    True
    """

    name = "PGD"

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        norm: str | Norm = "linf",
        eps: float,
        steps: int = 40,
        alpha: float | None = None,
        loss: str = "ce",
        kappa: float = 50.0,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=steps,
            alpha=alpha,
            loss=loss,
            kappa=kappa,
            random_start=random_start,
            restarts=restarts,
            early_stop=early_stop,
            seed=seed,
        )

    def direction(
        self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r""":math:`\nabla_x L(x^t, y)`; see :meth:`Attack.direction`."""
        return state.gradient
