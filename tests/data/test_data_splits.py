from __future__ import annotations

import numpy as np
import pytest

from autodata.data import MetaSplit, corrupt_labels, load_digits, long_tailed_counts, long_tailed_indices, meta_split

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


def test_splits_taken_through_subsets_point_into_the_original_dataset(tmp_path) -> None:
    """n_train draw -> long-tailed -> meta hold-out (saved and loaded) -> noise, as a run does."""
    digits = load_digits()
    rng = np.random.default_rng(1)
    keep = np.sort(rng.permutation(len(digits))[:900])
    train = digits.subset(keep)
    train = train.subset(long_tailed_indices(train.labels, 5, seed=2, num_classes=10))
    lt_source = train.source_indices.copy()
    split = meta_split(train.labels, per_class=4, seed=3, num_classes=10)
    split.save(tmp_path / "split.json")
    loaded = MetaSplit.load(tmp_path / "split.json")
    meta, rest = train.subset(loaded.meta_indices), train.subset(loaded.train_indices)
    noisy = rest.with_labels(corrupt_labels(rest.labels, 10, "symmetric", 0.5, seed=4).labels)
    for part in (meta, rest, noisy):
        np.testing.assert_array_equal(part.images, digits.images[part.source_indices])
    np.testing.assert_array_equal(meta.labels, digits.labels[meta.source_indices])  # clean labels
    np.testing.assert_array_equal(noisy.source_indices, rest.source_indices)
    assert np.intersect1d(meta.source_indices, rest.source_indices).size == 0
    assert np.union1d(meta.source_indices, rest.source_indices).tolist() == np.sort(lt_source).tolist()
    assert set(lt_source.tolist()) <= set(keep.tolist())
