"""Images/second of one epoch's data path: DeviceLoader vs a torchvision DataLoader.

Both pipelines do the standard CIFAR augmentation on 32x32 images (zero-pad 4 + random
crop, horizontal flip, float conversion, normalisation) and hand over float32 batches;
nothing is trained. The DataLoader uses worker processes that apply torchvision v2
transforms image by image (persistent workers, so process start-up is not counted
after the warm-up epoch).

On a CPU shared with other jobs, torch's OpenMP thread pool in the main process can
stall badly on its barriers (we saw 2,000 images/s instead of 100,000 with 2 threads
while another process kept both cores busy), so ``--threads`` defaults to 1: the
DeviceLoader then uses one core, the DataLoader its worker processes (one thread each).

Usage:
    AUTODATA_DATA=/path/to/data python experiments/bench_loader.py --n 10000 --repeats 3
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Iterable

import torch

from autodata.data import DeviceLoader, load_cifar10, make_dataloader


def _epoch_seconds(loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    start = time.perf_counter()
    checksum = torch.zeros((), device=device)
    for x, _ in loader:
        checksum += x[0, 0, 0, 0]  # touch every batch so nothing is skipped
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    float(checksum)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="data root (default: $AUTODATA_DATA)")
    parser.add_argument("--n", type=int, default=10_000, help="first N CIFAR-10 training images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per pipeline (best is kept)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the main process")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    t0 = time.perf_counter()
    data = load_cifar10(args.root, train=True).subset(range(args.n))
    print(f"read {len(data)} CIFAR-10 images in {time.perf_counter() - t0:.1f}s; "
          f"device={device}, torch threads={torch.get_num_threads()}, batch={args.batch_size}")

    device_loader = DeviceLoader.from_dataset(data, args.batch_size, device=device, crop_padding=4, flip=True, seed=0)
    torch_loader = make_dataloader(
        data, args.batch_size, crop_padding=4, flip=True, num_workers=args.workers, seed=0,
        persistent_workers=args.workers > 0, pin_memory=device.type == "cuda",
    )

    def torch_on_device() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in torch_loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    rows = []
    for name, make in (("DeviceLoader", lambda: device_loader), (f"DataLoader ({args.workers} workers, v2)", torch_on_device)):
        _epoch_seconds(make(), device)  # warm-up epoch (workers start, caches fill)
        times = [_epoch_seconds(make(), device) for _ in range(args.repeats)]
        rows.append((name, min(times), sorted(times)[len(times) // 2]))

    print("\n| pipeline | best epoch (s) | median epoch (s) | images/s (best) |")
    print("| --- | ---: | ---: | ---: |")
    for name, best, median in rows:
        print(f"| {name} | {best:.3f} | {median:.3f} | {args.n / best:,.0f} |")
    ratio = rows[1][1] / rows[0][1]
    print(f"\nspeed ratio DeviceLoader / DataLoader (best epochs): {ratio:.1f}x")


if __name__ == "__main__":
    main()
