"""TensorBoard logging of a run's epochs, on when TensorBoard is installed and off otherwise.

:func:`tensorboard_logger` returns a :class:`TensorBoardLogger` writing event files into
``RUN_DIR/tensorboard/`` (``torch.utils.tensorboard``, which needs the ``tensorboard``
package) or, when that is missing or logging is turned off, the do-nothing
:class:`NullLogger`. Both are ``on_epoch(run, record)`` callbacks of
:func:`autodata.runs.train_in_directory`::

    logger = tensorboard_logger(out)                  # None: on when installed
    with logger:
        train_in_directory(config, out, on_epoch=logger)

What is logged per epoch: every number of the record (``accuracy/test``, ``loss/train``,
``loss/meta``, ``lr``, ``seconds/train`` ...), for a learned policy the histogram of its
sub-policy weights and the mean probability of each op, and for a Meta-Weight-Net the
weight ``V(loss)`` at a few losses. A resumed run purges the events of the epochs it trains again
(``purge_step``), so an epoch trained again after a crash is not drawn twice.

Example:
    >>> import tempfile
    >>> logger = tensorboard_logger(tempfile.mkdtemp(), enabled=False)
    >>> logger(None, {"epoch": 1, "test_accuracy": 50.0})  # a NullLogger: does nothing
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

__all__ = ["NullLogger", "TensorBoardLogger", "tensorboard_available", "tensorboard_logger"]

FOLDER = "tensorboard"
_GROUPS = {"accuracy": "accuracy", "loss": "loss", "seconds": "seconds"}
_CURVE_LOSSES = (0.1, 0.5, 1.0, 2.0, 4.0)


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be imported (the ``tensorboard`` package is installed)."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _tag(key: str) -> str:
    """``test_accuracy`` -> ``accuracy/test``, ``train_seconds`` -> ``seconds/train``; else the key."""
    head, _, tail = key.rpartition("_")
    return f"{_GROUPS[tail]}/{head}" if head and tail in _GROUPS else key


class NullLogger:
    """Logs nothing (TensorBoard missing or turned off)."""

    log_dir: Path | None = None

    def __call__(self, run: Any, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NullLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TensorBoardLogger:
    """Writes each epoch's record to TensorBoard event files in ``log_dir``.

    The folder is created at the first record, not before: :func:`train_in_directory` refuses
    a non-empty folder that holds no run yet. Events at that first record's epoch and later
    left by an earlier process (a crash, then ``--resume``) are purged.

    Args:
        log_dir: the folder of the event files (``RUN_DIR/tensorboard``).
    """

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        from autodata._imports import require

        require("tensorboard", extra="tensorboard", purpose="TensorBoard logging")
        from torch.utils.tensorboard import SummaryWriter

        self._writer_cls = SummaryWriter
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    def __call__(self, run: Any, record: dict[str, Any]) -> None:
        step = int(record["epoch"])
        if self.writer is None:
            self.writer = self._writer_cls(log_dir=str(self.log_dir), purge_step=step)
        for key, value in record.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(_tag(key), float(value), step)
        if run is not None:
            self._components(run, step)
        self.writer.flush()

    def _components(self, run: Any, step: int) -> None:
        import torch

        from autodata.augment import DifferentiablePolicy

        augment = run.learner.augment
        if isinstance(augment, DifferentiablePolicy):
            with torch.no_grad():
                self.writer.add_histogram("policy/sub_policy_weights", augment.weights().cpu(), step)
                probs = augment.probabilities().cpu()
                for name in dict.fromkeys(n for sub in augment.sub_policies for n in sub):
                    mask = torch.tensor([[n == name for n in sub] for sub in augment.sub_policies])
                    self.writer.add_scalar(f"policy_probability/{name}", float(probs[mask].mean()), step)
        if run.config.reweighter == "mwn":
            from autodata.runs.suspects import loss_weight_curve

            weights = loss_weight_curve(run.learner.reweighter, torch.tensor(_CURVE_LOSSES))
            for loss, weight in zip(_CURVE_LOSSES, weights.tolist()):
                self.writer.add_scalar(f"mwn_weight/at_loss_{loss:g}", weight, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tensorboard_logger(run_dir: str | os.PathLike[str], *, enabled: bool | None = None) -> TensorBoardLogger | NullLogger:
    """A logger into ``RUN_DIR/tensorboard``, or a :class:`NullLogger`.

    Args:
        run_dir: the run directory.
        enabled: ``None`` logs when TensorBoard is installed; ``True`` requires it
            (:class:`~autodata._imports.MissingExtraError` naming ``autodata[tensorboard]``
            otherwise); ``False`` never logs.
    """
    if enabled is False or (enabled is None and not tensorboard_available()):
        return NullLogger()
    return TensorBoardLogger(Path(run_dir) / FOLDER)
