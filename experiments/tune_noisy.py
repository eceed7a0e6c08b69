"""Benchmark (c): tuning lr and reweighter_lr of Meta-Weight-Net on 40% pair-flip Fashion-MNIST.

The defaults (lr 0.05, reweighter_lr 1e-3) against the best of a TPE study with median
pruning over lr and reweighter_lr, both MWN with 10 clean meta images per class; selection on
a clean validation split (50 per class, held out before the noise), test accuracy reported.
Plain cross-entropy with the default lr is shown for reference.

Usage (the figures in BENCHMARKS.md):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/tune_noisy.py
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    args = parser.parse_args()

    import optuna

    from autodata.train import TrainConfig, build_run
    from autodata.tune import Objective, SearchSpace, create_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = TrainConfig(dataset="fashion_mnist", data_root=os.environ.get("AUTODATA_DATA"), n_train=args.n_train,
                       noise="pairflip", noise_rate=0.4, meta_per_class=10, val_per_class=50, reweighter="mwn",
                       epochs=args.epochs, batch_size=128)

    def measure(config: TrainConfig) -> tuple[float, float]:
        run = build_run(config)
        run.fit()
        return run.evaluate("val")["accuracy"], run.evaluate("test")["accuracy"]

    rows = []
    start = time.perf_counter()
    rows.append(("cross-entropy, defaults", base.replace(reweighter="none"), *measure(base.replace(reweighter="none")), 0))
    rows.append(("MWN, defaults", base, *measure(base), 0))
    space = SearchSpace.of({"lr": {"low": 5e-3, "high": 0.3, "log": True},
                            "reweighter_lr": {"low": 1e-4, "high": 3e-2, "log": True}})
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=4),
                                pruner=create_pruner("median", max_epochs=args.epochs))
    study.optimize(Objective(base, space, test=False), n_trials=args.trials)
    best = base.replace(**study.best_params)
    epochs = sum(t.user_attrs.get("epochs", 0) for t in study.trials)
    rows.append((f"MWN, tuned ({args.trials} trials)", best, *measure(best), epochs))
    print(f"Fashion-MNIST, 40% pair-flip noise, n_train {args.n_train}, meta 10/class, val 50/class, "
          f"{args.epochs} epochs, small CNN, CPU (1 thread); {(time.perf_counter() - start) / 60:.1f} minutes")
    print(f"{'setting':<26} {'lr':>8} {'rw_lr':>8} {'val %':>7} {'test %':>7} {'study epochs':>12}")
    for name, config, val, test, spent in rows:
        print(f"{name:<26} {config.lr:>8.3g} {config.reweighter_lr:>8.3g} {val:>7.2f} {test:>7.2f} {spent:>12}")
    print(f"pruned {sum(t.state.name == 'PRUNED' for t in study.trials)} of {len(study.trials)} trials")


if __name__ == "__main__":
    main()
