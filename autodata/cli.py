"""The ``autodata`` command line.

``autodata demo`` is the main job on the embedded default: scikit-learn's bundled digits with
40% symmetric label noise, a small CNN trained with plain cross-entropy and with a
Meta-Weight-Net steered by 10 clean images per class; it prints both test accuracies.

``autodata train`` trains one :class:`~autodata.train.TrainConfig` into a run directory; its
flags are generated from the config's fields (``autodata train --help``). A user error is one
line on stderr and exit status 2, found before any training starts; Ctrl-C or a closed pipe
ends quietly and the run directory stays resumable (``--resume``).
"""
from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any

import autodata

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_TRAIN_EXAMPLES = """examples:
  autodata train --dataset digits --noise symmetric --noise-rate 0.4 --meta-per-class 10 \\
      --reweighter mwn --epochs 20 --out runs/digits_mwn
  autodata train --config runs/digits_mwn/config.json --seed 1 --out runs/digits_mwn_seed1
  autodata train --out runs/digits_mwn --resume          # continue after a crash or Ctrl-C
  autodata train --dataset cifar10 --data-root ../shared/data --model resnet32 --crop-padding 4 \\
      --flip --augment policy --policy policies/autoaugment_cifar10.json --out runs/c10_aa
"""


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    meta = "" if record.get("meta_loss") is None else f"  meta {record['meta_loss']:.4f}"
    val = f"  val {record['val_accuracy']:6.2f}%" if "val_accuracy" in record else ""
    seconds = record.get("train_seconds", 0.0) + record.get("eval_seconds", 0.0)
    return (f"  epoch {record['epoch']:3d}/{epochs}  loss {record['train_loss']:.4f}{meta}{val}  "
            f"test {record['test_accuracy']:6.2f}%  {seconds:5.1f}s")


def _demo(args: argparse.Namespace) -> int:
    from autodata.train import TrainConfig, build_run, parse_method

    base = TrainConfig(
        dataset="digits", model="small_cnn", noise=args.noise, noise_rate=args.rate, epochs=args.epochs,
        meta_per_class=10, batch_size=128, meta_batch_size=100, lr=0.05, seed=args.seed,
    )
    _say(args.quiet, f"autodata {autodata.__version__} demo: digits (scikit-learn, 8x8), {base.noise} label noise "
                     f"{base.noise_rate:.0%}, {base.meta_per_class} clean images per class as the meta set, "
                     f"small CNN, {base.epochs} epochs")
    finals = {}
    for method, title in (("ce", "cross-entropy"), ("mwn", "Meta-Weight-Net")):
        run = build_run(base.replace(**parse_method(method)))
        history = run.fit()
        seconds = sum(r["train_seconds"] + r["eval_seconds"] for r in history)
        finals[method] = history[-1]["test_accuracy"]
        best = max(r["test_accuracy"] for r in history)
        print(f"  {title:<16} test accuracy {finals[method]:6.2f}% (best {best:.2f}%, {seconds:.0f}s)", flush=True)
        realised = run.data.noise.noise_rate if run.data.noise is not None else 0.0
    print(f"realised noise rate {realised:.3f}; Meta-Weight-Net - cross-entropy = {finals['mwn'] - finals['ce']:+.2f} points")
    return 0


def _train_config(args: argparse.Namespace) -> Any:
    from autodata._argparse import config_overrides, name_flags_in
    from autodata.runs import RunDirectory
    from autodata.train import TrainConfig

    overrides = config_overrides(TrainConfig, args)
    base: dict[str, Any] = {}
    if args.config is not None:
        base = TrainConfig.load(args.config).to_dict()
    elif args.resume and RunDirectory(args.out).holds_run():
        base = RunDirectory(args.out).config().to_dict()
    try:
        return TrainConfig.from_dict({**base, **overrides}, source=args.config or "the flags")
    except ValueError as err:
        raise ValueError(name_flags_in(str(err).removeprefix(f"{args.config or 'the flags'}: "), TrainConfig)
                         + (f" (config file {args.config})" if args.config else "")) from None


def _train(args: argparse.Namespace) -> int:
    from autodata.runs import train_in_directory

    config = _train_config(args)
    if args.out is None:
        args.out = os.path.join("runs", f"{config.dataset}_{config.model}_seed{config.seed}")
    _say(args.quiet, f"autodata train -> {args.out}")

    def on_epoch(run: Any, record: dict[str, Any]) -> None:
        _say(args.quiet, _epoch_line(record, run.config.epochs))

    run = train_in_directory(config, args.out, resume=args.resume, overwrite=args.overwrite, on_epoch=on_epoch)
    final = run.history[-1]
    print(f"finished: {run.epoch} epochs, test accuracy {final['test_accuracy']:.2f}%; "
          f"summary in {os.path.join(args.out, 'summary.md')}", flush=True)
    return 0


class _Parser(argparse.ArgumentParser):
    """One line on stderr for a usage error (not the whole usage), then exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from autodata._argparse import add_config_arguments
    from autodata.train import TrainConfig

    parser = _Parser(
        prog="autodata",
        description="Learn the data side of training: augmentation policies, sample weights, hyperparameters.",
    )
    parser.add_argument("--version", action="version", version=f"autodata {autodata.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="noisy-label training on the bundled digits: cross-entropy vs MWN",
        description="Noisy-label training on the bundled digits: cross-entropy vs Meta-Weight-Net.",
        epilog="example:\n  autodata demo --rate 0.6 --epochs 10", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--noise", default="symmetric", choices=["symmetric", "pairflip"])
    demo.add_argument("--rate", type=float, default=0.4, help="label noise rate in [0, 1]")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="print only the results")
    demo.set_defaults(run=_demo)

    train = commands.add_parser(
        "train", help="train one config into a run directory (resumable)",
        description="Train one config into a run directory: config.json, metrics.jsonl, checkpoints, "
                    "final model/policy/reweighter, summary.md. Flags override --config field by field.",
        epilog=_TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", help="a config.json to start from (a run directory's, or your own)")
    train.add_argument("--out", help="the run directory (default: runs/<dataset>_<model>_seed<seed>)")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out (a finished run is not redone)")
    mode.add_argument("--overwrite", action="store_true", help="remove the run in --out and start again")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    add_config_arguments(train.add_argument_group("config fields"), TrainConfig, aliases={"dataset": ("--data",)})
    train.set_defaults(run=_train)

    commands.add_parser("version", help="print the version").set_defaults(
        run=lambda _: print(f"autodata {autodata.__version__}") or 0
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from autodata._imports import MissingExtraError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, FloatingPointError, MissingExtraError) as error:
        print(f"autodata: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f"; continue with: autodata train --out {out} --resume" if out else ""
        print(f"autodata: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``autodata ... | head``): end quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
