"""Datasets, label noise, splits and fast batch loading.

Readers take ``root=`` or read the ``AUTODATA_DATA`` environment variable and return an
:class:`ArrayDataset` (uint8 images (N, C, H, W), int64 labels).

Example:
    >>> from autodata.data import load_dataset, corrupt_labels, meta_split, DeviceLoader
    >>> train = load_dataset("digits", train=True)
    >>> split = meta_split(train.labels, per_class=5, seed=0)
    >>> noisy = corrupt_labels(train.labels[split.train_indices], 10, "symmetric", 0.4, seed=0)
    >>> loader = DeviceLoader.from_dataset(train.subset(split.train_indices).with_labels(noisy.labels), 128)
"""
from __future__ import annotations

from autodata.data._root import DATA_ENV_VAR, CorruptDatasetError, DatasetNotFoundError, resolve_root
from autodata.data._unpickle import UnsafePickleError, restricted_loads
from autodata.data.cifar import load_cifar10, load_cifar100
from autodata.data.datasets import ArrayDataset, from_dataset, from_tensors
from autodata.data.loader import DeviceLoader, crop_flip, make_dataloader, sample_crop_flip
from autodata.data.mnist import load_fashion_mnist, load_mnist, read_idx
from autodata.data.npz import load_npz, save_npz
from autodata.data.noise import NOISE_KINDS, NoisyLabels, corrupt_labels, noise_transition_matrix
from autodata.data.registry import DATASETS, load_dataset, load_digits
from autodata.data.splits import MetaSplit, long_tailed_counts, long_tailed_indices, meta_split
from autodata.data.stats import DATASET_STATS, Normalization, dataset_stats

__all__ = [
    "DATASETS",
    "DATASET_STATS",
    "DATA_ENV_VAR",
    "NOISE_KINDS",
    "ArrayDataset",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "DeviceLoader",
    "MetaSplit",
    "Normalization",
    "NoisyLabels",
    "UnsafePickleError",
    "corrupt_labels",
    "crop_flip",
    "dataset_stats",
    "from_dataset",
    "from_tensors",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_npz",
    "long_tailed_counts",
    "long_tailed_indices",
    "make_dataloader",
    "meta_split",
    "noise_transition_matrix",
    "read_idx",
    "resolve_root",
    "restricted_loads",
    "sample_crop_flip",
    "save_npz",
]
