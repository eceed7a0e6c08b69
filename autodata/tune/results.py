"""A study's results as files: the best trial's ``config.json`` and every trial in a CSV.

``export_best_config(study, path)`` writes the best trial's whole :class:`TrainConfig` (what
the trial trained, recorded by the objective) as a ``config.json`` that
``TrainConfig.load`` and ``autodata train --config`` read as is. With two objectives the best
trial is the Pareto-optimal one with the highest validation accuracy. ``export_trials_csv``
writes one row per trial: number, state, value(s), parameters, epochs trained, validation and
test accuracy, seconds, and which failed trial a retry repeats. Both writes are atomic.
"""
from __future__ import annotations

import csv
import io
import math
import os
import warnings
from typing import Any

from autodata._imports import require
from autodata._io import atomic_write_text
from autodata.train.config import TrainConfig

__all__ = ["best_trial", "export_best_config", "export_trials_csv", "trial_config"]

_ATTRS = ("epochs", "val_accuracy", "test_accuracy", "seconds", "error", "diverged")


def best_trial(study: Any) -> Any:
    """The best finished trial (highest first objective on the Pareto front with several)."""
    if len(study.directions) == 1:
        return study.best_trial  # ValueError when no trial has completed
    front = study.best_trials
    if not front:
        raise ValueError(f"study {study.study_name!r} has no completed trial yet, so it has no best trial.")
    sign = 1 if study.directions[0].name == "MAXIMIZE" else -1
    return max(front, key=lambda t: sign * t.values[0])


def trial_config(trial: Any, base: TrainConfig | None = None) -> TrainConfig:
    """The config a trial trained: its recorded ``config`` attribute, else ``base`` with its parameters."""
    if "config" in trial.user_attrs:
        return TrainConfig.from_dict(trial.user_attrs["config"], source=f"trial {trial.number}'s config", saved=True)
    if base is None:
        raise ValueError(f"trial {trial.number} recorded no config (it did not run the autodata objective); pass base.")
    return base.replace(**trial.params)


def export_best_config(study: Any, path: str | os.PathLike[str], base: TrainConfig | None = None) -> TrainConfig:
    """Write the best trial's config to ``path`` (atomically) and return it."""
    config = trial_config(best_trial(study), base)
    config.save(path)
    return config


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _quietly(optuna: Any, function: Any) -> Any:
    """``function`` with Optuna's ExperimentalWarning silenced."""
    def call(*args: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return function(*args)
    return call


def export_trials_csv(study: Any, path: str | os.PathLike[str]) -> int:
    """Write every trial of ``study`` as a CSV row (atomically); returns the number of rows."""
    optuna = require("optuna", extra="tune")
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    retried_from = _quietly(optuna, retry.retried_trial_number)
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    values = ["value"] if len(study.directions) == 1 else [f"value_{i}" for i in range(len(study.directions))]
    header = ["number", "state", *values, *(f"param_{n}" for n in names), *_ATTRS,
              "retry_of", "datetime_start", "datetime_complete"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for t in trials:
        own = list(t.values) if t.values is not None else [None] * len(values)
        writer.writerow([
            t.number, t.state.name, *map(_cell, own), *(_cell(t.params.get(n)) for n in names),
            *(_cell(t.user_attrs.get(a)) for a in _ATTRS), _cell(retried_from(t)),
            _cell(t.datetime_start and t.datetime_start.isoformat()), _cell(t.datetime_complete and t.datetime_complete.isoformat()),
        ])
    atomic_write_text(path, buffer.getvalue())
    return len(trials)
