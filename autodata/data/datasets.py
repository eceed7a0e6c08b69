"""A small in-memory image dataset: uint8 images, int64 labels, a name.

Every reader in :mod:`autodata.data` returns an :class:`ArrayDataset`. It is also a
``torch.utils.data.Dataset`` whose items are ``(image uint8 (C, H, W), label int)``.

A dataset remembers where each of its samples came from: ``source_indices[i]`` is the
position of sample ``i`` in the dataset as it was read (its *source*, e.g. CIFAR-10's 50,000
training images in file order). :meth:`ArrayDataset.subset` composes them through any chain
of subsets (an ``n_train`` draw, a long-tailed subset, a meta or validation hold-out) and
:meth:`ArrayDataset.with_labels` (label noise) keeps them, so a sample of a run's training
split can always be found in the dataset the user named.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ArrayDataset", "from_tensors", "from_dataset"]


def _as_uint8_nchw(images: Any) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.ndim == 3:  # (N, H, W) grey images
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W) or (N, H, W), but got {images.shape}.")
    if images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 in [0, 255], but got dtype {images.dtype}; "
            f"convert with (x * 255).round().clip(0, 255).astype(np.uint8) first."
        )
    images = np.ascontiguousarray(images)
    return images if images.flags.writeable else images.copy()  # torch.from_numpy needs writable


def _as_labels(labels: Any, n: int) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), but got {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, but got dtype {labels.dtype}.")
    return labels.astype(np.int64, copy=False)


def _as_source_indices(indices: Any, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    idx = np.asarray(indices)
    if idx.shape != (n,):
        raise ValueError(f"source_indices must have shape ({n},), but got {idx.shape}.")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"source_indices must be integers, but got dtype {idx.dtype}.")
    if idx.size and idx.min() < 0:
        raise ValueError(f"source_indices must be >= 0, but got {idx.min()}.")
    return idx.astype(np.int64, copy=False)


@dataclass(frozen=True, eq=False)
class ArrayDataset(Dataset):
    """Images and labels held in memory.

    Args:
        images: uint8 array or tensor of shape (N, C, H, W) (or (N, H, W) for grey images).
        labels: Integer labels of shape (N,), each in ``[0, num_classes)``.
        num_classes: Number of classes K.
        name: Dataset name, e.g. ``"cifar10"`` (selects normalisation constants).
        class_names: Optional names of the K classes.
        source_indices: Position of each sample in the source dataset, integers >= 0 of
            shape (N,); ``None`` (the default) for a dataset that is its own source, which
            stores ``arange(N)``. :meth:`subset` sets it; readers leave it ``None``.

    Shape:
        - images: (N, C, H, W) uint8 numpy array.
        - labels: (N,) int64 numpy array.
        - source_indices: (N,) int64 numpy array.
        - item: ``(image uint8 tensor (C, H, W), int)``.

    Example:
        >>> ds = ArrayDataset(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, 1, 2, 1]), 3, "toy")
        >>> len(ds), ds[1][0].shape, ds[1][1]
        (4, torch.Size([1, 8, 8]), 1)
        >>> ds.subset([0, 3]).labels.tolist()
        [0, 1]
        >>> ds.subset([3, 2, 1]).subset([2, 0]).source_indices.tolist()  # sample 1, then sample 3 of ds
        [1, 3]
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = "custom"
    class_names: tuple[str, ...] | None = field(default=None)
    source_indices: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        images = _as_uint8_nchw(self.images)
        labels = _as_labels(self.labels, images.shape[0])
        source = _as_source_indices(self.source_indices, images.shape[0])
        k = self.num_classes
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"num_classes must be an integer >= 1, but got {k!r}.")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), but got range "
                f"[{labels.min()}, {labels.max()}]."
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names must have num_classes={self.num_classes} entries, "
                f"but got {len(self.class_names)}."
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "source_indices", source)
        object.__setattr__(self, "num_classes", int(self.num_classes))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.images[index]), int(self.labels[index])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The (C, H, W) shape of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> np.ndarray:
        """Number of samples per class, shape (K,)."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ArrayDataset:
        """Returns a new dataset holding the given samples (a copy), in the given order.

        The new dataset's ``source_indices`` are ``self.source_indices[indices]``: positions
        in the same source, however many subsets deep.

        Args:
            indices: Integer indices in ``[-N, N)`` (negative ones count from the end), or a
                boolean mask of length N that keeps the samples where it is True. Floats
                are refused: ``1.5`` is no sample.
        """
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().cpu().numpy()
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise ValueError(f"a boolean mask must have shape ({len(self)},), but got {idx.shape}.")
            idx = np.flatnonzero(idx)
        elif idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices must be integers (or a boolean mask), but got dtype {idx.dtype}.")
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(
                f"indices must lie in [-{len(self)}, {len(self)}), but got range [{idx.min()}, {idx.max()}]."
            )
        return replace(self, images=self.images[idx], labels=self.labels[idx], source_indices=self.source_indices[idx])

    def with_labels(self, labels: Sequence[int] | np.ndarray | torch.Tensor) -> ArrayDataset:
        """Returns the same images (and ``source_indices``) with other labels (e.g. noisy ones)."""
        return replace(self, labels=labels)

    def tensors(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(images uint8 (N, C, H, W), labels int64 (N,))`` as tensors on ``device``."""
        return (
            torch.as_tensor(self.images, device=device),
            torch.as_tensor(self.labels, device=device),
        )

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
            f"num_classes={self.num_classes})"
        )


