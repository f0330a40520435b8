"""The network problem shared by the torch benchmarks (one definition for all of them)."""

from __future__ import annotations

import functools

import torch

from krylovadv.torch.models import MadryCNN

#: Batch size of the torch benchmarks (Qian et al.'s training batch size).
BATCH = 128


@functools.cache
def get_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The seeded Madry CNN (eval mode, float32) and a batch of random images and labels."""
    torch.manual_seed(0)
    model = MadryCNN().eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (BATCH,), generator=gen)
    return model, x, y
