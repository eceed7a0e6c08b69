from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from autodata.data import (
    CorruptDatasetError,
    DatasetNotFoundError,
    UnsafePickleError,
    load_cifar10,
    load_cifar100,
    load_dataset,
    restricted_loads,
)


# --- the real CIFAR-10 archive ------------------------------------------------------------


def test_cifar10_train_from_archive(cifar10_train) -> None:
    ds = cifar10_train
    assert ds.images.shape == (50000, 3, 32, 32) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and ds.num_classes == 10 and ds.name == "cifar10"
    assert ds.class_counts().tolist() == [5000] * 10
    means = ds.images.mean(axis=(0, 2, 3)) / 255.0
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=5e-4)
    assert ds.class_names is not None and ds.class_names[0] == "airplane"


def test_cifar10_test_from_archive_and_extracted_folder(cifar_archive: Path, tmp_path: Path) -> None:
    from_tar = load_cifar10(cifar_archive.parent, train=False)
    assert from_tar.images.shape == (10000, 3, 32, 32)
    assert from_tar.class_counts().tolist() == [1000] * 10
    # Extract only the pieces the test split needs, then read the folder layout.
    wanted = {"cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"}
    (tmp_path / "cifar-10-batches-py").mkdir()
    with tarfile.open(cifar_archive, "r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                (tmp_path / member.name).write_bytes(tar.extractfile(member).read())
    from_folder = load_cifar10(tmp_path, train=False)
    np.testing.assert_array_equal(from_folder.images, from_tar.images)
    np.testing.assert_array_equal(from_folder.labels, from_tar.labels)
    assert from_folder.class_names == from_tar.class_names


def test_root_from_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, write_pickle) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()  # a full-size test batch: load_dataset checks sizes
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch",
                 {b"data": np.zeros((10000, 3072), np.uint8), b"labels": [0] * 10000})
    monkeypatch.setenv("AUTODATA_DATA", str(tmp_path))
    assert len(load_dataset("cifar10", train=False)) == 10000
    # an explicit root wins over the env var
    with pytest.raises(DatasetNotFoundError):
        load_cifar10(tmp_path / "elsewhere", train=False)


# --- synthetic layouts ------------------------------------------------------------------------


def test_fake_folder_and_archive_agree(make_fake_cifar10, tmp_path: Path) -> None:
    folder_ds = load_cifar10(make_fake_cifar10(n=6), train=True, check_sizes=False)
    assert folder_ds.images.shape == (30, 3, 32, 32)
    assert folder_ds.class_names == tuple(f"class{c}" for c in range(10))
    # the folder itself may be given as root
    again = load_cifar10(tmp_path / "cifar-10-batches-py", train=True, check_sizes=False)
    np.testing.assert_array_equal(again.images, folder_ds.images)


def test_fake_archive_path_as_root(make_fake_cifar10) -> None:
    root = make_fake_cifar10(n=4, archive=True)
    ds = load_cifar10(root / "cifar-10-python.tar.gz", train=False, check_sizes=False)
    assert ds.images.shape == (4, 3, 32, 32)
    assert load_cifar10(root, train=True, check_sizes=False).images.shape == (20, 3, 32, 32)


def test_channel_major_reshape(tmp_path: Path, write_pickle) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = np.zeros((1, 3072), np.uint8)
    data[0, 1024 + 5 * 32 + 7] = 200  # green channel, row 5, column 7
    write_pickle(folder / "test_batch", {b"data": data, b"labels": [3]})
    ds = load_cifar10(tmp_path, train=False, check_sizes=False)
    assert ds.images[0, 1, 5, 7] == 200 and ds.images.sum() == 200
    assert ds.labels.tolist() == [3] and ds.class_names is None


def test_cifar100_fine_and_coarse(fake_cifar100: Path) -> None:
    fine = load_cifar100(fake_cifar100, train=True, check_sizes=False)
    coarse = load_cifar100(fake_cifar100, train=True, coarse=True, check_sizes=False)
    assert fine.num_classes == 100 and coarse.num_classes == 20
    np.testing.assert_array_equal(coarse.labels, fine.labels // 5)
    assert fine.class_names[3] == "f3" and coarse.class_names[3] == "c3"
    assert load_cifar100(fake_cifar100, train=False, check_sizes=False).images.shape == (8, 3, 32, 32)


# --- bad input -----------------------------------------------------------------------------


def test_missing_root_names_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTODATA_DATA", raising=False)
    with pytest.raises(ValueError, match="AUTODATA_DATA"):
        load_cifar10()


def test_missing_folder_names_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="data_batch_1") as err:
        load_cifar10(tmp_path)
    assert "cifar-10-python.tar.gz" in str(err.value) and str(tmp_path) in str(err.value)


def test_incomplete_folder_names_missing_files(make_fake_cifar10) -> None:
    root = make_fake_cifar10(skip=("data_batch_3",))
    with pytest.raises(DatasetNotFoundError, match="incomplete.*data_batch_3"):
        load_cifar10(root, train=True)
    assert len(load_cifar10(root, train=False, check_sizes=False)) == 6  # the test split is still complete


def test_corrupted_archive(tmp_path: Path, make_fake_cifar10) -> None:
    garbage = tmp_path / "garbage" / "cifar-10-python.tar.gz"
    garbage.parent.mkdir()
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CorruptDatasetError, match="download it again") as err:
        load_cifar10(garbage.parent)
    assert str(garbage) in str(err.value)
    root = make_fake_cifar10(n=50, archive=True)
    archive = root / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # truncated
    with pytest.raises((CorruptDatasetError, DatasetNotFoundError), match="download it again"):
        load_cifar10(root)


def test_batch_with_wrong_shape_or_keys(tmp_path: Path, write_pickle) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(folder / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(CorruptDatasetError, match=r"\(N, 3072\)"):
        load_cifar10(tmp_path, train=False, check_sizes=False)
    write_pickle(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(CorruptDatasetError, match="b'labels'"):
        load_cifar10(tmp_path, train=False, check_sizes=False)
    write_pickle(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(CorruptDatasetError, match="one label per image"):
        load_cifar10(tmp_path, train=False, check_sizes=False)
    (folder / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(CorruptDatasetError, match="test_batch"):
        load_cifar10(tmp_path, train=False, check_sizes=False)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_os_system_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"system"):
        restricted_loads(payload)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system"):
        load_cifar10(tmp_path, train=False)
    assert not marker.exists()


def test_restricted_unpickler_admits_numpy_arrays() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = restricted_loads(pickle.dumps({b"data": arr, b"labels": [1, 2]}, protocol=2))
    np.testing.assert_array_equal(out[b"data"], arr)
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        from collections import OrderedDict

        restricted_loads(pickle.dumps(OrderedDict(a=1)))
