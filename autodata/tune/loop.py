"""Tune from your own training loop: ask a trial, report each epoch, be pruned, tell the study.

Optuna's ask/tell leaves the loop where it is; :func:`ask` adds the bookkeeping around it. In a
``with ask(study) as trial:`` block, ``trial.suggest_*`` draws parameters as usual and
``trial.report(value, epoch)`` reports an epoch's metric and raises ``optuna.TrialPruned``
when the pruner stops the trial. The block then tells the study how the trial ended:

* the block ends normally: ``COMPLETE`` with the last reported value (or the one given to
  ``trial.finish(value)``; a ``nan`` value makes the trial ``FAIL``, as in Optuna);
* the trial was pruned: ``PRUNED`` (the exception goes no further: the next trial runs);
* anything else was raised (including Ctrl-C): ``FAIL``, and the exception goes on.

Example:
    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(direction="maximize")
    >>> for _ in range(3):
    ...     with ask(study) as trial:
    ...         x = trial.suggest_float("x", -1.0, 1.0)
    ...         for epoch in range(1, 4):             # your loop
    ...             trial.report(1.0 - (x - 0.5) ** 2 * epoch, epoch)
    >>> len(study.trials), study.trials[0].state.name
    (3, 'COMPLETE')
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from autodata._imports import require

__all__ = ["LoopTrial", "ask"]


class LoopTrial:
    """An Optuna trial inside :func:`ask`: ``suggest_*`` and attributes pass through."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.value: float | Sequence[float] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.trial, name)

    def report(self, value: float, step: int) -> None:
        """Report ``value`` (say validation accuracy) after epoch ``step``; raise ``TrialPruned`` to stop."""
        optuna = require("optuna", extra="tune")
        self.value = float(value)
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} with value {value}.")

    def finish(self, value: float | Sequence[float]) -> None:
        """Set the trial's final value (values, for several objectives) instead of the last reported one."""
        self.value = value


@contextlib.contextmanager
def ask(study: Any, fixed_distributions: dict[str, Any] | None = None) -> Iterator[LoopTrial]:
    """Ask ``study`` for a trial and tell it how the block ended (see the module docstring)."""
    optuna = require("optuna", extra="tune", purpose="tuning")
    state = optuna.trial.TrialState
    loop = LoopTrial(study.ask(fixed_distributions))
    try:
        yield loop
    except optuna.TrialPruned:
        study.tell(loop.trial, state=state.PRUNED)
        return
    except BaseException:
        study.tell(loop.trial, state=state.FAIL)
        raise
    if loop.value is None:
        study.tell(loop.trial, state=state.FAIL)
        raise ValueError(f"trial {loop.trial.number} ended without a value: call trial.report(value, epoch) "
                         "or trial.finish(value) in the with block.")
    study.tell(loop.trial, loop.value)
