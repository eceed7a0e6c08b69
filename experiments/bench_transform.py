"""Per-image speed of PolicyTransform against torchvision v2's own AutoAugment, in one process.

Both apply AutoAugment's CIFAR-10 policy (autodata's ``autoaugment_cifar10`` and torchvision
v2 ``AutoAugment(AutoAugmentPolicy.CIFAR10)``) image by image, as a ``Dataset.__getitem__``
does, to the same synthetic uint8 (3, 32, 32) images. The two run interleaved in rounds
(A, B, A, B, ...) and each keeps its best round, so load on a shared machine hits both
alike; the ratio is autodata's time per image over torchvision's (<= 1.5 is the goal, below
1 is faster). Rows also time a tv_tensors sample (image + mask + boxes) and RandAugment.

Usage:
    OMP_NUM_THREADS=1 python experiments/bench_transform.py --n 2000 --rounds 5
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from autodata.augment import PolicyTransform, load_policy


def _round(transform: Callable[..., object], samples: list[object]) -> float:
    start = time.perf_counter()
    for sample in samples:
        transform(sample)
    return (time.perf_counter() - start) / len(samples)


def compare(ours: Callable[..., object], theirs: Callable[..., object], samples: list[object],
            rounds: int) -> tuple[float, float]:
    """Best seconds per sample of each, measured in alternating rounds."""
    _round(ours, samples[:50]), _round(theirs, samples[:50])  # warm-up
    best_ours = best_theirs = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, _round(ours, samples))
        best_theirs = min(best_theirs, _round(theirs, samples))
    return best_ours, best_theirs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="images per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    images = list(torch.randint(0, 256, (args.n, 3, args.size, args.size), dtype=torch.uint8, generator=g))
    masks = torch.randint(0, 10, (args.n, args.size, args.size), dtype=torch.uint8, generator=g)
    box = [[4.0, 4.0, args.size - 8.0, args.size - 6.0]]
    samples = [{"image": tv_tensors.Image(im), "mask": tv_tensors.Mask(m),
                "boxes": tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(args.size, args.size))}
               for im, m in zip(images, masks)]
    rows = [
        ("AutoAugment CIFAR-10, uint8 tensor", PolicyTransform(load_policy("autoaugment_cifar10"), seed=0),
         v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10), images),
        ("AutoAugment CIFAR-10, tv_tensors.Image", PolicyTransform(load_policy("autoaugment_cifar10"), seed=0),
         v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10), [tv_tensors.Image(im) for im in images]),
        ("RandAugment(2, 9) vs v2.RandAugment", PolicyTransform(load_policy("randaugment"), seed=0),
         v2.RandAugment(num_ops=2, magnitude=9), images),
        ("RandAugment, image+mask+boxes dict", PolicyTransform(load_policy("randaugment"), seed=0),
         v2.Compose([v2.RandomAffine(degrees=30, translate=(0.45, 0.45), shear=(-17, 17, -17, 17)),
                     v2.ColorJitter(0.9, 0.9, 0.9)]), samples),
    ]
    print(f"torch {torch.__version__}, torchvision v2, 1 thread, {args.size}x{args.size} uint8, "
          f"{args.n} images x {args.rounds} rounds (best round)")
    print(f"{'pipeline':40s} {'autodata us/img':>16s} {'torchvision us/img':>19s} {'ratio':>7s}")
    for label, ours, theirs, data in rows:
        a, b = compare(ours, theirs, data, args.rounds)
        print(f"{label:40s} {a * 1e6:16.1f} {b * 1e6:19.1f} {a / b:7.2f}")


if __name__ == "__main__":
    main()
