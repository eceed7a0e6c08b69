"""Plots of a run, written as PNG files into ``RUN_DIR/plots/`` and linked from ``summary.md``.

Each plot is one function that takes plain data (a metrics history, a policy, a schedule,
per-sample weights, images and an augmentation module) and writes one PNG atomically
(:mod:`autodata._io`); :func:`write_run_plots` draws every plot of the registry
:data:`RUN_PLOTS` that applies to a run directory, rebuilding the run from
``checkpoints/last.pt`` only when a plot needs the model, the reweighter or the learned
policy. Figures are built with matplotlib's object API (``Figure`` and the Agg canvas): no
``pyplot``, no global backend switch, safe in threads and on machines without a display.
matplotlib is the ``plots`` extra and is imported only when a plot is drawn.

=================  ====================================================  =======================  ======================
file               what                                                   when                     module
=================  ====================================================  =======================  ======================
``curves.png``     accuracy and losses per epoch                          always                   :mod:`.curves`
``policy.png``     learned op probabilities, magnitudes and sub-policy    ``augment="learned"``    :mod:`.learned_policy`
                   weights per epoch (:func:`epoch_record_extras`)                                 (:mod:`.policy`)
``schedule.png``   the schedule as op x epoch heat maps                   ``augment="schedule"``   :mod:`.schedule`
``weights.png``    Meta-Weight-Net's loss-to-weight curve, clean and      ``reweighter="mwn"``     :mod:`.weights`
                   corrupted samples, weight histograms
``samples.png``    training images and augmented copies                   any augmentation         :mod:`.samples`
=================  ====================================================  =======================  ======================

:mod:`._figure` holds what they share (a figure on the Agg canvas, atomic PNG saving, heat
maps); :mod:`.run` holds the registry and the run directory's side (loading a run, the
``## Plots`` section of ``summary.md``). Each module's docstring has its example
(:mod:`.curves`: ``plot_curves(history, path)``).
"""
from __future__ import annotations

from autodata.runs.plots._figure import DPI, new_figure, save_png
from autodata.runs.plots.curves import plot_curves
from autodata.runs.plots.learned_policy import RECORD_KEY, epoch_record_extras, plot_learned_policy
from autodata.runs.plots.policy import plot_policy
from autodata.runs.plots.run import (
    PLOT_FILES,
    PLOTS_HEADING,
    RUN_PLOTS,
    RunPlot,
    RunPlotContext,
    link_plots_in_summary,
    load_run,
    plots_section_markdown,
    write_run_plots,
)
from autodata.runs.plots.samples import one_per_class, plot_augmented_grid
from autodata.runs.plots.schedule import plot_schedule
from autodata.runs.plots.weights import plot_sample_weights

__all__ = [
    "DPI",
    "PLOTS_HEADING",
    "PLOT_FILES",
    "RECORD_KEY",
    "RUN_PLOTS",
    "RunPlot",
    "RunPlotContext",
    "epoch_record_extras",
    "link_plots_in_summary",
    "load_run",
    "new_figure",
    "one_per_class",
    "plot_augmented_grid",
    "plot_curves",
    "plot_learned_policy",
    "plot_policy",
    "plot_sample_weights",
    "plot_schedule",
    "plots_section_markdown",
    "save_png",
    "write_run_plots",
]
