"""``suspects.csv``: its ``index`` finds the sample in the dataset the user named, ``split_index`` in the split."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from autodata.data import load_dataset
from autodata.runs.suspects import CSV_COLUMNS, SampleWeights, suspects_csv_text, write_suspects_csv
from autodata.train import TrainConfig, build_run

# every subset a run takes: n_train, long-tailed, meta and validation hold-outs, then label noise
CONFIG = TrainConfig(dataset="digits", n_train=600, imbalance=3.0, meta_per_class=3, val_per_class=2,
                     noise="symmetric", noise_rate=0.4, reweighter="mwn", method="fd", epochs=1, batch_size=64,
                     meta_batch_size=30)


@pytest.mark.slow
def test_suspect_indices_point_at_the_images_of_the_original_dataset(tmp_path) -> None:
    run = build_run(CONFIG)
    run.fit()
    original = load_dataset("digits", train=True)
    train = run.data.train
    path = tmp_path / "suspects.csv"
    assert write_suspects_csv(run, path, len(train)) == len(train)  # every training sample, least trusted first
    rows = list(csv.DictReader(path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    index = np.array([int(r["index"]) for r in rows])
    split = np.array([int(r["split_index"]) for r in rows])
    assert sorted(split.tolist()) == list(range(len(train)))
    assert len(set(index.tolist())) == len(train) and index.max() >= len(train)  # not split positions
    np.testing.assert_array_equal(original.images[index], train.images[split])
    # the true label is the original dataset's label; the given one is what the split trained on
    np.testing.assert_array_equal([int(r["true_label"]) for r in rows], original.labels[index])
    np.testing.assert_array_equal([int(r["given_label"]) for r in rows], train.labels[split])
    flipped = set(run.data.noise.flipped.tolist())
    assert [r["corrupted"] for r in rows] == [str(i in flipped).lower() for i in split.tolist()]
    assert [r["corrupted"] == "true" for r in rows] == (original.labels[index] != train.labels[split]).tolist()
    # held-out samples are never suspects
    held_out = np.concatenate([run.data.meta.source_indices, run.data.val.source_indices])
    assert np.intersect1d(index, held_out).size == 0


def test_without_source_indices_the_index_is_the_split_position() -> None:
    samples = SampleWeights(label=np.array([3, 1, 2]), loss=np.array([0.5, 2.0, 1.0]),
                            weight=np.array([0.4, 0.1, 0.1]), corrupted=None, true_label=None)
    text = suspects_csv_text(samples, 3)
    assert text.splitlines() == [",".join(CSV_COLUMNS), "1,1,1,1,0.1,2,,", "2,2,2,2,0.1,1,,", "3,0,0,3,0.4,0.5,,"]
    moved = SampleWeights(samples.label, samples.loss, samples.weight, None, None, source_index=np.array([40, 7, 19]))
    assert [line.split(",")[:3] for line in suspects_csv_text(moved, 2).splitlines()[1:]] == [["1", "7", "1"],
                                                                                          ["2", "19", "2"]]
