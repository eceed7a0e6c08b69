"""``autodata demo``: the README's main job on the embedded digits.

Trains a small CNN on scikit-learn's bundled 8x8 digits with 40% symmetric label noise, once
with plain cross-entropy and once with a Meta-Weight-Net steered by 10 clean images per class,
and prints both test accuracies.
"""
from __future__ import annotations

import argparse
from typing import Any

import autodata
from autodata.cli._common import say

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from autodata.cli._progress import progress_reporter
    from autodata.train import TrainConfig, build_run, parse_method

    base = TrainConfig(
        dataset="digits", model="small_cnn", noise=args.noise, noise_rate=args.rate, epochs=args.epochs,
        meta_per_class=10, batch_size=128, meta_batch_size=100, lr=0.05, seed=args.seed,
    )
    say(args.quiet, f"autodata {autodata.__version__} demo: digits (scikit-learn, 8x8), {base.noise} label noise "
                    f"{base.noise_rate:.0%}, {base.meta_per_class} clean images per class as the meta set, "
                    f"small CNN, {base.epochs} epochs")
    finals: dict[str, float] = {}
    realised = 0.0
    for method, title in (("ce", "cross-entropy"), ("mwn", "Meta-Weight-Net")):
        run = build_run(base.replace(**parse_method(method)))
        with progress_reporter(base.epochs, quiet=args.quiet, force=args.progress, desc=title) as progress:
            while not run.finished:
                progress.on_epoch(run, run.run_epoch(progress.on_step))
        history = run.history
        seconds = sum(r["train_seconds"] + r["eval_seconds"] for r in history)
        finals[method] = history[-1]["test_accuracy"]
        best = max(r["test_accuracy"] for r in history)
        print(f"  {title:<16} test accuracy {finals[method]:6.2f}% (best {best:.2f}%, {seconds:.0f}s)", flush=True)
        realised = run.data.noise.noise_rate if run.data.noise is not None else 0.0
    print(f"realised noise rate {realised:.3f}; Meta-Weight-Net - cross-entropy = {finals['mwn'] - finals['ce']:+.2f} points")
    return 0


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="noisy-label training on the bundled digits: cross-entropy vs MWN",
        description="Noisy-label training on the bundled digits: cross-entropy vs Meta-Weight-Net.",
        epilog="example:\n  autodata demo --rate 0.6 --epochs 10",
    )
    demo.add_argument("--noise", default="symmetric", choices=["symmetric", "pairflip"])
    demo.add_argument("--rate", type=float, default=0.4, help="label noise rate in [0, 1]")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="print only the results")
    from autodata.cli._progress import add_progress_arguments

    add_progress_arguments(demo)
    demo.set_defaults(run=_run)
