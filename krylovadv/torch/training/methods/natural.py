"""``natural``: standard training on the clean examples (empirical risk minimization)."""

from __future__ import annotations

import torch

from .base import StepContext, TrainingMethod, register_method

__all__ = ["Natural"]


class Natural(TrainingMethod):
    r""":math:`x' = x` (standard training, Qian et al., eq. 1)."""

    name = "natural"
    summary = "clean examples (ERM)"

    def perturb(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return ``x`` unchanged."""
        return x


register_method(Natural())
