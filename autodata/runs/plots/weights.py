"""Meta-Weight-Net's learned weights: weight against loss, clean and corrupted labels (``weights.png``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from autodata.runs.plots._figure import new_figure, save_png

__all__ = ["plot_sample_weights"]


def plot_sample_weights(samples: Any, curve_loss: np.ndarray, curve_weight: np.ndarray,
                        path: str | os.PathLike[str], title: str = "Meta-Weight-Net sample weights") -> Path:
    """The learned loss-to-weight curve over the training samples, and weight histograms.

    Args:
        samples: a :class:`~autodata.runs.suspects.SampleWeights` (losses, weights, which
            labels were corrupted when known).
        curve_loss, curve_weight: the curve ``V(loss)`` on a grid of losses, shape (G,).
        path: the PNG file.
        title: the figure's title.
    """
    fig = new_figure(12, 4.5)
    scatter, hist = fig.subplots(1, 2)
    groups: list[tuple[str, np.ndarray, str, str]]
    if samples.corrupted is None:
        groups = [(f"training samples ({len(samples.loss)})", np.ones(len(samples.loss), bool), "C0", "o")]
    else:
        bad = samples.corrupted
        groups = [(f"clean label ({int((~bad).sum())})", ~bad, "C0", "o"),
                  (f"corrupted label ({int(bad.sum())})", bad, "C3", "x")]
    for label, mask, color, marker in groups:
        if mask.any():
            scatter.scatter(samples.loss[mask], samples.weight[mask], s=9, alpha=0.45, color=color, marker=marker,
                            linewidths=0.8, label=label, rasterized=True)
    scatter.plot(curve_loss, curve_weight, color="black", linewidth=1.0, linestyle="--", zorder=3,
                 label="learned V(loss)")
    scatter.set(xlabel="training loss (cross-entropy, eval mode, no augmentation)",
                ylabel="weight V(loss) (before batch normalisation)", title="Weight against loss")
    scatter.grid(alpha=0.3)
    scatter.legend(fontsize="small")
    low, high = float(samples.weight.min()), float(samples.weight.max())
    bins = np.linspace(low, high if high > low else low + 1e-6, 31)
    for label, mask, color, _ in groups:
        if mask.any():
            hist.hist(samples.weight[mask], bins=bins, alpha=0.55, color=color, label=label)
    hist.set(xlabel="weight V(loss)", ylabel="number of training samples", title="Weights of clean and corrupted labels")
    hist.grid(alpha=0.3)
    hist.legend(fontsize="small")
    fig.suptitle(title)
    return save_png(fig, path)
