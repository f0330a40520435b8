r"""The fast gradient (sign) method: one step of size ε."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .base import Attack, StepState
from .norms import Norm

__all__ = ["FGSM"]


class FGSM(Attack):
    r"""FGSM in the paper 'Explaining and harnessing adversarial examples'.

    [https://arxiv.org/abs/1412.6572]

    Distance Measure : Linf or L2

    Shape : ``x`` :math:`(B, C, H, W)` (any ``(B, ...)``) in [0, 1], float32 or float64;
    ``y`` :math:`(B,)` integer labels; output: same as ``x``.

    .. math:: x_{adv} = \Pi_{[0,1]}\bigl(x + \varepsilon\,u(\nabla_x L(x, y))\bigr),

    with :math:`u = \operatorname{sign}` for :math:`\ell_\infty` (FGSM) and
    :math:`u(g) = g/\|g\|_2` for :math:`\ell_2` (the fast gradient method, FGM).
    It is one PGD step of size ε from :math:`x` without random start, so it is
    deterministic.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Classifier returning logits for inputs in [0, 1].
    eps : float
        Radius ε of the ball (no default: state the threat model).
    norm : {"linf", "l2"} or Norm
        Threat model.  (Default: ``"linf"``)
    loss : {"ce", "cw"}
        Cross-entropy or CW margin loss.  (Default: ``"ce"``)
    kappa : float
        CW margin.  (Default: 50)

    Examples
    --------
    >>> import torch
    >>> from krylovadv.torch.attacks import FGSM
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    >>> x_adv = FGSM(model, eps=8 / 255)(x, y)
    >>> x_adv.shape
    torch.Size([2, 1, 2, 2])
    """

    name = "FGSM"

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        eps: float,
        norm: str | Norm = "linf",
        loss: str = "ce",
        kappa: float = 50.0,
    ) -> None:
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=1,
            alpha=eps,
            loss=loss,
            kappa=kappa,
            random_start=False,
        )

    def direction(
        self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, state: StepState
    ) -> torch.Tensor:
        r""":math:`\nabla_x L(x, y)`; see :meth:`Attack.direction`."""
        return state.gradient
