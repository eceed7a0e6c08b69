"""A complete, plain PyTorch training loop with autodata added: learned weights and augmentation.

Everything here is the user's own loop (data, model, optimizer, scheduler, autocast); the lines
marked ``# autodata`` are all that autodata adds. The augmentation policy runs on ``[0, 1]``
images, so the model normalises its input itself (``with_normalization``).

Usage:
    python experiments/wrap_loop.py                                   # bundled digits, CPU
    AUTODATA_DATA=../shared/data python experiments/wrap_loop.py --dataset cifar10 --model resnet32 \
        --n-train 5000 --epochs 5
    python experiments/wrap_loop.py --device cuda --bf16 ...          # bf16 autocast on a GPU
"""
from __future__ import annotations

import argparse

import torch

import autodata  # autodata
from autodata.augment import DifferentiablePolicy, all_pairs  # autodata
from autodata.data import DeviceLoader, dataset_stats, load_dataset, meta_split
from autodata.models import create_model
from autodata.models.normalize import with_normalization
from autodata.recipes import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--n-train", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)

    # ---- the user's data, model, optimizer and scheduler
    train = load_dataset(args.dataset, train=True)
    test = load_dataset(args.dataset, train=False)
    if args.n_train:
        train = train.subset(meta_split(train.labels, per_class=args.n_train // train.num_classes).meta_indices)
    split = meta_split(train.labels, per_class=10, seed=0)
    loader = DeviceLoader.from_dataset(train.subset(split.train_indices), 128, device=device, mean=None, std=None)
    meta_loader = DeviceLoader.from_dataset(train.subset(split.meta_indices), 100, device=device, mean=None, std=None)
    test_loader = DeviceLoader.from_dataset(test, 500, device=device, mean=None, std=None, crop_padding=0, flip=False)
    stats = dataset_stats(train.name)
    model = with_normalization(
        create_model(args.model, in_channels=train.images.shape[1], num_classes=train.num_classes), stats.mean, stats.std
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=args.epochs * len(loader))

    # ---- autodata: a learned policy and learned sample weights, one bilevel step for both
    policy = DifferentiablePolicy(all_pairs(("Rotate", "ShearX", "TranslateY", "Contrast", "Brightness", "Cutout")))  # autodata
    learner = autodata.MetaLearner(model, optimizer, augment=policy.to(device), reweighter=autodata.MetaWeightNet().to(device),  # autodata
                                   meta_data=meta_loader, method="fd")  # autodata

    for epoch in range(args.epochs):
        model.train()
        for x, y in loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = learner.step(x, y)  # autodata (was: F.cross_entropy(model(x), y))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        accuracy = evaluate(model, test_loader)
        weights = learner.last.weights
        print(f"epoch {epoch + 1}: train loss {float(loss.detach()):.3f}, test accuracy {accuracy:.2f}%, "
              f"last meta loss {learner.last.meta_loss:.3f}, weights mean {float(weights.mean()):.3f} "
              f"min {float(weights.min()):.3f}")
    top = sorted(zip(policy.weights().tolist(), policy.sub_policies), reverse=True)[:3]
    print("learned sub-policies, top 3 by weight:", ", ".join(f"{'+'.join(s)} ({w:.3f})" for w, s in top))


if __name__ == "__main__":
    main()
