"""Quality of augmentation policies: the same model trained with each policy, side by side.

Every run uses the same data subset, model, optimizer, schedule, epochs and seed, with
crop (pad 4) and flip as the base augmentation; the policy is applied on top of it, to whole
batches on the device (``PolicyAugment``), before input normalisation. ``identity`` is the
crop/flip-only baseline.

Usage (the figures in BENCHMARKS.md):
    AUTODATA_DATA=../shared/data python experiments/augment_quality.py --model resnet20 \\
        --n-train 5000 --epochs 20 --policies identity,randaugment,trivialaugment,dada_reduced_cifar10
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from autodata import MetaLearner
from autodata.augment import PolicyAugment, load_policy
from autodata.data import DeviceLoader, dataset_stats, load_dataset, meta_split
from autodata.models import create_model
from autodata.models.normalize import with_normalization
from autodata.recipes import fit

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def run(args: argparse.Namespace, policy_name: str) -> dict:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train = load_dataset(args.dataset, train=True)
    test = load_dataset(args.dataset, train=False)
    if args.n_train:
        train = train.subset(meta_split(train.labels, per_class=args.n_train // train.num_classes, seed=args.seed).meta_indices)
    if args.n_test:
        test = test.subset(range(args.n_test))
    loader = DeviceLoader.from_dataset(train, args.batch_size, device=device, mean=None, std=None, seed=args.seed)
    test_loader = DeviceLoader.from_dataset(test, 1000, device=device, mean=None, std=None, crop_padding=0,
                                            flip=False, shuffle=False)
    stats = dataset_stats(train.name)
    model = with_normalization(create_model(args.model, num_classes=train.num_classes), stats.mean, stats.std).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    policy = load_policy(POLICIES / f"{policy_name}.json")
    # A fixed policy has no meta-parameters: the learner just applies it, batched, on the device.
    learner = MetaLearner(model, optimizer, augment=PolicyAugment(policy, seed=args.seed).to(device), seed=args.seed)

    def log(record) -> None:
        print(f"  {policy_name:<22} epoch {record.epoch:3d}  loss {record.train_loss:.4f}  "
              f"test {record.test_accuracy:6.2f}%  {record.seconds:6.1f}s", flush=True)

    start = time.perf_counter()
    history = fit(model, optimizer, loader, args.epochs, learner=learner, test_batches=test_loader,
                  scheduler=scheduler, log=log)
    accuracies = [r.test_accuracy for r in history]
    return {"policy": policy_name, "best": max(accuracies), "final": accuracies[-1], "curve": accuracies,
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--policies", default="identity,randaugment,trivialaugment,dada_reduced_cifar10")
    parser.add_argument("--n-train", type=int, default=5000, help="class-balanced subset (0: all)")
    parser.add_argument("--n-test", type=int, default=0, help="first n test images (0: all)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    names = args.policies.split(",")
    missing = [n for n in names if not (POLICIES / f"{n}.json").exists()]
    if missing:
        parser.error(f"no policy file for {missing} in {POLICIES}")
    print(f"{vars(args)}\ntorch {torch.__version__}")
    results = [run(args, name) for name in names]
    print(f"\n{'policy':<24} {'best %':>7} {'final %':>8} {'time s':>7}")
    for r in results:
        print(f"{r['policy']:<24} {r['best']:7.2f} {r['final']:8.2f} {r['seconds']:7.0f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
