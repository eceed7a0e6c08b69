"""Robust training on noisy labels: cross-entropy vs Meta-Weight-Net vs L2RW vs clean labels.

A thin command line over :func:`autodata.recipes.noisy_label_study` (Meta-Weight-Net's setup:
a clean meta split taken before corruption, the same model, epochs, batches and seed for every
method; ``clean`` is the ceiling). Every flag of ``autodata train`` is accepted; ``--methods``
lists method strings (``ce,mwn,l2rw,clean,mwn-last2,mwn-online,mwn-every5``).

Usage (the figures in BENCHMARKS.md):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/noisy_labels.py \\
        --dataset fashion_mnist --noise symmetric --noise-rate 0.4 --n-train 12000 --epochs 10 \\
        --meta-per-class 100 --methods ce,mwn,l2rw,clean --out runs/fmnist_sym40.json
"""
from __future__ import annotations

import argparse

import torch

from autodata._argparse import add_config_arguments, config_from_arguments
from autodata._io import write_json_atomic
from autodata.recipes import noisy_label_study
from autodata.train import TrainConfig, parse_method

DEFAULTS = dict(dataset="fashion_mnist", noise="symmetric", noise_rate=0.4, meta_per_class=100,
                device="cuda" if torch.cuda.is_available() else "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_arguments(parser, TrainConfig, TrainConfig(**DEFAULTS))
    parser.add_argument("--methods", default="ce,mwn,l2rw,clean")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    methods = args.methods.split(",")
    try:
        for m in methods:
            parse_method(m)
        base = config_from_arguments(TrainConfig, args, DEFAULTS)
    except ValueError as err:
        parser.error(str(err))

    print(f"{base.to_dict()}\ntorch {torch.__version__}")

    def log(name: str, record: dict) -> None:
        print(f"  {name:<10} epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  "
              f"test {record['test_accuracy']:6.2f}%  {record['train_seconds']:6.1f}s", flush=True)

    results = noisy_label_study(base, methods, log)
    print(f"\n{'method':<11} {'best %':>7} {'final %':>8} {'time s':>7}")
    for r in results:
        print(f"{r['name']:<11} {r['best']:7.2f} {r['final']:8.2f} {r['seconds']:7.0f}")
    if args.out:
        write_json_atomic(args.out, {"methods": methods, "results": results})


if __name__ == "__main__":
    main()
