"""The ``autodata`` command: version, help, the demo, train, and one clear line for bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import autodata
from autodata.cli import main
from autodata.runs import RunDirectory

SMALL = ["--n-train", "300", "--epochs", "2", "--batch-size", "64", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_version_and_help(capsys) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"autodata {autodata.__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "train" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--no-nesterov" in out and "--meta-per-class" in out


def test_demo_runs_one_epoch(capsys) -> None:
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "cross-entropy" in out and "Meta-Weight-Net" in out and "realised noise rate 0.4" in out


def test_bad_noise_rate_is_a_clear_error(capsys) -> None:
    assert main(["demo", "--rate", "1.5", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autodata: error:") and "rate" in err and "1.5" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "0"], "autodata: error: --epochs must be >= 1, but got 0."),
        (["train", "--seed", "-1"], "autodata: error: --seed must be in [0, 2**63), but got -1."),
        (["train", "--model", "resnet9000"], "autodata: error: --model must be one of"),
        (["train", "--reweighter", "mwn"], "autodata: error: --meta-per-class must be > 0"),
        (["train", "--lr", "fast"], "autodata train: error: argument --lr: invalid float value: 'fast'"),
        (["train", "--bogus"], "autodata: error: unrecognized arguments: --bogus"),
        (["trian"], "autodata: error: argument COMMAND: invalid choice: 'trian'"),
        (["train", "--augment", "policy", "--policy", "nope.json"], "nope.json"),
        (["train", "--config", "nope.json"], "nope.json does not exist"),
        (["train", "--resume", "--overwrite"], "not allowed with argument"),
    ],
)
def test_user_errors_are_one_line_before_any_training(argv, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    import autodata.train.run as run_module

    monkeypatch.setattr(run_module, "build_data", lambda config: pytest.fail("training started"))
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_train_writes_a_run_and_flags_override_a_config_file(capsys, tmp_path) -> None:
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--no-nesterov", "--data", "digits", "--out", str(out)]) == 0
    config = RunDirectory(out).config()
    assert config.nesterov is False and config.epochs == 2 and config.n_train == 300
    assert "finished: 2 epochs" in capsys.readouterr().out
    assert main(["train", "--config", str(out / "config.json"), "--seed", "3", "--quiet",
                 "--out", str(tmp_path / "run3")]) == 0
    again = RunDirectory(tmp_path / "run3").config()
    assert again == config.replace(seed=3)
    assert main(["train", *SMALL, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0  # finished: not redone


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(tmp_path) -> None:
    command = [sys.executable, "-m", "autodata.cli", "train", "--n-train", "300", "--epochs", "3",
               "--out", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    process.stdout.readline()
    process.stdout.close()  # like `autodata train ... | head -1`
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.slow
def test_ctrl_c_ends_quietly_and_the_run_resumes(tmp_path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "autodata.cli", "train", "--n-train", "900", "--epochs", "4", "--quiet",
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert process.returncode == 130 and "Traceback" not in err.decode()
    assert f"autodata train --out {out} --resume" in err.decode()
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert [r["epoch"] for r in RunDirectory(out).read_metrics()] == [1, 2, 3, 4]
    assert json.loads((out / "config.json").read_text())["epochs"] == 4


def test_search_policy_writes_a_policy_file_that_train_reuses(tmp_path, capsys) -> None:
    policy = tmp_path / "p.json"
    assert main(["search", "policy", "--data", "digits", "--n-train", "300", "--meta-per-class", "10",
                 "--model", "small_cnn", "--epochs", "1", "--policy-ops", "Rotate,Invert", "--keep", "2",
                 "--quiet", "--out", str(policy)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["train", "--n-train", "300", "--epochs", "1", "--augment", "policy", "--policy", str(policy),
                 "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "final" / "policy.json").exists()
    assert main(["search", "policy", "--data", "digits", "--model", "nope", "--out", str(policy)]) == 2
    assert "--model must be one of" in capsys.readouterr().err


def test_search_schedule_is_the_pba_search(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["search", "schedule", "--help"])
    assert info.value.code == 0
    assert "--population" in capsys.readouterr().out
    assert main(["search", "schedule", "--population", "1", "--out", "x.json"]) == 2
    assert "--population must be" in capsys.readouterr().err


def test_forced_progress_bars_on_search_and_tune(tmp_path, capsys) -> None:
    assert main(["search", "policy", "--data", "digits", "--n-train", "300", "--meta-per-class", "10",
                 "--model", "small_cnn", "--epochs", "1", "--policy-ops", "Rotate,Invert", "--keep", "2",
                 "--progress", "--out", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "search: epoch 1/1" in out and "batches" in out
    pytest.importorskip("optuna")
    assert main(["tune", "--data", "digits", "--n-train", "300", "--val-per-class", "5", "--epochs", "1",
                 "--trials", "2", "--progress", "--out", str(tmp_path / "tune")]) == 0
    assert "tune: trial 2/2" in capsys.readouterr().out
