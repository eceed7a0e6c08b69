"""Robust training on noisy labels: cross-entropy vs Meta-Weight-Net vs L2RW vs clean labels.

A thin command line over :func:`autodata.recipes.run_noisy_labels` (Meta-Weight-Net's setup:
a clean meta split taken before corruption, the same model, epochs, batches and seed for every
method; ``clean`` is the ceiling).

Usage (the figures in BENCHMARKS.md):
    AUTODATA_DATA=../shared/data python experiments/noisy_labels.py --dataset fashion_mnist \\
        --noise symmetric --rate 0.4 --n-train 20000 --epochs 10 --meta-per-class 100 \\
        --methods ce,mwn,l2rw,clean,mwn-last,mwn-every5 --out runs/fmnist_sym40.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from autodata._argparse import add_config_arguments, config_from_arguments
from autodata.recipes import NOISY_LABEL_METHODS, NoisyLabelConfig, run_noisy_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_arguments(parser, NoisyLabelConfig, NoisyLabelConfig(dataset="fashion_mnist", meta_per_class=100))
    parser.set_defaults(device="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", default="ce,mwn,l2rw,clean")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(NOISY_LABEL_METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(NOISY_LABEL_METHODS)}")
    config = config_from_arguments(NoisyLabelConfig, args)

    print(f"{config}\ntorch {torch.__version__}")
    results = []
    for method in methods:
        def log(record, method=method) -> None:
            print(f"  {method:<10} epoch {record.epoch:3d}  loss {record.train_loss:.4f}  "
                  f"test {record.test_accuracy:6.2f}%  {record.seconds:6.1f}s", flush=True)
        results.append(run_noisy_labels(config, method, log))
    print(f"\n{'method':<11} {'best %':>7} {'final %':>8} {'time s':>7}")
    for r in results:
        print(f"{r['method']:<11} {r['best']:7.2f} {r['final']:8.2f} {r['seconds']:7.0f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"methods": methods, "results": results}, indent=1))


if __name__ == "__main__":
    main()
