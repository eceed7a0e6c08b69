"""Plots of an Optuna study, written as PNG files into ``OUT/plots/`` of the study directory.

``history.png`` shows every trial's objective against its number (completed trials as
dots, pruned ones as crosses at their last reported value) with the best value so far;
``importances.png`` shows how much of the objective's variation each tuned parameter
explains (Optuna's fANOVA importance, :mod:`optuna.importance`, with a fixed seed). Both
read the first objective (validation accuracy for autodata's own studies) of a single- or
multi-objective study. Figures use matplotlib's object API on the Agg canvas (no
``pyplot``), and are written atomically (:mod:`autodata._io`); matplotlib and Optuna are
imported only when a plot is drawn.

Example:
    >>> import tempfile, pathlib, optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    >>> study.optimize(lambda t: 90 - (t.suggest_float("lr", 1e-3, 1.0, log=True) - 0.1) ** 2, n_trials=8)
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> sorted(p.name for p in write_study_plots(study, out))
    ['history.png', 'importances.png']
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autodata._imports import require
from autodata.runs.plots import new_figure, save_png

__all__ = ["PLOT_FILES", "plot_optimization_history", "plot_param_importances", "write_study_plots"]

PLOT_FILES: dict[str, str] = {
    "history.png": "Each trial's objective and the best so far",
    "importances.png": "How much each tuned parameter mattered (fANOVA importance)",
}
"""The plot files of ``OUT/plots/`` with their captions."""

def _objective_label(study: Any) -> str:
    if "autodata" in study.user_attrs:
        return "validation accuracy (%)"
    names = getattr(study, "metric_names", None)
    return names[0] if names else "objective"


def _maximize(study: Any) -> bool:
    return study.directions[0].name == "MAXIMIZE"


def _first_value(trial: Any) -> float | None:
    """The first objective of a completed trial, or the last reported value of a pruned one."""
    if trial.state.name == "COMPLETE" and trial.values:
        value = trial.values[0]
    elif trial.state.name == "PRUNED" and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        return None
    return float(value) if value is not None and math.isfinite(value) else None


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_optimization_history(study: Any, path: str | os.PathLike[str], title: str = "") -> Path:
    """Each trial's first objective against its number, with the best completed value so far.

    Completed trials are blue dots, pruned trials grey crosses at the last value they
    reported before they were stopped; failed trials are counted in the title only.
    """
    from matplotlib.ticker import MaxNLocator

    trials = study.get_trials(deepcopy=False)
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    label = _objective_label(study)
    maximize = _maximize(study)
    done = [(t.number, v) for t in trials if t.state.name == "COMPLETE" and (v := _first_value(t)) is not None]
    pruned = [(t.number, v) for t in trials if t.state.name == "PRUNED" and (v := _first_value(t)) is not None]
    failed = sum(t.state.name == "FAIL" for t in trials)
    if not done and not pruned:
        _empty(ax, "no trial has finished yet")
    else:
        if pruned:
            ax.scatter(*zip(*pruned), marker="x", color="0.55", s=36, label="pruned (last reported value)", zorder=2)
        if done:
            ax.scatter(*zip(*done), color="tab:blue", s=36, label="completed", zorder=3)
            best, xs, ys = None, [], []
            for number, value in sorted(done):
                best = value if best is None or (value > best if maximize else value < best) else best
                xs.append(number)
                ys.append(best)
            last = max(t.number for t in trials)
            ax.step(xs + [last], ys + [ys[-1]], where="post", color="tab:red", lw=2, zorder=1,
                    label=f"best so far ({ys[-1]:.4g})")
        ax.set_xlabel("trial number")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=9, frameon=False)
    counts = f"{len(done)} completed, {len(pruned)} pruned" + (f", {failed} failed" if failed else "")
    direction = "higher is better" if maximize else "lower is better"
    ax.set_title(f"{title + ': ' if title else ''}optimisation history ({counts}; {direction})", fontsize=11)
    return save_png(fig, path)


def _importances(study: Any, seed: int) -> dict[str, float]:
    optuna = require("optuna", extra="tune", purpose="parameter importances")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return optuna.importance.get_param_importances(study, evaluator=evaluator, target=lambda t: t.values[0])


def plot_param_importances(study: Any, path: str | os.PathLike[str], title: str = "", seed: int = 0) -> Path:
    """A horizontal bar per tuned parameter: its share of the first objective's variance (fANOVA).

    Needs two completed trials and a parameter that varied; otherwise the figure says so.
    """
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    fig = new_figure(7.0, 1.6 + 0.45 * max(1, len({k for t in completed for k in t.params})))
    ax = fig.add_subplot()
    importances: dict[str, float] = {}
    reason = "parameter importances need at least 2 completed trials"
    if len(completed) >= 2:
        try:
            importances = _importances(study, seed)
        except (ValueError, RuntimeError) as err:  # e.g. no parameter varied
            reason = f"no parameter importances: {err}"
    if not importances:
        _empty(ax, reason)
    else:
        names: Sequence[str] = sorted(importances, key=importances.get)  # least important at the bottom
        values = [100.0 * importances[n] for n in names]
        bars = ax.barh(range(len(names)), values, color="tab:blue")
        ax.set_yticks(range(len(names)), names, fontsize=10)
        ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=3, fontsize=9)
        ax.set_xlim(0, max(values) * 1.15 + 1)
        ax.set_xlabel(f"share of the variance in {_objective_label(study).removesuffix(' (%)')} explained (%)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{title + ': ' if title else ''}parameter importances over {len(completed)} completed trials "
                 f"(fANOVA)", fontsize=11)
    return save_png(fig, path)


def write_study_plots(study: Any, out: str | os.PathLike[str], title: str = "") -> list[Path]:
    """Draw :data:`PLOT_FILES` into ``out/plots/``; returns their paths."""
    folder = Path(out) / "plots"
    title = title or study.study_name
    return [plot_optimization_history(study, folder / "history.png", title),
            plot_param_importances(study, folder / "importances.png", title)]
