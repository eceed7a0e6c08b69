"""No collapse over seeds and noise kinds: cross-entropy vs Meta-Weight-Net vs L2RW (issue #9).

A grid of seeds x noise kinds x methods, each run a :func:`autodata.train.build_run` of one
:class:`~autodata.train.TrainConfig` (the recipe of ``experiments/noisy_labels.py``, sized for
a CPU). Noise kinds: ``symmetric`` (60%, the rate that collapsed), ``pairflip`` (40%, ``c -> c+1``)
and ``structured`` (40%, each class to a look-alike: for digits 1 <-> 7, 3 <-> 8, 5 <-> 6,
4 <-> 9, 0 -> 6, 2 -> 3; for Fashion-MNIST T-shirt <-> shirt, pullover <-> coat, sandal -> sneaker
-> ankle boot -> sandal, trouser <-> dress, bag -> T-shirt), each balanced and long-tailed
(``--imbalance``). The default data are the bundled 8x8 digits (1,437 training and 360 test
images), the size that lets the grid run on two shared CPU cores. The divergence guard is off
(``guard=False``), so what is counted is the reweighters' own behaviour.

A run *collapses* when its model predicts at most 2 classes on the test set at the end, or its
final test accuracy is more than ``--margin`` points below cross-entropy's of the same seed and
cell (on the first ``--n-test`` test images, after the last epoch). ``--before`` trains the reweighters as they were
before the fix (MWN plain mean-1 normalisation, ``reweighter_floor=0``; L2RW's step unbounded,
``reweighter_max_step_ratio=0``) for a before/after table. Every setting is a field of the runs'
``TrainConfig``, saved with the results.

Usage (the figures in BENCHMARKS.md):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/noise_study.py \\
        --seeds 0,1,2 --out runs/noise_study_after.json
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/noise_study.py \\
        --seeds 0,1,2 --kinds symmetric --before --out runs/noise_study_before.json
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import numpy as np
import torch

from autodata._io import write_json_atomic
from autodata.data import DeviceLoader, corrupt_labels
from autodata.train import Run, TrainConfig, build_data, build_run, derive_seed, parse_method

# Look-alike classes. Fashion-MNIST: 0 T-shirt, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal,
# 6 shirt, 7 sneaker, 8 bag, 9 ankle boot. Digits: the digits one mistakes for each other.
LOOK_ALIKE = {
    "fashion_mnist": {0: 6, 6: 0, 2: 4, 4: 2, 1: 3, 3: 1, 5: 7, 7: 9, 9: 5, 8: 0},
    "digits": {1: 7, 7: 1, 3: 8, 8: 3, 5: 6, 6: 5, 4: 9, 9: 4, 0: 6, 2: 3},
}
KINDS = {"symmetric": 0.6, "pairflip": 0.4, "structured": 0.4}


def structured_transition(dataset: str, rate: float, k: int = 10) -> np.ndarray:
    """Each class goes to its look-alike with probability ``rate``."""
    t = (1.0 - rate) * np.eye(k)
    for c, other in LOOK_ALIKE[dataset].items():
        t[c, other] += rate
    return t


def _with_structured_noise(config: TrainConfig, rate: float) -> Any:
    """The run's data with structured noise (``TrainConfig`` names symmetric and pair-flip only)."""
    data = build_data(config)
    noise = corrupt_labels(data.train.labels, data.num_classes, "transition", seed=derive_seed(config.seed, "noise"),
                           transition=structured_transition(config.dataset, rate, data.num_classes))
    train = data.train.with_labels(noise.labels)
    loader = DeviceLoader(train.images, train.labels, config.batch_size, device=torch.device(config.device), mean=None,
                          std=None, crop_padding=config.crop_padding, flip=config.flip,
                          seed=derive_seed(config.seed, "train_loader"))
    return dataclasses.replace(data, train=train, noise=noise, train_loader=loader)


def build(base: TrainConfig, kind: str, method: str, n_test: int) -> Run:
    """One run of the grid: ``base`` with the noise of ``kind`` and the fields of ``method``."""
    rate = KINDS[kind]
    if kind == "structured":
        config = base.replace(**parse_method(method))
        run = build_run(config, _with_structured_noise(config, rate))
    else:
        run = build_run(base.replace(noise=kind, noise_rate=rate, **parse_method(method)))
    test = run.data.test.subset(np.arange(n_test or len(run.data.test)))  # a fixed subset of the test set: evaluation is the CPU's cost
    run.data.test_loader = DeviceLoader(test.images, test.labels, base.eval_batch_size, device=torch.device(base.device),
                                        mean=None, std=None, crop_padding=0, flip=False, shuffle=False)
    return run


