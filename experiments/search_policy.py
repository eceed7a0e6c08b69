"""Search an augmentation policy (DADA style) and save it as a policy file.

The anchors' setting is the default: reduced CIFAR-10 (4,000 images in two halves), WRN-40-2,
20 epochs (a GPU job). The shipped ``policies/dada_reduced_cifar10.json`` was made on 2 CPU
cores with a smaller model and fewer epochs; BENCHMARKS.md gives the exact command.

Usage:
    AUTODATA_DATA=../shared/data python experiments/search_policy.py --device cuda \\
        --out policies/dada_reduced_cifar10.json
"""
from __future__ import annotations

import argparse

import torch

from autodata._argparse import add_config_arguments, config_from_arguments
from autodata.augment import save_policy
from autodata.search import PolicySearchConfig, search_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_arguments(parser, PolicySearchConfig)
    parser.set_defaults(device="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True, help="where to write the policy file")
    args = parser.parse_args()
    config = config_from_arguments(PolicySearchConfig, args)
    print(config, flush=True)

    def log(record) -> None:
        print(f"  epoch {record.epoch:3d}  loss {record.train_loss:.4f}  val {record.test_accuracy:6.2f}%  "
              f"{record.seconds:6.1f}s", flush=True)

    result = search_policy(config, log)
    save_policy(result.policy, args.out)
    print(f"search took {result.seconds:.0f}s; wrote {args.out}")
    for w, sub in sorted(zip(result.policy.stages[0].probabilities, result.policy.stages[0].sub_policies),
                         key=lambda t: -t[0])[:5]:
        ops = ", ".join(f"{op.name}(p={op.probability:.2f}, m={op.magnitude:.2f})" for op in sub.ops)
        print(f"  weight {w:.3f}: {ops}")


if __name__ == "__main__":
    main()
