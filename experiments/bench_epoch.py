"""Wall time of one training epoch of ResNet-32 on CIFAR-10-sized data (the foundation's GPU goal).

50,000 32x32 images (the size of CIFAR-10's training set; pixel values do not change the work,
so random uint8 images stand in when the real set cannot travel to the GPU machine), the
device-resident loader (crop + flip + normalise on the device), SGD with Nesterov momentum,
batch 128, bf16 autocast and channels-last on CUDA, optionally ``torch.compile``. The first epoch
is a warm-up; the best of ``--epochs`` timed epochs is reported.

Usage:
    python experiments/bench_epoch.py --device cuda --epochs 3 [--compile [MODE]] [--fused]
    python experiments/bench_epoch.py --device cuda --epochs 3 --compile reduce-overhead --fused  # CUDA graphs
    python experiments/bench_epoch.py --device cpu --n 2560 --epochs 1   # a smoke run here
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from autodata.data import DeviceLoader, dataset_stats
from autodata.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up")
    parser.add_argument("--model", default="resnet32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile the model, in this mode (bare --compile: 'default'; 'reduce-overhead' "
                             "replays CUDA graphs, which removes the per-kernel launch cost)")
    parser.add_argument("--fused", action="store_true", help="SGD with fused=True (one kernel for the update)")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    g = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, device=device, generator=g)
    labels = torch.randint(0, 10, (args.n,), device=device, generator=g)
    stats = dataset_stats("cifar10")
    loader = DeviceLoader(images, labels, args.batch_size, mean=stats.mean, std=stats.std, channels_last=cuda, drop_last=True)
    model = create_model(args.model, num_classes=10).to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                fused=args.fused or None)
    step_model = torch.compile(model, mode=args.compile) if args.compile else model

    def epoch() -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for x, y in loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = F.cross_entropy(step_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    warm = epoch()
    times = [epoch() for _ in range(args.epochs)]
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"{args.model}, {args.n} images, batch {args.batch_size}, {name}, bf16={cuda}, channels_last={cuda}, "
          f"compile={args.compile or False}, fused SGD={args.fused}, torch {torch.__version__}")
    print(f"warm-up epoch {warm:.2f}s; timed epochs {', '.join(f'{t:.2f}s' for t in times)}; best {min(times):.2f}s "
          f"({args.n / min(times):,.0f} images/s)")


if __name__ == "__main__":
    main()
