"""``autodata report RUN_DIR``: summary, plots redrawn from the files, suspected mislabels."""
from __future__ import annotations

import csv

import matplotlib.image
import numpy as np
import pytest

from autodata.runs import train_in_directory
from autodata.runs.plots import load_run
from autodata.train import TrainConfig

MWN = TrainConfig(dataset="digits", n_train=300, epochs=2, batch_size=64, meta_per_class=3, meta_batch_size=30,
                  noise="symmetric", noise_rate=0.4, reweighter="mwn", method="fd")


@pytest.fixture(scope="module")
def mwn_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "mwn"
    train_in_directory(MWN, out)
    return out


def test_report_prints_the_summary_draws_plots_and_writes_suspects(mwn_dir, cli, capsys) -> None:
    assert cli(["report", str(mwn_dir), "--suspects", "25"]) == 0
    out = capsys.readouterr().out
    assert "# autodata run: digits, small_cnn" in out and "Status: finished" in out
    assert "![Accuracy and loss per epoch](plots/curves.png)" in out and "plots/weights.png" in out
    for name in ("curves.png", "weights.png"):
        path = mwn_dir / "plots" / name
        assert path.stat().st_size > 0 and matplotlib.image.imread(path).ndim == 3
    summary = (mwn_dir / "summary.md").read_text()
    assert summary.count("## Plots") == 1 and summary.rstrip().endswith("(plots/weights.png)")
    assert "suspects: the 25 training samples with the lowest learned weights" in out and "corrupted label" in out
    rows = list(csv.DictReader((mwn_dir / "suspects.csv").open()))
    assert len(rows) == 25 and list(rows[0]) == ["rank", "index", "split_index", "given_label", "weight", "loss",
                                               "corrupted", "true_label"]
    run = load_run(mwn_dir)
    flipped = set(run.data.noise.flipped.tolist())
    weights = [float(r["weight"]) for r in rows]
    assert weights == sorted(weights)
    for r in rows:
        i = int(r["split_index"])
        assert r["corrupted"] == str(i in flipped).lower()
        assert int(r["given_label"]) == run.data.train.labels[i] and int(r["true_label"]) == run.data.clean_train_labels[i]
    assert cli(["report", str(mwn_dir), "--no-plots"]) == 0  # again: the summary keeps one Plots section
    assert (mwn_dir / "summary.md").read_text().count("## Plots") == 1


@pytest.mark.slow
def test_report_on_a_run_that_is_still_training(tmp_path, cli, capsys) -> None:
    out = tmp_path / "running"
    config = MWN.replace(epochs=4, augment="policy", policy="policies/randaugment.json")

    def stop(run, record):
        if run.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_in_directory(config, out, on_epoch=stop)
    assert cli(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Status: in progress, epoch 1 of 4." in text
    assert {p.name for p in (out / "plots").iterdir()} == {"curves.png", "weights.png", "samples.png"}


@pytest.mark.parametrize("argv, message", [
    (["report", "{tmp}"], "RUN_DIR must be an autodata run directory (with config.json), but got"),
    (["report", "{mwn}", "--suspects", "0"], "--suspects must be >= 1, but got 0."),
    (["report", "{plain}", "--suspects", "5"], "--suspects needs a run trained with --reweighter mwn, but"),
])
def test_report_errors_are_one_line(argv, message, mwn_dir, tmp_path, cli, capsys) -> None:
    plain = tmp_path / "plain"
    if "{plain}" in argv:
        train_in_directory(TrainConfig(dataset="digits", n_train=200, epochs=1, batch_size=64), plain)
    argv = [a.format(tmp=tmp_path / "empty", mwn=mwn_dir, plain=plain) for a in argv]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_sample_weights_cover_the_training_split(mwn_dir) -> None:
    from autodata.runs.suspects import training_sample_weights

    run = load_run(mwn_dir)
    samples = training_sample_weights(run)
    assert samples.loss.shape == samples.weight.shape == samples.label.shape == (len(run.data.train),)
    assert samples.corrupted is not None and samples.corrupted.sum() == len(run.data.noise.flipped)
    assert np.all(samples.weight > 0) and np.all(np.isfinite(samples.loss))
    assert list(samples.lowest(3)) == list(np.lexsort((-samples.loss, samples.weight))[:3])
