"""Images/second of applying the AutoAugment CIFAR-10 policy: batched module vs per image.

Same policy on both sides: autodata's ``policies/autoaugment_cifar10.json`` (25 two-op
sub-policies) applied by :class:`autodata.augment.PolicyAugment` to whole batches, against
torchvision v2's ``AutoAugment(AutoAugmentPolicy.CIFAR10)`` applied image by image as a
``DataLoader`` does: an in-process loop, and a ``DataLoader`` with worker processes. A
second row times the fixed two-op sub-policy Rotate(p=0.7, bin 2) + TranslateX(p=0.3,
bin 9) (autodata) against torchvision v2 ``RandomApply`` of ``RandomAffine`` per image.

Data: synthetic random uint8 32x32x3 images (a speed benchmark; pixel content does not
change the work done). Every pipeline starts from the uint8 batch or images and ends with
augmented images; autodata's side includes the uint8 -> float conversion, torchvision's
stays in uint8.

Usage:
    python experiments/bench_augment_speed.py --n 20000 --batch-size 1024 --workers 2 --threads 1
    python experiments/bench_augment_speed.py --device cuda --n 1000000 --batch-size 65536 --workers 0
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from autodata.augment import OpConfig, Policy, PolicyAugment, SubPolicy, load_policy

POLICIES = Path(__file__).resolve().parents[1] / "policies"


class _Images(Dataset):
    def __init__(self, images: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


def _best_rate(run: Callable[[], None], n: int, repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def _batched(module: PolicyAugment, images: torch.Tensor, batch_size: int, device: torch.device) -> Callable[[], None]:
    generator = torch.Generator(device=device).manual_seed(0)
    images = images.to(device)

    def run() -> None:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].float().div_(255)  # (B, 3, 32, 32)
            out = module(x, module.sample(x.shape[0], generator, device=device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        del out

    return run


def _per_image(transform: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        for img in images:
            transform(img)

    return run


def _loader(
    transform: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, workers: int
) -> Callable[[], None]:
    loader = DataLoader(_Images(images, transform), batch_size=256, num_workers=workers, persistent_workers=True)

    def run() -> None:
        for _ in loader:
            pass

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="images for the batched module")
    parser.add_argument("--n-per-image", type=int, default=4_000, help="images for the per-image pipelines")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (0 skips the DataLoader row)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes, best kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in this process")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=g)
    few = images[: args.n_per_image]

    fixed = Policy.single_stage(
        "rotate_translate", [SubPolicy((OpConfig("Rotate", 0.7, 2 / 9), OpConfig("TranslateX", 0.3, 1.0)))]
    )
    tv_fixed = v2.Compose([
        v2.RandomApply([v2.RandomAffine(degrees=(-30 * 2 / 9, 30 * 2 / 9))], p=0.7),
        v2.RandomApply([v2.RandomAffine(degrees=0, translate=(150 / 331, 0))], p=0.3),
    ])
    rows = [
        ("autoaugment_cifar10", load_policy(POLICIES / "autoaugment_cifar10.json"),
         v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)),
        ("Rotate+TranslateX", fixed, tv_fixed),
    ]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, 32x32 synthetic uint8")
    print(f"{'policy':22s} {'pipeline':42s} {'images/s':>12s}")
    for label, policy, tv in rows:
        ours = _best_rate(_batched(PolicyAugment(policy, seed=0).to(device), images, args.batch_size, device),
                          args.n, args.repeats)
        loop = _best_rate(_per_image(tv, few), len(few), args.repeats)
        print(f"{label:22s} {'autodata PolicyAugment, batch ' + str(args.batch_size):42s} {ours:12,.0f}")
        print(f"{label:22s} {'torchvision v2, per-image loop':42s} {loop:12,.0f}")
        line = f"ratio {ours / loop:.1f}x vs per-image loop"
        if args.workers > 0 and label == "autoaugment_cifar10":
            dl = _best_rate(_loader(tv, few, args.workers), len(few), args.repeats)
            print(f"{label:22s} {f'torchvision v2, DataLoader {args.workers} workers':42s} {dl:12,.0f}")
            line += f", {ours / dl:.1f}x vs DataLoader"
        print(f"{label:22s} {line}")


if __name__ == "__main__":
    main()
