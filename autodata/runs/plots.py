"""Plots of a run, written as PNG files into ``RUN_DIR/plots/`` and linked from ``summary.md``.

Each plot is one function that takes plain data (a metrics history, a policy, a schedule,
per-sample weights, images and an augmentation module) and writes one PNG atomically
(:mod:`autodata._io`); :func:`write_run_plots` draws every plot that applies to a run
directory, rebuilding the run from ``checkpoints/last.pt`` only when a plot needs the model,
the reweighter or the learned policy. Figures are built with matplotlib's object API
(``Figure`` and the Agg canvas): no ``pyplot``, no global backend switch, safe in threads
and on machines without a display. matplotlib is the ``plots`` extra and is imported only
when a plot is drawn.

=================  ====================================================  =======================
file               what                                                   when
=================  ====================================================  =======================
``curves.png``     accuracy and losses per epoch                          always
``policy.png``     learned op probabilities, magnitudes and sub-policy    ``augment="learned"``
                   weights per epoch (:func:`epoch_record_extras`)
``schedule.png``   the schedule as op x epoch heat maps                   ``augment="schedule"``
``weights.png``    Meta-Weight-Net's loss-to-weight curve, clean and      ``reweighter="mwn"``
                   corrupted samples, weight histograms
``samples.png``    training images and augmented copies                   any augmentation
=================  ====================================================  =======================

Example:
    >>> import tempfile, pathlib
    >>> history = [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.2 / e, "test_accuracy": 30.0 + 10 * e}
    ...            for e in range(1, 4)]
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "curves.png"
    >>> plot_curves(history, path, title="demo") == path and path.stat().st_size > 0
    True
"""
from __future__ import annotations

import io
import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodata._imports import require
from autodata._io import atomic_write_bytes, atomic_write_text

__all__ = [
    "PLOT_FILES",
    "epoch_record_extras",
    "link_plots_in_summary",
    "load_run",
    "plot_augmented_grid",
    "plot_curves",
    "plot_learned_policy",
    "plot_policy",
    "plot_sample_weights",
    "plot_schedule",
    "plots_section_markdown",
    "write_run_plots",
]

PLOT_FILES: dict[str, str] = {
    "curves.png": "Accuracy and loss per epoch",
    "policy.png": "The learned augmentation policy",
    "schedule.png": "The augmentation schedule: probability and magnitude of each op per epoch",
    "weights.png": "Meta-Weight-Net: learned weight against loss, clean and corrupted training samples",
    "samples.png": "Training images (left column) and augmented copies",
}
"""Every plot file of ``RUN_DIR/plots/`` with its caption, in the order of ``summary.md``."""

PLOTS_HEADING = "## Plots"
RECORD_KEY = "learned_policy"
DPI = 110


# ------------------------------------------------------------------------------ helpers
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


