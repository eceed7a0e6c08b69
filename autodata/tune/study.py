"""A tuning study from settings: open or create it, run workers, export the results.

:class:`TuneSettings` (frozen, checked when built, before any trial) says what is tuned and
where the study lives; :func:`tune` runs it with ``workers`` processes on this machine and
writes ``best/config.json`` and ``trials.csv`` into the study directory. Every worker opens
the same storage and runs until the study has ``n_trials`` finished (completed or pruned)
trials, so a study that was interrupted (Ctrl-C, a killed worker, a lost machine) is resumed
by running the same command again: finished trials stay, a trial left running by a dead
worker is failed after the heartbeat's grace period and re-run with the same parameters.
Workers on other machines join a PostgreSQL study by running the same command with the same
``--storage`` URL and ``--study-name``.

A trial that raises or returns ``nan`` fails and the study goes on; ``max_failures`` failed
trials in a row stop the worker with an error (a broken setup should not burn the budget).
A trial's exception is kept as its user attribute ``error`` (and in ``trials.csv``).

Example:
    >>> from autodata.train import TrainConfig
    >>> TuneSettings(TrainConfig(val_per_class=5), n_trials=0, out="study")
    Traceback (most recent call last):
    ...
    ValueError: n_trials must be an integer >= 1, but got 0.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodata._imports import require
from autodata.train.config import TrainConfig
from autodata.tune.objective import SECOND_OBJECTIVES, Objective
from autodata.tune.pruners import PRUNERS, create_pruner
from autodata.tune.results import export_best_config, export_trials_csv
from autodata.tune.space import SearchSpace, default_space
from autodata.tune.storage import StorageSettings, open_storage, redact_url, storage_location

__all__ = ["TuneSettings", "create_study", "export_results", "optimize", "tune"]

BEST_CONFIG = os.path.join("best", "config.json")
TRIALS_CSV = "trials.csv"


def _int_at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, but got {value!r}.")


@dataclass(frozen=True)
class TuneSettings:
    """Everything a tuning study needs (see the module docstring).

    Attributes:
        base: the config every trial starts from (``val_per_class > 0``).
        space: what is tuned (default: :func:`~autodata.tune.space.default_space` of ``base``).
        out: the study directory (the default journal storage, ``best/config.json``, ``trials.csv``).
        storage: ``None`` (journal in ``out``), a journal file, or a database URL.
        study_name: the study's name in the storage.
        n_trials: finished (completed or pruned) trials the study runs to, over all workers.
        workers: processes on this machine.
        pruner: a name of :data:`~autodata.tune.pruners.PRUNERS`.
        second: ``None`` or a second objective of :data:`~autodata.tune.objective.SECOND_OBJECTIVES`.
        sampler_seed: seed of the TPE sampler (worker ``i`` uses ``seed + i``); ``None``: random.
        max_failures: failed trials in a row after which a worker stops with an error.
        heartbeat: heartbeat and retry settings of the storage.
    """

    base: TrainConfig
    space: SearchSpace | None = None
    out: str | None = None
    storage: str | None = None
    study_name: str = "autodata"
    n_trials: int = 20
    workers: int = 1
    pruner: str = "median"
    second: str | None = None
    sampler_seed: int | None = None
    max_failures: int = 5
    heartbeat: StorageSettings = field(default_factory=StorageSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.base, TrainConfig):
            raise TypeError(f"base must be a TrainConfig, but got {type(self.base).__name__}.")
        if self.space is None:
            object.__setattr__(self, "space", default_space(self.base))
        if self.out is not None:
            object.__setattr__(self, "out", os.fspath(self.out))
        if self.storage is not None:
            object.__setattr__(self, "storage", os.fspath(self.storage))
        _int_at_least("n_trials", self.n_trials, 1)
        _int_at_least("workers", self.workers, 1)
        _int_at_least("max_failures", self.max_failures, 1)
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {sorted(PRUNERS)}, but got {self.pruner!r}.")
        if self.second is not None and self.second not in SECOND_OBJECTIVES:
            raise ValueError(f"second must be None or one of {sorted(SECOND_OBJECTIVES)}, but got {self.second!r}.")
        if not isinstance(self.study_name, str) or not self.study_name.strip():
            raise ValueError(f"study_name must be a non-empty string, but got {self.study_name!r}.")
        if self.sampler_seed is not None:
            _int_at_least("sampler_seed", self.sampler_seed, 0)
        storage_location(self.storage, self.out)  # the default journal needs a directory
        self.objective()  # val_per_class and the space, checked before any trial

    def objective(self, on_epoch: Callable[[Any, dict[str, Any]], None] | None = None) -> Objective:
        return Objective(self.base, self.space, second=self.second, on_epoch=on_epoch)

    @property
    def storage_name(self) -> str:
        """The storage as it may be shown (a URL without its password)."""
        return redact_url(storage_location(self.storage, self.out))

    def replace(self, **changes: Any) -> TuneSettings:
        return dataclasses.replace(self, **changes)


def _study_record(settings: TuneSettings) -> dict[str, Any]:
    assert settings.space is not None  # set in __post_init__
    return {"base": settings.base.to_dict(), "space": settings.space.to_dict()}


def create_study(settings: TuneSettings, worker: int = 0) -> Any:
    """Create the study, or load it when it exists with the same directions, base config and space."""
    optuna = require("optuna", extra="tune", purpose="tuning")
    objective = settings.objective()
    storage = open_storage(settings.storage, settings.out, settings.heartbeat)
    seed = None if settings.sampler_seed is None else settings.sampler_seed + worker
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=max(3, min(10, settings.n_trials // 4)),
        )
    study = optuna.create_study(
        storage=storage, study_name=settings.study_name, directions=objective.directions,
        sampler=sampler, pruner=create_pruner(settings.pruner, max_epochs=objective.max_epochs), load_if_exists=True,
    )
    found = [d.name.lower() for d in study.directions]
    if found != objective.directions:
        raise ValueError(
            f"study {settings.study_name!r} in {settings.storage_name} must have the directions {objective.directions} "
            f"of this run, but it exists with {found}; use another study name or the same second objective."
        )
    record = _study_record(settings)
    stored = study.user_attrs.get("autodata")
    if isinstance(stored, dict) and isinstance(stored.get("base"), dict):  # a field added since had its value then
        stored = {**stored, "base": {**stored["base"], **type(settings.base).absent_fields(stored["base"])}}
    if stored is None:
        study.set_user_attr("autodata", record)
    elif stored != record:
        what = [k for k in ("base", "space") if stored.get(k) != record[k]]
        raise ValueError(
            f"study {settings.study_name!r} in {settings.storage_name} must be resumed with the {' and '.join(what)} "
            f"it was started with, but they differ; use the same flags, or another study name."
        )
    return study


class _StopOnFailures:
    """Stop the worker after ``limit`` failed trials in a row (a broken setup, not a bad draw)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0
        self.last_reason = ""

    def __call__(self, study: Any, trial: Any) -> None:
        if trial.state.name != "FAIL":
            self.in_a_row = 0
            return
        self.in_a_row += 1
        attrs = trial.user_attrs
        self.last_reason = str(attrs.get("error") or attrs.get("diverged") or "the objective returned nan")
        if self.in_a_row >= self.limit:
            study.stop()


