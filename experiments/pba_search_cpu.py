"""A small PBA search on the CPU, then the quality of what it found against the usual baselines.

Stage ``search``: PBA (population, interval 3, truncation 25%) on a seeded subset of CIFAR-10
(default) or Fashion-MNIST (``--dataset fashion_mnist``) with the small CNN; prints the cost
(wall time, images/s), the best member's lineage (one line per segment) and writes the schedule.
Stage ``quality``: the same model, data, epochs and seeds trained with
  - no augmentation at all (the reference for whether augmenting pays in this setting),
  - crop/flip only (the loader's crop, padded by image size // 8 pixels: 4 on CIFAR's 32 px,
    3 on Fashion-MNIST's 28 px, as PBA's own crop in the replays, and flip),
  - TrivialAugment (policies/trivialaugment.json on top of crop/flip),
  - PBA's published CIFAR-10 schedule (policies/pba_rcifar10_200.json, stretched),
  - the searched schedule (stretched to the epochs),
  - the best constant policy of the same search: the policy the best member (the one whose
    lineage is the schedule) trained with in the search's last epoch, i.e. the schedule's last
    segment, held constant for all epochs;
PBA schedules bring their own crop, flip and Cutout (PBAAugment: pad size // 8, Cutout size // 2,
flip always on, also for 1-channel images), so those runs turn the loader's off. Test accuracy
is measured once, after the last epoch; the table ends with each setting's paired difference
from the searched schedule (same seeds), and the per-seed figures go to ``<workdir>/quality.json``.

Usage (the figures in the PBA report; the defaults are its setting):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/pba_search_cpu.py --stage search
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/pba_search_cpu.py --stage quality --seeds 0,1
    OMP_NUM_THREADS=1 python experiments/pba_search_cpu.py --stage lineage  # the schedule's segments
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/pba_search_cpu.py --stage members --seeds 0,1

Fashion-MNIST (the figures of the PBA report's Fashion-MNIST part; ``--out`` defaults to
policies/pba_searched_fmnist_small.json and ``--workdir`` to runs/pba_search_cpu_fashion_mnist):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/pba_search_cpu.py --dataset fashion_mnist \
        --n-train 2000 --val-per-class 100 --epochs 30 --batch-size 32 --population 8 --interval 3 --engine loop --stage search
    (then the same flags with --stage quality --seeds 0,1,2,3,4 and --stage members --seeds 0,1,2)

ResNet-20 with a learning-rate warm-up (issue #10; issue #8's protocol, where augmentation pays on the
CPU: 500 training images, 60 epochs, lr 0.1, 5 warm-up epochs; the quality stage on the first 5,000
test images):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/pba_search_cpu.py --n-train 1000 --val-per-class 50 \
        --model resnet20 --epochs 60 --lr 0.1 --weight-decay 5e-4 --warmup-epochs 5 --batch-size 128 --population 8 \
        --interval 3 --engine loop --workdir runs/pba_cpu_r20 --out policies/pba_searched_cifar10_r20.json --stage search
    (then the same flags with --stage quality --seeds 0,1 --n-test 5000)

Stage ``members`` replays every member's lineage (from the search's checkpoint), one row per
distinct lineage, with the member's last validation accuracy: do the members that were
exploited, and so trained under a schedule that formed, test better than the best member?
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from autodata._io import write_json_atomic
from autodata.pba import PBASearchConfig, search_schedule
from autodata.schedules import PiecewiseSchedule, Segment
from autodata.train import TrainConfig, build_data, build_run

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"


@dataclass(frozen=True)
class DatasetSetting:
    """What the script needs to know of a dataset before reading it.

    Attributes:
        image_size: the images' side in pixels (the crop pads ``image_size // 8``, as PBA's
            replay does).
        out: the searched schedule's default file.
    """

    image_size: int
    out: Path

    @property
    def crop_padding(self) -> int:
        return max(1, self.image_size // 8)


DATASETS: dict[str, DatasetSetting] = {
    "cifar10": DatasetSetting(32, POLICIES / "pba_searched_cifar10_small.json"),
    "fashion_mnist": DatasetSetting(28, POLICIES / "pba_searched_fmnist_small.json"),
}


def base_config(args: argparse.Namespace) -> TrainConfig:
    extra = {} if args.weight_decay is None else {"weight_decay": args.weight_decay}
    return TrainConfig(dataset=args.dataset, n_train=args.n_train, val_per_class=args.val_per_class, model=args.model,
                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs,
                       seed=0, **extra)


def paired_differences(accs: dict[str, list[float]], reference: str) -> dict[str, tuple[list[float], float]]:
    """Each setting's per-seed difference ``reference - setting`` (points) and its mean.

    Args:
        accs: test accuracies per setting, one per seed, the seeds in the same order everywhere.
        reference: the setting the others are compared with.

    Example:
        >>> paired_differences({"a": [50.0, 52.0], "b": [49.0, 53.0]}, "a")
        {'b': ([1.0, -1.0], 0.0)}
    """
    if reference not in accs:
        raise ValueError(f"reference must be one of {sorted(accs)}, but got {reference!r}.")
    ref = accs[reference]
    out: dict[str, tuple[list[float], float]] = {}
    for name, values in accs.items():
        if name == reference:
            continue
        if len(values) != len(ref):
            raise ValueError(f"every setting must have one accuracy per seed ({len(ref)}), but got {len(values)} for {name!r}.")
        diffs = [r - v for r, v in zip(ref, values)]
        out[name] = (diffs, statistics.mean(diffs))
    return out


def stage_search(args: argparse.Namespace) -> None:
    config = PBASearchConfig(base_config(args), population=args.population, interval=args.interval, engine=args.engine)
    start = time.perf_counter()

    def log(r: dict) -> None:
        val = r["val_accuracy"]  # None: not evaluated this epoch
        ranked = f"val best {max(val):5.1f}%  mean {statistics.mean(val):5.1f}%" if val else "(not evaluated)"
        print(f"  epoch {r['epoch']:3d}  {ranked}  {r['images_per_second']:6.0f} img/s  copies {r['copies']}", flush=True)

    result = search_schedule(config, args.out, workdir=args.workdir, log=log)
    seconds = time.perf_counter() - start
    images = config.population * len(result.history) * (args.n_train - 10 * args.val_per_class)
    print("| search | population | epochs | images trained | wall | img/s | best val | segments |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.dataset} {args.n_train} {args.model} | {config.population} | {args.epochs} | {images} | {seconds / 60:.1f} min | "
          f"{images / seconds:.0f} | {result.val_accuracy[result.best]:.1f}% | {len(result.schedule.segments)} |")
    print(f"schedule -> {args.out}")
    stage_lineage(args)


def stage_lineage(args: argparse.Namespace) -> None:
    """One line per segment of the schedule: epochs and the entries it applies."""
    schedule = PiecewiseSchedule.load(args.out)
    print(f"{schedule.description}")
    for seg in schedule.segments:
        used = [(op, p, m) for op, p, m in seg.policy.entries if p > 0]
        ops = ", ".join(f"{op}(p={p / 10:.1f},m={m})" for op, p, m in used) or "nothing (crop, flip, Cutout only)"
        print(f"  epochs {seg.start:3d}-{seg.stop - 1:3d}: {len(used):2d} entries: {ops}")


def _train(config: TrainConfig, n_test: int = 0) -> float:
    """Train ``config`` to the end; test accuracy on the first ``n_test`` test images (0: all)."""
    run = build_run(config, build_data(config).with_test_subset(n_test))
    while not run.finished:
        run.train_epoch()
    return run.evaluate("test")["accuracy"]


def stage_quality(args: argparse.Namespace) -> None:
    base = base_config(args)
    only = [s for s in args.only.split(",") if s] if args.only else None
    constant_path = Path(args.workdir) / "searched_constant.json"
    if only is None or any(name.startswith("searched") for name in only):
        searched = PiecewiseSchedule.load(args.out)
        os.makedirs(args.workdir, exist_ok=True)
        PiecewiseSchedule([Segment(0, searched.num_epochs, searched.segments[-1].policy)], name="pba_searched_constant",
                          description=f"the final policy of {args.out}, held constant").save(constant_path)
    crop_flip = dict(crop_padding=DATASETS[args.dataset].crop_padding, flip=True)
    settings = {
        "no augmentation": base,
        "crop/flip only": base.replace(**crop_flip),
        "TrivialAugment": base.replace(**crop_flip, augment="policy", policy=str(POLICIES / "trivialaugment.json")),
        "PBA published CIFAR-10 schedule": base.replace(augment="schedule", policy=str(POLICIES / "pba_rcifar10_200.json")),
        "searched schedule": base.replace(augment="schedule", policy=str(args.out)),
        "searched best policy (constant)": base.replace(augment="schedule", policy=str(constant_path)),
    }
    only = only or list(settings)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"| augmentation ({args.dataset} n_train={args.n_train}, val_per_class={args.val_per_class}, {args.model}, "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, warm-up {args.warmup_epochs}, "
          f"wd {base.weight_decay}, test images {args.n_test or 'all'}) | test accuracy % per seed ({args.seeds}) | mean | minutes |")
    print("|---|---|---|---|")
    accs: dict[str, list[float]] = {}
    for name in only:
        start = time.perf_counter()
        accs[name] = [_train(settings[name].replace(seed=s), args.n_test) for s in seeds]
        print(f"| {name} | {', '.join(f'{a:.2f}' for a in accs[name])} | {statistics.mean(accs[name]):.2f} | "
              f"{(time.perf_counter() - start) / 60:.1f} |", flush=True)
    os.makedirs(args.workdir, exist_ok=True)
    write_json_atomic(Path(args.workdir) / "quality.json", {"dataset": args.dataset, "seeds": seeds, "n_test": args.n_test,
                                                            "config": base.to_dict(), "test_accuracy": accs})
    if "searched schedule" in accs and len(accs) > 1:
        print("\n| searched schedule minus | per seed (points) | mean |")
        print("|---|---|---|")
        for name, (diffs, mean) in paired_differences(accs, "searched schedule").items():
            print(f"| {name} | {', '.join(f'{d:+.2f}' for d in diffs)} | {mean:+.2f} |")


def stage_members(args: argparse.Namespace) -> None:
    """Every distinct member lineage of the search, replayed with the quality stage's setting."""
    from autodata.schedules import PBAPolicy

    state = torch.load(Path(args.workdir) / "search.pt", weights_only=True)
    base = base_config(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    seen: dict[tuple, int] = {}
    print(f"| member lineage (same setting as the quality table) | val % in the search | segments | "
          f"test accuracy % per seed ({args.seeds}) | mean |")
    print("|---|---|---|---|---|")
    for i, lineage in enumerate(state["lineage"]):
        schedule = PiecewiseSchedule.from_per_epoch([PBAPolicy(tuple(p)) for p in lineage], name=f"member_{i}")
        key = tuple(tuple(p) for p in lineage)
        segments = "; ".join(f"{s.start}-{s.stop - 1}: {sum(1 for e in s.policy.entries if e[1] > 0)} entries"
                             for s in schedule.segments)
        if key in seen:
            print(f"| member {i} | {state['val_accuracy'][i]:.1f} | {segments} | the same lineage as member {seen[key]} | |")
            continue
        seen[key] = i
        path = Path(args.workdir) / f"member_{i}.json"
        schedule.save(path)
        accs = [_train(base.replace(augment="schedule", policy=str(path), seed=s), args.n_test) for s in seeds]
        print(f"| member {i} | {state['val_accuracy'][i]:.1f} | {segments} | {', '.join(f'{a:.2f}' for a in accs)} | "
              f"{statistics.mean(accs):.2f} |", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["search", "quality", "lineage", "members", "all"], default="all")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--model", default="small_cnn", help="member model (autodata.models.MODELS), e.g. resnet20")
    parser.add_argument("--warmup-epochs", type=int, default=0, help="linear lr warm-up epochs (TrainConfig.warmup_epochs)")
    parser.add_argument("--weight-decay", type=float, default=None, help="default: TrainConfig's (5e-4)")
    parser.add_argument("--n-test", type=int, default=0, help="quality and members stages: the first N test images (0: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--interval", type=int, default=3)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--only", default="", help="comma-separated setting names of the quality stage")
    parser.add_argument("--out", default=None, help="the schedule file (default: the dataset's, see DATASETS)")
    parser.add_argument("--workdir", default=None, help="default runs/pba_search_cpu (cifar10), runs/pba_search_cpu_<dataset>")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the dataset's defaults filled in for ``--out`` and ``--workdir``."""
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = str(DATASETS[args.dataset].out)
    if args.workdir is None:
        suffix = "" if args.dataset == "cifar10" else f"_{args.dataset}"
        args.workdir = os.path.join("runs", f"pba_search_cpu{suffix}")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    if args.stage in ("search", "all"):
        stage_search(args)
    if args.stage in ("quality", "all"):
        stage_quality(args)
    if args.stage == "lineage":
        stage_lineage(args)
    if args.stage == "members":
        stage_members(args)


if __name__ == "__main__":
    main()