def _integer_ticks(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _values(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of the records that have a finite ``key``."""
    epochs, values = [], []
    for r in history:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            epochs.append(int(r["epoch"]))
            values.append(float(v))
    return epochs, values


# ------------------------------------------------------------------------------ curves
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
        x, y = _values(history, key)
        if x:
            acc.plot(x, y, marker=marker, markersize=3, label=label, color=color)
    acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    keys = (("train_loss", "train (weighted, augmented)", "C1"), ("meta_loss", "meta (clean meta set)", "C4"),
            ("test_loss", "test", "C0"), ("val_loss", "validation (clean)", "C2"))
    for key, label, color in keys:
        x, y = _values(history, key)
        if x:
            loss.plot(x, y, marker=marker, markersize=3, label=label, color=color)
    loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    for ax in (acc, loss):
        _integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


# ------------------------------------------------------------------------------ learned policy
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


def _op_means(subs: Sequence[Sequence[str]], table: np.ndarray, ops: Sequence[str]) -> np.ndarray:
    """(len(ops),) mean of ``table[k, j]`` over the slots (k, j) where op ``subs[k][j]`` sits."""
    sums, counts = np.zeros(len(ops)), np.zeros(len(ops))
    index = {name: i for i, name in enumerate(ops)}
    for k, sub in enumerate(subs):
        for j, name in enumerate(sub):
            sums[index[name]] += table[k, j]
            counts[index[name]] += 1
    return sums / np.maximum(counts, 1)


def _heatmap(fig: Any, ax: Any, data: np.ndarray, rows: Sequence[str], epochs: tuple[float, float],
             title: str, bar_label: str, vmax: float, cmap: str = "viridis") -> None:
    from matplotlib import colormaps

    palette = colormaps[cmap].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", interpolation="nearest", cmap=palette,
                      vmin=0.0, vmax=vmax, extent=(epochs[0], epochs[1], len(rows) - 0.5, -0.5))
    ax.set_yticks(range(len(rows)), rows, fontsize="small")
    ax.set(xlabel="epoch", title=title)
    _integer_ticks(ax.xaxis)
    fig.colorbar(image, ax=ax, label=bar_label, shrink=0.9)


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
    prob = np.stack([_op_means(subs, np.asarray(r[RECORD_KEY]["probabilities"]), ops) for r in records], axis=1)
    mag = np.stack([_op_means(subs, np.asarray(r[RECORD_KEY]["magnitudes"]), ops) for r in records], axis=1)
    from autodata.augment import OPS

    mag[[not OPS[name].uses_magnitude for name in ops], :] = np.nan  # no magnitude: grey
    weights = np.asarray([r[RECORD_KEY]["weights"] for r in records])  # (E, K)
    span = (epochs[0] - 0.5, epochs[-1] + 0.5)
    fig = new_figure(12, 5.2 + 0.32 * len(ops))
    grid = fig.add_gridspec(2, 2, height_ratios=(0.32 * len(ops) + 1, 4.2))
    p_ax, m_ax, w_ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    _heatmap(fig, p_ax, prob, ops, span, "Application probability per op (mean over its slots)",
             "probability", 1.0)
    _heatmap(fig, m_ax, mag, ops, span, "Magnitude per op (grey: op has none)",
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
    _integer_ticks(w_ax.xaxis)
    w_ax.grid(alpha=0.3)
    w_ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.suptitle(title)
    return save_png(fig, path)


# ------------------------------------------------------------------------------ fixed policies
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


# ------------------------------------------------------------------------------ schedules
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
            prob[:, seg.start:seg.stop] = _op_means(subs, p_table, rows)[:, None]
            mag[:, seg.start:seg.stop] = _op_means(subs, m_table, rows)[:, None]
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
    _heatmap(fig, ax_p, prob, rows, span, "Probability of applying each op", p_label, 1.0)
    _heatmap(fig, ax_m, mag, rows, span, "Magnitude of each op", m_label, m_max, cmap="magma")
    done = ""
    if current_epoch is not None and 0 < current_epoch < schedule.num_epochs:
        for ax in (ax_p, ax_m):
            ax.axvline(current_epoch, color="white", linestyle="--", linewidth=1.2)
        done = f"; dashed line: {current_epoch} epochs done"
    name = getattr(schedule, "name", "") or "schedule"
    count = len(schedule.segments)
    fig.suptitle((title or f"Schedule {name!r}: {schedule.num_epochs} epochs, {count} segment{'s' * (count != 1)}") + done)
    return save_png(fig, path)


# ------------------------------------------------------------------------------ sample weights
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


# ------------------------------------------------------------------------------ augmented samples
def plot_augmented_grid(images: np.ndarray, augment: Any, path: str | os.PathLike[str], *, copies: int = 6,
                        seed: int = 0, labels: Sequence[str] | None = None, title: str = "") -> Path:
    """One row per image: the image, then ``copies`` augmented versions of it.

    Args:
        images: uint8 images, shape (N, C, H, W) with C in {1, 3}.
        augment: an augmentation module with ``sample(batch_size, generator)`` and
            ``forward(x, params)`` (a policy's, PBA's, a learned one).
        path: the PNG file.
        copies: augmented versions per image.
        seed: seeds the draws, so a grid can be drawn again identically.
        labels: a row label per image (e.g. its class).
        title: the figure's title.
    """
    import torch

    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
        raise ValueError(f"images must have shape (N, 1 or 3, H, W) with N >= 1, but got {images.shape}.")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be an int >= 1, but got {copies!r}.")
    tensors = itertools.chain(augment.parameters(), augment.buffers()) if hasattr(augment, "buffers") else iter(())
    device = next((t.device for t in tensors), torch.device("cpu"))
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255).to(device)  # (N, C, H, W)
    g = torch.Generator().manual_seed(seed)
    columns = [x.cpu()]
    with torch.no_grad():
        for _ in range(copies):
            params = augment.sample(x.shape[0], g)
            columns.append(augment(x, params).detach().float().clamp(0, 1).cpu())
    n = x.shape[0]
    side = 1.25
    fig = new_figure(side * (copies + 1) + 0.6, side * n + 0.7)
    axes = np.asarray(fig.subplots(n, copies + 1, squeeze=False))
    for i in range(n):
        for c, batch in enumerate(columns):
            ax = axes[i, c]
            picture = batch[i].permute(1, 2, 0).numpy()  # (H, W, C)
            if picture.shape[2] == 1:
                ax.imshow(picture[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if c == 0 else f"augmented {c}", fontsize="small")
            if c == 0 and labels is not None:
                ax.set_ylabel(str(labels[i]), fontsize="small")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def one_per_class(labels: np.ndarray, limit: int = 10) -> np.ndarray:
    """Indices of the first image of each class (up to ``limit`` classes), by class."""
    firsts = [int(np.flatnonzero(labels == k)[0]) for k in np.unique(labels)]
    return np.asarray(firsts[:limit], dtype=np.int64)


# ------------------------------------------------------------------------------ run directories
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


def _schedule_of(config: Any) -> Any:
    from autodata.augment.shipped import resolve_policy_path
    from autodata.schedules import PiecewiseSchedule

    schedule = PiecewiseSchedule.load(resolve_policy_path(config.policy))
    return schedule if schedule.num_epochs == config.epochs else schedule.stretched(config.epochs)


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
    out = folder.path / "plots"
    written: list[Path] = []
    state: dict[str, Any] = {"run": run}

    def the_run() -> Any:
        if state["run"] is None:
            state["run"] = load_run(folder.path)
        return state["run"]

    name = f"{config.dataset}, {config.model}"
    if history:
        written.append(plot_curves(history, out / "curves.png", title=f"{name}: {len(history)} of {config.epochs} epochs"))
    if config.augment == "learned" and history:
        if any(RECORD_KEY in r for r in history):
            written.append(plot_learned_policy(history, out / "policy.png", title=f"Learned augmentation policy ({name})"))
        else:  # per-epoch snapshots were not recorded: the policy now
            written.append(plot_policy(the_run().policy(), out / "policy.png", title=f"Learned policy after epoch {len(history)} "
                                       f"(no per-epoch record) - p: probability, m: magnitude in [0, 1]"))
    if config.augment == "schedule":
        written.append(plot_schedule(_schedule_of(config), out / "schedule.png", current_epoch=len(history)))
    if config.reweighter == "mwn" and history:
        import torch

        from autodata.runs.suspects import loss_weight_curve, training_sample_weights

        run_ = the_run()
        samples = training_sample_weights(run_)
        grid = torch.linspace(0.0, max(float(samples.loss.max()) * 1.05, 1e-3), 200)
        curve = loss_weight_curve(run_.learner.reweighter, grid).numpy()
        written.append(plot_sample_weights(samples, grid.numpy(), curve, out / "weights.png",
                                           title=f"Meta-Weight-Net after epoch {len(history)} ({name})"))
    if config.augment != "none":
        run_ = the_run()
        train = run_.data.train
        rows = one_per_class(run_.data.clean_train_labels, limit=8)
        names = train.class_names
        labels = [f"class {names[k] if names else k}" for k in run_.data.clean_train_labels[rows]]
        written.append(plot_augmented_grid(train.images[rows], run_.learner.augment, out / "samples.png", labels=labels,
                                           title=f"Augmentation of the run at epoch {len(history)} ({config.augment})"))
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
