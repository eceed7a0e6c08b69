"""Bad input to the data readers and helpers: a clear error naming the file, field or argument."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import struct
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from autodata.data import (
    ArrayDataset,
    CorruptDatasetError,
    MetaSplit,
    UnsafePickleError,
    corrupt_labels,
    load_cifar10,
    load_cifar100,
    long_tailed_indices,
    meta_split,
    read_idx,
    restricted_loads,
)
from autodata.data import cifar
from autodata.data._io import write_json

TIB = 2**40


def _cifar_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    return folder


def _huge_array_batch() -> bytes:
    """A tiny pickle whose b'data' array claims shape (2**40,): 1 TiB of uint8."""
    raw = pickle.dumps({b"data": np.zeros(3, np.uint8), b"labels": [0]}, protocol=2)
    shape = b"K\x01K\x03\x85"  # state (1, (3,), ...): BININT1 1, BININT1 3, TUPLE1
    assert raw.count(shape) == 1
    return raw.replace(shape, b"K\x01\x8a\x06" + TIB.to_bytes(6, "little") + b"\x85")


# --- the restricted unpickler ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        (_huge_array_batch(), UnsafePickleError, r"refusing an array of shape \(1099511627776,\).*512 MiB"),
        (b"\x80\x02c__builtin__\nbytearray\n\x8a\x06" + TIB.to_bytes(6, "little") + b"\x85R.",
         UnsafePickleError, r"refusing bytearray\(1099511627776\).*512 MiB"),
        (b"\x80\x02cnumpy\nndarray\n\x8a\x06" + TIB.to_bytes(6, "little") + b"\x85R.",
         UnsafePickleError, "refusing to call numpy.ndarray"),
        (b"\x80\x04\x8e" + struct.pack("<Q", TIB) + b"abc.", pickle.UnpicklingError, "expected 1099511627776 bytes"),
        (b"\x80\x05\x96" + struct.pack("<Q", TIB) + b"abc.", pickle.UnpicklingError, "expected 1099511627776 bytes"),
        (b"\x80\x02]r\xf0\xff\xff\xff.", UnsafePickleError, "memo index 4294967280"),
        # a million nested tuples used as a dict key: hashing them would crash Python
        (b"\x80\x02})" + b"\x85" * 1_000_000 + b"K\x01s.", UnsafePickleError, "nested more than 64 levels"),
        (pickle.dumps(np.array([1, None], dtype=object), protocol=2), UnsafePickleError, "refusing the dtype 'O8'"),
        (pickle.dumps((np.arange(3),), protocol=2), UnsafePickleError, "held outside a dict or a list"),
        (b"\x80\x02cos\nsystem\n(S'echo hi'\ntR.", UnsafePickleError, "'os.system'"),
    ],
)
def test_unpickler_refuses_before_allocating(payload: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        restricted_loads(payload, "batch.bin")
    assert str(info.value).startswith("batch.bin: ")


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_unpickler_rebuilds_plain_arrays(protocol: int) -> None:
    obj = {
        b"data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        b"fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        b"big_endian": np.arange(3, dtype=">i4"),
        b"empty": np.zeros((0, 3072), np.uint8),
        b"labels": [np.int64(3), 4],
        b"raw": bytearray(b"xy"),
    }
    back = restricted_loads(pickle.dumps(obj, protocol=protocol))
    for key, value in obj.items():
        np.testing.assert_array_equal(back[key], value)
        if isinstance(value, np.ndarray):
            assert back[key].dtype == value.dtype
    assert type(back[b"labels"][0]) is np.int64


def test_huge_array_batch_names_the_file(tmp_path: Path) -> None:
    (_cifar_folder(tmp_path) / "test_batch").write_bytes(_huge_array_batch())
    with pytest.raises(UnsafePickleError, match=r"test_batch: refusing an array .*512 MiB"):
        load_cifar10(tmp_path, train=False)


# --- CIFAR batches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([b"cat", 1], r"item 0 is b'cat' \(bytes\)"),
        ([0, None], r"item 1 is None \(NoneType\)"),
        ([0, 1.7], r"item 1 is 1.7 \(float\)"),  # was silently truncated to 1
        ([True, 0], r"item 0 is True \(bool\)"),
        ([0, 2**70], r"labels in \[0, 10\), but item 1 is 1180591620717411303424"),
        ([0, -1], r"labels in \[0, 10\), but item 1 is -1"),
        (np.array([0.0, 1.0]), "1-D array of integer labels, but got dtype float64"),
        ("01", "be a list of integer labels, but got str"),
    ],
)
def test_bad_labels_name_the_batch_and_key(tmp_path: Path, write_pickle, labels, message: str) -> None:
    path = _cifar_folder(tmp_path) / "test_batch"
    write_pickle(path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels})
    with pytest.raises(CorruptDatasetError, match=rf"test_batch: b'labels' must .*{message}"):
        load_cifar10(tmp_path, train=False, check_sizes=False)


def test_batch_of_the_wrong_size(tmp_path: Path, write_pickle, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _cifar_folder(tmp_path)
    write_pickle(folder / "data_batch_1", {b"data": np.zeros((9999, 3072), np.uint8), b"labels": [0] * 9999})
    for i in range(2, 6):
        write_pickle(folder / f"data_batch_{i}", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(CorruptDatasetError, match=r"data_batch_1: b'data' must hold exactly 10000 images.*got 9999.*check_sizes=False"):
        load_cifar10(tmp_path, train=True)
    assert len(load_cifar10(tmp_path, train=True, check_sizes=False)) == 9999 + 4
    # more images than the release's file holds are refused even when sizes are not checked
    # (CIFAR-100's test file shrunk to 5 images here, to keep the test small)
    monkeypatch.setattr(cifar, "_CIFAR100", dataclasses.replace(cifar._CIFAR100, test_images=5))
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_pickle(folder / "test", {b"data": np.zeros((6, 3072), np.uint8), b"fine_labels": [0] * 6})
    with pytest.raises(CorruptDatasetError, match=r"cifar-100-python/test: b'data' must hold at most 5 images"):
        load_cifar100(tmp_path, train=False, check_sizes=False)


def test_files_over_the_cap_are_not_read(tmp_path: Path, make_fake_cifar10, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cifar, "MAX_ALLOCATION_BYTES", 1000)
    root = make_fake_cifar10(n=2)
    with pytest.raises(CorruptDatasetError, match=r"test_batch is \d+ bytes, but a CIFAR file must be at most 1000 bytes"):
        load_cifar10(root, train=False, check_sizes=False)
    archive = tmp_path / "archive" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(CorruptDatasetError, match=r"cifar-10-python\.tar\.gz:cifar-10-batches-py/\S+ is \d+ bytes"):
        load_cifar10(archive, train=False, check_sizes=False)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (b"\x80\x02cos\nsystem\n(S'echo hi'\ntR.", "refusing to unpickle the global 'os.system'"),
        (b"not a pickle", "not a valid pickle"),
        (pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2), r"must be a list of 10 names"),
        (pickle.dumps({b"label_names": [b"\xff"] * 10}, protocol=2), "UnicodeDecodeError"),
        (pickle.dumps({b"label_names": [3] * 10}, protocol=2), r"must be a list of 10 names"),
    ],
)
def test_bad_meta_file_warns_and_drops_names(tmp_path: Path, write_pickle, meta: bytes, message: str) -> None:
    folder = _cifar_folder(tmp_path)
    write_pickle(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    (folder / "batches.meta").write_bytes(meta)
    with pytest.warns(UserWarning, match=rf"batches\.meta: ignoring the class names .*{message}"):
        ds = load_cifar10(tmp_path, train=False, check_sizes=False)
    assert ds.class_names is None and len(ds) == 2


def test_good_meta_file_does_not_warn(make_fake_cifar10) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_cifar10(make_fake_cifar10(n=2), train=False, check_sizes=False)
    assert ds.class_names == tuple(f"class{c}" for c in range(10))


# --- idx files -------------------------------------------------------------------------------


def test_idx_dimensions_that_overflow_int64(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    # 2**31 * 2**31 * 4 = 2**64 wraps to 0 in int64, which matched a header-only file
    path.write_bytes(struct.pack(">I", 0x0803) + struct.pack(">3I", 2**31, 2**31, 4))
    with pytest.raises(CorruptDatasetError, match=r"announces shape \(2147483648, 2147483648, 4\)") as info:
        read_idx(path, ndim=3)
    assert str(path) in str(info.value)


# --- datasets, splits, noise -----------------------------------------------------------------


def _toy(n: int = 6) -> ArrayDataset:
    return ArrayDataset(np.zeros((n, 1, 2, 2), np.uint8), np.arange(n) % 3, 3, "toy")


@pytest.mark.parametrize("k", [2.5, 3.0, True, "3", None])
def test_num_classes_must_be_an_integer(k: object) -> None:
    with pytest.raises(ValueError, match=rf"num_classes must be an integer >= 1, but got {k!r}"):
        ArrayDataset(np.zeros((2, 1, 2, 2), np.uint8), [0, 1], k)  # type: ignore[arg-type]
    assert ArrayDataset(np.zeros((2, 1, 2, 2), np.uint8), [0, 1], np.int64(2)).num_classes == 2


def test_subset_takes_integer_indices_or_a_mask() -> None:
    ds = _toy()
    with pytest.raises(ValueError, match="indices must be integers .*, but got dtype float64"):
        ds.subset([0.0, 1.5])
    with pytest.raises(ValueError, match=r"a boolean mask must have shape \(6,\), but got \(2,\)"):
        ds.subset([True, False])
    with pytest.raises(ValueError, match=r"indices must lie in \[-6, 6\), but got range \[0, 6\]"):
        ds.subset([0, 6])
    mask = np.array([True, False, True, False, False, True])
    assert ds.subset(mask).labels.tolist() == [0, 2, 2]
    assert ds.subset([-1, 0]).labels.tolist() == [2, 0]
    assert len(ds.subset([])) == 0


@pytest.mark.parametrize("per_class", [2.5, "1", True, -1])
def test_meta_split_per_class_must_be_an_integer(per_class: object) -> None:
    with pytest.raises(ValueError, match=rf"per_class must be an integer >= 0, but got {per_class!r}"):
        meta_split([0, 1] * 5, per_class)  # type: ignore[arg-type]


def test_long_tailed_indices_needs_every_class() -> None:
    with pytest.raises(ValueError, match=r"no sample of class\(es\) \[1\]"):
        long_tailed_indices([0, 2, 0, 2], imbalance_factor=2)
    with pytest.raises(ValueError, match=r"no sample of class\(es\) \[3\]"):
        long_tailed_indices([0, 1, 2] * 4, imbalance_factor=2, num_classes=4)


def test_transition_matrix_needs_the_transition_kind() -> None:
    t = np.full((3, 3), 1 / 3)
    for kind in ("symmetric", "pairflip"):
        with pytest.raises(ValueError, match=rf"transition is only used with kind='transition', but got a matrix with kind='{kind}'"):
            corrupt_labels([0, 1, 2], 3, kind, 0.2, transition=t)
    assert corrupt_labels([0, 1, 2], 3, "transition", transition=t).kind == "transition"


def test_meta_split_load_refuses_overlap_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"per_class": 1, "seed": 0, "train_indices": [0, 1, 2], "meta_indices": [2, 3]}))
    with pytest.raises(ValueError, match=r"must be disjoint, but 1 indices are in both \(first \[2\]\)") as info:
        MetaSplit.load(path)
    assert str(path) in str(info.value)
    for bad, message in [
        ("[1, 2]", "must hold a JSON object"),
        ('{"per_class": 1}', r"must have the field\(s\)"),
        ('{"per_class": 1, "seed": 0, "train_indices": [0.5], "meta_indices": []}', "train_indices must be a list of integers"),
        ('{"per_class": 1.5, "seed": 0, "train_indices": [0], "meta_indices": [1]}', "per_class must be an integer"),
        ("{", "must be a JSON split"),
        (b"\xff", "must be a JSON split"),
    ]:
        path.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
        with pytest.raises(ValueError, match=message) as info:
            MetaSplit.load(path)
        assert str(path) in str(info.value)
    split = meta_split([0, 1] * 5, per_class=2, seed=1)
    split.save(path)
    back = MetaSplit.load(path)
    assert back.meta_indices.tolist() == split.meta_indices.tolist() and back.seed == 1


# --- records are written atomically ---------------------------------------------------------


def test_write_json_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run" / "noise.json"
    noisy = corrupt_labels([0, 1, 2] * 4, 3, "symmetric", 0.5, seed=0)
    noisy.save(path)  # creates the folder
    before = path.read_bytes()
    assert json.loads(before)["labels"] == noisy.labels.tolist()

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"other": 1})
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["noise.json"]
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        write_json(path, {"x": float("nan")})
    assert path.read_bytes() == before


def test_a_small_gz_idx_cannot_inflate_past_its_header(tmp_path) -> None:
    import gzip
    import struct

    from autodata.data import CorruptDatasetError, read_idx

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    header = struct.pack(">I", 0x0803) + struct.pack(">III", 10, 28, 28)
    with gzip.open(bomb, "wb") as f:
        f.write(header)
        for _ in range(50):
            f.write(bytes(1 << 20))  # 50 MiB of zeros behind a header that announces 7,840 bytes
    assert bomb.stat().st_size < 200_000
    with pytest.raises(CorruptDatasetError, match="holds more than 7856 bytes"):
        read_idx(bomb, ndim=3)
    huge = tmp_path / "huge.gz"
    with gzip.open(huge, "wb") as f:
        f.write(struct.pack(">I", 0x0803) + struct.pack(">III", 2**16, 2**16, 2**16))
    with pytest.raises(CorruptDatasetError, match="may hold at most"):
        read_idx(huge, ndim=3)
