r"""``pgd-at``: Madry et al.'s PGD adversarial training (:math:`\ell_\infty` or :math:`\ell_2`)."""

from __future__ import annotations

import torch

from .base import StepContext, TrainingMethod, pgd_examples, register_method

__all__ = ["PGDAT"]


class PGDAT(TrainingMethod):
    r"""Madry et al.: :math:`x'` from PGD (random start) on the ``norm`` ball of radius ε.

    Loss :math:`\operatorname{CE}(f(x'), y)`.
    """

    name = "pgd-at"
    summary = "Madry et al. PGD adversarial training"

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD examples on the ``norm`` ball of this step's ε."""
        return pgd_examples(ctx, ctx.model, x, y)


register_method(PGDAT())
