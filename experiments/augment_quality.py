"""Quality of augmentation policies: the same model trained with each policy, side by side.

Every run uses the same data subset, model, optimizer, schedule, epochs and seed, with crop
(pad 4) and flip from the loader as the base augmentation; the policy is applied on top of it,
to whole batches on the device, before the model's input normalisation (the runs are those of
:func:`autodata.recipes.policy_study`). ``identity`` is the crop/flip-only baseline. Every flag
of ``autodata train`` is accepted, plus:

* ``--seeds 0,1``: one run per policy and seed (seed-major order); the seed also draws the
  ``--n-train`` subset, so each seed has its own data, the same for every policy;
* ``--n-test N``: evaluate on the first N test images (0: all);
* ``--eval-every K``: evaluate every K epochs and after the last (``best`` is the best of the
  evaluated epochs);
* ``--out FILE``: the results JSON, rewritten atomically after every run (a cut-off study
  keeps the runs it finished), with the per-policy means, the goal check of issue #8 and the
  learned policy's paired differences (per seed, against each other policy);
* ``--merge FILE,FILE``: train nothing; summarise the runs of earlier results JSONs together
  (e.g. a study extended with more seeds), written to ``--out`` if given.

Usage (the figures in BENCHMARKS.md, "Augmentation policy quality"):
    OMP_NUM_THREADS=1 AUTODATA_DATA=../shared/data python experiments/augment_quality.py --model resnet20 \\
        --n-train 2000 --epochs 20 --seeds 0,1 --n-test 5000 --eval-every 10 --eval-batch-size 250 \\
        --policies dada_reduced_cifar10,identity,trivialaugment,randaugment --out quality.json
    # the long-training regime (crop/flip alone overfits): --n-train 500 --epochs 60 --seeds 0,1,2,3,4 --eval-every 20
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from autodata._argparse import add_config_arguments, config_from_arguments
from autodata._io import write_json_atomic
from autodata.train import TrainConfig, build_run
from autodata.train.data import build_data

POLICIES = Path(__file__).resolve().parents[1] / "policies"
DEFAULTS = dict(dataset="cifar10", model="resnet20", n_train=5000, epochs=20, lr=0.1, crop_padding=4, flip=True,
                device="cuda" if torch.cuda.is_available() else "cpu")
BASELINE = "identity"
LEARNED_PREFIX = "dada"
GOAL_MARGIN = 0.3  # issue #8: within this many points of the best baseline

EpochLog = Callable[[str, int, dict[str, Any]], None]


def parse_seeds(text: str) -> list[int]:
    """``"0,1"`` -> ``[0, 1]``; seeds must be distinct non-negative integers."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"seeds must be comma-separated integers, but got {text!r}.") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, but got {text!r}.")
    return seeds


def eval_epochs(epochs: int, every: int) -> list[int]:
    """The 1-based epochs evaluated: every ``every``-th and always the last."""
    if every < 1:
        raise ValueError(f"eval_every must be >= 1, but got {every}.")
    return sorted({e for e in range(every, epochs + 1, every)} | {epochs})


def train_one(config: TrainConfig, n_test: int, every: int, name: str, log: EpochLog | None = None) -> dict[str, Any]:
    """Train ``config`` to the end, evaluating on the test split at :func:`eval_epochs`."""
    run = build_run(config, build_data(config).with_test_subset(n_test))
    due = set(eval_epochs(config.epochs, every))
    curve: dict[int, float] = {}
    train_seconds = eval_seconds = 0.0
    record: dict[str, Any] = {}
    while not run.finished:
        record = run.train_epoch()
        train_seconds += record["train_seconds"]
        if record["epoch"] in due:
            start = time.perf_counter()
            record["test_accuracy"] = curve[record["epoch"]] = run.evaluate("test")["accuracy"]
            record["eval_seconds"] = time.perf_counter() - start
            eval_seconds += record["eval_seconds"]
        if log is not None:
            log(name, config.seed, record)
    return {"name": name, "seed": config.seed, "best": max(curve.values()), "final": curve[config.epochs],
            "curve": {str(e): a for e, a in curve.items()}, "train_loss": record["train_loss"],
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds, "n_train": len(run.data.train), "n_test": len(run.data.test),
            "config": config.to_dict()}


def paired_differences(results: Sequence[dict[str, Any]], learned: str, seeds: Sequence[int]) -> dict[str, Any]:
    """``learned``'s final accuracy minus each other policy's, per seed, with their mean and standard error.

    Args:
        results: Runs (``name``, ``seed``, ``final``), one per policy and seed.
        learned: The policy compared with every other.
        seeds: The seeds to pair over (every policy has a run at each).

    Returns:
        ``{other: {"per_seed": {seed: difference}, "mean": m, "se": s}}``; ``se`` is the sample
        standard deviation over the square root of the number of seeds (``None`` for one seed).
    """
    final = {(r["name"], r["seed"]): r["final"] for r in results}
    out: dict[str, Any] = {}
    for other in dict.fromkeys(r["name"] for r in results):
        if other == learned:
            continue
        diffs = [final[learned, s] - final[other, s] for s in seeds]
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
        out[other] = {"per_seed": {str(s): d for s, d in zip(seeds, diffs)}, "mean": statistics.fmean(diffs), "se": se}
    return out