def _recording_errors(objective: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``objective`` that records an exception as the trial's user attribute ``error`` (then raises it)."""
    optuna = require("optuna", extra="tune")

    def run(trial: Any) -> Any:
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            raise

    return run


def _finished(study: Any) -> int:
    optuna = require("optuna", extra="tune")
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def optimize(
    settings: TuneSettings,
    worker: int = 0,
    *,
    on_trial: Callable[[Any, Any], None] | None = None,
    on_epoch: Callable[[Any, dict[str, Any]], None] | None = None,
) -> Any:
    """Run one worker in this process until the study has ``n_trials`` finished trials; returns the study."""
    optuna = require("optuna", extra="tune", purpose="tuning")
    study = create_study(settings, worker)
    if _finished(study) >= settings.n_trials:
        return study
    stop = _StopOnFailures(settings.max_failures)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    callbacks = [optuna.study.MaxTrialsCallback(settings.n_trials, states=states), stop]
    if on_trial is not None:
        callbacks.append(on_trial)
    study.optimize(_recording_errors(settings.objective(on_epoch)), catch=(Exception,), callbacks=callbacks)
    if stop.in_a_row >= stop.limit:
        raise ValueError(f"{stop.in_a_row} trials in a row failed, the last with: {stop.last_reason}; "
                         f"fix the setup, then run the same command again to resume.")
    return study


def export_results(study: Any, out: str | os.PathLike[str], base: TrainConfig | None = None) -> dict[str, str]:
    """Write ``trials.csv`` and, once a trial has completed, ``best/config.json`` into ``out``."""
    paths = {"trials": os.path.join(out, TRIALS_CSV)}
    export_trials_csv(study, paths["trials"])
    if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        paths["best_config"] = os.path.join(out, BEST_CONFIG)
        export_best_config(study, paths["best_config"], base)
    return paths


def _worker_main(settings: TuneSettings, worker: int) -> None:
    """The entry point of a worker process started by :func:`tune`."""
    optuna = require("optuna", extra="tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optimize(settings, worker)
    except KeyboardInterrupt:  # the parent stops its workers with SIGINT; the trial is told FAIL
        pass


def tune(
    settings: TuneSettings,
    *,
    on_trial: Callable[[Any, Any], None] | None = None,
    on_epoch: Callable[[Any, dict[str, Any]], None] | None = None,
) -> Any:
    """Run the study with ``settings.workers`` processes, export its results, return it.

    This process is worker 0; the others are started with ``multiprocessing``'s spawn method
    and given Ctrl-C (SIGINT) when this one is interrupted, so that their running trials are
    marked failed at once rather than after the heartbeat's grace period.
    """
    import multiprocessing

    if settings.out is not None:
        Path(settings.out).mkdir(parents=True, exist_ok=True)
    create_study(settings)  # created once before the workers race to create it
    context = multiprocessing.get_context("spawn")
    others = [context.Process(target=_worker_main, args=(settings, i), name=f"autodata-tune-{i}")
              for i in range(1, settings.workers)]
    for process in others:
        process.start()
    try:
        study = optimize(settings, 0, on_trial=on_trial, on_epoch=on_epoch)
        for process in others:
            process.join()
    except BaseException:
        for process in others:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGINT)
        for process in others:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
        raise
    if settings.out is not None:
        export_results(study, settings.out, settings.base)
    return study
