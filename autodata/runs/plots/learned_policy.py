"""A learned (DADA) policy over epochs: per-epoch snapshots and their heat maps (``policy.png``).

A run records a snapshot of its :class:`~autodata.augment.DifferentiablePolicy` after every
epoch (:func:`epoch_record_extras`, merged into the epoch's record of ``metrics.jsonl``);
:func:`plot_learned_policy` draws op probabilities and magnitudes as op x epoch heat maps and
the sub-policy weights as lines.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodata.runs.plots._figure import heatmap, integer_ticks, new_figure, op_means, save_png

__all__ = ["RECORD_KEY", "epoch_record_extras", "plot_learned_policy"]

RECORD_KEY = "learned_policy"
"""The key of an epoch record that holds the learned policy's snapshot."""


def epoch_record_extras(run: Any) -> dict[str, Any]:
    """What the plots need recorded per epoch beyond :meth:`~autodata.train.Run.run_epoch`'s record.

    For a learned policy (``augment="learned"``): ``{"learned_policy": {"sub_policies",
    "probabilities", "magnitudes", "weights"}}``, a snapshot of the
    :class:`~autodata.augment.DifferentiablePolicy` after the epoch (4 significant digits);
    ``{}`` for any other run. Merge it into the epoch's record before it is saved::

        record = run.run_epoch(on_step)
        record.update(epoch_record_extras(run))
    """
    from autodata.augment import DifferentiablePolicy

    augment = run.learner.augment
    if not isinstance(augment, DifferentiablePolicy):
        return {}

    def rounded(values: Any) -> Any:
        if isinstance(values, list):
            return [rounded(v) for v in values]
        return float(f"{values:.4g}")

    return {RECORD_KEY: {
        "sub_policies": [list(s) for s in augment.sub_policies],
        "probabilities": rounded(augment.probabilities().detach().cpu().tolist()),
        "magnitudes": rounded(augment.magnitudes().detach().cpu().tolist()),
        "weights": rounded(augment.weights().detach().cpu().tolist()),
    }}


def plot_learned_policy(history: Sequence[dict[str, Any]], path: str | os.PathLike[str], top: int = 8,
                        title: str = "Learned augmentation policy") -> Path:
    """A learned policy over epochs: op probability and magnitude heat maps, sub-policy weights.

    Args:
        history: epoch records holding :func:`epoch_record_extras`'s ``"learned_policy"``.
        path: the PNG file.
        top: how many sub-policies (largest final weight) get their own coloured line.
        title: the figure's title.
    """
    records = [r for r in history if isinstance(r.get(RECORD_KEY), dict)]
    if not records:
        raise ValueError(f"history must hold records with {RECORD_KEY!r} (see epoch_record_extras), but none has it.")
    subs = records[-1][RECORD_KEY]["sub_policies"]
    ops = list(dict.fromkeys(name for sub in subs for name in sub))
    epochs = [int(r["epoch"]) for r in records]
    prob = np.stack([op_means(subs, np.asarray(r[RECORD_KEY]["probabilities"]), ops) for r in records], axis=1)
    mag = np.stack([op_means(subs, np.asarray(r[RECORD_KEY]["magnitudes"]), ops) for r in records], axis=1)
    from autodata.augment import OPS

    mag[[not OPS[name].uses_magnitude for name in ops], :] = np.nan  # no magnitude: grey
    weights = np.asarray([r[RECORD_KEY]["weights"] for r in records])  # (E, K)
    span = (epochs[0] - 0.5, epochs[-1] + 0.5)
    fig = new_figure(12, 5.2 + 0.32 * len(ops))
    grid = fig.add_gridspec(2, 2, height_ratios=(0.32 * len(ops) + 1, 4.2))
    p_ax, m_ax, w_ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    heatmap(fig, p_ax, prob, ops, span, "Application probability per op (mean over its slots)",
            "probability", 1.0)
    heatmap(fig, m_ax, mag, ops, span, "Magnitude per op (grey: op has none)",
            "magnitude in [0, 1]", 1.0, cmap="magma")
    order = np.argsort(-weights[-1])
    shown = order[: max(0, top)]
    marker = "o" if len(epochs) <= 40 else None
    for k in order[len(shown):]:
        w_ax.plot(epochs, weights[:, k], color="0.75", linewidth=0.6)
    if len(order) > len(shown):
        w_ax.plot([], [], color="0.75", linewidth=0.6, label=f"the other {len(order) - len(shown)} sub-policies")
    for rank, k in enumerate(shown):
        w_ax.plot(epochs, weights[:, k], marker=marker, markersize=3, color=f"C{rank % 10}",
                  label=" + ".join(subs[k]))
    w_ax.axhline(1.0 / len(subs), color="black", linestyle="--", linewidth=0.8, label=f"uniform 1/{len(subs)}")
    w_ax.set(xlabel="epoch", ylabel="probability of being picked",
             title=f"Sub-policy weights (top {len(shown)} of {len(subs)} by final weight)")
    integer_ticks(w_ax.xaxis)
    w_ax.grid(alpha=0.3)
    w_ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.suptitle(title)
    return save_png(fig, path)
