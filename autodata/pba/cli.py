"""``autodata search-schedule``: a PBA search from the command line, flags generated from the configs.

Register it with :func:`register` on the ``autodata`` subcommands. The member setup's flags
come from :class:`~autodata.train.TrainConfig` (minus the fields a search sets itself), the
population's from :class:`~autodata.pba.PBASearchConfig`; ``--config`` starts from a saved
``search_config.json``. The search checkpoints in ``--workdir`` (default ``<out>.search``) at
each perturbation: the same command again after a crash continues where it stood.
"""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "search_config_from_arguments"]

EXAMPLES = """examples:
  autodata search schedule --dataset cifar10 --n-train 1500 --val-per-class 50 --model small_cnn \\
      --epochs 30 --lr 0.05 --population 8 --out policies/pba_searched_cifar10_small.json
  autodata search schedule --dataset cifar10 --n-train 4000 --val-per-class 732 --model wrn_40_2 --epochs 200 \\
      --lr 0.1 --population 16 --interval 3 --device cuda --precision bf16 --out pba_wrn.json   # PBA's reduced CIFAR-10
  autodata search schedule --ray --dataset digits --val-per-class 10 --epochs 6 --population 4 --out digits.json
  autodata train --augment schedule --policy pba_wrn.json --epochs 200 ...   # replay (stretched to --epochs)
"""

# TrainConfig fields a search sets itself (augmentation, learned parts, optimizer).
SKIPPED_TRAIN_FIELDS = (
    "augment", "policy", "policy_ops", "policy_temperature", "policy_lr", "reweighter", "reweighter_hidden",
    "reweighter_lr", "method", "every", "scale_meta_lr", "meta_batch_size", "meta_per_class", "optimizer",
    "reweighter_floor", "reweighter_center", "reweighter_max_step_ratio", "guard", "compile",
)


def register(subparsers: Any, name: str = "search-schedule") -> argparse.ArgumentParser:
    """Add the subcommand ``name`` to ``subparsers`` (``autodata search schedule`` uses ``"schedule"``)."""
    from autodata._argparse import add_config_arguments
    from autodata.pba.config import PBASearchConfig

    defaults = PBASearchConfig()
    parser = subparsers.add_parser(
        name, help="learn an augmentation schedule with Population Based Augmentation",
        description="Population Based Augmentation (Ho et al., ICML 2019): train a population, let the bottom "
                    "quarter copy the top quarter every --interval epochs and perturb the copied policies; write "
                    "the best member's policy schedule (JSON) to --out. Members are ranked on the clean "
                    "validation split (--val-per-class), never the test set.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="a search_config.json to start from; flags override it field by field")
    parser.add_argument("--out", default="pba_schedule.json", help="the schedule file to write (default: %(default)s)")
    parser.add_argument("--workdir", help="checkpoint directory, resumed when it holds this search (default: <out>.search)")
    parser.add_argument("--ray", action="store_true", help="run the population as Ray Tune trials (pip install 'autodata[ray]')")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="on a CPU with glibc, tell the C allocator to keep freed memory for the next step instead "
                             "of returning it to the system (a process setting: about 10%% faster on the digits; left "
                             "alone when MALLOC_* or GLIBC_TUNABLES are set, and with --ray) (default: on)")
    from autodata.cli._progress import add_progress_arguments

    add_progress_arguments(parser)
    add_config_arguments(parser.add_argument_group("population"), PBASearchConfig, defaults=defaults, skip=("train",))
    add_config_arguments(parser.add_argument_group("member setup (TrainConfig fields)"), type(defaults.train),
                         defaults=defaults.train, skip=SKIPPED_TRAIN_FIELDS, aliases={"dataset": ("--data",)})
    parser.set_defaults(run=_run)
    return parser


def search_config_from_arguments(args: argparse.Namespace) -> Any:
    """The :class:`PBASearchConfig` of parsed flags (over ``--config`` when given); errors name flags."""
    from autodata._argparse import config_overrides, name_flags_in
    from autodata.pba.config import PBASearchConfig
    from autodata.train import TrainConfig

    base = PBASearchConfig.load(args.config) if args.config else PBASearchConfig()
    train = {**base.train.to_dict(), **{k: v for k, v in config_overrides(TrainConfig, args).items()
                                        if k not in SKIPPED_TRAIN_FIELDS}}
    population = {k: v for k, v in config_overrides(PBASearchConfig, args).items() if k != "train"}
    try:
        member = TrainConfig.from_dict(train, source="the flags")
    except ValueError as err:
        raise ValueError(name_flags_in(str(err).removeprefix("the flags: "), TrainConfig)) from None
    try:
        return base.replace(train=member, **population)
    except ValueError as err:
        message = str(err)
        if message.startswith("train."):
            message = name_flags_in(message.removeprefix("train."), TrainConfig)
        else:
            message = name_flags_in(message, PBASearchConfig)
        raise ValueError(message) from None


def _run(args: argparse.Namespace) -> int:
    config = search_config_from_arguments(args)
    epochs = config.train.epochs

    from autodata.cli._progress import progress_reporter

    progress = progress_reporter(epochs, quiet=args.quiet, force=args.progress, desc="population")

    def log(record: dict[str, Any]) -> None:
        val = record["val_accuracy"]  # None: not evaluated this epoch (PBASearchConfig.eval_every_epoch)
        copies = ", ".join(f"{d}<-{s}" for d, s in sorted(record["copies"].items()))
        ranked = f"val best {max(val):6.2f}%  mean {sum(val) / len(val):6.2f}%" if val else f"{'(not evaluated)':<31}"
        progress.write(f"  epoch {record['epoch']:3d}/{epochs}  {ranked}  "
                       f"{record.get('images_per_second', 0.0):7.0f} img/s" + (f"  copies {copies}" if copies else ""))
        progress.on_epoch(None, {"epoch": record["epoch"], **({"val_accuracy": float(max(val))} if val else {})})

    import torch

    if args.keep_freed_memory and not args.ray and torch.device(config.train.device).type == "cpu":
        from autodata._malloc import keep_freed_memory

        reason = keep_freed_memory()
        if reason is not None and not args.quiet:
            print(f"allocator: glibc's defaults kept ({reason})", flush=True)
    with progress:
        if args.ray:
            from autodata.tune.ray_pba import ray_search_schedule

            result = ray_search_schedule(config, args.out, storage_path=args.workdir, log=log)
        else:
            from autodata.pba.search import search_schedule

            progress.write(f"autodata search schedule: population {config.population}, {epochs} epochs, "
                           f"interval {config.interval} -> {args.out}")
            result = search_schedule(config, args.out, workdir=args.workdir, log=log)
    print(f"finished: member {result.best}, validation accuracy {result.val_accuracy[result.best]:.2f}%, "
          f"{len(result.schedule.segments)} policy segments over {result.schedule.num_epochs} epochs -> {args.out}",
          flush=True)
    return 0
