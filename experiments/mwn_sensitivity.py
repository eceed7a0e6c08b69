"""Meta-Weight-Net's stall watch, traced: per meta step, the batch's mean of ``1 - sigmoid(z)``
(``MetaWeightNet.sensitivity``) of the released net (``reweighter_center="off"``), summarised per epoch.

What set ``MetaWeightNet``'s ``stall_threshold`` (issue #9; BENCHMARKS.md, "Why `exact` stalled"):
runs that learn stay far above it (0.19 and up), stalled ones sit below it (0.007-0.03), and an
every-5 run that drifted at 0.059-0.092 with near-uniform weights moved it from 0.05 to 0.1.

Usage (the figures in BENCHMARKS.md):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/mwn_sensitivity.py
    # one pair-flip run with the default net (the watch on), e.g. the every-5 stall of seed 1:
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/mwn_sensitivity.py --method mwn-jvp-online5 --seed 1
"""
from __future__ import annotations

import argparse
import statistics

from autodata.train import TrainConfig, build_run, parse_method


def trace(name: str, config: TrainConfig, epochs: int) -> None:
    """Per epoch: the watch's input over the steps (after each meta step), the weights' spread,
    the guard's fallbacks, whether the net is centred, and the test accuracy."""
    run = build_run(config)
    mwn = run.learner.reweighter
    for epoch in range(epochs):
        seen: list[float] = []
        spread: list[float] = []
        fallbacks = 0

        def watch(*args, **kwargs) -> None:
            nonlocal fallbacks
            seen.append(mwn.sensitivity)
            info = run.learner.last
            if info is not None:
                spread.append(float(info.weights.std()))
                fallbacks += bool(info.fallback)

        run.run_epoch(watch)
        q = sorted(v for v in seen if v == v)  # (NaN before the first meta step)
        below = " ".join(f"{t} {sum(v < t for v in q)}" for t in (0.02, 0.03, 0.05, 0.1))
        print(f"{name} epoch {epoch + 1}: n {len(q)} min {q[0]:.4f} p10 {q[len(q) // 10]:.4f} "
              f"median {statistics.median(q):.4f} max {q[-1]:.4f} below: {below} "
              f"weights s.d. {statistics.median(spread):.4f} guard fallbacks {fallbacks} "
              f"centred {bool(mwn.centred)} test {run.history[-1]['test_accuracy']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", help="trace one pair-flip Fashion-MNIST run of this method string with the "
                                         "default net (e.g. mwn-jvp-online5); without it, the figures behind the threshold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    if args.method:
        config = TrainConfig(dataset="fashion_mnist", noise="pairflip", noise_rate=0.4, n_train=12000,
                             epochs=args.epochs, meta_per_class=100, seed=args.seed).replace(**parse_method(args.method))
        trace(f"{args.method} s{args.seed}", config, args.epochs)
        return
    mwn = parse_method("mwn")
    demo = dict(dataset="digits", model="small_cnn", noise="symmetric", noise_rate=0.4, epochs=30, meta_per_class=10,
                batch_size=128, meta_batch_size=100, lr=0.05, reweighter_center="off")
    for seed in (0, 3):
        trace(f"demo s{seed}", TrainConfig(**demo, seed=seed).replace(**mwn), 30)
    trace("digits sym60 20ep s0", TrainConfig(dataset="digits", noise="symmetric", noise_rate=0.6, epochs=20,
                                              meta_per_class=10, batch_size=32, meta_batch_size=50,
                                              reweighter_center="off", guard=False, seed=0).replace(**mwn), 20)
    pairflip = dict(dataset="fashion_mnist", noise="pairflip", noise_rate=0.4, n_train=12000, epochs=10,
                    meta_per_class=100, reweighter_center="off")
    for seed in (8, 22):
        trace(f"fmnist pairflip s{seed}", TrainConfig(**pairflip, seed=seed).replace(**mwn), 5)


if __name__ == "__main__":
    main()
