"""Benchmark (b): trials per minute with 1 and 2 worker processes, embedded journal and PostgreSQL.

Each trial trains the small CNN on 400 digits images for 2 epochs (about a second), so the
figure shows what the storage and the workers add. The wall time runs from the start of
``autodata.tune.tune`` (which spawns the second worker) to the export of the results.

Usage (the figures in BENCHMARKS.md):
    eval "$(.ci/postgres.sh)"        # optional: adds the PostgreSQL rows
    OMP_NUM_THREADS=1 python experiments/tune_workers.py
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--postgres", default=os.environ.get("AUTODATA_TEST_POSTGRES_URL"), help="a PostgreSQL URL")
    args = parser.parse_args()

    import optuna

    from autodata.train import TrainConfig
    from autodata.tune import SearchSpace, TuneSettings, redact_url, tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = TrainConfig(dataset="digits", n_train=400, val_per_class=10, epochs=2, batch_size=64)
    space = SearchSpace.of({"lr": {"low": 0.01, "high": 0.3, "log": True}})
    storages = [("journal (embedded)", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
    print(f"{args.trials} trials of 2 epochs on 400 digits images, no pruning, {os.cpu_count()} CPU cores, OMP_NUM_THREADS=1")
    print(f"{'storage':<20} {'workers':>7} {'seconds':>8} {'trials/min':>10}")
    for name, storage in storages:
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                settings = TuneSettings(base, space, out=out, storage=storage, study_name=f"bench-{uuid.uuid4().hex[:8]}",
                                        n_trials=args.trials, workers=workers, pruner="none")
                start = time.perf_counter()
                study = tune(settings)
                seconds = time.perf_counter() - start
                done = sum(t.state.name == "COMPLETE" for t in study.trials)
            print(f"{name:<20} {workers:>7} {seconds:>8.1f} {60 * done / seconds:>10.1f}")
    if args.postgres:
        print(f"PostgreSQL: {redact_url(args.postgres)}")


if __name__ == "__main__":
    main()
