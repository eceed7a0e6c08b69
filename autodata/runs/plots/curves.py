"""Training curves: accuracy and losses per epoch (``curves.png``).

Example:
    >>> import tempfile, pathlib
    >>> history = [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.2 / e, "test_accuracy": 30.0 + 10 * e}
    ...            for e in range(1, 4)]
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "curves.png"
    >>> plot_curves(history, path, title="demo") == path and path.stat().st_size > 0
    True
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autodata.runs.plots._figure import finite_values, integer_ticks, new_figure, save_png

__all__ = ["plot_curves"]


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Accuracy (test, validation) and losses (train, meta, test, validation) per epoch.

    Args:
        history: epoch records of :meth:`autodata.train.Run.run_epoch` (``metrics.jsonl``).
        path: the PNG file.
        title: the figure's title (e.g. the run's dataset and model).
    """
    if not history:
        raise ValueError("history must hold at least one epoch record, but got none; plot after an epoch.")
    fig = new_figure(11, 4)
    acc, loss = fig.subplots(1, 2)
    marker = "o" if len(history) <= 40 else None
    for key, label, color in (("test_accuracy", "test", "C0"), ("val_accuracy", "validation (clean)", "C2")):
        x, y = finite_values(history, key)
        if x:
            acc.plot(x, y, marker=marker, markersize=3, label=label, color=color)
    acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    keys = (("train_loss", "train (weighted, augmented)", "C1"), ("meta_loss", "meta (clean meta set)", "C4"),
            ("test_loss", "test", "C0"), ("val_loss", "validation (clean)", "C2"))
    for key, label, color in keys:
        x, y = finite_values(history, key)
        if x:
            loss.plot(x, y, marker=marker, markersize=3, label=label, color=color)
    loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    for ax in (acc, loss):
        integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)
