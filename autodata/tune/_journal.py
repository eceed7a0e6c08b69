"""A journal-file storage with heartbeats: stale trials of killed workers are failed and retried.

Optuna's :class:`~optuna.storages.JournalStorage` with a
:class:`~optuna.storages.journal.JournalFileBackend` lets several processes on one machine
share a study through one append-only file, without a server and without SQLite's
"database is locked". In Optuna 5.0 it has no heartbeat (``RDBStorage`` has one; a proposal
for the journal, optuna/optuna#6615, was not merged), so a trial whose process was killed
stays ``RUNNING`` forever. This subclass adds Optuna's heartbeat protocol
(``optuna.storages._heartbeat.BaseHeartbeat``, private: see :func:`_optuna_heartbeat_base`,
the one place it is imported): every running trial's heartbeat thread
touches a small file ``<journal>.heartbeats/<trial_id>``; a ``RUNNING`` trial whose file is
older than ``grace_period`` seconds is stale, and Optuna's own optimisation loop fails it
and calls the stale-trial callback (``RetryHeartbeatStaleTrialCallback`` re-queues it with
the same parameters) before the next trial starts. The heartbeats stay out of the journal,
so the journal does not grow with them and other readers (optuna-dashboard) are unaffected.
Heartbeat files compare modification times on one machine, which is the journal file's use.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

__all__ = ["HeartbeatJournalStorage"]


def _optuna_heartbeat_base() -> type:
    """Optuna's heartbeat protocol class, ``optuna.storages._heartbeat.BaseHeartbeat``: private API.

    Why private: Optuna's optimisation loop records heartbeats and fails stale trials only for a
    storage that is an instance of this class (``is_heartbeat_enabled``); Optuna 5.0 exports no
    public base class for it and its ``JournalStorage`` takes no heartbeat (optuna/optuna#6615;
    the pull request #6622 that added one was closed unmerged). A public way would replace this.
    ``tests/tune/test_tune_storage.py::test_optuna_runs_the_journal_heartbeat`` fails when
    Optuna moves the class or stops driving it (with the protocol's methods, which include the
    private ``_get_stale_trial_ids``).
    """
    try:
        from optuna.storages._heartbeat import BaseHeartbeat
    except ImportError as err:
        raise ImportError(
            f"autodata's journal storage with heartbeats needs optuna.storages._heartbeat.BaseHeartbeat, which Optuna "
            f"{optuna.__version__} does not have; use a database storage (e.g. sqlite:///study.db) or an Optuna that has it."
        ) from err
    return BaseHeartbeat


class HeartbeatJournalStorage(JournalStorage, _optuna_heartbeat_base()):  # type: ignore[misc]
    """``JournalStorage`` on a file, with heartbeats in files beside it (see the module docstring).

    Args:
        path: the journal file (created with its folder when missing).
        heartbeat_interval: seconds between a running trial's heartbeats.
        grace_period: seconds without a heartbeat after which a running trial is stale
            (default ``2 * heartbeat_interval``, as ``RDBStorage``).
        stale_trial_callback: called as ``callback(study, frozen_trial)`` for each trial failed as stale.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        heartbeat_interval: int,
        grace_period: int | None = None,
        stale_trial_callback: Callable[[Any, Any], None] | None = None,
    ) -> None:
        if not isinstance(heartbeat_interval, int) or heartbeat_interval < 1:
            raise ValueError(f"heartbeat_interval must be a positive integer (seconds), but got {heartbeat_interval!r}.")
        if grace_period is not None and (not isinstance(grace_period, int) or grace_period < 1):
            raise ValueError(f"grace_period must be a positive integer (seconds) or None, but got {grace_period!r}.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.heartbeat_dir = path.with_name(path.name + ".heartbeats")
        self.heartbeat_dir.mkdir(exist_ok=True)
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period if grace_period is not None else 2 * heartbeat_interval
        self._stale_trial_callback = stale_trial_callback
        super().__init__(JournalFileBackend(os.fspath(path)))

    def __reduce__(self) -> Any:
        # Rebuilt from its settings in another process (the journal is replayed there).
        return (_rebuild, (os.fspath(self.path), self._heartbeat_interval, self._grace_period, self._stale_trial_callback))

    # ------------------------------------------------------------------ BaseHeartbeat (private; see above)
    def record_heartbeat(self, trial_id: int) -> None:
        (self.heartbeat_dir / str(trial_id)).touch()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            try:
                last = os.stat(self.heartbeat_dir / str(trial._trial_id)).st_mtime
            except FileNotFoundError:
                continue  # never beat (a trial of study.ask() outside optimize): as RDBStorage, not stale
            if now - last > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, Any], None] | None:
        return self._stale_trial_callback

    def get_failed_trial_callback(self) -> Callable[[Any, Any], None] | None:  # Optuna < 4.9 names it so
        return self._stale_trial_callback


def _rebuild(path: str, interval: int, grace: int, callback: Any) -> HeartbeatJournalStorage:
    return HeartbeatJournalStorage(path, heartbeat_interval=interval, grace_period=grace, stale_trial_callback=callback)
