"""Crash safety with real processes: kill -9 or Ctrl-C a worker in the middle of a trial, run it again.

Finished trials remain; the killed trial is failed once its heartbeat is older than the grace
period (3 s here) and run again with the same parameters. For the embedded journal storage
and, when ``AUTODATA_TEST_POSTGRES_URL`` is set, for PostgreSQL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

from autodata.tune import StorageSettings, open_storage

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("tune_worker.py")
POSTGRES = os.environ.get("AUTODATA_TEST_POSTGRES_URL")
NO_POSTGRES = "set AUTODATA_TEST_POSTGRES_URL to run the PostgreSQL tests: eval \"$(.ci/postgres.sh)\" starts one on 127.0.0.1"
RETRY = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback


def _storages():
    yield pytest.param("-", id="journal")
    yield pytest.param(POSTGRES, id="postgresql", marks=pytest.mark.skipif(not POSTGRES, reason=NO_POSTGRES))


def _start(storage: str, tmp_path: Path, study: str, n_trials: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(WORKER), storage, str(tmp_path / "study"), str(tmp_path / "markers"), str(n_trials), study]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the worker ended early:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path.name} after {timeout} s")
        time.sleep(0.02)


def _trials(storage: str, tmp_path: Path, study: str) -> list:
    spec = None if storage == "-" else storage
    opened = open_storage(spec, tmp_path / "study", StorageSettings(heartbeat_interval=1, grace_period=3))
    return optuna.load_study(study_name=study, storage=opened).get_trials()


@pytest.mark.parametrize("storage", list(_storages()))
def test_kill_9_in_the_middle_of_a_trial_then_run_again(storage, tmp_path):
    study = f"crash-{uuid.uuid4().hex[:8]}"
    worker = _start(storage, tmp_path, study, 3)
    _wait_for(tmp_path / "markers" / "1-1", worker)  # trial 0 done, trial 1 after its first of 3 epochs
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = _trials(storage, tmp_path, study)
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    time.sleep(4)  # longer than the grace period: the running trial is now stale
    again = _start(storage, tmp_path, study, 3)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    after = _trials(storage, tmp_path, study)
    assert after[0].state.name == "COMPLETE" and after[0].datetime_complete == before[0].datetime_complete
    assert after[1].state.name == "FAIL"
    retries = [t for t in after if RETRY.retried_trial_number(t) == 1]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == before[1].params  # the same parameters again
    assert sum(t.state.name == "COMPLETE" for t in after) == 3


@pytest.mark.parametrize("storage", list(_storages()))
def test_ctrl_c_fails_the_running_trial_and_the_study_resumes(storage, tmp_path):
    study = f"sigint-{uuid.uuid4().hex[:8]}"
    worker = _start(storage, tmp_path, study, 3)
    _wait_for(tmp_path / "markers" / "1-1", worker)
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=60) == 130
    before = _trials(storage, tmp_path, study)
    assert [t.state.name for t in before] == ["COMPLETE", "FAIL"]  # failed at once, not after the grace period

    again = _start(storage, tmp_path, study, 3)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    after = _trials(storage, tmp_path, study)
    assert after[0].datetime_complete == before[0].datetime_complete
    assert sum(t.state.name == "COMPLETE" for t in after) == 3