def summarize(results: Sequence[dict[str, Any]], learned: str | None = None) -> dict[str, Any]:
    """Per-policy means of ``best`` and ``final`` and the goal check of issue #8.

    The goal (on the mean final accuracy, over the seeds every policy finished): the learned
    policy beats ``identity`` (crop/flip) and is within ``GOAL_MARGIN`` points of the best
    other policy, or better. ``learned`` defaults to the one policy named ``dada*``. ``paired``
    holds its :func:`paired_differences` over those seeds (``None`` without a learned policy).
    """
    names = list(dict.fromkeys(r["name"] for r in results))
    seeds_of = {n: {r["seed"] for r in results if r["name"] == n} for n in names}
    common = set.intersection(*seeds_of.values()) if names else set()
    means: dict[str, dict[str, float]] = {}
    for n in names:
        rows = [r for r in results if r["name"] == n and r["seed"] in common]
        if rows:
            means[n] = {k: statistics.fmean(r[k] for r in rows) for k in ("best", "final")}
    out: dict[str, Any] = {"seeds": sorted(common), "mean": means, "goal": None, "paired": None}
    if learned is None:
        candidates = [n for n in means if n.startswith(LEARNED_PREFIX)]
        learned = candidates[0] if len(candidates) == 1 else None
    if learned in means and common:
        out["paired"] = paired_differences(results, learned, sorted(common))
    baselines = {n: m["final"] for n, m in means.items() if n != learned}
    if learned in means and BASELINE in baselines:
        best_name = max(baselines, key=baselines.__getitem__)
        mine = means[learned]["final"]
        beats = mine > baselines[BASELINE]
        close = mine >= baselines[best_name] - GOAL_MARGIN
        out["goal"] = {"learned": learned, "best_baseline": best_name, "gap_to_best": mine - baselines[best_name],
                       "gain_over_crop_flip": mine - baselines[BASELINE], "beats_crop_flip": beats,
                       "within_margin_of_best": close, "met": beats and close}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_arguments(parser, TrainConfig, TrainConfig(**DEFAULTS), skip=("augment", "policy"))
    parser.add_argument("--policies", default="identity,randaugment,trivialaugment,dada_reduced_cifar10",
                        help=f"policy names (files in {POLICIES}) or paths")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: --seed)")
    parser.add_argument("--n-test", type=int, default=0, help="evaluate on the first N test images (0: all)")
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate every K epochs and after the last")
    parser.add_argument("--out", default=None, help="results JSON, rewritten atomically after every run")
    parser.add_argument("--merge", default=None, help="comma-separated results JSONs to summarise together; no training")
    args = parser.parse_args()
    if args.merge:
        try:
            results = merge_results(args.merge.split(","))
        except ValueError as err:
            parser.error(str(err))
        report(results)
        if args.out:
            write_json_atomic(args.out, {"merged": args.merge.split(","), "results": results,
                                         "summary": summarize(results)})
        return
    files = {}
    for name in args.policies.split(","):
        path = Path(name) if name.endswith(".json") else POLICIES / f"{name}.json"
        if not path.exists():
            parser.error(f"no policy file {path}")
        files[path.stem] = str(path)
    try:
        base = config_from_arguments(TrainConfig, args, DEFAULTS)
        seeds = parse_seeds(args.seeds) if args.seeds is not None else [base.seed]
        eval_epochs(base.epochs, args.eval_every)
    except ValueError as err:
        parser.error(str(err))
    print(f"{base.to_dict()}\nseeds {seeds}  n_test {args.n_test or 'all'}  eval every {args.eval_every}\n"
          f"torch {torch.__version__}", flush=True)

    def log(name: str, seed: int, record: dict[str, Any]) -> None:
        test = f"test {record['test_accuracy']:6.2f}%" if "test_accuracy" in record else " " * 13
        print(f"  {name:<22} seed {seed}  epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  "
              f"{test}  {record['train_seconds']:6.1f}s", flush=True)

    results: list[dict[str, Any]] = []
    for seed in seeds:
        for name, path in files.items():
            config = base.replace(augment="policy", policy=path, seed=seed)
            results.append(train_one(config, args.n_test, args.eval_every, name, log))
            if args.out:
                write_json_atomic(args.out, {"config": base.to_dict(), "seeds": seeds, "n_test": args.n_test,
                                             "eval_every": args.eval_every, "results": results,
                                             "summary": summarize(results)})
    report(results)


def merge_results(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The runs of several results JSONs, in file order; one run per policy and seed."""
    results: list[dict[str, Any]] = []
    for path in paths:
        results.extend(json.loads(Path(path).read_text())["results"])
    keys = [(r["name"], r["seed"]) for r in results]
    if len(set(keys)) != len(keys):
        raise ValueError(f"merged results must have one run per policy and seed, but got {sorted(keys)}.")
    return results


def report(results: Sequence[dict[str, Any]]) -> None:
    """Prints every run, the per-policy means, the goal check and the paired differences."""
    print(f"\n{'policy':<24} {'seed':>4} {'best %':>7} {'final %':>8} {'loss':>7} {'train s':>8}")
    for r in results:
        loss = f"{r['train_loss']:7.4f}" if "train_loss" in r else " " * 7
        print(f"{r['name']:<24} {r['seed']:4d} {r['best']:7.2f} {r['final']:8.2f} {loss} {r['train_seconds']:8.0f}")
    summary = summarize(results)
    for name, m in summary["mean"].items():
        print(f"{name:<24} mean {m['best']:7.2f} {m['final']:8.2f}")
    print(f"goal: {summary['goal']}")
    for other, p in (summary["paired"] or {}).items():
        se = "n/a" if p["se"] is None else f"{p['se']:.2f}"
        per_seed = "  ".join(f"{d:+.2f}" for d in p["per_seed"].values())
        print(f"learned - {other:<20} {per_seed}   mean {p['mean']:+.2f} (se {se})")


if __name__ == "__main__":
    main()
