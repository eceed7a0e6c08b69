"""Load a dataset by name: ``load_dataset("cifar10", root=None, train=True)``."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from autodata.data._root import resolve_root
from autodata.data.cifar import load_cifar10, load_cifar100
from autodata.data.datasets import ArrayDataset
from autodata.data.mnist import load_fashion_mnist, load_mnist
from autodata.data.npz import load_npz

__all__ = ["DATASETS", "load_dataset", "load_digits"]

_DIGITS_TRAIN = 1437  # first 80% of sklearn's 1,797 digits


def load_digits(train: bool | None = None) -> ArrayDataset:
    """scikit-learn's bundled 8x8 digits as uint8 images; needs no files.

    Pixel values 0..16 are scaled to 0..255 (``round(v * 255 / 16)``).

    Args:
        train: ``None`` for all 1,797 images; ``True`` for the first 1,437 (80%),
            ``False`` for the remaining 360 (a fixed split by position).

    Returns:
        An :class:`ArrayDataset` named ``"digits"`` with 10 classes.

    Shape:
        - images: (N, 1, 8, 8) uint8.

    Example:
        >>> load_digits().images.shape
        (1797, 1, 8, 8)
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    if train is not None:
        part = slice(0, _DIGITS_TRAIN) if train else slice(_DIGITS_TRAIN, None)
        images, labels = images[part], labels[part]
    return ArrayDataset(images, labels, 10, "digits", tuple(str(i) for i in range(10)))


def _tv_cifar10(root: str, train: bool) -> None:
    from torchvision.datasets import CIFAR10

    CIFAR10(root, train=train, download=True)


def _tv_cifar100(root: str, train: bool) -> None:
    from torchvision.datasets import CIFAR100

    CIFAR100(root, train=train, download=True)


def _tv_mnist(root: str, train: bool) -> None:
    from torchvision.datasets import MNIST

    MNIST(root, train=train, download=True)


def _tv_fashion_mnist(root: str, train: bool) -> None:
    from torchvision.datasets import FashionMNIST

    FashionMNIST(root, train=train, download=True)


@dataclass(frozen=True)
class _Entry:
    reader: Callable[[str | os.PathLike[str] | None, bool], ArrayDataset]
    download: Callable[[str, bool], None] | None


def _digits_reader(root: str | os.PathLike[str] | None, train: bool) -> ArrayDataset:
    return load_digits(train)


DATASETS: MappingProxyType[str, _Entry] = MappingProxyType(
    {
        "cifar10": _Entry(load_cifar10, _tv_cifar10),
        "cifar100": _Entry(load_cifar100, _tv_cifar100),
        "mnist": _Entry(load_mnist, _tv_mnist),
        "fashion_mnist": _Entry(load_fashion_mnist, _tv_fashion_mnist),
        "digits": _Entry(_digits_reader, None),
        "npz": _Entry(load_npz, None),  # root is the .npz file (see autodata.data.npz)
    }
)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    download: bool = False,
) -> ArrayDataset:
    """Loads a dataset by name from local files.

    Args:
        name: ``"cifar10"``, ``"cifar100"``, ``"mnist"``, ``"fashion_mnist"`` or
            ``"digits"`` (bundled with scikit-learn; ignores ``root``).
        root: Data root; ``None`` reads ``$AUTODATA_DATA``.
        train: Training split if True, else the test split.
        download: On a machine with internet, first let torchvision download the files
            into ``root`` (its usual layout), then read them with autodata's readers.

    Returns:
        The dataset as an :class:`ArrayDataset`.

    Raises:
        ValueError: Unknown name (lists the known ones) or no data root.

    Example:
        >>> load_dataset("digits", train=False).images.shape
        (360, 1, 8, 8)
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, but got {name!r}.")
    entry = DATASETS[name]
    if download and entry.download is not None:
        entry.download(str(resolve_root(root)), train)
    return entry.reader(root, train)
