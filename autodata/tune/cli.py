"""``autodata tune``: a hyperparameter study from the command line (wired by ``register``).

The flags of :class:`~autodata.train.TrainConfig` set the base config (as for ``autodata
train``; ``--config`` starts from a file), ``--space`` a JSON search space (default: the
default space of the base config). Running the same command again resumes the study; more
workers on other machines join with the same ``--storage`` URL and ``--study-name``.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register"]

_EXAMPLES = """examples:
  autodata tune --dataset digits --val-per-class 10 --epochs 5 --trials 20 --out runs/tune_digits
  autodata tune --dataset digits --val-per-class 10 --space space.json --pruner hyperband --workers 2 --out runs/t
  autodata tune --config base.json --storage postgresql://user:pw@db-host/optuna --study-name c10 --out runs/c10
  autodata train --config runs/tune_digits/best/config.json --out runs/digits_best   # train the best config
space.json: {"lr": {"low": 0.001, "high": 0.5, "log": true}, "lr_schedule": ["cosine", "constant"]}
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``tune`` command to an ``add_subparsers()`` object; returns its parser."""
    from autodata._argparse import add_config_arguments
    from autodata.train import TrainConfig
    from autodata.tune.pruners import PRUNERS

    parser = subparsers.add_parser(
        "tune", help="search hyperparameters with Optuna (resumable, several workers)",
        description="Search hyperparameters of a training config with Optuna: each trial trains a config drawn from "
                    "the space, reports validation accuracy each epoch and may be pruned. Writes best/config.json, "
                    "trials.csv and plots/ (history, importances) into --out. Needs pip install 'autodata[tune]'.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="the study directory (its default storage, best/config.json, trials.csv)")
    parser.add_argument("--storage", help="a journal file or a database URL such as postgresql://user:pw@host/db "
                                          "(default: the journal file <out>/study.journal)")
    parser.add_argument("--study-name", default="autodata", help="the study's name in the storage (default: autodata)")
    parser.add_argument("--trials", type=int, default=20, help="finished trials to run to, over all workers (default: 20)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default: 1)")
    parser.add_argument("--pruner", default="median", choices=sorted(PRUNERS), help="pruner (default: median)")
    parser.add_argument("--space", help="a JSON search space file (default: the default space of the base config)")
    parser.add_argument("--second", choices=["epochs", "seconds"], help="a second objective to minimise (no pruning then)")
    parser.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler (default: random)")
    parser.add_argument("--config", help="a config.json to start the base config from")
    parser.add_argument("--quiet", action="store_true", help="no per-trial lines")
    from autodata.cli._progress import add_progress_arguments

    add_progress_arguments(parser)
    add_config_arguments(parser.add_argument_group("base config fields"), TrainConfig, aliases={"dataset": ("--data",)})
    parser.set_defaults(run=run_tune)
    return parser


def _settings(args: argparse.Namespace) -> Any:
    from autodata._argparse import config_overrides, name_flags_in
    from autodata.train import TrainConfig
    from autodata.tune.space import SearchSpace
    from autodata.tune.study import TuneSettings

    base: dict[str, Any] = TrainConfig.load(args.config).to_dict() if args.config else {}
    source = args.config or "the flags"
    try:
        config = TrainConfig.from_dict({**base, **config_overrides(TrainConfig, args)}, source=source)
    except ValueError as err:
        raise ValueError(name_flags_in(str(err).removeprefix(f"{source}: "), TrainConfig)) from None
    if config.val_per_class <= 0:
        raise ValueError(f"--val-per-class must be > 0 to tune (trials are compared on a clean validation split, "
                         f"never on the test set), but got {config.val_per_class}; add e.g. --val-per-class 10.")
    space = SearchSpace.load(args.space) if args.space else None
    for flag, value in (("--trials", args.trials), ("--workers", args.workers)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, but got {value}.")
    return TuneSettings(
        config, space, out=args.out, storage=args.storage, study_name=args.study_name, n_trials=args.trials,
        workers=args.workers, pruner=args.pruner, second=args.second, sampler_seed=args.sampler_seed,
    )


def run_tune(args: argparse.Namespace) -> int:
    """Run the study that the flags describe; prints one line per trial and the result."""
    from autodata._imports import require
    from autodata.tune.study import BEST_CONFIG, TRIALS_CSV, tune

    settings = _settings(args)  # every user error before any trial (and before importing Optuna)
    optuna = require("optuna", extra="tune", purpose="autodata tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    from autodata.cli._progress import progress_reporter

    progress = progress_reporter(settings.n_trials, quiet=args.quiet, force=args.progress, desc="tune", unit="trial")
    done = 0

    def on_trial(study: Any, trial: Any) -> None:
        nonlocal done
        done += 1
        value = "" if trial.values is None else " ".join(f"{v:.4g}" for v in trial.values)
        epochs = trial.user_attrs.get("epochs", "-")
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        progress.write(f"  trial {trial.number:3d} {trial.state.name:<8} {value:>8}  epochs {epochs}  {params}")
        completed = [t.values[0] for t in study.trials if t.values is not None and t.state.name == "COMPLETE"]
        record = {"epoch": min(done, settings.n_trials)}
        if completed:
            record["val_accuracy"] = float(max(completed) if study.directions[0].name == "MAXIMIZE" else min(completed))
        progress.on_epoch(None, record)

    if not args.quiet:
        print(f"autodata tune: study {settings.study_name!r} in {settings.storage_name}, {settings.n_trials} trials, "
              f"{settings.workers} worker(s), pruner {settings.pruner}", flush=True)
    with progress:
        study = tune(settings, on_trial=on_trial)
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if completed:
        from autodata.tune.results import best_trial

        best = best_trial(study)
        print(f"best trial {best.number}: validation accuracy {best.values[0]:.2f}%; config in "
              f"{os.path.join(args.out, BEST_CONFIG)}, trials in {os.path.join(args.out, TRIALS_CSV)}", flush=True)
    else:
        print(f"no trial completed; trials in {os.path.join(args.out, TRIALS_CSV)}", flush=True)
    try:  # history and importances as PNG next to trials.csv (matplotlib is the plots extra)
        from autodata.tune.plots import write_study_plots

        print(f"plots: {', '.join(map(str, write_study_plots(study, args.out)))}", flush=True)
    except ImportError:
        print("plots: skipped, matplotlib is missing (pip install 'autodata[plots]')", flush=True)
    print(f"dashboard: optuna-dashboard {settings.storage_name}", flush=True)
    return 0
