"""A run directory: one folder holds everything a run wrote, and is enough to resume it.

Layout::

    RUN_DIR/
      config.json          the TrainConfig (train it again with `autodata train --config`)
      metrics.jsonl        one JSON record per finished epoch
      checkpoints/last.pt  model, optimizer, scheduler, learner, loaders and random state
      final/model.pt       the trained model's state_dict (when the run is finished)
      final/policy.json    its augmentation policy, learned or fixed (when it has one)
      final/reweighter.pt  the learned reweighter's state_dict (when it has one)
      summary.md           what ran and how it went, for a reader

Crash safety: every file that replaces an older one is written to a temporary name and
renamed (:mod:`autodata._io`); ``metrics.jsonl`` only grows, one fsynced line per epoch, and
is rewritten from the checkpoint on resume, so a ``kill -9`` at any instant leaves a
directory that :func:`train_in_directory` continues exactly.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from autodata._io import append_line, atomic_write_text, torch_save_atomic, write_json_atomic
from autodata.runs.plots import epoch_record_extras
from autodata.train import Run, TrainConfig, build_run

__all__ = ["RunDirectory", "RunDirectoryError", "train_in_directory"]


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked (exists without --resume, another config...)."""


def _json_record(record: dict[str, Any]) -> str:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, allow_nan=False)


class RunDirectory:
    """The files of one run (see the module docstring)."""

    OWN_FILES = ("config.json", "metrics.jsonl", "summary.md", "suspects.csv")
    OWN_FOLDERS = ("checkpoints", "final", "plots", "tensorboard")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpoint_path = self.path / "checkpoints" / "last.pt"
        self.summary_path = self.path / "summary.md"
        self.final_path = self.path / "final"

    def holds_run(self) -> bool:
        return self.config_path.is_file()

    def config(self) -> TrainConfig:
        return TrainConfig.load(self.config_path)

    def clear(self) -> None:
        """Remove this run's own files (and only those)."""
        for name in self.OWN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in self.OWN_FOLDERS:
            shutil.rmtree(self.path / name, ignore_errors=True)

    # ------------------------------------------------------------------ metrics
    def read_metrics(self) -> list[dict[str, Any]]:
        """The epoch records; a torn last line (a crash mid-append) is ignored."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            records.append(json.loads(line))
        return records

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_line(self.metrics_path, _json_record(record))

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        atomic_write_text(self.metrics_path, "".join(_json_record(r) + "\n" for r in history))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, run: Run) -> None:
        torch_save_atomic(self.checkpoint_path, run.state_dict())

    def load_checkpoint(self, run: Run) -> bool:
        """Load the last checkpoint into ``run``; ``False`` when there is none yet."""
        if not self.checkpoint_path.exists():
            return False
        try:
            state = torch.load(self.checkpoint_path, map_location=run.device, weights_only=True)
        except Exception as err:  # a checkpoint is written atomically; this is another file
            raise RunDirectoryError(
                f"{self.checkpoint_path} cannot be read as a checkpoint ({type(err).__name__}: {err}); "
                f"remove it to restart the run from epoch 0."
            ) from None
        run.load_state_dict(state, str(self.checkpoint_path))
        return True

    # ------------------------------------------------------------------ results
    def save_final(self, run: Run) -> None:
        from autodata.augment import Policy, save_policy

        torch_save_atomic(self.final_path / "model.pt", run.model.state_dict())
        policy = run.policy()
        if isinstance(policy, Policy):
            save_policy(policy, self.final_path / "policy.json")
        elif policy is not None:  # a PBA policy: its own readable JSON
            write_json_atomic(self.final_path / "policy.json", policy.to_dict())
        if any(True for _ in run.learner.reweighter.parameters()):
            torch_save_atomic(self.final_path / "reweighter.pt", run.learner.reweighter.state_dict())
        self.write_summary(run)

    def write_summary(self, run: Run) -> None:
        from autodata.runs.plots import plots_section_markdown

        atomic_write_text(self.summary_path, summary_markdown(run) + plots_section_markdown(self.path))

    def write_plots(self, run: Run) -> None:
        """Draw the run's plots into ``plots/`` (skipped quietly without matplotlib)."""
        from autodata._imports import MissingExtraError
        from autodata.runs.plots import write_run_plots

        try:
            write_run_plots(self.path, run=run)
        except MissingExtraError:
            pass


