"""Data loaders: the embedded split, MNIST IDX files and CIFAR-10 batches."""

import gzip
import pickle

import numpy as np
import pytest

from krylovadv.data import (
    MNIST10K_TEST_SIZE,
    load_cifar10,
    load_mnist10k,
    load_mnist_idx,
    mnist10k_split,
)


def test_embedded_split_is_fixed_stratified_and_disjoint():
    full = load_mnist10k("all")
    train, test = load_mnist10k("train"), load_mnist10k("test")
    assert len(full) == 10_000 and len(train) == 8_000 and len(test) == MNIST10K_TEST_SIZE
    train_index, test_index = mnist10k_split(full.labels)
    assert np.intersect1d(train_index, test_index).size == 0
    assert np.union1d(train_index, test_index).size == 10_000
    # Stratified: each class's test share is its overall share, to one digit.
    overall = np.bincount(full.labels, minlength=10) * MNIST10K_TEST_SIZE / 10_000
    assert np.all(np.abs(np.bincount(test.labels, minlength=10) - overall) <= 1)
    # Fixed: the same split every time.
    _, again_test = mnist10k_split(full.labels)
    np.testing.assert_array_equal(again_test, test_index)
    np.testing.assert_array_equal(test.images, full.images[test_index])


def test_embedded_images_are_float_in_unit_interval_and_match_the_grey_levels():
    data = load_mnist10k("test")
    assert data.images.dtype == np.float32 and data.images.shape[1:] == (1, 28, 28)
    assert data.images.min() == 0.0 and data.images.max() == 1.0
    levels = data.images * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    assert data.labels.dtype == np.int64 and set(np.unique(data.labels)) == set(range(10))


def test_subset_is_seeded_and_without_replacement():
    data = load_mnist10k("test")
    a, b = data.subset(50, seed=3), data.subset(50, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert len(np.unique(data.subset(50, seed=4).images.reshape(50, -1), axis=0)) == 50
    np.testing.assert_array_equal(data.subset(5).labels, data.labels[:5])
    with pytest.raises(ValueError, match="count"):
        data.subset(0)


def test_unknown_split_names_the_valid_ones():
    with pytest.raises(ValueError, match="'train', 'test', 'tuning', 'reporting', 'all'"):
        load_mnist10k("validation")


def write_idx(path, array, *, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(payload)


@pytest.mark.parametrize("layout", ["flat", "torchvision", "gzip"])
def test_idx_loader_reads_the_standard_files(tmp_path, layout):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    folder = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if layout == "gzip" else ""
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images, compress=layout == "gzip")
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels, compress=layout == "gzip")
    data = load_mnist_idx(tmp_path, "test")
    np.testing.assert_allclose(data.images[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(data.labels, labels)


def test_idx_loader_names_the_missing_file_and_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_mnist_idx(tmp_path, "train")
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message
    assert "MNIST/raw" in message


@pytest.mark.parametrize("damage", ["truncate", "magic", "dims"])
def test_idx_loader_rejects_a_corrupt_file_by_name(tmp_path, damage):
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:-100]
    elif damage == "magic":
        raw[2] = 0x0D  # float32 IDX, not unsigned bytes
    else:
        raw[3] = 1  # claims one dimension
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as error:
        load_mnist_idx(tmp_path, "test")
    assert "t10k-images-idx3-ubyte" in str(error.value)


def test_idx_loader_rejects_mismatched_counts(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"3 images but .* 4 labels"):
        load_mnist_idx(tmp_path, "test")


def write_cifar_batch(path, data, labels):
    with open(path, "wb") as handle:
        pickle.dump({b"data": data, b"labels": list(labels), b"batch_label": b"test"}, handle)


def test_cifar_loader_reads_python_batches(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, 5)
    write_cifar_batch(folder / "test_batch", data, labels)
    loaded = load_cifar10(tmp_path, "test")
    assert loaded.images.shape == (5, 3, 32, 32)
    np.testing.assert_allclose(loaded.images.reshape(5, -1) * 255, data, atol=1e-4)
    np.testing.assert_array_equal(loaded.labels, labels)


class _Exploit:
    """Unpickling this would run os.system: the loader must refuse it."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_loader_never_unpickles_arbitrary_objects(tmp_path):
    with open(tmp_path / "test_batch", "wb") as handle:
        pickle.dump({b"data": _Exploit(), b"labels": [0]}, handle)
    with pytest.raises(ValueError, match=r"test_batch.*refusing to unpickle"):
        load_cifar10(tmp_path, "test")


def test_cifar_loader_names_a_missing_batch(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path, "train")


def test_cifar_loader_rejects_a_corrupt_batch(tmp_path):
    (tmp_path / "test_batch").write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(tmp_path, "test")
    write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 100), dtype=np.uint8), [0, 1])
    with pytest.raises(ValueError, match="corrupt"):
        load_cifar10(tmp_path, "test")
