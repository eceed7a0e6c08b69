"""A fixed policy: the chance of each sub-policy per stage, or a PBA policy's op table.

Example:
    >>> import tempfile, pathlib
    >>> from autodata.augment import load_policy
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.png"
    >>> plot_policy(load_policy("randaugment"), path, top=4) == path
    True
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from autodata.runs.plots._figure import new_figure, save_png

__all__ = ["plot_policy"]


def _op_label(op: Any) -> str:
    from autodata.augment import OPS

    if not OPS[op.name].uses_magnitude:
        return f"{op.name} p={op.probability:.2f}"
    m = f"U(0,{op.magnitude:.2f})" if op.magnitude_sampling == "uniform" else f"{op.magnitude:.2f}"
    return f"{op.name} p={op.probability:.2f} m={m}"


def plot_policy(policy: Any, path: str | os.PathLike[str], top: int = 30, title: str = "") -> Path:
    """A fixed policy: per stage, the chance of picking each sub-policy, its ops labelled.

    Args:
        policy: an :class:`~autodata.augment.Policy` or a :class:`~autodata.schedules.PBAPolicy`.
        path: the PNG file.
        top: the largest number of sub-policies shown per stage (largest weights first).
        title: the figure's title (default: the policy's name).
    """
    from autodata.augment import Policy
    from autodata.schedules import PBAPolicy

    if isinstance(policy, PBAPolicy):
        return _plot_pba_policy(policy, path, title or "PBA policy")
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy or a PBAPolicy, but got {type(policy).__name__}.")
    stages = policy.stages[:4]
    rows = [min(len(s.sub_policies), top) for s in stages]
    fig = new_figure(10, 1.2 + sum(0.3 * r + 0.8 for r in rows))
    axes = np.atleast_1d(fig.subplots(len(stages), 1, height_ratios=[r + 2 for r in rows]))
    for s, (ax, stage) in enumerate(zip(axes, stages)):
        probs = np.asarray(stage.probabilities)
        order = np.argsort(-probs, kind="stable")[: rows[s]]
        labels = ["  then  ".join(_op_label(op) for op in stage.sub_policies[k].ops) for k in order]
        ax.barh(range(len(order)), probs[order], color="C0")
        ax.set_yticks(range(len(order)), labels, fontsize="small")
        ax.invert_yaxis()
        ax.set_xlim(0, max(float(probs.max()) * 1.15, 1e-3))
        more = f", {len(probs) - len(order)} more not shown" if len(probs) > len(order) else ""
        ax.set(xlabel="probability of being picked for an image",
               title=f"Stage {s + 1} of {len(policy.stages)}: one of {len(probs)} sub-policies per image{more}")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title or f"Policy {policy.name!r} (p: probability of applying, m: magnitude in [0, 1])")
    return save_png(fig, path)


def _plot_pba_policy(policy: Any, path: str | os.PathLike[str], title: str) -> Path:
    from autodata.schedules import PBA_OPS

    fig = new_figure(9, 5)
    ax_p, ax_m = fig.subplots(1, 2, sharey=True)
    n = len(PBA_OPS)
    for h, offset in ((0, -0.2), (1, 0.2)):
        entries = policy.entries[h * n:(h + 1) * n]
        y = np.arange(n) + offset
        ax_p.barh(y, [p / 10 for _, p, _ in entries], height=0.4, label=f"copy {h + 1}", color=f"C{h}")
        ax_m.barh(y, [m for _, _, m in entries], height=0.4, label=f"copy {h + 1}", color=f"C{h}")
    ax_p.set_yticks(range(n), PBA_OPS)
    ax_p.invert_yaxis()
    ax_p.set(xlabel="probability of applying", xlim=(0, 1), title="Probability")
    ax_m.set(xlabel="magnitude level (0-9)", xlim=(0, 9), title="Magnitude")
    for ax in (ax_p, ax_m):
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return save_png(fig, path)
