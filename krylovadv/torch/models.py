"""Classifier architectures of the seeds, taking inputs in [0, 1].

Any input normalization lives inside the model (:class:`Normalize`), so that
attacks, ε-balls and the clip to [0, 1] are always in pixel space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = [
    "MODELS",
    "MadryCNN",
    "Normalize",
    "PreActResNet18",
    "SmallCNN",
    "WideResNet",
    "build_model",
]


class Normalize(nn.Module):
    r"""Per-channel standardisation :math:`(x - \mu_c)/\sigma_c` as the first layer.

    Parameters
    ----------
    mean, std : sequence of float
        One value per channel.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError("mean and std need one value per channel, std > 0.")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise ``x`` of shape ``(B, C, H, W)``."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class MadryCNN(nn.Module):
    r"""The MNIST network of Madry et al. (2018), used by both seeds.

    conv 5×5, 32 → ReLU → max-pool 2 → conv 5×5, 64 → ReLU → max-pool 2 →
    fc 1024 → ReLU → fc ``num_classes``.  Piecewise linear in its input, so its
    input Hessian under cross-entropy is :math:`J^T(\operatorname{diag} p - pp^T)J`
    of rank at most ``num_classes - 1``.

    Parameters
    ----------
    num_classes : int
        Output logits.
    in_channels : int
        1 for MNIST.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 1024),
            nn.ReLU(),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images ``(B, 1, 28, 28)`` in [0, 1]."""
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """A small MNIST CNN for quick CPU runs (about 106 k parameters).

    conv 3×3, 16 → ReLU → max-pool 2 → conv 3×3, 32 → ReLU → max-pool 2 →
    fc 64 → ReLU → fc ``num_classes``.  Same piecewise-linear structure as
    :class:`MadryCNN` (3.3 M parameters), about 30× fewer parameters.

    Parameters
    ----------
    num_classes : int
        Output logits.
    in_channels : int
        1 for MNIST.
    activation : {"relu", "softplus"}
        ``"softplus"`` gives a smooth network with a full-rank input Hessian.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu"
    ) -> None:
        super().__init__()
        act: Callable[[], nn.Module]
        if activation == "relu":
            act = nn.ReLU
        elif activation == "softplus":
            act = nn.Softplus
        else:
            raise ValueError(f"activation must be 'relu' or 'softplus'; got {activation!r}.")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1),
            act(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            act(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 64),
            act(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images ``(B, 1, 28, 28)`` in [0, 1]."""
        return self.classifier(self.features(x))


class _PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


#: Per-channel statistics of the datasets these architectures are trained on, for the
#: :class:`Normalize` layer: CIFAR-10 (3 channels) and MNIST (1 channel).
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
MNIST_MEAN_STD = ((0.1307,), (0.3081,))


def _mean_std(
    in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[Sequence[float], Sequence[float]]:
    """Default normalization for ``in_channels`` (3: CIFAR-10, 1: MNIST), or the given one."""
    if in_channels not in (1, 3) and (mean is None or std is None):
        raise ValueError(
            f"in_channels={in_channels} has no default normalization; pass mean and std "
            "with one value per channel."
        )
    default = CIFAR10_MEAN_STD if in_channels == 3 else MNIST_MEAN_STD
    mean = default[0] if mean is None else mean
    std = default[1] if std is None else std
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(
            f"mean and std need one value per input channel ({in_channels}); got "
            f"{len(mean)} and {len(std)}."
        )
    return mean, std


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 (He et al.) for CIFAR-10 (3×32×32) or MNIST (1×28×28).

    The network Qian et al. train on MNIST and CIFAR-10.  Global average pooling
    makes it independent of the image size; ``in_channels=1`` reads MNIST.

    Parameters
    ----------
    num_classes : int
        Output logits.
    in_channels : int
        Image channels: 3 (CIFAR-10, the default) or 1 (MNIST).
    mean, std : sequence of float, optional
        Input normalization applied inside the model, one value per channel
        (default: CIFAR-10's statistics for 3 channels, MNIST's for 1).
    """

    def __init__(
        self,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(*_mean_std(in_channels, mean, std))
        self.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        layers, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for s in (stride, 1):
                layers.append(_PreActBlock(in_planes, planes, s))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images ``(B, C, H, W)`` in [0, 1]."""
        out = self.layers(self.conv1(self.normalize(x)))
        out = torch.relu(self.bn(out))
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
        return self.linear(out)


class _WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(torch.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class WideResNet(nn.Module):
    """WideResNet-``depth``-``width`` (Zagoruyko & Komodakis) for CIFAR-10 or MNIST images.

    Parameters
    ----------
    depth : int
        ``6k + 4`` (28 in TRADES and Madry's CIFAR experiments).
    width : int
        Widening factor (10 in those papers).
    num_classes : int
        Output logits.
    mean, std : sequence of float, optional
        Input normalization applied inside the model, one value per channel
        (default: CIFAR-10's statistics for 3 channels, MNIST's for 1).
    in_channels : int
        Image channels: 3 (CIFAR-10, the default) or 1 (MNIST).
    """

    def __init__(
        self,
        depth: int = 28,
        width: int = 10,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6k + 4; got {depth}.")
        blocks = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.normalize = Normalize(*_mean_std(in_channels, mean, std))
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False)
        layers, in_planes = [], channels[0]
        for planes, stride in zip(channels[1:], (1, 2, 2), strict=True):
            for i in range(blocks):
                layers.append(_WideBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images ``(B, C, H, W)`` in [0, 1]."""
        out = self.layers(self.conv1(self.normalize(x)))
        out = torch.relu(self.bn(out))
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
        return self.linear(out)


#: Architecture name → constructor (keyword arguments pass through).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "madry-cnn": MadryCNN,
    "small-cnn": SmallCNN,
    "resnet18": PreActResNet18,
    "wide-resnet": WideResNet,
}


def build_model(name: str, **kwargs: object) -> nn.Module:
    """Build an architecture by name.

    Parameters
    ----------
    name : str
        One of :data:`MODELS` (``madry-cnn``, ``small-cnn``, ``resnet18``,
        ``wide-resnet``).
    **kwargs
        Passed to the constructor.

    Returns
    -------
    torch.nn.Module
        Freshly initialised (use :func:`torch.manual_seed` for reproducibility).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}.")
    return MODELS[name](**kwargs)
