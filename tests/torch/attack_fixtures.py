"""Models and data for the attack tests (imported by ``test_attacks*.py``).

Everything is seeded and cached per process: the small MNIST CNN is trained
once (a few seconds on two CPU cores) on 2000 digits of the embedded
``krylovadv/data/mnist10k.npz`` and reused by every test that needs a model
that actually classifies.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

import krylovadv

MNIST_PATH = Path(krylovadv.__file__).parent / "data" / "mnist10k.npz"

#: Digits used for training and for testing (disjoint, drawn by a seeded permutation:
#: the file is sorted by label).
N_TRAIN = 2000
N_TEST = 400


def one_cpu_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the thread count (a fixture body).

    The test networks are tiny: a second intra-op thread only adds
    synchronisation, and on a loaded two-core machine it makes every backward
    pass several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=1)
def mnist_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: float32 images in [0, 1] ``(N, 1, 28, 28)``."""
    with np.load(MNIST_PATH) as data:
        images, labels = data["images"], data["labels"]
    order = np.random.default_rng(0).permutation(labels.shape[0])
    train, test = order[:N_TRAIN], order[N_TRAIN : N_TRAIN + N_TEST]

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(images[idx].astype(np.float32) / 255.0)[:, None]
        return x, torch.from_numpy(labels[idx].astype(np.int64))

    return (*tensors(train), *tensors(test))


class StridedCNN(nn.Module):
    """conv 5×5 stride 2, 8 → ReLU → conv 3×3 stride 2, 16 → ReLU → fc 10 (about 10 k weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@functools.lru_cache(maxsize=1)
def trained_cnn() -> StridedCNN:
    """A :class:`StridedCNN` trained for 4 epochs on 2000 digits (about 90 % test accuracy).

    Returned in eval mode.  Tests must not modify it (copy it first).
    """
    x, y, _, _ = mnist_split()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = StridedCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(4):
        for batch in torch.randperm(N_TRAIN, generator=generator).split(64):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


def test_digits(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` held-out digits ``(x, y)``."""
    _, _, x, y = mnist_split()
    return x[:n], y[:n]


test_digits.__test__ = False  # not a test, despite its name


def tiny_model(
    channels: int = 1,
    num_classes: int = 10,
    *,
    activation: str = "relu",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """A very small seeded conv net for inputs ``(B, channels, H, W)`` of any size ≥ 1×1.

    conv 3×3, 4 → activation → adaptive average pool 2×2 → fc ``num_classes``.
    ``activation="tanh"`` gives a smooth net (full-rank, indefinite input Hessian).
    """
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus}[activation]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(channels, 4, 3, padding=1),
            act(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16, num_classes),
        )
    return model.to(dtype).eval()


def tiny_mlp(
    d: int,
    num_classes: int = 5,
    *,
    hidden: int = 16,
    activation: str = "tanh",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> nn.Module:
    """A seeded MLP on inputs ``(B, d)`` (small enough to build dense Hessians)."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus}[activation]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(d, hidden), act(), nn.Linear(hidden, num_classes))
    return model.to(dtype).eval()


class QuadraticLoss:
    r"""A loss with a known Hessian: :math:`\ell_b(z) = \tfrac12 z^T A z + c^T z` on logits ``z``.

    With an identity "model" (``nn.Flatten()``) the logits are the inputs, so
    :math:`\nabla_x \ell = A x + c` and :math:`\nabla_x^2 \ell = A` exactly.
    """

    def __init__(self, A: torch.Tensor, c: torch.Tensor) -> None:
        self.A, self.c = A, c

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((logits @ self.A) * logits).sum(dim=1) + logits @ self.c


#: Input size and class count of :func:`linear_model` (the closed-form reference of the
#: second-order attack tests: gradient and input Hessian of ``z = W x + b`` are exact).
D, K = 6, 4


def linear_model(seed: int = 0) -> nn.Module:
    """Seeded ``z = W x + b`` on flat float64 inputs of size D, K classes."""
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(D, K).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(K, D, generator=gen, dtype=torch.float64))
        lin.bias.copy_(0.5 * torch.randn(K, generator=gen, dtype=torch.float64))
    return lin.eval()


def linear_batch(n: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded inputs in [0.2, 0.8]^D for :func:`linear_model`, labels ``b mod K``."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.2 + 0.6 * torch.rand(n, D, generator=gen, dtype=torch.float64)
    return x, torch.arange(n) % K


def spd_matrix(d: int, *, condition: float = 10.0, seed: int = 0) -> np.ndarray:
    """A seeded symmetric positive definite ``d × d`` matrix with the given condition number."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eigenvalues = np.geomspace(1.0, condition, d)
    return (q * eigenvalues) @ q.T


def random_images(
    shape: tuple[int, ...], *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Seeded uniform images in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=dtype)


#: Short, cheap settings of every attack for the property tests.
ATTACK_KINDS = ("fgsm", "pgd", "so", "sopower", "soae")


def make_attack(
    kind: str, model: nn.Module, *, norm: str = "linf", eps: float = 0.1, **kwargs: object
):
    """Build attack ``kind`` with few steps (and few samples / products) for fast tests."""
    from krylovadv.torch.attacks import FGSM, PGD, SO, SOAE, SOPower

    if kind == "fgsm":
        return FGSM(model, eps=eps, norm=norm, **kwargs)
    settings: dict[str, object] = {"steps": 3}
    if kind == "pgd":
        return PGD(model, eps=eps, norm=norm, **{**settings, **kwargs})
    if kind == "so":
        return SO(model, eps=eps, norm=norm, **{**settings, "samples": 2, **kwargs})
    if kind == "sopower":
        return SOPower(model, eps=eps, norm=norm, **{**settings, "power_iters": 3, **kwargs})
    if kind == "soae":
        return SOAE(model, eps=eps, norm=norm, **{**settings, "max_krylov_dim": 5, **kwargs})
    raise ValueError(kind)
