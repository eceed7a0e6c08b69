"""Population throughput: N members trained with torch.func.vmap vs the same N one after another.

Both engines train the same population on the same batches of PBA-augmented images (the
augmentation is timed separately: it is the same code for both). Prints images/s of
population training (forward, backward, SGD step; N x B images per step).

Usage (the figures in the PBA report):
    OMP_NUM_THREADS=1 python experiments/pba_throughput.py --population 8 --steps 6
    OMP_NUM_THREADS=1 python experiments/pba_throughput.py --population 8 --image-size 8 --channels 1 --batch-size 64
    python experiments/pba_throughput.py --device cuda --model wrn_40_2 --population 16 --steps 20
"""
from __future__ import annotations

import argparse
import time

import torch

from autodata.models import create_model, with_normalization
from autodata.pba import LoopPopulation, PopulationAugment, VmapPopulation
from autodata.schedules import PBAPolicy
from autodata.train import TrainConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    n, b, c, s = args.population, args.batch_size, args.channels, args.image_size
    config = TrainConfig(model=args.model, device=args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, c, s, s, generator=g).to(device)
    y = torch.randint(0, 10, (b,), generator=g).to(device)
    policies = [PBAPolicy(tuple(int(v) for v in torch.randint(0, 10, (60,), generator=g))) for _ in range(n)]
    augment = PopulationAugment(policies, (0.5,) * c, list(range(n)), device)
    xs = augment(x)  # (N, B, C, H, W)
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        augment(x)
    _sync(device)
    aug_rate = n * b * args.steps / (time.perf_counter() - start)

    def models() -> list[torch.nn.Module]:
        torch.manual_seed(0)
        return [with_normalization(create_model(args.model, in_channels=c, num_classes=10), (0.5,) * c, (0.25,) * c).to(device)
                for _ in range(n)]

    rates = {}
    for name, cls in (("loop", LoopPopulation), ("vmap", VmapPopulation)):
        pop = cls(models(), config)
        pop.step(xs, y, 0.1)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            pop.step(xs, y, 0.1)
        _sync(device)
        rates[name] = n * b * args.steps / (time.perf_counter() - start)
    print(f"| model | device | N | B | image | loop img/s | vmap img/s | vmap/loop | PBA augment img/s |")
    print(f"|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.model} | {args.device} | {n} | {b} | {c}x{s}x{s} | {rates['loop']:.0f} | {rates['vmap']:.0f} | "
          f"{rates['vmap'] / rates['loop']:.2f}x | {aug_rate:.0f} |")


if __name__ == "__main__":
    main()
