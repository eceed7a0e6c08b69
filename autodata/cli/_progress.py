"""Progress bars for the command line: batches within an epoch, and epochs, with time left.

:func:`progress_reporter` gives a :class:`ProgressReporter` (tqdm bars) on a terminal, or the
do-nothing :class:`NullProgress` with ``--quiet``, when the output is not a terminal (a log
file, a pipe, CI) or when tqdm is not installed; ``--progress`` forces the bars and
``--no-progress`` turns them off. Both have the callbacks of
:func:`autodata.runs.train_in_directory`: ``on_step(step, steps, loss)`` and
``on_epoch(run, record)``, and ``write(line)``, which prints a line above the bars.

The step callback never reads the loss tensor at once (on a GPU that would wait for the
step): losses are summed on their device and read when the bar is redrawn (at most a few
times a second).

Example:
    >>> import io
    >>> progress = progress_reporter(3, force=True, stream=io.StringIO())
    >>> progress.on_step(0, 2, __import__("torch").tensor(0.7))
    >>> progress.close()
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, TextIO

__all__ = ["NullProgress", "ProgressReporter", "add_progress_arguments", "progress_reporter"]


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress`` (default: bars on a terminal unless ``--quiet``)."""
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bars for batches and epochs (default: on a terminal, off with --quiet or in a log)",
    )


class NullProgress:
    """No bars: the callbacks do nothing; :meth:`write` prints unless ``quiet``."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream

    def on_step(self, step: int, steps: int, loss: Any) -> None:
        pass

    def on_epoch(self, run: Any, record: dict[str, Any]) -> None:
        pass

    def write(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.stream if self.stream is not None else sys.stdout, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_BAR_FORMAT = "{{desc}}: {unit} {{n_fmt}}/{{total_fmt}} |{{bar}}|"


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class ProgressReporter:
    """Two tqdm bars: epochs (with the last test accuracy and the time left), and this epoch's batches.

    Args:
        epochs: the run's number of epochs.
        desc: a label in front of the epoch bar (e.g. the method's name).
        stream: where the bars and the lines of :meth:`write` go (default ``sys.stdout``).
        quiet: :meth:`write` prints nothing.
        refresh: seconds between redraws of the loss.
    """

    def __init__(self, epochs: int, *, desc: str = "train", stream: TextIO | None = None, quiet: bool = False,
                 refresh: float = 0.5, unit: str = "epoch") -> None:
        from autodata._imports import require

        self._tqdm = require("tqdm", extra="progress", purpose="progress bars").tqdm
        self.epochs = int(epochs)
        self.desc = desc
        self.unit = unit
        self._format = _BAR_FORMAT.format(unit=unit)
        self.stream = stream if stream is not None else sys.stdout
        self.quiet = quiet
        self.refresh = refresh
        self._epoch_bar: Any = None
        self._batch_bar: Any = None
        self._loss_sum: Any = 0.0
        self._loss_count = 0
        self._last_draw = 0.0
        self._epoch_seconds: list[float] = []
        self._epoch_start = time.perf_counter()

    def _bars(self, batches: bool = True) -> None:
        if self._epoch_bar is None:
            self._epoch_bar = self._tqdm(
                total=self.epochs, desc=self.desc, unit=self.unit, file=self.stream, position=0, dynamic_ncols=True,
                bar_format=self._format,
            )
        if self._batch_bar is None and batches:
            self._batch_bar = self._tqdm(
                total=0, desc="  batches", unit="batch", file=self.stream, position=1, leave=False, dynamic_ncols=True,
            )

    def on_step(self, step: int, steps: int, loss: Any) -> None:
        """After each optimizer step: advance the batch bar; show the epoch's mean loss so far."""
        self._bars()
        if step == 0:
            self._batch_bar.reset(total=steps)
            self._loss_sum, self._loss_count = 0.0, 0
            self._epoch_start = time.perf_counter()
        self._loss_sum = self._loss_sum + loss  # stays on the loss's device until drawn
        self._loss_count += 1
        self._batch_bar.update(1)
        now = time.perf_counter()
        if now - self._last_draw >= self.refresh or step + 1 == steps:
            self._last_draw = now
            mean = float(self._loss_sum) / max(self._loss_count, 1)
            self._batch_bar.set_postfix_str(f"loss {mean:.4f}" if math.isfinite(mean) else "loss nan", refresh=True)

    def on_epoch(self, run: Any, record: dict[str, Any]) -> None:
        """After each epoch: move the epoch bar to the run's epoch; show loss, accuracy, time left."""
        self._bars(batches=False)
        self._epoch_seconds.append(float(record.get("train_seconds", 0.0)) + float(record.get("eval_seconds", 0.0)))
        done = int(record.get("epoch", self._epoch_bar.n + 1))
        left = (self.epochs - done) * sum(self._epoch_seconds) / len(self._epoch_seconds)
        parts = [f"loss {record['train_loss']:.4f}"] if isinstance(record.get("train_loss"), float) else []
        if isinstance(record.get("val_accuracy"), float):
            parts.append(f"val {record['val_accuracy']:.2f}%")
        if isinstance(record.get("test_accuracy"), float):
            parts.append(f"test {record['test_accuracy']:.2f}%")
        parts.append(f"left ~{_clock(left)}")
        self._epoch_bar.n = done
        text = "  ".join(parts).replace("{", "{{").replace("}", "}}")
        self._epoch_bar.bar_format = f"{self._format} {text}"
        self._epoch_bar.refresh()

    def write(self, line: str) -> None:
        """Print ``line`` above the bars (nothing when ``quiet``)."""
        if not self.quiet:
            self._tqdm.write(line, file=self.stream)

    def close(self) -> None:
        """Remove the batch bar and leave the epoch bar's last state on the screen."""
        for bar in (self._batch_bar, self._epoch_bar):
            if bar is not None:
                bar.close()
        self._batch_bar = self._epoch_bar = None

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_reporter(
    epochs: int, *, quiet: bool = False, force: bool | None = None, desc: str = "train", stream: TextIO | None = None,
    unit: str = "epoch",
) -> ProgressReporter | NullProgress:
    """Bars when they help, a :class:`NullProgress` otherwise.

    Args:
        epochs: the run's number of epochs.
        quiet: ``--quiet``: no bars (unless forced) and no lines from ``write``.
        force: ``--progress`` (``True``) or ``--no-progress`` (``False``); ``None`` decides:
            bars when not quiet and the output is a terminal.
        desc: the epoch bar's label.
        stream: where bars go (default ``sys.stdout``); its ``isatty`` decides with ``force=None``.
        unit: what the outer bar counts (``"epoch"``; ``"trial"`` for a study).

    Raises:
        MissingExtraError: ``force=True`` and tqdm is not installed.
    """
    target = stream if stream is not None else sys.stdout
    wanted = force if force is not None else (not quiet and bool(getattr(target, "isatty", lambda: False)()))
    if not wanted:
        return NullProgress(quiet=quiet)
    if force is None:
        try:
            return ProgressReporter(epochs, desc=desc, stream=stream, quiet=quiet, unit=unit)
        except ImportError:
            return NullProgress(quiet=quiet)
    return ProgressReporter(epochs, desc=desc, stream=stream, quiet=quiet, unit=unit)
