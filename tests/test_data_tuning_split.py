"""The fixed tuning/reporting split of the 2,000 embedded test digits."""

from __future__ import annotations

import numpy as np
import pytest

from krylovadv.data import (
    MNIST10K_TUNING_SIZE,
    load_mnist10k,
    mnist10k_split,
    mnist10k_tuning_split,
)


def test_parts_are_disjoint_cover_the_test_split_and_are_stratified() -> None:
    test = load_mnist10k("test")
    tuning, reporting = mnist10k_tuning_split(test.labels)
    assert len(tuning) == MNIST10K_TUNING_SIZE == 500 and len(reporting) == 1500
    assert not set(tuning) & set(reporting)
    assert sorted(np.concatenate([tuning, reporting])) == list(range(2000))
    # stratified: every class contributes a quarter of its test digits (±1)
    for cls in range(10):
        n = int((test.labels == cls).sum())
        assert abs(int((test.labels[tuning] == cls).sum()) - n / 4) <= 1


def test_prefixes_are_class_balanced_and_split_is_fixed() -> None:
    report = load_mnist10k("reporting")
    first = np.bincount(report.labels[:500], minlength=10)
    assert first.max() - first.min() <= 1
    again = load_mnist10k("reporting")
    assert np.array_equal(report.images, again.images)
    tuning = load_mnist10k("tuning")
    test = load_mnist10k("test")
    _, test_index = mnist10k_split(load_mnist10k("all").labels)
    assert len(set(test_index)) == 2000
    # tuning and reporting digits are test digits, never training digits
    assert tuning.images.shape == (500, 1, 28, 28)
    rows = {r.tobytes() for r in test.images}
    assert all(r.tobytes() in rows for r in tuning.images[:50])


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="2000 labels"):
        mnist10k_tuning_split(np.zeros(10, dtype=np.int64))
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist10k("validation")
