"""The plots of a run directory: a registry of what applies when, drawn into ``RUN_DIR/plots/``.

:data:`RUN_PLOTS` holds one :class:`RunPlot` per file, in the order ``summary.md`` links them:
its caption, when it applies to a run (its config and epoch history) and how it is drawn.
:func:`write_run_plots` draws every plot that applies, rebuilding the run from
``checkpoints/last.pt`` only when a plot needs the model, the reweighter or the learned
policy. A new plot is one entry here plus its drawing function in a module of its own.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodata._imports import require
from autodata._io import atomic_write_text
from autodata.runs.plots.curves import plot_curves
from autodata.runs.plots.learned_policy import RECORD_KEY, plot_learned_policy
from autodata.runs.plots.policy import plot_policy
from autodata.runs.plots.samples import one_per_class, plot_augmented_grid
from autodata.runs.plots.schedule import plot_schedule
from autodata.runs.plots.weights import plot_sample_weights

__all__ = [
    "PLOT_FILES",
    "RUN_PLOTS",
    "RunPlot",
    "RunPlotContext",
    "link_plots_in_summary",
    "load_run",
    "plots_section_markdown",
    "write_run_plots",
]

PLOTS_HEADING = "## Plots"


def load_run(directory: str | os.PathLike[str]) -> Any:
    """Rebuild the run of a run directory from its ``config.json`` and ``checkpoints/last.pt``.

    The checkpoint is read with ``torch.load(weights_only=True)``; without one (a run that
    has not finished its first epoch) the run is returned as built, at epoch 0.
    """
    from autodata.runs.directory import RunDirectory
    from autodata.train import build_run

    folder = RunDirectory(directory)
    if not folder.holds_run():
        raise ValueError(f"RUN_DIR must be an autodata run directory (with config.json), but got {os.fspath(directory)!r}.")
    run = build_run(folder.config())
    folder.load_checkpoint(run)
    return run


@dataclass
class RunPlotContext:
    """What a run plot is drawn from: the directory, its config and history, the run on demand.

    Attributes:
        path: the run directory.
        config: its :class:`~autodata.train.TrainConfig`.
        history: its epoch records (``metrics.jsonl``, or the run's own history).
    """

    path: Path
    config: Any
    history: Sequence[dict[str, Any]]
    _run: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The run's dataset and model, for titles."""
        return f"{self.config.dataset}, {self.config.model}"

    def run(self) -> Any:
        """The run: the one given, or rebuilt from the checkpoint once (:func:`load_run`)."""
        if self._run is None:
            self._run = load_run(self.path)
        return self._run


@dataclass(frozen=True)
class RunPlot:
    """One plot of a run directory.

    Attributes:
        caption: its caption in ``summary.md``.
        applies: ``applies(config, history)``: whether the run gets this plot.
        draw: ``draw(context, path)`` writes the PNG at ``path`` and returns ``path``.
    """

    caption: str
    applies: Callable[[Any, Sequence[dict[str, Any]]], bool]
    draw: Callable[[RunPlotContext, Path], Path]


def _draw_curves(ctx: RunPlotContext, path: Path) -> Path:
    return plot_curves(ctx.history, path, title=f"{ctx.name}: {len(ctx.history)} of {ctx.config.epochs} epochs")


def _draw_policy(ctx: RunPlotContext, path: Path) -> Path:
    if any(RECORD_KEY in r for r in ctx.history):
        return plot_learned_policy(ctx.history, path, title=f"Learned augmentation policy ({ctx.name})")
    # per-epoch snapshots were not recorded: the policy now
    return plot_policy(ctx.run().policy(), path, title=f"Learned policy after epoch {len(ctx.history)} "
                       f"(no per-epoch record) - p: probability, m: magnitude in [0, 1]")


def _schedule_of(config: Any) -> Any:
    from autodata.augment.shipped import resolve_policy_path
    from autodata.schedules import PiecewiseSchedule

    schedule = PiecewiseSchedule.load(resolve_policy_path(config.policy))
    return schedule if schedule.num_epochs == config.epochs else schedule.stretched(config.epochs)


def _draw_schedule(ctx: RunPlotContext, path: Path) -> Path:
    return plot_schedule(_schedule_of(ctx.config), path, current_epoch=len(ctx.history))


def _draw_weights(ctx: RunPlotContext, path: Path) -> Path:
    import torch

    from autodata.runs.suspects import loss_weight_curve, training_sample_weights

    run = ctx.run()
    samples = training_sample_weights(run)
    grid = torch.linspace(0.0, max(float(samples.loss.max()) * 1.05, 1e-3), 200)
    curve = loss_weight_curve(run.learner.reweighter, grid).numpy()
    return plot_sample_weights(samples, grid.numpy(), curve, path,
                               title=f"Meta-Weight-Net after epoch {len(ctx.history)} ({ctx.name})")


def _draw_samples(ctx: RunPlotContext, path: Path) -> Path:
    run = ctx.run()
    train = run.data.train
    rows = one_per_class(run.data.clean_train_labels, limit=8)
    names = train.class_names
    labels = [f"class {names[k] if names else k}" for k in run.data.clean_train_labels[rows]]
    return plot_augmented_grid(train.images[rows], run.learner.augment, path, labels=labels,
                               title=f"Augmentation of the run at epoch {len(ctx.history)} ({ctx.config.augment})")


RUN_PLOTS: dict[str, RunPlot] = {
    "curves.png": RunPlot(
        "Accuracy and loss per epoch",
        lambda config, history: bool(history), _draw_curves),
    "policy.png": RunPlot(
        "The learned augmentation policy",
        lambda config, history: config.augment == "learned" and bool(history), _draw_policy),
    "schedule.png": RunPlot(
        "The augmentation schedule: probability and magnitude of each op per epoch",
        lambda config, history: config.augment == "schedule", _draw_schedule),
    "weights.png": RunPlot(
        "Meta-Weight-Net: learned weight against loss, clean and corrupted training samples",
        lambda config, history: config.reweighter == "mwn" and bool(history), _draw_weights),
    "samples.png": RunPlot(
        "Training images (left column) and augmented copies",
        lambda config, history: config.augment != "none", _draw_samples),
}
"""Every plot of ``RUN_DIR/plots/`` by file name, in the order of ``summary.md``."""

PLOT_FILES: dict[str, str] = {name: plot.caption for name, plot in RUN_PLOTS.items()}
"""Every plot file of ``RUN_DIR/plots/`` with its caption, in the order of ``summary.md``."""


def write_run_plots(directory: str | os.PathLike[str], run: Any = None) -> list[Path]:
    """Draw every plot that applies to a run directory into ``RUN_DIR/plots/`` and link them.

    Args:
        directory: the run directory (finished or running).
        run: the run itself when at hand (the end of training); otherwise it is rebuilt from
            the checkpoint, and only when a plot needs the model, reweighter or policy.

    Returns:
        The PNG files written, in :data:`PLOT_FILES` order.

    Raises:
        MissingExtraError: matplotlib is not installed (``pip install 'autodata[plots]'``).
    """
    from autodata.runs.directory import RunDirectory

    require("matplotlib", extra="plots", purpose="plots")
    folder = RunDirectory(directory)
    if not folder.holds_run():
        raise ValueError(f"RUN_DIR must be an autodata run directory (with config.json), but got {os.fspath(directory)!r}.")
    config = folder.config()
    history = run.history if run is not None else folder.read_metrics()
    ctx = RunPlotContext(folder.path, config, history, run)
    out = folder.path / "plots"
    written = [plot.draw(ctx, out / name) for name, plot in RUN_PLOTS.items() if plot.applies(config, history)]
    link_plots_in_summary(folder.path)
    return written


def plots_section_markdown(directory: str | os.PathLike[str]) -> str:
    """The ``## Plots`` section linking the PNGs in ``RUN_DIR/plots/`` ("" when there are none)."""
    out = Path(directory) / "plots"
    lines = [f"![{caption}](plots/{name})" for name, caption in PLOT_FILES.items() if (out / name).is_file()]
    if not lines:
        return ""
    return f"\n{PLOTS_HEADING}\n\n" + "\n\n".join(lines) + "\n"


def link_plots_in_summary(directory: str | os.PathLike[str]) -> None:
    """Rewrite ``summary.md`` with its ``## Plots`` section (always last) made current."""
    summary = Path(directory) / "summary.md"
    if not summary.is_file():
        return
    text = summary.read_text(encoding="utf-8")
    cut = text.find(f"\n{PLOTS_HEADING}\n")
    if cut >= 0:
        text = text[:cut + 1]
    section = plots_section_markdown(directory)
    new = text.rstrip("\n") + "\n" + section if section else text
    if new != summary.read_text(encoding="utf-8"):
        atomic_write_text(summary, new)
