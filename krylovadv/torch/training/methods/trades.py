"""``trades``: Zhang et al.'s TRADES (KL inner maximization, CE + β·KL outer loss)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..trades import trades_loss, trades_perturb
from .base import StepContext, TrainingMethod, register_method

__all__ = ["TRADES"]


class TRADES(TrainingMethod):
    r"""Zhang et al., as in their reference code.

    :math:`x'` from :func:`~krylovadv.torch.training.trades_perturb` on the
    ``norm`` ball; outer loss :func:`~krylovadv.torch.training.trades_loss`
    with :math:`\beta` = ``trades_beta``.
    """

    name = "trades"
    summary = "Zhang et al. TRADES (KL inner max, CE + β·KL)"

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """TRADES' KL ascent on the ``norm`` ball of this step's ε."""
        return self.kl_examples(ctx, x, ctx.config.norm, ctx.eps, ctx.alpha)

    @staticmethod
    def kl_examples(
        ctx: StepContext, x: torch.Tensor, norm: str, eps: float, alpha: float
    ) -> torch.Tensor:
        """:func:`~krylovadv.torch.training.trades_perturb` on one ball (``x`` itself at ε = 0)."""
        if eps == 0:
            return x
        return trades_perturb(
            ctx.model,
            x,
            eps=eps,
            steps=ctx.config.steps,
            alpha=alpha,
            norm=norm,
            generator=ctx.generator(x.device),
        )

    def loss(
        self, ctx: StepContext, net: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor
    ) -> tuple[Tensor, Tensor]:
        r"""TRADES' outer loss :math:`\operatorname{CE}(f(x), y) + \beta\,\mathrm{KL}`."""
        logits_natural = net(x)
        logits_adversarial = net(x_adv)
        loss = trades_loss(logits_natural, logits_adversarial, y, ctx.config.trades_beta)
        return loss, logits_adversarial


register_method(TRADES())
