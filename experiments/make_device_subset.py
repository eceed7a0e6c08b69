"""Write a compact uint8 CIFAR-10 subset (``.npz``) that fits in a GPU machine's 64 MiB carry.

The shared data folder does not travel to the GPU machine; this file does (git-ignored, named
in the device tool's ``carry``). 15,000 training + 5,000 test images take 61 MB; the training
images are a class-balanced seeded subset, the test images the first ``--n-test``.

Usage:
    AUTODATA_DATA=../shared/data python experiments/make_device_subset.py --out .devdata/cifar10.npz
    # then, on the GPU machine: load_dataset("npz", root=".devdata/cifar10.npz")
"""
from __future__ import annotations

import argparse

from autodata.data import load_dataset, meta_split, save_npz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--n-train", type=int, default=15_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=".devdata/cifar10.npz")
    args = parser.parse_args()
    train = load_dataset(args.dataset, train=True)
    test = load_dataset(args.dataset, train=False)
    keep = meta_split(train.labels, per_class=args.n_train // train.num_classes, seed=args.seed).meta_indices
    save_npz(args.out, train.subset(keep), test.subset(range(min(args.n_test, len(test)))))
    print(f"wrote {args.out}: {len(keep)} train + {min(args.n_test, len(test))} test images of {args.dataset}")


if __name__ == "__main__":
    main()
