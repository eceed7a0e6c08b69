"""CIFAR-10 and CIFAR-100 readers for the "python version" layout.

Reads either the extracted folder (``cifar-10-batches-py/``, ``cifar-100-python/``) or the
``.tar.gz`` archive itself, member by member, without extracting anything to disk.
Batches are unpickled with :func:`autodata.data._unpickle.restricted_loads`. The
``b'filenames'`` key is not required (some copies lack it).

Reference: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
"""
from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autodata.data._root import CorruptDatasetError, DatasetNotFoundError, resolve_root
from autodata.data._unpickle import UnsafePickleError, restricted_loads
from autodata.data.datasets import ArrayDataset

__all__ = ["load_cifar10", "load_cifar100"]


@dataclass(frozen=True)
class _CifarLayout:
    name: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    num_classes: int


_CIFAR10 = _CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    num_classes=10,
)
_CIFAR100 = _CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    num_classes=100,
)

_ARCHIVE_ERRORS = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError)


def _read_folder(folder: Path, wanted: tuple[str, ...], optional: str) -> dict[str, bytes]:
    out = {name: (folder / name).read_bytes() for name in wanted}
    if (folder / optional).is_file():
        out[optional] = (folder / optional).read_bytes()
    return out


def _read_archive(archive: Path, layout: _CifarLayout, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Reads the wanted members in one sequential pass over the gzip stream."""
    targets = {f"{layout.folder}/{n}": n for n in (*wanted, layout.meta_file)}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                short = targets.get(member.name.lstrip("./"))
                if short is None or not member.isfile():
                    continue
                fh = tar.extractfile(member)
                if fh is None:  # pragma: no cover - isfile() members always extract
                    continue
                out[short] = fh.read()
                if len(out) == len(targets):
                    break
    except _ARCHIVE_ERRORS as err:
        raise CorruptDatasetError(
            f"Cannot read the archive {archive}: {type(err).__name__}: {err}. "
            f"The file looks corrupted or truncated; delete it and download it again."
        ) from err
    missing = [n for n in wanted if n not in out]
    if missing:
        raise DatasetNotFoundError(
            f"The archive {archive} is incomplete: it lacks {[f'{layout.folder}/{n}' for n in missing]}. "
            f"Delete it and download it again."
        )
    return out


def _locate(root: Path, layout: _CifarLayout, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Finds the data under ``root`` (folder first, then archive) and reads the wanted files."""
    if root.is_file():
        return _read_archive(root, layout, wanted)
    folders = [root / layout.folder, root]
    incomplete: list[tuple[Path, list[str]]] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        missing = [n for n in wanted if not (folder / n).is_file()]
        if not missing:
            return _read_folder(folder, wanted, layout.meta_file)
        if len(missing) < len(wanted):
            incomplete.append((folder, missing))
    archive = root / layout.archive
    if archive.is_file():
        return _read_archive(archive, layout, wanted)
    if incomplete:
        folder, missing = incomplete[0]
        raise DatasetNotFoundError(
            f"The {layout.name} folder {folder} is incomplete: missing {missing} "
            f"(expected {list(wanted)}), and no archive {archive} to fall back on."
        )
    raise DatasetNotFoundError(
        f"{layout.name} not found: expected the folder {root / layout.folder} holding "
        f"{list(wanted)} or the archive {archive}. Pass root=<folder holding them> or set "
        f"AUTODATA_DATA; on a machine with internet, load_dataset('{layout.name}', download=True) "
        f"fetches it."
    )


def _str_keys(obj: Any, source: str) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise CorruptDatasetError(f"{source}: a CIFAR batch must be a dict, but got {type(obj).__name__}.")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _decode_batch(raw: bytes, source: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _str_keys(restricted_loads(raw, source), source)
    except (UnsafePickleError, CorruptDatasetError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise CorruptDatasetError(
            f"{source}: not a readable CIFAR batch ({type(err).__name__}: {err}); "
            f"the file looks corrupted, download it again."
        ) from err
    for key in ("data", label_key):
        if key not in batch:
            raise CorruptDatasetError(
                f"{source}: a CIFAR batch must have the key b'{key}', but got keys {sorted(batch)}."
            )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        raise CorruptDatasetError(f"{source}: b'data' must be a uint8 array of shape (N, 3072), but got {desc}.")
    labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    if labels.shape[0] != data.shape[0]:
        raise CorruptDatasetError(
            f"{source}: b'{label_key}' must have one label per image ({data.shape[0]}), "
            f"but got {labels.shape[0]}."
        )
    return data.reshape(-1, 3, 32, 32), labels  # channel-major rows: (N, 3, 32, 32)


def _class_names(raw: bytes | None, source: str, key: str, k: int) -> tuple[str, ...] | None:
    if raw is None:
        return None
    try:
        names = _str_keys(restricted_loads(raw, source), source).get(key)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, CorruptDatasetError):
        return None  # class names are a convenience; a bad meta file does not block training
    if not isinstance(names, list) or len(names) != k:
        return None
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def _load(
    layout: _CifarLayout,
    root: str | os.PathLike[str] | None,
    train: bool,
    label_key: str,
    num_classes: int,
    names_key: str,
) -> ArrayDataset:
    base = resolve_root(root)
    wanted = layout.train_files if train else layout.test_files
    files = _locate(base, layout, wanted)
    parts = [_decode_batch(files[n], f"{base}:{layout.folder}/{n}", label_key) for n in wanted]
    images = np.concatenate([p[0] for p in parts])  # (N, 3, 32, 32) uint8
    labels = np.concatenate([p[1] for p in parts])  # (N,) int64
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CorruptDatasetError(
            f"{layout.name} labels must lie in [0, {num_classes}), but got [{labels.min()}, {labels.max()}]."
        )
    names = _class_names(files.get(layout.meta_file), f"{base}:{layout.meta_file}", names_key, num_classes)
    return ArrayDataset(images, labels, num_classes, layout.name, names)


def load_cifar10(root: str | os.PathLike[str] | None = None, train: bool = True) -> ArrayDataset:
    """Reads CIFAR-10 (python layout) from a folder or the ``.tar.gz`` archive.

    Looks for ``root/cifar-10-batches-py/``, then ``root`` itself as that folder, then
    ``root/cifar-10-python.tar.gz``; ``root`` may also be the archive's path.

    Args:
        root: Data root; ``None`` reads ``$AUTODATA_DATA``.
        train: The 50,000 training images if True, else the 10,000 test images.

    Returns:
        An :class:`ArrayDataset` named ``"cifar10"`` with class names from ``batches.meta``.

    Raises:
        DatasetNotFoundError: Missing or incomplete folder/archive (names the files expected).
        CorruptDatasetError: Unreadable archive or batch.
        UnsafePickleError: A batch names a global other than numpy's array reconstruction.

    Shape:
        - images: (N, 3, 32, 32) uint8, N = 50000 (train) or 10000 (test).

    Example:
        >>> ds = load_cifar10("/data", train=False)  # doctest: +SKIP
        >>> ds.images.shape  # doctest: +SKIP
        (10000, 3, 32, 32)
    """
    return _load(_CIFAR10, root, train, "labels", 10, "label_names")


def load_cifar100(
    root: str | os.PathLike[str] | None = None, train: bool = True, coarse: bool = False
) -> ArrayDataset:
    """Reads CIFAR-100 (python layout) from a folder or the ``.tar.gz`` archive.

    Args:
        root: Data root; ``None`` reads ``$AUTODATA_DATA``.
        train: The 50,000 training images if True, else the 10,000 test images.
        coarse: Use the 20 superclass labels (``b'coarse_labels'``) instead of the 100
            fine labels.

    Returns:
        An :class:`ArrayDataset` named ``"cifar100"`` (100 or 20 classes).

    Raises:
        DatasetNotFoundError: Missing or incomplete folder/archive.
        CorruptDatasetError: Unreadable archive or batch.
        UnsafePickleError: A batch names a disallowed global.

    Shape:
        - images: (N, 3, 32, 32) uint8.

    Example:
        >>> ds = load_cifar100("/data", coarse=True)  # doctest: +SKIP
        >>> ds.num_classes  # doctest: +SKIP
        20
    """
    if coarse:
        return _load(_CIFAR100, root, train, "coarse_labels", 20, "coarse_label_names")
    return _load(_CIFAR100, root, train, "fine_labels", 100, "fine_label_names")
