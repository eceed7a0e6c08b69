"""What every plot shares: a figure on the Agg canvas, atomic PNG saving, heat maps, op means.

matplotlib is the ``plots`` extra: it is imported (through :func:`autodata._imports.require`)
only when a figure is made, never when this module is imported.

Example:
    >>> import tempfile, pathlib
    >>> fig = new_figure(2, 2)
    >>> _ = fig.subplots().plot([0, 1], [1, 0])
    >>> path = save_png(fig, pathlib.Path(tempfile.mkdtemp()) / "line.png")
    >>> path.read_bytes()[:4] == b"\\x89PNG"
    True
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodata._imports import require
from autodata._io import atomic_write_bytes

__all__ = ["DPI", "finite_values", "heatmap", "integer_ticks", "new_figure", "op_means", "save_png"]

DPI = 110
"""Resolution of every PNG written."""


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no global state)."""
    require("matplotlib", extra="plots", purpose="plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG, atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def integer_ticks(axis: Any) -> None:
    """Put the major ticks of ``axis`` on whole numbers (epochs)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def finite_values(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of the records that have a finite ``key``.

    Example:
        >>> finite_values([{"epoch": 1, "a": 0.5}, {"epoch": 2, "a": None}, {"epoch": 3, "a": float("nan")}], "a")
        ([1], [0.5])
    """
    epochs, values = [], []
    for r in history:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            epochs.append(int(r["epoch"]))
            values.append(float(v))
    return epochs, values


def op_means(subs: Sequence[Sequence[str]], table: np.ndarray, ops: Sequence[str]) -> np.ndarray:
    """(len(ops),) mean of ``table[k, j]`` over the slots (k, j) where op ``subs[k][j]`` sits.

    Example:
        >>> op_means([["A", "B"], ["B", "A"]], np.array([[1.0, 2.0], [4.0, 3.0]]), ["A", "B", "C"]).tolist()
        [2.0, 3.0, 0.0]
    """
    sums, counts = np.zeros(len(ops)), np.zeros(len(ops))
    index = {name: i for i, name in enumerate(ops)}
    for k, sub in enumerate(subs):
        for j, name in enumerate(sub):
            sums[index[name]] += table[k, j]
            counts[index[name]] += 1
    return sums / np.maximum(counts, 1)


def heatmap(fig: Any, ax: Any, data: np.ndarray, rows: Sequence[str], epochs: tuple[float, float],
            title: str, bar_label: str, vmax: float, cmap: str = "viridis") -> None:
    """Draw ``data`` (rows x epochs, NaN drawn grey) on ``ax`` with a colour bar.

    Shape:
        - data: :math:`(R, E)` with ``R = len(rows)``; ``epochs`` is the x extent (first, last).
    """
    from matplotlib import colormaps

    palette = colormaps[cmap].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", interpolation="nearest", cmap=palette,
                      vmin=0.0, vmax=vmax, extent=(epochs[0], epochs[1], len(rows) - 0.5, -0.5))
    ax.set_yticks(range(len(rows)), rows, fontsize="small")
    ax.set(xlabel="epoch", title=title)
    integer_ticks(ax.xaxis)
    fig.colorbar(image, ax=ax, label=bar_label, shrink=0.9)
