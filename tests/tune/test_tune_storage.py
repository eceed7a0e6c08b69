"""Storages: the embedded journal (several processes, heartbeats), database URLs and their errors."""
from __future__ import annotations

import multiprocessing
import os
import time

import optuna
import pytest

from autodata.tune import StorageSettings, open_storage, redact_url
from autodata.tune._journal import HeartbeatJournalStorage


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:s3cret@db:5432/x", "postgresql://me:***@db:5432/x"),
        ("postgresql+psycopg2://me:p%40ss@127.0.0.1/x", "postgresql+psycopg2://me:***@127.0.0.1/x"),
        ("postgresql://me@db/x", "postgresql://me@db/x"),
        ("mysql://root:a:b:c@h/x", "mysql://root:***@h/x"),
    ],
)
def test_redact_url_hides_the_password(url, shown):
    assert redact_url(url) == shown


def test_an_unreachable_database_is_a_clear_error_without_the_password():
    url = "postgresql+psycopg2://autodata:hunter2secret@127.0.0.1:1/nowhere"
    with pytest.raises(ValueError) as error:
        open_storage(url)
    message = str(error.value)
    assert "hunter2secret" not in message and error.value.__cause__ is None and error.value.__suppress_context__
    assert message.startswith("storage 'postgresql+psycopg2://autodata:***@127.0.0.1:1/nowhere' could not be reached")


@pytest.mark.parametrize("url", ["postgresql://me:hunter2secret@host:notaport/db", "postgresql://me:hunter2secret@[::1/db"])
def test_a_malformed_url_is_a_clear_error_without_the_password(url):
    with pytest.raises(ValueError) as error:
        open_storage(url)
    assert "hunter2secret" not in str(error.value) and "***" in str(error.value)


def test_an_unknown_scheme_or_a_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"scheme \['mysql', 'postgres', 'postgresql', 'sqlite'\], but got 'redis://u:\*\*\*@h/0'"):
        open_storage("redis://u:pw@h/0")
    with pytest.raises(ValueError, match="but got the folder"):
        open_storage(str(tmp_path))
    with pytest.raises(ValueError, match="storage must be given when there is no study directory"):
        open_storage(None)


def test_storage_settings_are_checked():
    with pytest.raises(ValueError, match="grace_period must be an integer > heartbeat_interval"):
        StorageSettings(heartbeat_interval=10, grace_period=5)
    with pytest.raises(ValueError, match="heartbeat_interval must be an integer >= 1, but got 0"):
        StorageSettings(heartbeat_interval=0)


def test_the_default_is_a_journal_with_heartbeats_in_the_study_directory(tmp_path):
    storage = open_storage(None, tmp_path)
    assert isinstance(storage, HeartbeatJournalStorage)
    assert storage.path == tmp_path / "study.journal" and storage.get_heartbeat_interval() == 10
    sqlite = open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert isinstance(sqlite, optuna.storages.RDBStorage) and sqlite.get_heartbeat_interval() == 10


def test_a_journal_trial_without_heartbeat_for_the_grace_period_is_stale(tmp_path):
    storage = HeartbeatJournalStorage(tmp_path / "j", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    assert storage._get_stale_trial_ids(study._study_id) == []  # never beat: as RDBStorage, not stale
    storage.record_heartbeat(trial._trial_id)
    assert storage._get_stale_trial_ids(study._study_id) == []
    old = time.time() - 5
    os.utime(storage.heartbeat_dir / str(trial._trial_id), (old, old))
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]


def _hammer(path: str, n: int) -> None:
    storage = open_storage(path, settings=StorageSettings(heartbeat_interval=1, grace_period=3))
    study = optuna.load_study(study_name="hammer", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=n)


def test_optuna_runs_the_journal_heartbeat(tmp_path):
    """Optuna's own loop beats and fails stale trials of the journal through its private heartbeat
    protocol (autodata.tune._journal._optuna_heartbeat_base): this fails loudly if Optuna moves it."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    from autodata.tune._journal import _optuna_heartbeat_base

    assert _optuna_heartbeat_base() is BaseHeartbeat
    stale = []
    storage = HeartbeatJournalStorage(tmp_path / "j", heartbeat_interval=1, grace_period=2,
                                      stale_trial_callback=lambda study, trial: stale.append(trial.number))
    assert is_heartbeat_enabled(storage)
    study = optuna.create_study(storage=storage)
    killed = storage.create_new_trial(study._study_id)  # RUNNING, as a killed worker leaves it
    storage.record_heartbeat(killed)
    old = time.time() - 5
    os.utime(storage.heartbeat_dir / str(killed), (old, old))
    study.optimize(lambda trial: 1.0, n_trials=1)
    first, second = study.trials
    assert first.state == optuna.trial.TrialState.FAIL and stale == [0]
    assert second.state == optuna.trial.TrialState.COMPLETE
    assert (storage.heartbeat_dir / str(second._trial_id)).is_file()  # the loop's heartbeat thread beat


@pytest.mark.slow
def test_four_processes_share_the_journal_without_lock_errors(tmp_path):
    path = str(tmp_path / "study.journal")
    optuna.create_study(study_name="hammer", storage=open_storage(path))
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_hammer, args=(path, 25)) for _ in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=300)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    trials = optuna.load_study(study_name="hammer", storage=open_storage(path)).trials
    assert len(trials) == 100 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.number for t in trials) == list(range(100))
