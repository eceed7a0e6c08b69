"""MNIST and Fashion-MNIST readers for the original idx files (``.gz`` or raw).

The idx format (LeCun et al.): a 4-byte big-endian magic ``0x0000 TT DD`` (TT the element
type, 0x08 for unsigned bytes; DD the number of dimensions), DD big-endian uint32 sizes,
then the data. Headers are parsed here with numpy and checked against the file length.

References:
    Y. LeCun et al., "Gradient-based learning applied to document recognition", 1998.
    H. Xiao et al., "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
    Learning Algorithms", arXiv:1708.07747, 2017.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autodata.data._root import CorruptDatasetError, DatasetNotFoundError, resolve_root
from autodata.data.datasets import ArrayDataset

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist"]

_UBYTE = 0x08


@dataclass(frozen=True)
class _IdxLayout:
    name: str
    folder: str
    class_names: tuple[str, ...]


_MNIST = _IdxLayout("mnist", "MNIST", tuple(str(i) for i in range(10)))
_FASHION = _IdxLayout(
    "fashion_mnist",
    "FashionMNIST",
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)


MAX_IDX_BYTES = 2**32
"""The largest idx body read (4 GiB; MNIST's training images take 47 MB)."""


def read_idx(path: str | os.PathLike[str], ndim: int) -> np.ndarray:
    """Reads an idx file of unsigned bytes (``.gz`` compressed or raw).

    Args:
        path: The file.
        ndim: Number of dimensions the file must have (3 for images, 1 for labels).

    Returns:
        A uint8 array with the sizes given in the header.

    Raises:
        CorruptDatasetError: Bad gzip stream, bad magic number, wrong number of
            dimensions, or a file length that disagrees with the header (sizes are
            multiplied exactly, so huge header dimensions cannot wrap around to a match).

    Example:
        >>> labels = read_idx("train-labels-idx1-ubyte.gz", ndim=1)  # doctest: +SKIP
    """
    path = Path(path)
    header_len = 4 + 4 * ndim
    try:
        # Streamed, so that a small .gz cannot inflate past what its own header announces.
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            header = f.read(header_len)
            if len(header) < header_len:
                raise CorruptDatasetError(
                    f"{path}: an idx file must start with a {header_len}-byte header, but got {len(header)} bytes."
                )
            magic = int.from_bytes(header[:4], "big")
            expected_magic = (_UBYTE << 8) | ndim
            if magic != expected_magic:
                raise CorruptDatasetError(
                    f"{path}: the idx magic number must be {expected_magic:#010x} (uint8, {ndim} dims), "
                    f"but got {magic:#010x}."
                )
            dims = tuple(int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
            size = math.prod(dims)  # Python ints: np.prod in int64 could wrap to a match
            if size > MAX_IDX_BYTES:
                raise CorruptDatasetError(
                    f"{path}: the header announces shape {dims}, i.e. {size} bytes, but an idx file here may "
                    f"hold at most {MAX_IDX_BYTES} bytes; the file is corrupted."
                )
            body = f.read(size + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise CorruptDatasetError(
            f"Cannot decompress {path}: {type(err).__name__}: {err}. The file looks corrupted "
            f"or truncated; delete it and download it again."
        ) from err
    if len(body) != size:
        held = f"{header_len + len(body)}" if len(body) <= size else f"more than {header_len + size}"
        raise CorruptDatasetError(
            f"{path}: the header announces shape {dims}, i.e. {header_len + size} bytes, but the file "
            f"holds {held} bytes; it is truncated or corrupted, download it again."
        )
    raw = header + body
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _find(root: Path, layout: _IdxLayout, stem: str) -> Path:
    folders = [root / layout.folder / "raw", root / layout.folder, root]
    for folder in folders:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                return candidate
    raise DatasetNotFoundError(
        f"{layout.name}: the file {stem}(.gz) was not found; looked in "
        f"{[str(f) for f in folders]}. Expected the four idx files "
        f"train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        f"t10k-labels-idx1-ubyte (optionally .gz). Pass root= or set AUTODATA_DATA."
    )


def _load(layout: _IdxLayout, root: str | os.PathLike[str] | None, train: bool) -> ArrayDataset:
    base = resolve_root(root)
    prefix = "train" if train else "t10k"
    image_path = _find(base, layout, f"{prefix}-images-idx3-ubyte")
    label_path = _find(base, layout, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(image_path, ndim=3)  # (N, H, W)
    labels = read_idx(label_path, ndim=1).astype(np.int64)  # (N,)
    if images.shape[0] != labels.shape[0]:
        raise CorruptDatasetError(
            f"{layout.name}: {image_path} holds {images.shape[0]} images but {label_path} holds "
            f"{labels.shape[0]} labels; they must match."
        )
    if labels.size and labels.max() >= 10:
        raise CorruptDatasetError(f"{label_path}: labels must lie in [0, 10), but got max {labels.max()}.")
    return ArrayDataset(images[:, None], labels, 10, layout.name, layout.class_names)


def load_mnist(root: str | os.PathLike[str] | None = None, train: bool = True) -> ArrayDataset:
    """Reads MNIST from idx files under ``root/MNIST/raw`` (torchvision layout) or ``root``.

    Args:
        root: Data root; ``None`` reads ``$AUTODATA_DATA``.
        train: The 60,000 training images if True, else the 10,000 test images.

    Returns:
        An :class:`ArrayDataset` named ``"mnist"``.

    Shape:
        - images: (N, 1, 28, 28) uint8.

    Example:
        >>> load_mnist("/data").images.shape  # doctest: +SKIP
        (60000, 1, 28, 28)
    """
    return _load(_MNIST, root, train)


def load_fashion_mnist(root: str | os.PathLike[str] | None = None, train: bool = True) -> ArrayDataset:
    """Reads Fashion-MNIST from idx files under ``root/FashionMNIST/raw`` or ``root``.

    Args:
        root: Data root; ``None`` reads ``$AUTODATA_DATA``.
        train: The 60,000 training images if True, else the 10,000 test images.

    Returns:
        An :class:`ArrayDataset` named ``"fashion_mnist"``.

    Shape:
        - images: (N, 1, 28, 28) uint8.

    Example:
        >>> load_fashion_mnist("/data", train=False).class_counts().tolist()  # doctest: +SKIP
        [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]
    """
    return _load(_FASHION, root, train)
