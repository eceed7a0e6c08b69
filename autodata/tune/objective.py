"""The ready objective: train the trial's config epoch by epoch, report validation accuracy, prune.

``Objective(base, space)`` is a callable for ``study.optimize``. For each trial it draws a
config (``space.suggest(trial, base)``), builds the run (:func:`autodata.train.build_run`) and
trains it one epoch at a time; after each epoch it reports the accuracy on the clean
validation split (``val_per_class`` images per class, held out from training; never the test
set) with ``trial.report(accuracy, epoch)`` and stops with ``optuna.TrialPruned`` when the
pruner says so. The trial's value is the validation accuracy after the last epoch.

A second objective makes the study multi-objective (``directions``): ``"epochs"`` (epochs
trained, minimised) or ``"seconds"`` (training and evaluation wall time, minimised). Optuna
does not prune multi-objective trials, so these train to their end.

A run that diverges (a non-finite training loss) ends its trial with ``nan``: Optuna marks
it failed (the user attribute ``diverged`` says when) and the study goes on. Each trial records user attributes: ``config`` (the whole
config as JSON, what ``best/config.json`` is written from), ``epochs``, ``val_accuracy``,
``seconds`` (training and validation) and ``test_accuracy`` (reported only, never used to select).

Example:
    >>> from autodata.train import TrainConfig
    >>> Objective(TrainConfig(val_per_class=0))
    Traceback (most recent call last):
    ...
    ValueError: val_per_class must be > 0 to tune: trials are compared on the clean validation split, never on the test set, but got 0; set val_per_class (e.g. 10).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from autodata._imports import require
from autodata.train.config import TrainConfig
from autodata.tune.space import SearchSpace, default_space

__all__ = ["SECOND_OBJECTIVES", "Objective"]

# name -> what is measured of a finished run (minimised): epochs trained or wall seconds.
SECOND_OBJECTIVES: dict[str, Callable[[Any, float], float]] = {
    "epochs": lambda run, seconds: float(run.epoch),
    "seconds": lambda run, seconds: seconds,
}


class Objective:
    """Train a suggested config and return its validation accuracy (see the module docstring).

    Args:
        base: the config every trial starts from; needs ``val_per_class > 0``.
        space: what is tuned (default: :func:`~autodata.tune.space.default_space` of ``base``).
        second: ``None``, or a second objective of :data:`SECOND_OBJECTIVES`.
        on_epoch: called as ``on_epoch(trial, record)`` after each epoch (progress lines).
        test: evaluate a trial that trains to its end on the test split once (reported, never
            used to select); ``False`` saves that time.
    """

    def __init__(
        self,
        base: TrainConfig,
        space: SearchSpace | None = None,
        *,
        second: str | None = None,
        on_epoch: Callable[[Any, dict[str, Any]], None] | None = None,
        test: bool = True,
    ) -> None:
        if not isinstance(base, TrainConfig):
            raise TypeError(f"base must be a TrainConfig, but got {type(base).__name__}.")
        if base.val_per_class <= 0:
            raise ValueError(
                "val_per_class must be > 0 to tune: trials are compared on the clean validation split, "
                f"never on the test set, but got {base.val_per_class}; set val_per_class (e.g. 10)."
            )
        if second is not None and second not in SECOND_OBJECTIVES:
            raise ValueError(f"second must be None or one of {sorted(SECOND_OBJECTIVES)}, but got {second!r}.")
        self.base = base
        self.space = space if space is not None else default_space(base)
        self.space.check(base)
        self.second = second
        self.on_epoch = on_epoch
        self.test = test

    @property
    def directions(self) -> list[str]:
        """The study's directions: validation accuracy up, then the second objective down."""
        return ["maximize"] if self.second is None else ["maximize", "minimize"]

    @property
    def max_epochs(self) -> int:
        """The most epochs a trial can train (the pruner's budget)."""
        epochs = next((p for p in self.space if p.name == "epochs"), None)
        if epochs is None:
            return self.base.epochs
        return int(max(epochs.choices) if epochs.choices is not None else epochs.high)

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        optuna = require("optuna", extra="tune", purpose="tuning")
        from autodata.train import build_run

        config = self.space.suggest(trial, self.base)  # a combination the config refuses: ValueError, naming it
        trial.set_user_attr("config", config.to_dict())
        run = build_run(config)
        seconds = 0.0
        accuracy = math.nan
        while not run.finished:
            start = time.perf_counter()
            try:
                record = run.train_epoch()
            except FloatingPointError as err:  # the learner refuses a non-finite loss: the run diverged
                trial.set_user_attr("diverged", f"epoch {run.epoch + 1}: {err}")
                return math.nan if self.second is None else (math.nan, math.nan)
            if not math.isfinite(record["train_loss"]):
                trial.set_user_attr("diverged", f"epoch {run.epoch}: training loss {record['train_loss']}")
                return math.nan if self.second is None else (math.nan, math.nan)
            val = run.evaluate("val")
            seconds += time.perf_counter() - start
            accuracy = record["val_accuracy"] = val["accuracy"]
            record["val_loss"] = val["loss"]
            run.history.append(record)
            if self.on_epoch is not None:
                self.on_epoch(trial, record)
            for key, value in (("epochs", run.epoch), ("val_accuracy", accuracy), ("seconds", seconds)):
                trial.set_user_attr(key, value)
            if self.second is None:
                trial.report(accuracy, run.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {run.epoch} (validation accuracy {accuracy:.2f}%).")
        if self.test:
            trial.set_user_attr("test_accuracy", run.evaluate("test")["accuracy"])
        if self.second is None:
            return accuracy
        return accuracy, SECOND_OBJECTIVES[self.second](run, seconds)
