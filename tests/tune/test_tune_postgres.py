"""A study shared through a real PostgreSQL (``AUTODATA_TEST_POSTGRES_URL``; see .ci/postgres.sh)."""
from __future__ import annotations

import os
import uuid

import optuna
import pytest
from conftest import tiny_config

from autodata.tune import SearchSpace, TuneSettings, open_storage, tune
from autodata.tune.study import create_study

URL = os.environ.get("AUTODATA_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="set AUTODATA_TEST_POSTGRES_URL to run the PostgreSQL tests: eval \"$(.ci/postgres.sh)\" starts one on 127.0.0.1",
)
LR_SPACE = SearchSpace.of({"lr": {"low": 0.01, "high": 0.3, "log": True}})


def _settings(tmp_path, **changes):
    return TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), storage=URL, study_name=f"t-{uuid.uuid4().hex[:10]}",
                        pruner="none", **changes)


def test_the_storage_is_an_rdb_with_heartbeats():
    storage = open_storage(URL)
    assert isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() == 10


def test_a_study_is_created_once_and_loaded_after(tmp_path):
    settings = _settings(tmp_path, n_trials=1)
    first = create_study(settings)
    second = create_study(settings)
    assert first._study_id == second._study_id


def test_a_study_that_exists_with_another_direction_is_a_clear_error(tmp_path):
    settings = _settings(tmp_path, n_trials=1)
    create_study(settings)
    with pytest.raises(ValueError) as error:
        create_study(settings.replace(second="epochs"))
    message = str(error.value)
    assert "exists with ['maximize']" in message and "another study name" in message
    password = optuna.storages.RDBStorage(URL).engine.url.password  # named without it
    assert ":***@" in message and password not in message


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path):
    study = tune(_settings(tmp_path, n_trials=4, workers=2))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert 4 <= len(complete) <= 5 and len(complete) == len(study.trials)
    assert (tmp_path / "best" / "config.json").is_file()
