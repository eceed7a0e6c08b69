"""An augmentation schedule (PBA's, or one of policies) as op x epoch heat maps (``schedule.png``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from autodata.runs.plots._figure import heatmap, new_figure, op_means, save_png

__all__ = ["plot_schedule"]


def _schedule_tables(schedule: Any) -> tuple[list[str], np.ndarray, np.ndarray, str, str, float]:
    """(rows, probability (R, E), magnitude (R, E), probability label, magnitude label, magnitude max)."""
    from autodata.augment import OPS, Policy
    from autodata.schedules import PBA_OPS, PBAPolicy

    segments = schedule.segments
    epochs = schedule.num_epochs
    if all(isinstance(s.policy, PBAPolicy) for s in segments):
        rows, n = list(PBA_OPS), len(PBA_OPS)
        prob, mag = np.zeros((n, epochs)), np.zeros((n, epochs))
        for seg in segments:
            p = np.asarray(seg.policy.probability_levels, dtype=float).reshape(2, n) / 10.0
            m = np.asarray(seg.policy.magnitude_levels, dtype=float).reshape(2, n)
            prob[:, seg.start:seg.stop] = p.mean(0)[:, None]
            mag[:, seg.start:seg.stop] = m.mean(0)[:, None]
        return rows, prob, mag, "probability (mean of the op's 2 copies)", "magnitude level 0-9 (mean of 2 copies)", 9.0
    if all(isinstance(s.policy, Policy) for s in segments):
        rows = list(dict.fromkeys(name for s in segments for name in s.policy.op_names))
        prob, mag = np.zeros((len(rows), epochs)), np.full((len(rows), epochs), np.nan)
        for seg in segments:
            subs = [[op.name for op in sub.ops] for st in seg.policy.stages for sub in st.sub_policies]
            width = max(len(s) for s in subs)
            p_table, m_table = np.zeros((len(subs), width)), np.zeros((len(subs), width))
            k = 0
            for st in seg.policy.stages:
                for sub in st.sub_policies:
                    for j, op in enumerate(sub.ops):
                        p_table[k, j], m_table[k, j] = op.probability, op.magnitude
                    k += 1
            prob[:, seg.start:seg.stop] = op_means(subs, p_table, rows)[:, None]
            mag[:, seg.start:seg.stop] = op_means(subs, m_table, rows)[:, None]
        mag[[not OPS[name].uses_magnitude for name in rows], :] = np.nan
        return rows, prob, mag, "probability", "magnitude in [0, 1]", 1.0
    raise TypeError("schedule segments must all hold PBAPolicy or all hold Policy objects.")


def plot_schedule(schedule: Any, path: str | os.PathLike[str], title: str = "", current_epoch: int | None = None) -> Path:
    """A schedule as two op x epoch heat maps: probability and magnitude.

    Args:
        schedule: a :class:`~autodata.schedules.PiecewiseSchedule` of PBA policies or of policies.
        path: the PNG file.
        title: the figure's title (default: the schedule's name).
        current_epoch: epochs done so far, marked with a vertical line (a running run).
    """
    rows, prob, mag, p_label, m_label, m_max = _schedule_tables(schedule)
    fig = new_figure(13, 1.6 + 0.3 * len(rows))
    ax_p, ax_m = fig.subplots(1, 2, sharey=True)
    span = (0.0, float(schedule.num_epochs))
    heatmap(fig, ax_p, prob, rows, span, "Probability of applying each op", p_label, 1.0)
    heatmap(fig, ax_m, mag, rows, span, "Magnitude of each op", m_label, m_max, cmap="magma")
    done = ""
    if current_epoch is not None and 0 < current_epoch < schedule.num_epochs:
        for ax in (ax_p, ax_m):
            ax.axvline(current_epoch, color="white", linestyle="--", linewidth=1.2)
        done = f"; dashed line: {current_epoch} epochs done"
    name = getattr(schedule, "name", "") or "schedule"
    count = len(schedule.segments)
    fig.suptitle((title or f"Schedule {name!r}: {schedule.num_epochs} epochs, {count} segment{'s' * (count != 1)}") + done)
    return save_png(fig, path)