def from_tensors(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    num_classes: int | None = None,
    name: str = "custom",
) -> ArrayDataset:
    """Builds an :class:`ArrayDataset` from in-memory images and labels.

    Args:
        images: uint8 (N, C, H, W) or (N, H, W).
        labels: Integer labels (N,).
        num_classes: K; inferred as ``max(labels) + 1`` when ``None``.
        name: Dataset name.

    Returns:
        The dataset.

    Example:
        >>> ds = from_tensors(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 4]))
        >>> ds.num_classes
        5
    """
    if num_classes is None:
        lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        num_classes = int(lab.max()) + 1 if lab.size else 1
    return ArrayDataset(images, labels, num_classes, name)  # type: ignore[arg-type]


def _image_to_uint8_chw(image: Any) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        if image.is_floating_point():
            image = (image * 255).round().clamp(0, 255).to(torch.uint8)
        arr = image.detach().cpu().numpy()
        return arr[None] if arr.ndim == 2 else arr  # tensors are (C, H, W) already
    arr = np.asarray(image)  # PIL images and numpy arrays are (H, W) or (H, W, C)
    if arr.dtype != np.uint8:
        raise ValueError(f"dataset images must be uint8 PIL/numpy images or tensors, but got dtype {arr.dtype}.")
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def from_dataset(
    dataset: Dataset,
    num_classes: int | None = None,
    name: str = "custom",
) -> ArrayDataset:
    """Reads every item of a ``torch.utils.data.Dataset`` into an :class:`ArrayDataset`.

    Items must be ``(image, label)`` with ``image`` a PIL image, an (H, W[, C]) uint8 array,
    or a (C, H, W) tensor (float tensors in [0, 1] are scaled to uint8). Meant for
    datasets that fit in memory, such as torchvision's MNIST or SVHN.

    Args:
        dataset: Any map-style dataset with ``len()``.
        num_classes: K; inferred as ``max(labels) + 1`` when ``None``.
        name: Dataset name.

    Returns:
        The dataset, in memory.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> td = TensorDataset(torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 1]))
        >>> from_dataset(td).images.dtype
        dtype('uint8')
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("dataset must have at least one item, but got an empty dataset.")
    images, labels = [], []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        image, label = dataset[i]
        images.append(_image_to_uint8_chw(image))
        labels.append(int(label))
    return from_tensors(np.stack(images), np.asarray(labels, np.int64), num_classes, name)
