"""Run directories: the files a run writes, resume after a crash, and refusals that lose nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from autodata.runs import RunDirectory, RunDirectoryError, train_in_directory
from autodata.runs.directory import summary_markdown
from autodata.train import TrainConfig, build_run

CONFIG = TrainConfig(dataset="digits", n_train=300, epochs=3, batch_size=64, meta_per_class=3, meta_batch_size=30,
                     noise="symmetric", noise_rate=0.4, reweighter="mwn", method="fd")


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]


def test_a_run_writes_its_directory(tmp_path) -> None:
    out = tmp_path / "run"
    run = train_in_directory(CONFIG, out)
    folder = RunDirectory(out)
    assert folder.config() == CONFIG
    assert _comparable(folder.read_metrics()) == _comparable(run.history)
    assert len(run.history) == 3
    state = torch.load(folder.checkpoint_path, weights_only=True)
    assert state["epoch"] == 3
    assert (out / "final" / "model.pt").exists() and (out / "final" / "reweighter.pt").exists()
    summary = (out / "summary.md").read_text()
    assert "Status: finished, epoch 3 of 3." in summary and f"{run.history[-1]['test_accuracy']:.2f}%" in summary
    assert not [p for p in out.rglob("*.tmp")]


@pytest.mark.parametrize("warmup, says", [(0, "sgd lr 0.05 cosine, 3 epochs"),
                                          (1, "sgd lr 0.05 cosine after a warm-up of 1 epoch, 3 epochs"),
                                          (2, "sgd lr 0.05 cosine after a warm-up of 2 epochs, 3 epochs")])
def test_the_summary_states_the_learning_rate_schedule(warmup: int, says: str) -> None:
    assert says in summary_markdown(build_run(CONFIG.replace(warmup_epochs=warmup)))


def test_an_existing_run_is_kept_unless_resume_or_overwrite(tmp_path) -> None:
    out = tmp_path / "run"
    config = CONFIG.replace(epochs=1)
    train_in_directory(config, out)
    before = (out / "checkpoints" / "last.pt").stat().st_mtime_ns
    with pytest.raises(RunDirectoryError, match="already holds a run; pass --resume .* or --overwrite"):
        train_in_directory(config, out)
    with pytest.raises(RunDirectoryError, match=r"another config \(fields \['seed'\] differ\)"):
        train_in_directory(config.replace(seed=1), out, resume=True)
    run = train_in_directory(None, out, resume=True)  # finished: not redone
    assert run.finished and (out / "checkpoints" / "last.pt").stat().st_mtime_ns == before
    (out / "notes.txt").write_text("mine")
    train_in_directory(config.replace(seed=1), out, overwrite=True)
    assert RunDirectory(out).config().seed == 1 and (out / "notes.txt").read_text() == "mine"


def test_a_folder_that_is_not_a_run_is_refused(tmp_path) -> None:
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(RunDirectoryError, match="not an autodata run directory"):
        train_in_directory(CONFIG, tmp_path)
    with pytest.raises(RunDirectoryError, match="is a file"):
        train_in_directory(CONFIG, tmp_path / "data.csv")
    with pytest.raises(RunDirectoryError, match="holds no run to resume"):
        train_in_directory(None, tmp_path / "empty", resume=True)


def test_resume_after_an_interrupt_and_a_torn_metrics_line_is_exact(tmp_path) -> None:
    whole = train_in_directory(CONFIG, tmp_path / "whole")

    def stop_after_first(run, record) -> None:
        if run.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_in_directory(CONFIG, tmp_path / "cut", on_epoch=stop_after_first)
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "train_l')  # a crash in the middle of an append
    assert len(RunDirectory(tmp_path / "cut").read_metrics()) == 1
    resumed = train_in_directory(CONFIG, tmp_path / "cut", resume=True)
    assert _comparable(resumed.history) == _comparable(whole.history)
    assert _comparable(RunDirectory(tmp_path / "cut").read_metrics()) == _comparable(whole.history)
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)


def test_an_unreadable_checkpoint_is_named(tmp_path) -> None:
    out = tmp_path / "run"
    train_in_directory(CONFIG.replace(epochs=1), out)
    (out / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunDirectoryError, match="last.pt cannot be read as a checkpoint"):
        train_in_directory(None, out, resume=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autodata.cli", "train", "--quiet", *args]


@pytest.mark.slow
def test_resume_after_kill_9_is_bit_identical(tmp_path) -> None:
    """A training process killed with SIGKILL at an arbitrary point resumes to the same result."""
    config = CONFIG.replace(n_train=900, epochs=4, method="online")
    config.save(tmp_path / "config.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli("--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "whole")),
                   check=True, env=env, capture_output=True)
    cut = tmp_path / "cut"
    process = subprocess.Popen(_cli("--config", str(tmp_path / "config.json"), "--out", str(cut)), env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (cut / "metrics.jsonl").exists() and (cut / "metrics.jsonl").read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed; make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = len(RunDirectory(cut).read_metrics())
    assert killed_at < config.epochs
    subprocess.run(_cli("--out", str(cut), "--resume"), check=True, env=env, capture_output=True)
    whole = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert _comparable(resumed) == _comparable(whole)
    a = torch.load(tmp_path / "whole" / "final" / "model.pt", weights_only=True)
    b = torch.load(cut / "final" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