@torch.no_grad()
def predicted_classes(run: Run) -> int:
    run.model.eval()
    preds = torch.cat([run.model(x).argmax(dim=1) for x, _ in run.data.test_loader])
    run.model.train()
    return int(preds.unique().numel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--kinds", default="symmetric,pairflip,structured")
    parser.add_argument("--imbalance", default="1,10", help="imbalance factors (1: balanced)")
    parser.add_argument("--methods", default="ce,mwn-exact,mwn-online,l2rw-exact")
    parser.add_argument("--dataset", default="digits", choices=sorted(LOOK_ALIKE))
    parser.add_argument("--n-train", type=int, default=0, help="a seeded subset of this many training images (0: all)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--meta-per-class", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=0, help="evaluate on the first this many test images (0: all)")
    parser.add_argument("--margin", type=float, default=5.0, help="points below CE that count as a collapse")
    parser.add_argument("--before", action="store_true", help="the reweighters as before the fix")
    parser.add_argument("--floor", type=float, default=TrainConfig().reweighter_floor,
                        help="MWN's normalisation floor, TrainConfig.reweighter_floor (default: %(default)s)")
    parser.add_argument("--center", default=TrainConfig().reweighter_center, choices=("off", "on", "on_stall"),
                        help="MWN's centring, TrainConfig.reweighter_center (off: the released code's net; default: %(default)s)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    if methods[0] != "ce":
        parser.error("--methods must start with ce (the reference of a collapse)")
    base = TrainConfig(dataset=args.dataset, n_train=args.n_train, epochs=args.epochs, batch_size=args.batch_size,
                       meta_per_class=args.meta_per_class, meta_batch_size=50, reweighter_floor=args.floor,
                       reweighter_center=args.center, guard=False)  # count the reweighters' own collapses
    if args.before:  # the reweighters before issue #9's fix: plain mean-1 normalisation, L2RW's step unbounded
        base = base.replace(reweighter_floor=0.0, reweighter_max_step_ratio=0.0)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for imbalance in [float(v) for v in args.imbalance.split(",")]:
        for kind in args.kinds.split(","):
            for seed in seeds:
                ce = None
                for method in methods:
                    t0 = time.perf_counter()
                    run = build(base.replace(seed=seed, imbalance=imbalance), kind, method, args.n_test)
                    losses = [run.train_epoch()["train_loss"] for _ in range(args.epochs)]
                    final = run.evaluate("test")["accuracy"]
                    classes = predicted_classes(run)
                    ce = final if method == "ce" else ce
                    collapsed = classes <= 2 or final < ce - args.margin
                    rows.append({"imbalance": imbalance, "kind": kind, "seed": seed, "method": method, "final": final,
                                 "classes": classes, "collapsed": collapsed, "train_losses": losses,
                                 "noise_rate": run.data.noise.noise_rate, "seconds": time.perf_counter() - t0})
                    print(f"imb {imbalance:g} {kind:<10} seed {seed} {method:<10} final {final:6.2f} last loss {losses[-1]:6.3f} "
                          f"classes {classes:2d} {'COLLAPSE' if collapsed else ''} ({time.perf_counter() - t0:.0f}s, "
                          f"total {time.perf_counter() - start:.0f}s)", flush=True)
    print(f"\n{'cell':<22} " + " ".join(f"{m:>20}" for m in methods))
    cells = sorted({(r['imbalance'], r['kind']) for r in rows}, key=lambda c: (c[0], list(KINDS).index(c[1])))
    for imbalance, kind in cells:
        line = f"{kind + (' LT' + format(imbalance, 'g') if imbalance > 1 else ''):<22} "
        for m in methods:
            got = [r for r in rows if r["imbalance"] == imbalance and r["kind"] == kind and r["method"] == m]
            acc = [r["final"] for r in got]
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            line += f" {statistics.mean(acc):6.2f} +- {sd:4.2f} ({sum(r['collapsed'] for r in got)}/{len(got)})"
        print(line)
    if args.out:
        write_json_atomic(args.out, {"args": vars(args), "config": base.to_dict(), "rows": rows})


if __name__ == "__main__":
    main()
