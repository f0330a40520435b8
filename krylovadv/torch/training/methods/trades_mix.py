r"""``trades-mix``: TRADES with Li et al.'s mixed :math:`\ell_\infty`/:math:`\ell_2` examples."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import StepContext, register_method, split_by_norm
from .trades import TRADES

__all__ = ["TRADESMix"]


class TRADESMix(TRADES):
    r"""TRADES on Li et al.'s two balls.

    The TRADES KL ascent on the :math:`\ell_\infty` ball of ``mixed_eps_linf`` and the
    :math:`\ell_2` ball of ``mixed_eps_l2``, split as ``mixed_mode`` splits
    ``mixed``'s PGD examples; TRADES' outer loss (inherited).
    """

    name = "trades-mix"
    summary = "TRADES on ℓ∞ and ℓ2 KL examples (mixed_mode, Li et al.)"

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """TRADES' KL ascent on the two balls, split by ``mixed_mode``."""

        def kl_ascent(
            inputs: Tensor, _labels: Tensor, norm: str, eps: float, alpha: float
        ) -> Tensor:
            return self.kl_examples(ctx, inputs, norm, eps, alpha)

        return split_by_norm(ctx, x, y, kl_ascent)


register_method(TRADESMix())
