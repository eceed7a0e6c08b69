"""The data of a run: splits, label noise and loaders, built from a :class:`TrainConfig`.

Order of operations (the noisy-label literature's, Shu et al. 2019 Sec. 4.2):

1. read the training and test sets; keep a seeded subset of ``n_train`` images;
2. make the training set long-tailed (``imbalance``);
3. hold out a clean, class-balanced meta set (``meta_per_class``) and a clean validation set
   (``val_per_class``) *before* any label is corrupted;
4. corrupt the labels of the rest (``noise``, ``noise_rate``).

Every draw takes its own seed, derived from the config's seed and a name (:func:`derive_seed`),
so that changing one part (say the validation size) does not reshuffle another.

Loaders yield images in ``[0, 1]``: normalisation happens in exactly one place, the model's
first layer (:func:`autodata.models.with_normalization`), so an augmentation policy always
sees ``[0, 1]`` pixels. Crop and flip are the loader's (:func:`autodata.data.crop_flip`).
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from autodata.data import (
    ArrayDataset,
    DeviceLoader,
    NoisyLabels,
    corrupt_labels,
    load_dataset,
    long_tailed_indices,
    meta_split,
)
from autodata.data.stats import DATASET_STATS, Normalization
from autodata.train.config import TrainConfig

__all__ = ["RunData", "build_data", "derive_seed", "normalization_of"]


def derive_seed(seed: int, name: str) -> int:
    """A seed for one named random stream of a run: stable across processes and versions.

    Example:
        >>> derive_seed(0, "model") == derive_seed(0, "model") != derive_seed(0, "train_loader")
        True
    """
    digest = hashlib.sha256(f"autodata:{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def normalization_of(dataset: ArrayDataset) -> Normalization:
    """The dataset's published constants, or its training pixels' per-channel mean and std."""
    if dataset.name in DATASET_STATS:
        return DATASET_STATS[dataset.name]
    x = torch.from_numpy(dataset.images).float().div_(255)  # (N, C, H, W)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return Normalization(tuple(float(m) for m in mean), tuple(float(s) for s in std))


@dataclass
class RunData:
    """Datasets and loaders of one run.

    Attributes:
        train: the training set, labels as trained on (noisy where noise is set).
        clean_train_labels: its true labels (to measure what noise did).
        noise: the recorded corruption (``None`` without noise).
        meta: the clean meta set (``None`` when ``meta_per_class`` is 0).
        val: the clean validation set (``None`` when ``val_per_class`` is 0).
        test: the test set.
        normalization: the constants the model's first layer applies.
    """

    train: ArrayDataset
    clean_train_labels: np.ndarray
    noise: NoisyLabels | None
    meta: ArrayDataset | None
    val: ArrayDataset | None
    test: ArrayDataset
    normalization: Normalization
    train_loader: DeviceLoader
    meta_loader: DeviceLoader | None
    val_loader: DeviceLoader | None
    test_loader: DeviceLoader

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    def with_test_subset(self, n_test: int) -> RunData:
        """This data evaluated on its first ``n_test`` test images (0: all of them)."""
        if n_test == 0:
            return self
        if not 0 < n_test <= len(self.test):
            raise ValueError(f"n_test must be in [0, {len(self.test)}], but got {n_test}.")
        test = self.test.subset(np.arange(n_test))
        old = self.test_loader
        loader = DeviceLoader(test.images, test.labels, old.batch_size, device=old.images.device, mean=None, std=None,
                              crop_padding=0, flip=False, shuffle=False, channels_last=old.channels_last)
        return dataclasses.replace(self, test=test, test_loader=loader)


def _held_out(labels: np.ndarray, per_class: int, seed: int, what: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices, held-out indices) with ``per_class`` held out per class."""
    if per_class == 0:
        return np.arange(labels.shape[0]), np.zeros(0, dtype=np.int64)
    try:
        split = meta_split(labels, per_class=per_class, seed=seed, num_classes=k)
    except ValueError as err:
        raise ValueError(f"{what}_per_class is too large for this training set: {err}") from None
    return split.train_indices, split.meta_indices


def build_data(config: TrainConfig) -> RunData:
    """Read, split, corrupt and load the data that ``config`` describes."""
    seed = config.seed
    train = load_dataset(config.dataset, root=config.data_root, train=True)
    test = load_dataset(config.dataset, root=config.data_root, train=False)
    k = train.num_classes
    if config.n_train:
        if config.n_train > len(train):
            raise ValueError(f"n_train must be <= the {len(train)} training images, but got {config.n_train}.")
        keep = np.random.default_rng(derive_seed(seed, "n_train")).permutation(len(train))[: config.n_train]
        train = train.subset(np.sort(keep))
    if config.imbalance > 1:
        train = train.subset(long_tailed_indices(train.labels, config.imbalance, seed=derive_seed(seed, "imbalance"), num_classes=k))
    rest, meta_idx = _held_out(train.labels, config.meta_per_class, derive_seed(seed, "meta"), "meta", k)
    meta = train.subset(meta_idx) if meta_idx.size else None
    train = train.subset(rest)
    rest, val_idx = _held_out(train.labels, config.val_per_class, derive_seed(seed, "val"), "val", k)
    val = train.subset(val_idx) if val_idx.size else None
    train = train.subset(rest)
    clean = train.labels.copy()
    noise = None
    if config.noise != "none":
        noise = corrupt_labels(clean, k, config.noise, config.noise_rate, seed=derive_seed(seed, "noise"))
        train = train.with_labels(noise.labels)
    if len(train) == 0:
        raise ValueError("the training set is empty after holding out the meta and validation sets; lower them.")

    device = torch.device(config.device)
    channels_last = device.type == "cuda"  # faster convolutions on GPUs; the CPU path keeps NCHW
    plain = dict(device=device, mean=None, std=None, crop_padding=0, flip=False, channels_last=channels_last)
    train_loader = DeviceLoader(
        train.images, train.labels, config.batch_size, device=device, mean=None, std=None,
        crop_padding=config.crop_padding, flip=config.flip, seed=derive_seed(seed, "train_loader"),
        channels_last=channels_last,
    )
    meta_loader = None
    if meta is not None:
        meta_loader = DeviceLoader(meta.images, meta.labels, config.meta_batch_size, seed=derive_seed(seed, "meta_loader"), **plain)
    val_loader = None
    if val is not None:
        val_loader = DeviceLoader(val.images, val.labels, config.eval_batch_size, shuffle=False, **plain)
    test_loader = DeviceLoader(test.images, test.labels, config.eval_batch_size, shuffle=False, **plain)
    return RunData(
        train, clean, noise, meta, val, test, normalization_of(train),
        train_loader, meta_loader, val_loader, test_loader,
    )
