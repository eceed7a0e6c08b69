from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from autodata.data import (
    DATASET_STATS,
    ArrayDataset,
    dataset_stats,
    from_dataset,
    from_tensors,
    load_dataset,
    load_digits,
    resolve_root,
)


def test_digits() -> None:
    ds = load_digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255 and ds.num_classes == 10
    train, test = load_dataset("digits", train=True), load_dataset("digits", train=False)
    assert len(train) + len(test) == 1797
    np.testing.assert_array_equal(np.concatenate([train.labels, test.labels]), ds.labels)
    np.testing.assert_allclose(ds.images.mean() / 255, DATASET_STATS["digits"].mean[0], atol=1e-3)


def test_array_dataset_is_a_torch_dataset() -> None:
    ds = load_digits()
    image, label = ds[3]
    assert image.shape == (1, 8, 8) and image.dtype == torch.uint8 and label == int(ds.labels[3])
    sub = ds.subset([5, 1])
    assert len(sub) == 2 and sub.labels.tolist() == ds.labels[[5, 1]].tolist()
    batch = next(iter(torch.utils.data.DataLoader(sub, batch_size=2)))
    assert batch[0].shape == (2, 1, 8, 8)
    relabelled = ds.with_labels(np.zeros(len(ds), np.int64))
    assert relabelled.class_counts()[0] == len(ds)


def test_from_tensors_and_from_dataset() -> None:
    images = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    ds = from_tensors(images, torch.tensor([0, 1, 2, 0, 1, 4]))
    assert ds.num_classes == 5 and ds.images.shape == (6, 3, 4, 4)
    grey = from_tensors(np.zeros((2, 5, 5), np.uint8), [0, 1], num_classes=2)
    assert grey.images.shape == (2, 1, 5, 5)
    wrapped = from_dataset(TensorDataset(images.float() / 255, torch.tensor([0, 1, 2, 0, 1, 4])), name="toy")
    np.testing.assert_array_equal(wrapped.images, images.numpy())
    assert wrapped.name == "toy"


def test_bad_containers() -> None:
    with pytest.raises(ValueError, match="uint8"):
        from_tensors(torch.zeros(2, 1, 4, 4), [0, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ArrayDataset(np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        ArrayDataset(np.zeros((2, 1, 4, 4), np.uint8), np.array([0]), 2)
    with pytest.raises(ValueError, match="must be one of"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="must be one of"):
        dataset_stats("svhn")


def test_resolve_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTODATA_DATA", str(tmp_path))
    assert resolve_root(None) == tmp_path
    assert resolve_root("/x") == Path("/x")
    monkeypatch.delenv("AUTODATA_DATA")
    with pytest.raises(ValueError, match="pass root="):
        resolve_root(None)
