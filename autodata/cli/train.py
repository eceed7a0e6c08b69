"""``autodata train``: one :class:`~autodata.train.TrainConfig` trained into a run directory.

Flags are generated from the config's fields; ``--config FILE`` starts from a file and flags
override it field by field; ``--resume`` continues the run in ``--out`` (a finished run is not
redone) and ``--overwrite`` starts it again.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from autodata.cli._common import epoch_line, say

__all__ = ["add_run_arguments", "config_from_args", "register"]

EXAMPLES = """examples:
  autodata train --data digits --noise symmetric --noise-rate 0.4 --meta-per-class 10 \\
      --reweighter mwn --epochs 20 --out runs/digits_mwn
  autodata train --config runs/digits_mwn/config.json --seed 1 --out runs/digits_mwn_seed1
  autodata train --out runs/digits_mwn --resume          # continue after a crash or Ctrl-C
  autodata train --data cifar10 --data-root ../shared/data --model resnet32 --crop-padding 4 \\
      --flip --augment policy --policy policies/autoaugment_cifar10.json --out runs/c10_aa
"""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--out``, ``--resume``/``--overwrite``, ``--quiet`` and every config field's flag."""
    from autodata._argparse import add_config_arguments
    from autodata.train import TrainConfig

    parser.add_argument("--config", help="a config.json to start from (a run directory's, or your own)")
    parser.add_argument("--out", help="the run directory (default: runs/<dataset>_<model>_seed<seed>)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out (a finished run is not redone)")
    mode.add_argument("--overwrite", action="store_true", help="remove the run in --out and start again")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    add_config_arguments(parser.add_argument_group("config fields"), TrainConfig, aliases={"dataset": ("--data",)})


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """The :class:`TrainConfig` of ``--config`` (or of the run being resumed) with the flags on top.

    A bad field is reported as its flag (``--epochs must be >= 1, but got 0.``).
    """
    from autodata._argparse import config_overrides, name_flags_in
    from autodata.runs import RunDirectory
    from autodata.train import TrainConfig

    fields = dict(base or {})
    if args.config is not None:
        fields.update(TrainConfig.load(args.config).to_dict())
    elif getattr(args, "resume", False) and args.out and RunDirectory(args.out).holds_run():
        fields.update(RunDirectory(args.out).config().to_dict())
    source = args.config or "the flags"
    try:
        return TrainConfig.from_dict({**fields, **config_overrides(TrainConfig, args)}, source=source)
    except ValueError as err:
        message = name_flags_in(str(err).removeprefix(f"{source}: "), TrainConfig)
        raise ValueError(message + (f" (config file {args.config})" if args.config else "")) from None


def _run(args: argparse.Namespace) -> int:
    from autodata.cli._progress import progress_reporter
    from autodata.runs import train_in_directory
    from autodata.runs.tensorboard import tensorboard_logger

    config = config_from_args(args)
    if args.out is None:
        args.out = os.path.join("runs", f"{config.dataset}_{config.model}_seed{config.seed}")
    say(args.quiet, f"autodata train -> {args.out}")
    progress = progress_reporter(config.epochs, quiet=args.quiet, force=args.progress)
    logger = tensorboard_logger(args.out, enabled=args.tensorboard)

    def on_epoch(run: Any, record: dict[str, Any]) -> None:
        logger(run, record)
        progress.on_epoch(run, record)
        if not args.quiet:
            progress.write(epoch_line(record, run.config.epochs))

    with progress, logger:
        run = train_in_directory(config, args.out, resume=args.resume, overwrite=args.overwrite,
                                 on_epoch=on_epoch, on_step=progress.on_step)
    final = run.history[-1]
    print(f"finished: {run.epoch} epochs, test accuracy {final['test_accuracy']:.2f}%; "
          f"summary in {os.path.join(args.out, 'summary.md')}", flush=True)
    return 0


def register(commands: Any) -> None:
    train = commands.add_parser(
        "train", help="train one config into a run directory (resumable)",
        description="Train one config into a run directory: config.json, metrics.jsonl, checkpoints, "
                    "final model/policy/reweighter, summary.md. Flags override --config field by field.",
        epilog=EXAMPLES,
    )
    add_run_arguments(train)
    from autodata.cli._progress import add_progress_arguments

    add_progress_arguments(train)
    train.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                       help="log to RUN_DIR/tensorboard (default: when tensorboard is installed)")
    train.set_defaults(run=_run)
