"""Hyperparameter and learning-rate search with Optuna (the optional extra ``autodata[tune]``).

The parts, each usable alone:

* :mod:`~autodata.tune.space`: ``SearchSpace`` / ``Param`` over :class:`~autodata.train.TrainConfig`
  fields, ``default_space(base)``; checked before any trial;
* :mod:`~autodata.tune.objective`: ``Objective`` trains a suggested config epoch by epoch,
  reports validation accuracy and prunes;
* :mod:`~autodata.tune.loop`: ``ask(study)`` for tuning from your own training loop;
* :mod:`~autodata.tune.pruners`: ``"median"``, ``"hyperband"``, ``"none"`` by name;
* :mod:`~autodata.tune.storage`: the embedded journal file (several processes, heartbeats)
  or a database URL (PostgreSQL for many machines);
* :mod:`~autodata.tune.study`: ``TuneSettings`` and ``tune`` (workers, resume, results);
* :mod:`~autodata.tune.results`: ``best/config.json`` and ``trials.csv``;
* :mod:`~autodata.tune.dashboard`: optuna-dashboard on loopback.

``import autodata.tune`` does not import Optuna: the names below load on first use, and a
missing Optuna is a clear ``MissingExtraError`` naming ``pip install 'autodata[tune]'``.

Example (a study of 4 short trials on the bundled digits)::

    from autodata.train import TrainConfig
    from autodata.tune import TuneSettings, tune
    base = TrainConfig(dataset="digits", val_per_class=10, epochs=3)
    study = tune(TuneSettings(base, out="runs/tune_digits", n_trials=4))
    print(study.best_params)   # runs/tune_digits/best/config.json holds the whole config
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Param": "autodata.tune.space",
    "SearchSpace": "autodata.tune.space",
    "default_space": "autodata.tune.space",
    "Objective": "autodata.tune.objective",
    "SECOND_OBJECTIVES": "autodata.tune.objective",
    "LoopTrial": "autodata.tune.loop",
    "ask": "autodata.tune.loop",
    "PRUNERS": "autodata.tune.pruners",
    "create_pruner": "autodata.tune.pruners",
    "StorageSettings": "autodata.tune.storage",
    "open_storage": "autodata.tune.storage",
    "redact_url": "autodata.tune.storage",
    "TuneSettings": "autodata.tune.study",
    "create_study": "autodata.tune.study",
    "optimize": "autodata.tune.study",
    "tune": "autodata.tune.study",
    "export_results": "autodata.tune.study",
    "best_trial": "autodata.tune.results",
    "export_best_config": "autodata.tune.results",
    "export_trials_csv": "autodata.tune.results",
    "trial_config": "autodata.tune.results",
    "serve_dashboard": "autodata.tune.dashboard",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autodata.tune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
