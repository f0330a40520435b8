r"""``mixed``: Li et al.'s mixed training on :math:`\ell_\infty` and :math:`\ell_2` PGD examples."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import StepContext, TrainingMethod, pgd_examples, register_method, split_by_norm

__all__ = ["Mixed"]


class Mixed(TrainingMethod):
    r"""Li et al.'s mixed training: PGD examples on two balls.

    The :math:`\ell_\infty` ball of ``mixed_eps_linf`` and the :math:`\ell_2`
    ball of ``mixed_eps_l2``, split as ``mixed_mode`` says
    (:func:`~krylovadv.torch.training.methods.base.split_by_norm`); loss
    :math:`\operatorname{CE}(f(x'), y)`.
    """

    name = "mixed"
    summary = "ℓ2 and ℓ∞ PGD examples (Li et al.)"

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD examples on the two balls, split by ``mixed_mode``."""

        def pgd(inputs: Tensor, labels: Tensor, norm: str, eps: float, alpha: float) -> Tensor:
            return pgd_examples(ctx, ctx.model, inputs, labels, norm=norm, eps=eps, alpha=alpha)

        return split_by_norm(ctx, x, y, pgd)


register_method(Mixed())
