"""CIFAR-10 and CIFAR-100 readers for the "python version" layout.

Reads either the extracted folder (``cifar-10-batches-py/``, ``cifar-100-python/``) or the
``.tar.gz`` archive itself, member by member, without extracting anything to disk.
Batches are unpickled with :func:`autodata.data._unpickle.restricted_loads`. The
``b'filenames'`` key is not required (some copies lack it).

What the format can hold bounds what is read: no file over
:data:`~autodata.data._unpickle.MAX_ALLOCATION_BYTES` (512 MiB) is read, each batch must
hold exactly its known number of images (10000 per CIFAR-10 batch; 50000 and 10000 for
CIFAR-100's ``train`` and ``test``; ``check_sizes=False`` admits fewer, for subsets saved in
this layout), and its labels must be integers in ``[0, K)``. Every error names the batch
file and key. The class names are a convenience: a meta file that is unreadable, refused or
malformed gives a :class:`UserWarning` naming it and ``class_names=None``; training is not
blocked.

Reference: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
"""
from __future__ import annotations

import gzip
import os
import pickle
import reprlib
import tarfile
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autodata.data._root import CorruptDatasetError, DatasetNotFoundError, resolve_root
from autodata.data._unpickle import MAX_ALLOCATION_BYTES, UnsafePickleError, restricted_loads
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
    train_images: int  # per training file
    test_images: int  # per test file


_CIFAR10 = _CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    num_classes=10,
    train_images=10000,
    test_images=10000,
)
_CIFAR100 = _CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    num_classes=100,
    train_images=50000,
    test_images=10000,
)

_ARCHIVE_ERRORS = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError)
_short = reprlib.Repr()
_short.maxstring = _short.maxother = _short.maxlong = 60


def _check_file_size(size: int, source: str) -> None:
    if size > MAX_ALLOCATION_BYTES:
        raise CorruptDatasetError(
            f"{source} is {size} bytes, but a CIFAR file must be at most {MAX_ALLOCATION_BYTES} bytes "
            f"(512 MiB; the largest, cifar-100-python/train, is about 161 MB); it is not a CIFAR "
            f"file or it is corrupted, download it again."
        )


def _read_file(path: Path) -> bytes:
    _check_file_size(path.stat().st_size, str(path))
    return path.read_bytes()


def _read_folder(folder: Path, wanted: tuple[str, ...], optional: str) -> dict[str, bytes]:
    out = {name: _read_file(folder / name) for name in wanted}
    if (folder / optional).is_file():
        out[optional] = _read_file(folder / optional)
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
                _check_file_size(member.size, f"{archive}:{member.name}")
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


