"""Quality of augmentation policies: the same model trained with each policy, side by side.

A thin command line over :func:`autodata.recipes.policy_study`: every run uses the same data
subset, model, optimizer, schedule, epochs and seed, with crop (pad 4) and flip from the
loader as the base augmentation; the policy is applied on top of it, to whole batches on the
device, before the model's input normalisation. ``identity`` is the crop/flip-only baseline.
Every flag of ``autodata train`` is accepted.

Usage (the figures in BENCHMARKS.md):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/augment_quality.py --model resnet20 \\
        --n-train 5000 --epochs 20 --policies identity,randaugment,trivialaugment,dada_reduced_cifar10
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from autodata._argparse import add_config_arguments, config_from_arguments
from autodata._io import write_json_atomic
from autodata.recipes import policy_study
from autodata.train import TrainConfig

POLICIES = Path(__file__).resolve().parents[1] / "policies"
DEFAULTS = dict(dataset="cifar10", model="resnet20", n_train=5000, epochs=20, lr=0.1, crop_padding=4, flip=True,
                device="cuda" if torch.cuda.is_available() else "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_arguments(parser, TrainConfig, TrainConfig(**DEFAULTS), skip=("augment", "policy"))
    parser.add_argument("--policies", default="identity,randaugment,trivialaugment,dada_reduced_cifar10",
                        help=f"policy names (files in {POLICIES}) or paths")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    files = {}
    for name in args.policies.split(","):
        path = Path(name) if name.endswith(".json") else POLICIES / f"{name}.json"
        if not path.exists():
            parser.error(f"no policy file {path}")
        files[path.stem] = str(path)
    try:
        base = config_from_arguments(TrainConfig, args, DEFAULTS)
    except ValueError as err:
        parser.error(str(err))
    print(f"{base.to_dict()}\ntorch {torch.__version__}")

    def log(name: str, record: dict) -> None:
        print(f"  {name:<22} epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  "
              f"test {record['test_accuracy']:6.2f}%  {record['train_seconds']:6.1f}s", flush=True)

    results = policy_study(base, files, log)
    print(f"\n{'policy':<24} {'best %':>7} {'final %':>8} {'time s':>7}")
    for r in results:
        print(f"{r['name']:<24} {r['best']:7.2f} {r['final']:8.2f} {r['seconds']:7.0f}")
    if args.out:
        write_json_atomic(args.out, {"config": base.to_dict(), "results": results})


if __name__ == "__main__":
    main()
