"""The compact .npz subset format round-trips and rejects bad files clearly."""
from __future__ import annotations

import numpy as np
import pytest

from autodata.data import CorruptDatasetError, DatasetNotFoundError, load_dataset, load_digits, save_npz


def test_npz_round_trip_keeps_name_and_splits(tmp_path) -> None:
    train, test = load_digits(train=True), load_digits(train=False)
    path = tmp_path / "digits.npz"
    save_npz(path, train.subset(range(100)), test.subset(range(30)))
    back = load_dataset("npz", root=path, train=True)
    assert back.name == "digits" and back.num_classes == 10
    assert np.array_equal(back.images, train.images[:100]) and np.array_equal(back.labels, train.labels[:100])
    assert len(load_dataset("npz", root=path, train=False)) == 30


def test_npz_bad_files(tmp_path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no .npz dataset"):
        load_dataset("npz", root=tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CorruptDatasetError, match="not a readable .npz"):
        load_dataset("npz", root=bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, train_images=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(CorruptDatasetError, match="lacks the arrays"):
        load_dataset("npz", root=partial)


def test_run_records_create_their_folder(tmp_path) -> None:
    from autodata.data import corrupt_labels, meta_split

    labels = load_digits().labels
    split = meta_split(labels, per_class=5, seed=0)
    noisy = corrupt_labels(labels[split.train_indices], 10, "pairflip", 0.4, seed=0)
    split.save(tmp_path / "run" / "meta_split.json")
    noisy.save(tmp_path / "run" / "noise.json")
    assert (tmp_path / "run" / "meta_split.json").exists() and (tmp_path / "run" / "noise.json").exists()