def _decode_batch(
    raw: bytes, source: str, label_key: str, num_classes: int, images: int, check_sizes: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (N,) of one batch file; ``images`` is its known N."""
    try:
        batch = _str_keys(restricted_loads(raw, source), source)
    except (UnsafePickleError, CorruptDatasetError):
        raise
    except (pickle.UnpicklingError, ValueError) as err:
        raise CorruptDatasetError(
            f"{source}: not a readable CIFAR batch ({type(err).__name__}: {err}); "
            f"the file looks corrupted, download it again."
        ) from err
    for key in ("data", label_key):
        if key not in batch:
            raise CorruptDatasetError(
                f"{source}: a CIFAR batch must have the key b'{key}', but got keys {_short.repr(sorted(batch))}."
            )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        raise CorruptDatasetError(f"{source}: b'data' must be a uint8 array of shape (N, 3072), but got {desc}.")
    n = data.shape[0]
    if n > images or (check_sizes and n != images):
        rule = f"exactly {images}" if check_sizes else f"at most {images}"
        raise CorruptDatasetError(
            f"{source}: b'data' must hold {rule} images (this file's size in the CIFAR release), "
            f"but got {n}; the file is damaged or not this file of the release, download it again"
            + (" (or pass check_sizes=False to read a smaller subset saved in this layout)." if check_sizes else ".")
        )
    labels = _labels(batch[label_key], f"{source}: b'{label_key}'", num_classes)
    if labels.shape[0] != n:
        raise CorruptDatasetError(
            f"{source}: b'{label_key}' must have one label per image ({n}), but got {labels.shape[0]}."
        )
    return data.reshape(-1, 3, 32, 32), labels  # channel-major rows: (N, 3, 32, 32)


def _labels(value: Any, where: str, num_classes: int) -> np.ndarray:
    """int64 labels (N,) from a list of ints or a 1-D integer array, each in [0, K)."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or not (value.size == 0 or np.issubdtype(value.dtype, np.integer)):
            raise CorruptDatasetError(
                f"{where} must be a 1-D array of integer labels, but got dtype {value.dtype} and shape {value.shape}."
            )
        items = value
    elif isinstance(value, list):
        bad = next((i for i, v in enumerate(value) if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)
        if bad is not None:
            raise CorruptDatasetError(
                f"{where} must hold integer labels, but item {bad} is {_short.repr(value[bad])} "
                f"({type(value[bad]).__name__})."
            )
        items = value
    else:
        raise CorruptDatasetError(f"{where} must be a list of integer labels, but got {type(value).__name__}.")
    if len(items):
        low, high = min(items), max(items)  # Python ints: no overflow before the check
        if low < 0 or high >= num_classes:
            bad = next(i for i, v in enumerate(items) if not 0 <= v < num_classes)
            raise CorruptDatasetError(
                f"{where} must hold labels in [0, {num_classes}), but item {bad} is {_short.repr(int(items[bad]))}."
            )
    return np.asarray(items, dtype=np.int64).reshape(-1)


def _class_names(raw: bytes | None, source: str, key: str, k: int) -> tuple[str, ...] | None:
    """The K class names, or ``None`` with a warning naming the file when it is unusable."""
    if raw is None:
        return None
    try:
        names = _str_keys(restricted_loads(raw, source), source).get(key)
        if not isinstance(names, list) or len(names) != k or not all(isinstance(n, (bytes, str)) for n in names):
            raise CorruptDatasetError(f"b'{key}' must be a list of {k} names, but got {_short.repr(names)}")
        return tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
    except (pickle.UnpicklingError, ValueError) as err:  # refused, unreadable, not UTF-8, malformed
        warnings.warn(
            f"{source}: ignoring the class names ({type(err).__name__}: {err}); the dataset loads "
            f"with class_names=None. Download the file again to get them back.",
            UserWarning,
            stacklevel=4,
        )
        return None


def _load(
    layout: _CifarLayout,
    root: str | os.PathLike[str] | None,
    train: bool,
    label_key: str,
    num_classes: int,
    names_key: str,
    check_sizes: bool,
) -> ArrayDataset:
    base = resolve_root(root)
    wanted = layout.train_files if train else layout.test_files
    per_file = layout.train_images if train else layout.test_images
    files = _locate(base, layout, wanted)
    parts = [
        _decode_batch(files[n], f"{base}:{layout.folder}/{n}", label_key, num_classes, per_file, check_sizes)
        for n in wanted
    ]
    images = np.concatenate([p[0] for p in parts])  # (N, 3, 32, 32) uint8
    labels = np.concatenate([p[1] for p in parts])  # (N,) int64
    names = _class_names(files.get(layout.meta_file), f"{base}:{layout.meta_file}", names_key, num_classes)
    return ArrayDataset(images, labels, num_classes, layout.name, names)


def load_cifar10(
    root: str | os.PathLike[str] | None = None, train: bool = True, *, check_sizes: bool = True
) -> ArrayDataset:
    """Reads CIFAR-10 (python layout) from a folder or the ``.tar.gz`` archive.

    Looks for ``root/cifar-10-batches-py/``, then ``root`` itself as that folder, then
    ``root/cifar-10-python.tar.gz``; ``root`` may also be the archive's path.

    Args:
        root: Data root; ``None`` reads ``$AUTODATA_DATA``.
        train: The 50,000 training images if True, else the 10,000 test images.
        check_sizes: Require each batch to hold exactly 10,000 images, as in the release;
            ``False`` admits up to 10,000 (a subset saved in this layout).

    Returns:
        An :class:`ArrayDataset` named ``"cifar10"`` with class names from ``batches.meta``
        (``None``, with a :class:`UserWarning` naming the file, if it is unusable).

    Raises:
        DatasetNotFoundError: Missing or incomplete folder/archive (names the files expected).
        CorruptDatasetError: Unreadable archive or batch, a batch of the wrong size, labels
            that are not integers in [0, 10) (names the batch file and key).
        UnsafePickleError: A batch names a global other than numpy's array reconstruction,
            or asks for more than 512 MiB at once.

    Shape:
        - images: (N, 3, 32, 32) uint8, N = 50000 (train) or 10000 (test).

    Example:
        >>> ds = load_cifar10("/data", train=False)  # doctest: +SKIP
        >>> ds.images.shape  # doctest: +SKIP
        (10000, 3, 32, 32)
    """
    return _load(_CIFAR10, root, train, "labels", 10, "label_names", check_sizes)


def load_cifar100(
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    coarse: bool = False,
    *,
    check_sizes: bool = True,
) -> ArrayDataset:
    """Reads CIFAR-100 (python layout) from a folder or the ``.tar.gz`` archive.

    Args:
        root: Data root; ``None`` reads ``$AUTODATA_DATA``.
        train: The 50,000 training images if True, else the 10,000 test images.
        coarse: Use the 20 superclass labels (``b'coarse_labels'``) instead of the 100
            fine labels.
        check_sizes: Require ``train`` to hold exactly 50,000 images and ``test`` 10,000,
            as in the release; ``False`` admits fewer (a subset saved in this layout).

    Returns:
        An :class:`ArrayDataset` named ``"cifar100"`` (100 or 20 classes); ``class_names``
        is ``None``, with a :class:`UserWarning` naming the file, if ``meta`` is unusable.

    Raises:
        DatasetNotFoundError: Missing or incomplete folder/archive.
        CorruptDatasetError: Unreadable archive or batch, a batch of the wrong size, bad labels.
        UnsafePickleError: A batch names a disallowed global or asks for more than 512 MiB.

    Shape:
        - images: (N, 3, 32, 32) uint8.

    Example:
        >>> ds = load_cifar100("/data", coarse=True)  # doctest: +SKIP
        >>> ds.num_classes  # doctest: +SKIP
        20
    """
    if coarse:
        return _load(_CIFAR100, root, train, "coarse_labels", 20, "coarse_label_names", check_sizes)
    return _load(_CIFAR100, root, train, "fine_labels", 100, "fine_label_names", check_sizes)
