"""Torch ``Dataset``/``DataLoader`` wrappers of :mod:`krylovadv.data` (no torchvision)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from ..data import ImageData

__all__ = ["TensorImageDataset", "make_loader"]


class TensorImageDataset(Dataset):
    """Images and labels of an :class:`~krylovadv.data.ImageData` as tensors.

    Parameters
    ----------
    data : ImageData
        float32 images in [0, 1] ``(N, C, H, W)`` and int64 labels.
    dtype : torch.dtype
        Image dtype (float32 by default; float64 for numerical checks).
    """

    def __init__(self, data: ImageData, dtype: torch.dtype = torch.float32) -> None:
        self.images = torch.as_tensor(data.images).to(dtype)
        self.labels = torch.as_tensor(data.labels, dtype=torch.int64)
        self.name = data.name

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def make_loader(
    data: ImageData | Dataset,
    *,
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """Build a seeded ``DataLoader`` (single process: reproducible on CPU).

    Parameters
    ----------
    data : ImageData or Dataset
        What to iterate.
    batch_size : int
        Samples per batch.
    shuffle : bool
        Reshuffle every epoch with a generator seeded by ``seed``.
    seed : int
        Seed of the shuffling generator.
    drop_last : bool
        Drop the last incomplete batch.

    Returns
    -------
    torch.utils.data.DataLoader
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    dataset = TensorImageDataset(data) if isinstance(data, ImageData) else data
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
        num_workers=0,
    )
