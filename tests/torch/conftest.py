"""Fixtures of the torch adapter tests: tiny float64 networks and seeded inputs in [0, 1].

(No ``__init__.py`` in this folder: ``tests/`` is not a package, so pytest puts
``tests/`` on ``sys.path`` and a ``tests/torch/__init__.py`` would shadow the
real ``torch`` for every test module.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

NUM_CLASSES = 4
BATCH = 6


@dataclass
class Problem:
    """A model in eval mode with a batch of inputs and labels."""

    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    piecewise_linear: bool

    @property
    def d(self) -> int:
        return int(self.x[0].numel())


def relu_cnn(seed: int = 0) -> nn.Module:
    """conv 3x3 (3 ch) - ReLU - max-pool 2 - fc 8 - ReLU - fc 4 on 1x6x6 inputs (d = 36)."""
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(27, 8),
            nn.ReLU(),
            nn.Linear(8, NUM_CLASSES),
        )
        .double()
        .eval()
    )


def softplus_mlp(seed: int = 0, d: int = 12) -> nn.Module:
    """fc 16 - softplus - fc 16 - softplus - fc 4 on flat inputs (smooth, full-rank H)."""
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Linear(d, 16),
            nn.Softplus(),
            nn.Linear(16, 16),
            nn.Softplus(),
            nn.Linear(16, NUM_CLASSES),
        )
        .double()
        .eval()
    )


def batchnorm_cnn(seed: int = 0) -> nn.Module:
    """A CNN with a BatchNorm2d layer, left in training mode."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(108, NUM_CLASSES),
    ).double()


def inputs(
    shape: tuple[int, ...], seed: int, batch: int = BATCH, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded uniform inputs in [0, 1] and labels in [0, NUM_CLASSES)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *shape), generator=gen, dtype=dtype)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
    return x, y


def make_problem(name: str, batch: int = BATCH) -> Problem:
    """The tiny problem called ``name``: ``"relu_cnn"`` or ``"softplus_mlp"``."""
    if name == "relu_cnn":
        x, y = inputs((1, 6, 6), seed=1, batch=batch)
        return Problem(name, relu_cnn(), x, y, piecewise_linear=True)
    if name == "softplus_mlp":
        x, y = inputs((12,), seed=2, batch=batch)
        return Problem(name, softplus_mlp(), x, y, piecewise_linear=False)
    raise ValueError(name)


@pytest.fixture(params=["relu_cnn", "softplus_mlp"])
def problem(request: pytest.FixtureRequest) -> Problem:
    """Each tiny network in turn, with a batch of 6 inputs."""
    return make_problem(request.param)


@pytest.fixture
def relu_problem() -> Problem:
    """The ReLU CNN with max-pool on 1x6x6 inputs."""
    return make_problem("relu_cnn")


@pytest.fixture
def softplus_problem() -> Problem:
    """The softplus MLP on 12 inputs."""
    return make_problem("softplus_mlp")


@pytest.fixture
def bn_model() -> nn.Module:
    """A CNN with BatchNorm in training mode (samples coupled)."""
    return batchnorm_cnn()


@pytest.fixture
def problem_factory():
    """``make_problem(name, batch)`` for tests that need another batch size."""
    return make_problem


@pytest.fixture
def single_thread():
    """Run a test with one intra-op thread (restored afterwards).

    The tensors of these tests are tiny: a second OpenMP thread only adds
    synchronisation, and on a loaded 2-core machine it made the Hessian tests
    ten times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
