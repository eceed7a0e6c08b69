"""Compact uint8 ``.npz`` subsets: what travels to a GPU machine instead of a whole dataset.

Layout (written by :func:`save_npz`, read by :func:`load_npz`): ``train_images`` and
``test_images`` uint8 (N, C, H, W), ``train_labels`` and ``test_labels`` int64 (N,),
``num_classes`` and ``name`` (the source dataset's name, which selects its normalisation).
Read with ``allow_pickle=False``: no code can run from the file.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from autodata.data._root import CorruptDatasetError, DatasetNotFoundError
from autodata.data.datasets import ArrayDataset

__all__ = ["load_npz", "save_npz"]

_KEYS = ("train_images", "train_labels", "test_images", "test_labels", "num_classes", "name")


def save_npz(path: str | os.PathLike[str], train: ArrayDataset, test: ArrayDataset) -> None:
    """Write a train and a test set into one uncompressed ``.npz`` file."""
    if train.num_classes != test.num_classes:
        raise ValueError(f"train and test must have the same classes, but got {train.num_classes} and {test.num_classes}.")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, train_images=train.images, train_labels=train.labels, test_images=test.images,
        test_labels=test.labels, num_classes=np.int64(train.num_classes), name=np.array(train.name),
    )


def load_npz(root: str | os.PathLike[str] | None, train: bool = True) -> ArrayDataset:
    """Read one split of a file written by :func:`save_npz`.

    Args:
        root: the ``.npz`` file.
        train: the training split if True, else the test split.
    """
    if root is None:
        raise ValueError("the npz reader needs root=<path to the .npz file>.")
    path = Path(root)
    if not path.is_file():
        raise DatasetNotFoundError(f"no .npz dataset at {path}; write one with autodata.data.save_npz.")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f.files]
            if missing:
                raise CorruptDatasetError(f"{path} lacks the arrays {missing}; expected {list(_KEYS)}.")
            split = "train" if train else "test"
            return ArrayDataset(f[f"{split}_images"], f[f"{split}_labels"], int(f["num_classes"]), str(f["name"]))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        if isinstance(error, CorruptDatasetError):
            raise
        raise CorruptDatasetError(f"{path} is not a readable .npz dataset ({error}); write it again.") from error
