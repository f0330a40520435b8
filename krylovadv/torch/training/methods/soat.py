"""``soat``: Qian et al.'s SOAT, adversarial training on second-order SOAE examples."""

from __future__ import annotations

import torch

from ...attacks import SOAE
from .base import StepContext, TrainingMethod, register_method

__all__ = ["SOAT"]


class SOAT(TrainingMethod):
    r"""Qian et al., eq. 15: :math:`x'` from :class:`~krylovadv.torch.attacks.SOAE`.

    Loss :math:`\operatorname{CE}(f(x'), y)`; SOAE's settings come from the
    ``soat_*`` configuration fields.
    """

    name = "soat"
    summary = "Qian et al. SOAT on SOAE examples (eq. 15)"

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """SOAE examples (``x`` itself at ε = 0)."""
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


register_method(SOAT())
