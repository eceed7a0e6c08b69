"""Index splits: a clean, class-balanced meta set and long-tailed (imbalanced) subsets.

References:
    Shu et al., "Meta-Weight-Net", NeurIPS 2019: the meta set (e.g. 10 images per class
    of CIFAR) is taken from the training set before the labels are corrupted.
    Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss"
    (LDAM), NeurIPS 2019: exponential profile ``n_c = n_max * (1 / factor) ** (c / (K - 1))``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodata.data._io import write_json

__all__ = ["MetaSplit", "meta_split", "long_tailed_counts", "long_tailed_indices"]


def check_count(value: Any, name: str, minimum: int = 0) -> int:
    """``value`` as an int if it is an integer (Python or numpy, not bool) >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, but got {value!r}.")
    return int(value)


def labels_and_classes(labels: Any, num_classes: int | None) -> tuple[np.ndarray, int]:
    """Validated int64 labels (N,) and K (inferred as ``max + 1`` when ``num_classes`` is None)."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, but got shape {y.shape}.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, but got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if num_classes is not None:
        k = check_count(num_classes, "num_classes", 1)
    else:
        k = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}), but got range [{y.min()}, {y.max()}].")
    return y, k


@dataclass(frozen=True, eq=False)
class MetaSplit:
    """Disjoint train / meta indices into a training set.

    The indices are positions in the labels the split was drawn on (and saved with
    :meth:`save`); to find the samples in the dataset those labels were read from, take
    them through :meth:`~autodata.data.ArrayDataset.subset`, whose ``source_indices``
    compose: ``train.subset(split.meta_indices).source_indices``.

    Attributes:
        train_indices: Indices left for training, int64, sorted.
        meta_indices: The clean meta set, ``per_class`` per class, int64, sorted.
        per_class: Meta samples per class.
        seed: The int seed used.
    """

    train_indices: np.ndarray
    meta_indices: np.ndarray
    per_class: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record."""
        return {
            "per_class": self.per_class,
            "seed": self.seed,
            "train_indices": self.train_indices.tolist(),
            "meta_indices": self.meta_indices.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "split") -> MetaSplit:
        """Rebuilds the split written by :meth:`to_dict`.

        Raises:
            ValueError: naming ``source`` and the field, if a field is missing or is not
                what :meth:`to_dict` writes, or if an index is both a train and a meta index.
        """
        if not isinstance(d, dict):
            raise ValueError(f"{source} must hold a JSON object, but got {type(d).__name__}.")
        missing = [k for k in ("train_indices", "meta_indices", "per_class", "seed") if k not in d]
        if missing:
            raise ValueError(f"{source} must have the field(s) {missing}, but they are missing.")
        arrays = []
        for key in ("train_indices", "meta_indices"):
            values = d[key]
            if not isinstance(values, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in values
            ):
                raise ValueError(f"{source}: {key} must be a list of integers >= 0.")
            arrays.append(np.asarray(values, np.int64))
        train, meta = arrays
        both = np.intersect1d(train, meta)
        if both.size:
            raise ValueError(
                f"{source}: train_indices and meta_indices must be disjoint, but {both.size} "
                f"indices are in both (first {both[:5].tolist()}); the file is damaged, draw the split again."
            )
        for key in ("per_class", "seed"):
            if isinstance(d[key], bool) or not isinstance(d[key], int):
                raise ValueError(f"{source}: {key} must be an integer, but got {d[key]!r:.60}.")
        return cls(train, meta, d["per_class"], d["seed"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the split as JSON (atomically) so it can be saved with a run."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MetaSplit:
        """Reads a split written by :meth:`save`.

        Raises:
            ValueError: naming the file, if it is not JSON or not a valid split (e.g. an
                index in both ``train_indices`` and ``meta_indices``).
        """
        try:
            data = json.loads(Path(path).read_bytes())
        except (ValueError, RecursionError) as err:  # bad JSON or bad UTF-8
            raise ValueError(f"{os.fspath(path)} must be a JSON split written by MetaSplit.save ({err}).") from None
        return cls.from_dict(data, os.fspath(path))


def meta_split(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    per_class: int,
    seed: int = 0,
    num_classes: int | None = None,
) -> MetaSplit:
    """Draws a clean, class-balanced meta set; the rest is the training set.

    Call it on the *clean* training labels, before corrupting them.

    Args:
        labels: Clean training labels (N,).
        per_class: Meta samples drawn from every class.
        seed: Seed of the numpy Generator.
        num_classes: K; inferred as ``max(labels) + 1`` when ``None``.

    Returns:
        A :class:`MetaSplit` with disjoint index sets covering ``range(N)``.

    Raises:
        ValueError: If ``per_class`` is not an integer >= 0 or exceeds the size of some class.

    Example:
        >>> split = meta_split([0, 1] * 10, per_class=2, seed=0)
        >>> len(split.meta_indices), len(split.train_indices)
        (4, 16)
    """
    y, k = labels_and_classes(labels, num_classes)
    per_class = check_count(per_class, "per_class")
    counts = np.bincount(y, minlength=k)
    short = np.flatnonzero(counts < per_class)
    if short.size:
        c = int(short[0])
        raise ValueError(
            f"per_class must be <= the size of every class, but got per_class={per_class} "
            f"while class {c} has only {counts[c]} samples."
        )
    rng = np.random.default_rng(int(seed))
    meta = [rng.choice(np.flatnonzero(y == c), size=int(per_class), replace=False) for c in range(k)]
    meta_idx = np.sort(np.concatenate(meta).astype(np.int64)) if meta else np.zeros(0, np.int64)
    mask = np.ones(y.shape[0], dtype=bool)
    mask[meta_idx] = False
    return MetaSplit(np.flatnonzero(mask).astype(np.int64), meta_idx, int(per_class), int(seed))


def long_tailed_counts(n_max: int, num_classes: int, imbalance_factor: float) -> np.ndarray:
    """Per-class sizes ``n_c = int(n_max * (1 / factor) ** (c / (K - 1)))``.

    Example:
        >>> long_tailed_counts(5000, 10, 100).tolist()[::3]
        [5000, 1077, 232, 50]
    """
    if not float(imbalance_factor) >= 1.0:
        raise ValueError(f"imbalance_factor must be >= 1, but got {imbalance_factor}.")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, but got {num_classes}.")
    c = np.arange(num_classes)
    exponent = c / (num_classes - 1) if num_classes > 1 else np.zeros(1)
    return (n_max * (1.0 / float(imbalance_factor)) ** exponent).astype(np.int64)


def long_tailed_indices(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    imbalance_factor: float,
    seed: int = 0,
    num_classes: int | None = None,
) -> np.ndarray:
    """Indices of a long-tailed subset with an exponential class profile.

    Class ``c`` keeps ``n_c = int(n_max * (1 / imbalance_factor) ** (c / (K - 1)))``
    samples drawn without replacement, where ``n_max`` is the size of the smallest class
    (the per-class size on a balanced set such as CIFAR), so every class can supply its
    quota. ``imbalance_factor = n_0 / n_{K-1}``. Every one of the K classes must be
    present: an absent class would make ``n_max = 0`` and the subset empty.

    Args:
        labels: Labels (N,).
        imbalance_factor: Ratio of the largest to the smallest class, >= 1.
        seed: Seed of the numpy Generator.
        num_classes: K; inferred when ``None``.

    Returns:
        Sorted int64 indices into ``labels``.

    Raises:
        ValueError: If ``imbalance_factor`` < 1 or a class in ``[0, K)`` has no sample.

    Example:
        >>> idx = long_tailed_indices([0, 1] * 100, imbalance_factor=10, seed=0)
        >>> np.bincount(np.array([0, 1] * 100)[idx]).tolist()
        [100, 10]
    """
    y, k = labels_and_classes(labels, num_classes)
    if not float(imbalance_factor) >= 1.0:
        raise ValueError(f"imbalance_factor must be >= 1, but got {imbalance_factor}.")
    counts = np.bincount(y, minlength=k)
    absent = np.flatnonzero(counts == 0)
    if absent.size:
        raise ValueError(
            f"labels must hold every class in [0, {k}), but got no sample of class(es) "
            f"{absent[:10].tolist()}; pass the labels of a set with all classes, or num_classes="
            f"the number of classes present, relabelled to [0, K)."
        )
    quota = long_tailed_counts(int(counts.min()) if k else 0, k, imbalance_factor)
    rng = np.random.default_rng(int(seed))
    parts = [rng.choice(np.flatnonzero(y == c), size=int(quota[c]), replace=False) for c in range(k)]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, np.int64)
