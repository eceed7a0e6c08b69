"""Benchmark (a): TPE with median pruning vs a dense grid over lr and weight decay.

Fashion-MNIST, the small CNN, a seeded subset of the training set, a clean validation split of
50 images per class (held out from training; never the test set), a few epochs, on the CPU.
Both searches select on validation accuracy; the test accuracy of each search's best config
is measured once afterwards (the run is deterministic, so it is that trial's model again).
Goal: TPE + pruning within 0.5 points of the grid's best validation accuracy for at most a
third of the grid's epochs.

Usage (the figures in BENCHMARKS.md):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/tune_vs_grid.py
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--grid", type=int, default=5, help="values per axis of the grid")
    parser.add_argument("--trials", type=int, default=12, help="TPE trials")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    args = parser.parse_args()

    import optuna

    from autodata.train import TrainConfig, build_run
    from autodata.tune import Objective, SearchSpace, create_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = TrainConfig(dataset="fashion_mnist", data_root=os.environ.get("AUTODATA_DATA"), n_train=args.n_train,
                       val_per_class=50, epochs=args.epochs, batch_size=128)
    space = SearchSpace.of({"lr": {"low": 3e-3, "high": 0.3, "log": True},
                            "weight_decay": {"low": 1e-5, "high": 1e-2, "log": True}})
    objective = Objective(base, space, test=False)

    lrs = np.geomspace(3e-3, 0.3, args.grid).tolist()
    wds = np.geomspace(1e-5, 1e-2, args.grid).tolist()
    results = {}
    for name, study in (
        ("grid", optuna.create_study(direction="maximize",
                                     sampler=optuna.samplers.GridSampler({"lr": lrs, "weight_decay": wds}),
                                     pruner=create_pruner("none", max_epochs=args.epochs))),
        ("tpe+median", optuna.create_study(direction="maximize",
                                           sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=4),
                                           pruner=create_pruner("median", max_epochs=args.epochs))),
    ):
        start = time.perf_counter()
        study.optimize(objective, n_trials=len(lrs) * len(wds) if name == "grid" else args.trials)
        seconds = time.perf_counter() - start
        best = study.best_trial
        run = build_run(base.replace(**best.params))
        run.fit()  # deterministic: the best trial's model again, for its test accuracy
        results[name] = {
            "trials": len(study.trials),
            "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
            "epochs": sum(t.user_attrs.get("epochs", 0) for t in study.trials),
            "val": best.value, "test": run.evaluate("test")["accuracy"], "seconds": seconds,
            "lr": best.params["lr"], "wd": best.params["weight_decay"],
        }
    print(f"Fashion-MNIST, small CNN, n_train {args.n_train}, val 50/class, {args.epochs} epochs, CPU (1 thread)")
    print(f"{'search':<12} {'trials':>6} {'pruned':>6} {'epochs':>6} {'best val %':>10} {'its test %':>10} "
          f"{'lr':>8} {'wd':>8} {'minutes':>7}")
    for name, r in results.items():
        print(f"{name:<12} {r['trials']:>6} {r['pruned']:>6} {r['epochs']:>6} {r['val']:>10.2f} {r['test']:>10.2f} "
              f"{r['lr']:>8.3g} {r['wd']:>8.2g} {r['seconds'] / 60:>7.1f}")
    grid, tpe = results["grid"], results["tpe+median"]
    print(f"TPE+pruning: {tpe['val'] - grid['val']:+.2f} val points for {tpe['epochs'] / grid['epochs']:.2f} of the grid's epochs "
          f"(goal: >= -0.5 points for <= 0.33)")


if __name__ == "__main__":
    main()
