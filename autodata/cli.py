"""The ``autodata`` command line.

``autodata demo`` is the main job on the embedded default: scikit-learn's bundled digits with
40% symmetric label noise, a small CNN trained with plain cross-entropy and with a
Meta-Weight-Net steered by 10 clean images per class; it prints both test accuracies.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import autodata

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:

    from autodata.recipes import NoisyLabelConfig, run_noisy_labels

    config = NoisyLabelConfig(
        dataset="digits", model="small_cnn", noise=args.noise, rate=args.rate, epochs=args.epochs,
        meta_per_class=10, batch_size=128, meta_batch_size=100, lr=0.05, seed=args.seed,
    )
    print(
        f"autodata {autodata.__version__} demo: digits (scikit-learn, 8x8), {config.noise} label noise "
        f"{config.rate:.0%}, {config.meta_per_class} clean images per class as the meta set, "
        f"small CNN, {config.epochs} epochs"
    )
    results = {}
    for method, title in (("ce", "cross-entropy"), ("mwn", "Meta-Weight-Net")):
        result = run_noisy_labels(config, method)
        results[method] = result
        print(f"  {title:<16} test accuracy {result['final']:6.2f}% (best {result['best']:.2f}%, "
              f"{result['seconds']:.0f}s)", flush=True)
    gain = results["mwn"]["final"] - results["ce"]["final"]
    print(f"realised noise rate {results['ce']['realised_noise_rate']:.3f}; "
          f"Meta-Weight-Net - cross-entropy = {gain:+.2f} points")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autodata",
        description="Learn the data side of training: augmentation policies, sample weights, hyperparameters.",
    )
    parser.add_argument("--version", action="version", version=f"autodata {autodata.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="noisy-label training on the bundled digits: cross-entropy vs MWN")
    demo.add_argument("--noise", default="symmetric", choices=["symmetric", "pairflip"])
    demo.add_argument("--rate", type=float, default=0.4, help="label noise rate in [0, 1]")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    commands.add_parser("version", help="print the version").set_defaults(
        run=lambda _: print(f"autodata {autodata.__version__}") or 0
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"autodata: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
