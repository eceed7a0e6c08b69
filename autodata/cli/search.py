"""``autodata search policy`` (DADA) and ``autodata search schedule`` (PBA).

``search policy`` is a training run whose augmentation policy is learned on the clean meta
split (:func:`autodata.search.search_policy`); it writes the top sub-policies as a policy
file. ``search schedule`` trains a population with Population Based Augmentation
(:mod:`autodata.pba`) and writes the best member's schedule; run the same command again after
an interruption and it resumes from the last perturbation point.
"""
from __future__ import annotations

import argparse
from typing import Any

from autodata.cli._common import Parser, epoch_line, say

__all__ = ["register"]

POLICY_EXAMPLES = """examples:
  autodata search policy --data digits --n-train 600 --meta-per-class 30 --model small_cnn --epochs 5 \\
      --policy-ops Rotate,ShearX,Contrast,Invert --out runs/digits_policy.json
  autodata search policy --data cifar10 --data-root ../shared/data --device cuda \\
      --out policies/dada_reduced_cifar10.json          # the anchors' setting: reduced CIFAR-10, WRN-40-2
"""


def _policy(args: argparse.Namespace) -> int:
    from autodata.augment import save_policy
    from autodata.cli._progress import progress_reporter
    from autodata.cli.train import config_from_args
    from autodata.search import search_config, search_policy

    config = config_from_args(args, base=search_config().to_dict())  # the anchors' setting, --config, flags

    say(args.quiet, f"autodata search policy -> {args.out}")
    progress = progress_reporter(config.epochs, quiet=args.quiet, force=args.progress, desc="search")

    def log(record: dict[str, Any]) -> None:
        progress.on_epoch(None, record)
        progress.write(epoch_line(record, config.epochs))

    with progress:
        result = search_policy(config, keep=args.keep, log=log, on_step=progress.on_step)
    save_policy(result.policy, args.out)
    print(f"searched in {result.seconds:.0f}s; wrote {args.out} (show it with: autodata policy show {args.out})")
    return 0


def register(commands: Any) -> None:
    from autodata._argparse import add_config_arguments
    from autodata.pba.cli import register as register_schedule
    from autodata.search import search_config
    from autodata.train import TrainConfig

    search = commands.add_parser(
        "search", help="learn an augmentation policy (DADA) or schedule (PBA)",
        description="Learn augmentation: 'search policy' (DADA, gradient-based, one run) or "
                    "'search schedule' (PBA, a population over epochs).",
    )
    what = search.add_subparsers(dest="what", metavar="WHAT", parser_class=Parser, required=True)
    policy = what.add_parser(
        "policy", help="DADA: learn a policy on the clean meta split and save it",
        description="DADA-style differentiable policy search: a training run whose policy is learned on the "
                    "clean meta split by the bilevel engine; the top sub-policies are saved as a policy file.",
        epilog=POLICY_EXAMPLES,
    )
    policy.add_argument("--config", help="a config.json to start from; flags override it field by field")
    policy.add_argument("--out", required=True, help="the policy file to write")
    policy.add_argument("--keep", type=int, default=25, help="sub-policies kept, by weight (default: 25, as DADA)")
    policy.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    from autodata.cli._progress import add_progress_arguments

    add_progress_arguments(policy)
    add_config_arguments(policy.add_argument_group("config fields (defaults: the anchors' search setting)"),
                         TrainConfig, defaults=search_config(), aliases={"dataset": ("--data",)})
    policy.set_defaults(run=_policy)
    register_schedule(what, name="schedule")
