"""``ensemble``: Tramèr et al.'s ensemble adversarial training with fixed source models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attacks import FGSM
from .base import StepContext, TrainingMethod, pgd_examples, register_method

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["Ensemble"]


class Ensemble(TrainingMethod):
    r"""Tramèr et al. (2018): examples crafted on a source drawn per batch.

    For every batch a source is drawn (seeded by the step's seed) uniformly
    among the current model and the fixed pre-trained ``ensemble_sources``;
    :math:`x'` is FGSM (or PGD, ``ensemble_attack``) on that source; loss
    :math:`(1 - w)\operatorname{CE}(f(x), y) + w\operatorname{CE}(f(x'), y)`
    with :math:`w` = ``ensemble_adv_weight``.
    """

    name = "ensemble"
    summary = "Tramèr et al. ensemble adversarial training"
    uses_sources = True

    def check(self, config: TrainConfig) -> None:
        """Require at least one fixed source model."""
        if not config.ensemble_sources:
            raise ValueError(
                "method 'ensemble' needs TrainConfig.ensemble_sources: zoo names or "
                "checkpoint paths of fixed pre-trained models."
            )

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """FGSM or PGD examples of the source drawn for this step."""
        c = ctx.config
        candidates = [ctx.model, *ctx.sources]
        draw = torch.Generator().manual_seed(ctx.seed)
        source = candidates[int(torch.randint(len(candidates), (1,), generator=draw))]
        if ctx.eps == 0:
            return x
        if c.ensemble_attack == "fgsm":
            return FGSM(source, eps=ctx.eps, norm=c.norm)(x, y)
        return pgd_examples(ctx, source, x, y)

    def loss(
        self, ctx: StepContext, net: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor
    ) -> tuple[Tensor, Tensor]:
        r""":math:`(1 - w)\,\mathrm{CE}(f(x), y) + w\,\mathrm{CE}(f(x'), y)`."""
        w = ctx.config.ensemble_adv_weight
        logits_natural = net(x)
        logits_adversarial = net(x_adv)
        loss = (1 - w) * F.cross_entropy(logits_natural, y) + w * F.cross_entropy(
            logits_adversarial, y
        )
        return loss, logits_adversarial


register_method(Ensemble())
