from __future__ import annotations

import numpy as np
import pytest

from autodata.data import MetaSplit, long_tailed_counts, long_tailed_indices, meta_split

LABELS = np.repeat(np.arange(10), 500)[np.random.default_rng(0).permutation(5000)]


def test_meta_split_is_disjoint_balanced_and_seeded(tmp_path) -> None:
    split = meta_split(LABELS, per_class=10, seed=3)
    assert np.intersect1d(split.train_indices, split.meta_indices).size == 0
    assert np.union1d(split.train_indices, split.meta_indices).tolist() == list(range(5000))
    assert np.bincount(LABELS[split.meta_indices], minlength=10).tolist() == [10] * 10
    again = meta_split(LABELS, per_class=10, seed=3)
    np.testing.assert_array_equal(again.meta_indices, split.meta_indices)
    assert not np.array_equal(meta_split(LABELS, per_class=10, seed=4).meta_indices, split.meta_indices)
    split.save(tmp_path / "split.json")
    loaded = MetaSplit.load(tmp_path / "split.json")
    np.testing.assert_array_equal(loaded.meta_indices, split.meta_indices)
    np.testing.assert_array_equal(loaded.train_indices, split.train_indices)
    assert loaded.per_class == 10 and loaded.seed == 3


def test_meta_split_too_many_per_class_names_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="class 1 has only 2 samples"):
        meta_split(labels, per_class=3)
    with pytest.raises(ValueError, match="class 2 has only 0"):
        meta_split([0, 1], per_class=1, num_classes=3)


def test_long_tailed_counts_follow_profile() -> None:
    idx = long_tailed_indices(LABELS, imbalance_factor=100, seed=0)
    counts = np.bincount(LABELS[idx], minlength=10)
    expected = (500 * (1 / 100) ** (np.arange(10) / 9)).astype(int)
    np.testing.assert_array_equal(counts, expected)
    assert counts[0] == 500 and counts[-1] == 5
    assert len(np.unique(idx)) == len(idx)
    np.testing.assert_array_equal(idx, long_tailed_indices(LABELS, 100, seed=0))
    assert long_tailed_counts(5000, 10, 1).tolist() == [5000] * 10
    assert long_tailed_counts(5000, 10, 10)[-1] == 500


def test_imbalance_factor_below_one() -> None:
    with pytest.raises(ValueError, match="imbalance_factor must be >= 1, but got 0.5"):
        long_tailed_indices(LABELS, 0.5)