def summary_markdown(run: Run) -> str:
    """A short, readable account of a run: settings, the epochs, the result, the files."""
    c = run.config
    lines = [f"# autodata run: {c.dataset}, {c.model}", ""]
    lines.append(f"Status: {'finished' if run.finished else 'in progress'}, epoch {run.epoch} of {c.epochs}.")
    lines.append("")
    noise = "no label noise" if c.noise == "none" else f"{c.noise} label noise {c.noise_rate:.0%}"
    parts = [noise, f"augmentation {c.augment}" + (f" ({c.policy})" if c.policy else "")]
    if c.reweighter != "none":
        parts.append(f"reweighter {c.reweighter} ({c.method}, every {c.every})")
    warmup = f" after a warm-up of {c.warmup_epochs} epoch{'s' if c.warmup_epochs > 1 else ''}" if c.warmup_epochs else ""
    lr = f"lr {c.lr} {c.lr_schedule}{warmup}"
    lines += [f"Setting: {', '.join(parts)}; {c.optimizer} {lr}, {c.epochs} epochs, batch {c.batch_size}, seed {c.seed}.", ""]
    if run.history:
        has_val = "val_accuracy" in run.history[0]
        head = "| epoch | train loss | meta loss | lr |" + (" val acc % |" if has_val else "") + " test acc % | seconds |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for r in run.history:
            meta = "" if r.get("meta_loss") is None else f"{r['meta_loss']:.4f}"
            val = f" {r['val_accuracy']:.2f} |" if has_val else ""
            seconds = r.get("train_seconds", 0.0) + r.get("eval_seconds", 0.0)
            lines.append(f"| {r['epoch']} | {r['train_loss']:.4f} | {meta} | {r['lr']:.4g} |{val} {r['test_accuracy']:.2f} | {seconds:.1f} |")
        best = max(r["test_accuracy"] for r in run.history)
        lines += ["", f"Final test accuracy {run.history[-1]['test_accuracy']:.2f}% (best {best:.2f}%)."]
    lines += ["", "Files: `config.json`, `metrics.jsonl`, `checkpoints/last.pt`"
              + (", `final/` (model, policy, reweighter), `plots/`" if run.finished else "") + "."]
    return "\n".join(lines) + "\n"


def train_in_directory(
    config: TrainConfig | None,
    directory: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_epoch: Callable[[Run, dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int, Any], None] | None = None,
    plots: bool = True,
) -> Run:
    """Train ``config`` into ``directory``, or continue the run already there.

    Args:
        config: the run's config; ``None`` with ``resume=True`` takes the directory's.
        directory: the run directory (created when missing).
        resume: continue a run that exists there (its config must equal ``config``); a
            finished run is not trained again.
        overwrite: remove a run that exists there and start again.
        on_epoch: called after each epoch with the run and the epoch's record.
        on_step: called after each training step (see :meth:`autodata.train.Run.train_epoch`).
        plots: draw the plots into ``plots/`` when the run finishes (needs matplotlib).

    Returns:
        The run, finished.

    Raises:
        RunDirectoryError: the directory holds a run and neither ``resume`` nor ``overwrite``
            was given, holds a run of another config, or is not a run directory.
    """
    if resume and overwrite:
        raise RunDirectoryError("resume and overwrite exclude each other; pick one.")
    folder = RunDirectory(directory)
    if folder.path.exists() and not folder.path.is_dir():
        raise RunDirectoryError(f"{folder.path} is a file, not a run directory; choose another output folder.")
    if folder.holds_run():
        if overwrite:
            folder.clear()
        elif resume:
            saved = folder.config()
            if config is not None and config != saved:
                differing = sorted(k for k, v in config.to_dict().items() if saved.to_dict()[k] != v)
                raise RunDirectoryError(
                    f"{folder.path} holds a run of another config (fields {differing} differ); resume it "
                    f"without changing its settings, or pass --overwrite to start again."
                )
            config = saved
        else:
            raise RunDirectoryError(
                f"{folder.path} already holds a run; pass --resume to continue it or --overwrite to start again."
            )
    elif folder.path.exists() and any(folder.path.iterdir()):
        raise RunDirectoryError(
            f"{folder.path} exists and is not an autodata run directory (no config.json); choose another output folder."
        )
    if config is None:
        raise RunDirectoryError(f"{folder.path} holds no run to resume; give a config.")
    run = build_run(config)
    if folder.holds_run():
        folder.load_checkpoint(run)
        folder.write_metrics(run.history)  # drop records of an epoch whose checkpoint was not written
    else:
        config.save(folder.config_path)
    while not run.finished:
        record = run.run_epoch(on_step)
        record.update(epoch_record_extras(run))  # what the plots need, e.g. a learned policy's state
        folder.save_checkpoint(run)
        folder.append_metrics(record)
        folder.write_summary(run)
        if on_epoch is not None:
            on_epoch(run, record)
    folder.save_final(run)
    if plots:
        folder.write_plots(run)
    return run
