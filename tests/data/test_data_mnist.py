from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from autodata.data import CorruptDatasetError, DatasetNotFoundError, load_dataset, load_fashion_mnist, load_mnist, read_idx


def test_fashion_mnist_gz(fashion_raw: Path, data_root: Path) -> None:
    train = load_fashion_mnist(data_root, train=True)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == np.uint8
    assert train.class_counts().tolist() == [6000] * 10
    assert train.name == "fashion_mnist" and train.class_names[9] == "Ankle boot"
    np.testing.assert_allclose(train.images.mean() / 255.0, 0.2860, atol=1e-3)
    test = load_dataset("fashion_mnist", data_root, train=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.class_counts().tolist() == [1000] * 10


def test_fashion_mnist_raw_files_directly_in_root(fashion_raw: Path, data_root: Path, tmp_path: Path) -> None:
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(fashion_raw / f"{stem}.gz") as src, open(tmp_path / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    raw = load_fashion_mnist(tmp_path, train=False)
    gz = load_fashion_mnist(data_root, train=False)
    np.testing.assert_array_equal(raw.images, gz.images)
    np.testing.assert_array_equal(raw.labels, gz.labels)


def _write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    header = np.array([magic if magic is not None else (0x08 << 8) | array.ndim, *array.shape], ">u4")
    data = header.tobytes() + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _fake_mnist(root: Path, n: int = 5) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    return raw


def test_mnist_torchvision_layout(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    ds = load_mnist(tmp_path, train=True)
    assert ds.images.shape == (5, 1, 28, 28) and ds.name == "mnist"


def test_missing_files_say_where_we_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte") as err:
        load_fashion_mnist(tmp_path)
    assert str(tmp_path / "FashionMNIST" / "raw") in str(err.value)


def test_corrupted_gzip_names_file(tmp_path: Path) -> None:
    raw = _fake_mnist(tmp_path)
    bad = raw / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated gzip stream
    with pytest.raises(CorruptDatasetError, match="download it again") as err:
        load_mnist(tmp_path)
    assert str(bad) in str(err.value)
    bad.write_bytes(b"\x00" * 100)  # not gzip at all
    with pytest.raises(CorruptDatasetError, match="train-images"):
        load_mnist(tmp_path)


def test_bad_magic_and_size(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    _write_idx(path, np.zeros((2, 4, 4)), magic=0x0D03)  # float type code
    with pytest.raises(CorruptDatasetError, match="magic number"):
        read_idx(path, ndim=3)
    _write_idx(path, np.zeros((2, 4, 4)))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CorruptDatasetError, match=r"\(2, 4, 4\)"):
        read_idx(path, ndim=3)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(CorruptDatasetError, match="header"):
        read_idx(path, ndim=3)


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    raw = _fake_mnist(tmp_path, n=5)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(CorruptDatasetError, match="must match"):
        load_mnist(tmp_path, train=False)
