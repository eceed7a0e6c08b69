"""``autodata tune``: the subcommand that autodata.tune.cli.register adds to a parser."""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys

import pytest

from autodata.train import TrainConfig
from autodata.tune.cli import register


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="autodata")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


TINY = ["--dataset", "digits", "--n-train", "400", "--val-per-class", "10", "--epochs", "2", "--batch-size", "64"]


@pytest.mark.slow
def test_tune_writes_the_best_config_and_the_trials(tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr": {"low": 0.01, "high": 0.3, "log": True}}))
    out = tmp_path / "study"
    assert _main(["tune", *TINY, "--out", str(out), "--trials", "2", "--pruner", "none", "--space", str(space),
                  "--sampler-seed", "0"]) == 0
    text = capsys.readouterr().out
    assert "trial   0 COMPLETE" in text and "best trial" in text and f"optuna-dashboard {out / 'study.journal'}" in text
    best = TrainConfig.load(out / "best" / "config.json")
    assert best.n_train == 400 and 0.01 <= best.lr <= 0.3
    assert len(list(csv.DictReader(open(out / "trials.csv")))) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--val-per-class", "0"], "--val-per-class must be > 0 to tune"),
        (["--val-per-class", "10", "--lr", "-1"], "--lr must be a positive finite number, but got -1.0."),
        (["--val-per-class", "10", "--trials", "0"], "--trials must be >= 1, but got 0."),
        (["--val-per-class", "10", "--storage", "postgresql+psycopg2://u:topsecret@127.0.0.1:1/x"], "u:***@127.0.0.1:1/x"),
    ],
)
def test_user_errors_are_clear_and_come_before_any_trial(tmp_path, argv, message):
    with pytest.raises(ValueError) as error:
        _main(["tune", "--dataset", "digits", "--out", str(tmp_path / "s"), *argv])
    assert message in str(error.value) and "topsecret" not in str(error.value)
    assert not (tmp_path / "s" / "trials.csv").exists()


def test_an_invalid_space_file_is_refused_before_any_trial(tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr": {"low": 0, "high": 1, "log": True}}))
    with pytest.raises(ValueError, match="low must be > 0 with log=True"):
        _main(["tune", *TINY, "--out", str(tmp_path / "s"), "--space", str(space)])


def test_a_bad_pruner_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _main(["tune", *TINY, "--out", str(tmp_path), "--pruner", "asha"])
    assert "invalid choice: 'asha'" in capsys.readouterr().err


def test_the_help_lists_the_tune_flags_and_the_config_fields():
    parser = argparse.ArgumentParser(prog="autodata")
    tune = register(parser.add_subparsers())
    text = tune.format_help()
    for flag in ("--storage", "--study-name", "--trials", "--workers", "--pruner", "--space", "--out", "--lr", "--reweighter-lr"):
        assert flag in text


@pytest.mark.slow
def test_import_autodata_tune_does_not_import_optuna_and_a_missing_optuna_is_clear():
    code = (
        "import sys, autodata, autodata.tune, autodata.tune.cli, autodata.tune.space, autodata.tune.study\n"
        "assert 'optuna' not in sys.modules, 'optuna imported'\n"
        "sys.modules['optuna'] = None\n"
        "from autodata._imports import MissingExtraError\n"
        "from autodata.tune import create_pruner\n"
        "try:\n    create_pruner('median', max_epochs=3)\n"
        "except MissingExtraError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install 'autodata[tune]'" in result.stdout
