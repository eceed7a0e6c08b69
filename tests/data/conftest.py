"""Shared fixtures: the real data root (skips without it) and tiny synthetic CIFAR layouts."""
from __future__ import annotations

import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autodata.data import ArrayDataset, load_cifar10


def _real_root() -> Path | None:
    env = os.environ.get("AUTODATA_DATA", "")
    return Path(env) if env else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _real_root()
    if root is None:
        pytest.skip("AUTODATA_DATA is unset: point it at the shared data folder to run real-data tests")
    if not root.is_dir():
        pytest.skip(f"AUTODATA_DATA={root} is not a folder")
    return root


@pytest.fixture(scope="session")
def cifar_archive(data_root: Path) -> Path:
    archive = data_root / "cifar-10-python.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} is missing")
    return archive


@pytest.fixture(scope="session")
def cifar10_train(cifar_archive: Path) -> ArrayDataset:
    """All 50,000 CIFAR-10 training images, read once per session from the tar.gz."""
    return load_cifar10(cifar_archive.parent, train=True)


@pytest.fixture(scope="session")
def fashion_raw(data_root: Path) -> Path:
    raw = data_root / "FashionMNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST idx files are missing under {raw}")
    return raw


def write_batch(path: Path, payload: object) -> None:
    path.write_bytes(pickle.dumps(payload, protocol=2))


@pytest.fixture()
def write_pickle() -> Callable[[Path, object], None]:
    """Writes a protocol-2 pickle, as the CIFAR batches are."""
    return write_batch


def _fake_batch(n: int, label_key: str, k: int, seed: int, extra: dict | None = None) -> dict:
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key.encode(): rng.integers(0, k, n).tolist(),
    }
    batch.update(extra or {})
    return batch


@pytest.fixture()
def make_fake_cifar10(tmp_path: Path) -> Callable[..., Path]:
    """Writes a tiny CIFAR-10-layout folder (n images per batch) and returns the root."""

    def make(n: int = 6, archive: bool = False, skip: tuple[str, ...] = ()) -> Path:
        folder = tmp_path / "cifar-10-batches-py"
        folder.mkdir()
        for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
            if name not in skip:
                write_batch(folder / name, _fake_batch(n, "labels", 10, i))
        names = [f"class{c}".encode() for c in range(10)]
        write_batch(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
        if archive:
            with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
                tar.add(folder, arcname="cifar-10-batches-py")
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
        return tmp_path

    return make


@pytest.fixture()
def fake_cifar100(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for i, name in enumerate(("train", "test")):
        rng = np.random.default_rng(i)
        fine = rng.integers(0, 100, 8)
        write_batch(
            folder / name,
            {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
             b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist()},
        )
    write_batch(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                  b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    return tmp_path
