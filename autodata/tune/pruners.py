"""Pruners by name: a small registry of Optuna pruners, with ``"none"`` as the null object.

``create_pruner("median")`` stops a trial whose validation accuracy after an epoch is below
the median of earlier trials at that epoch (Optuna's ``MedianPruner``); ``"hyperband"`` runs
successive halving brackets over the epochs (Li et al. 2018, Optuna's ``HyperbandPruner``);
``"none"`` is Optuna's ``NopPruner``, which never prunes, so call sites need no ``if``.

Example:
    >>> type(create_pruner("none", max_epochs=10)).__name__
    'NopPruner'
    >>> create_pruner("mean", max_epochs=10)
    Traceback (most recent call last):
    ...
    ValueError: pruner must be one of ['hyperband', 'median', 'none'], but got 'mean'.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autodata._imports import require

__all__ = ["PRUNERS", "create_pruner"]


def _median(max_epochs: int) -> Any:
    optuna = require("optuna", extra="tune", purpose="pruning")
    # Judge from the second epoch on, once 3 trials have finished: fewer is noise.
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def _hyperband(max_epochs: int) -> Any:
    optuna = require("optuna", extra="tune", purpose="pruning")
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)


def _none(max_epochs: int) -> Any:
    optuna = require("optuna", extra="tune", purpose="pruning")
    return optuna.pruners.NopPruner()


# name -> factory(max_epochs) -> optuna pruner; add an entry to add a pruner.
PRUNERS: dict[str, Callable[[int], Any]] = {"median": _median, "hyperband": _hyperband, "none": _none}


def create_pruner(name: str, *, max_epochs: int) -> Any:
    """The Optuna pruner registered as ``name`` for trials of at most ``max_epochs`` epochs."""
    if name not in PRUNERS:
        raise ValueError(f"pruner must be one of {sorted(PRUNERS)}, but got {name!r}.")
    return PRUNERS[name](max_epochs)
