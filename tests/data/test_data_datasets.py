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


def test_nested_subsets_compose_their_source_indices() -> None:
    ds = load_digits()
    assert ds.source_indices.tolist() == list(range(len(ds)))  # a dataset as read is its own source
    rng = np.random.default_rng(0)
    first = rng.permutation(len(ds))[:700]
    mask = rng.random(700) < 0.5
    second = rng.permutation(int(mask.sum()))[:100]
    nested = ds.subset(torch.from_numpy(first)).subset(mask).with_labels(np.zeros(int(mask.sum()), np.int64))
    nested = nested.subset(second).subset([-1, 0, 5])
    expected = first[np.flatnonzero(mask)][second][[-1, 0, 5]]  # composed by hand
    assert nested.source_indices.dtype == np.int64 and nested.source_indices.tolist() == expected.tolist()
    np.testing.assert_array_equal(nested.images, ds.images[nested.source_indices])
    assert nested.labels.tolist() == [0, 0, 0]  # new labels, same images and source positions
    assert ds.subset([]).source_indices.shape == (0,)
    assert ArrayDataset(ds.images[:3], ds.labels[:3], 10, source_indices=[7, 2, 9]).subset([2, 0]).source_indices.tolist() == [9, 7]


@pytest.mark.parametrize("indices, message", [
    ([0, 1], r"source_indices must have shape \(3,\), but got \(2,\)"),
    ([0.0, 1.0, 2.0], "source_indices must be integers, but got dtype float64"),
    ([0, -1, 2], "source_indices must be >= 0, but got -1"),
])
def test_bad_source_indices(indices, message) -> None:
    with pytest.raises(ValueError, match=message):
        ArrayDataset(np.zeros((3, 1, 2, 2), np.uint8), np.zeros(3, np.int64), 1, source_indices=np.asarray(indices))


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
