"""Search an augmentation policy (DADA style) and save it as a policy file.

The anchors' setting is the default (:func:`autodata.search.search_config`): reduced CIFAR-10
(4,000 images, half of them the meta split that steers the policy), WRN-40-2, 20 epochs (a
GPU job). Every flag of ``autodata train`` is accepted on top. The shipped
``policies/dada_reduced_cifar10.json`` was made on 2 CPU cores with a smaller model and fewer
epochs; BENCHMARKS.md gives the exact command.

Usage:
    AUTODATA_DATA=../shared/data python experiments/search_policy.py --device cuda \\
        --out policies/dada_reduced_cifar10.json
"""
from __future__ import annotations

import argparse

import torch

from autodata._argparse import add_config_arguments, config_overrides
from autodata.augment import save_policy
from autodata.search import search_config, search_policy
from autodata.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    add_config_arguments(parser, TrainConfig, search_config(device=device))
    parser.add_argument("--keep", type=int, default=25, help="sub-policies kept in the exported policy")
    parser.add_argument("--out", required=True, help="where to write the policy file")
    args = parser.parse_args()
    try:
        config = search_config(**{"device": device, **config_overrides(TrainConfig, args)})
    except ValueError as err:
        parser.error(str(err))
    print(config.to_dict(), flush=True)

    def log(record: dict) -> None:
        print(f"  epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  test {record['test_accuracy']:6.2f}%  "
              f"{record['train_seconds']:6.1f}s", flush=True)

    result = search_policy(config, keep=args.keep, log=log)
    save_policy(result.policy, args.out)
    print(f"search took {result.seconds:.0f}s; wrote {args.out}")
    stage = result.policy.stages[0]
    for w, sub in sorted(zip(stage.probabilities, stage.sub_policies), key=lambda t: -t[0])[:5]:
        ops = ", ".join(f"{op.name}(p={op.probability:.2f}, m={op.magnitude:.2f})" for op in sub.ops)
        print(f"  weight {w:.3f}: {ops}")


if __name__ == "__main__":
    main()
