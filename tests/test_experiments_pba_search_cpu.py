"""experiments/pba_search_cpu.py: the --dataset option, its defaults, the data it builds, paired differences."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from experiment_script import load_script

from autodata.pba import PBASearch, PBASearchConfig

ROOT = Path(__file__).resolve().parents[1]


psc = load_script("pba_search_cpu")


def _fashion_root() -> Path:
    root = os.environ.get("AUTODATA_DATA", "")
    if not root:
        pytest.skip("AUTODATA_DATA is unset: point it at the shared data folder to run real-data tests")
    if not (Path(root) / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST idx files are missing under {root}")
    return Path(root)


def test_default_dataset_keeps_the_cifar_defaults() -> None:
    args = psc.parse_args([])
    assert args.dataset == "cifar10"
    assert Path(args.out) == ROOT / "policies" / "pba_searched_cifar10_small.json"
    assert args.workdir == os.path.join("runs", "pba_search_cpu")
    assert psc.base_config(args).dataset == "cifar10"
    assert psc.DATASETS["cifar10"].crop_padding == 4  # PBA's pad on 32 px


def test_fashion_mnist_defaults_and_explicit_paths() -> None:
    args = psc.parse_args(["--dataset", "fashion_mnist", "--n-train", "4000", "--val-per-class", "100"])
    assert Path(args.out) == ROOT / "policies" / "pba_searched_fmnist_small.json"
    assert args.workdir == os.path.join("runs", "pba_search_cpu_fashion_mnist")
    config = psc.base_config(args)
    assert (config.dataset, config.n_train, config.val_per_class, config.model) == ("fashion_mnist", 4000, 100, "small_cnn")
    assert psc.DATASETS["fashion_mnist"].crop_padding == 3  # 28 // 8, the replay's PBA pad
    args = psc.parse_args(["--dataset", "fashion_mnist", "--out", "x.json", "--workdir", "w"])
    assert (args.out, args.workdir) == ("x.json", "w")
    with pytest.raises(SystemExit):
        psc.parse_args(["--dataset", "svhn"])


@pytest.mark.slow  # reads all of Fashion-MNIST: about 3 to 6 s
def test_fashion_mnist_builds_its_data_and_search_augment() -> None:
    """A tiny subset: 1-channel 28 px images, a class-balanced validation split, and the search's
    PBA crop pad and Cutout scaled to 28 px as the replay scales them (3 and 14)."""
    root = _fashion_root()
    args = psc.parse_args(["--dataset", "fashion_mnist", "--n-train", "300", "--val-per-class", "5", "--epochs", "3"])
    train = psc.base_config(args).replace(data_root=str(root))
    search = PBASearch(PBASearchConfig(train, population=2, interval=1, engine="loop"))
    data = search.data
    assert data.train.images.shape[1:] == (1, 28, 28) and data.in_channels == 1
    assert data.val is not None and len(data.val) == 50 and sorted(data.val.class_counts().tolist()) == [5] * 10
    assert len(data.train) == 250
    assert data.train.images.shape[-1] // 8 == psc.DATASETS["fashion_mnist"].crop_padding
    assert data.train.images.shape[-1] == psc.DATASETS["fashion_mnist"].image_size
    for aug in search.augment.augments:
        assert (aug.pad, aug.cutout_size, aug.flip) == (3, 14, True)


def test_paired_differences() -> None:
    accs = {"searched schedule": [80.0, 82.5, 81.0], "crop/flip only": [79.0, 83.0, 80.0], "same": [80.0, 82.5, 81.0]}
    out = psc.paired_differences(accs, "searched schedule")
    assert set(out) == {"crop/flip only", "same"}
    diffs, mean = out["crop/flip only"]
    assert diffs == pytest.approx([1.0, -0.5, 1.0]) and mean == pytest.approx(0.5)
    assert out["same"] == ([0.0, 0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="reference must be one of"):
        psc.paired_differences(accs, "nope")
    with pytest.raises(ValueError, match="one accuracy per seed"):
        psc.paired_differences({"a": [1.0, 2.0], "b": [1.0]}, "a")


def test_search_augment_matches_the_replay_on_small_images(tmp_path: Path) -> None:
    """The search trains members with the crop pad and Cutout that replaying its schedule uses
    (8 px digits: pad 1, Cutout 4; PBA's fixed 4 and 16 would crop and cut out the whole image)."""
    from autodata.schedules import PBAPolicy, PiecewiseSchedule, Segment
    from autodata.train import TrainConfig, build_run

    train = TrainConfig(dataset="digits", n_train=300, val_per_class=5, epochs=3, batch_size=100)
    search = PBASearch(PBASearchConfig(train, population=2, interval=1, engine="loop"))
    path = tmp_path / "zero.json"
    PiecewiseSchedule([Segment(0, 3, PBAPolicy.zeros())], name="zero").save(path)
    replay = build_run(train.replace(val_per_class=0, augment="schedule", policy=str(path))).learner.augment
    assert (replay.pad, replay.cutout_size) == (1, 4)
    for aug in search.augment.augments:
        assert (aug.pad, aug.cutout_size, aug.flip) == (replay.pad, replay.cutout_size, replay.flip)
