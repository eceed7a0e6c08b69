"""Paired comparison over seeds of ``noisy_labels.py`` results: mean, standard error, 95% t-interval.

Each arm is ``NAME=METHOD@GLOB[,GLOB...]``: the results named ``METHOD`` in the JSON files the globs
match (``noisy_labels.py --out``), keyed by the seed in each result's config. Where two files give
the same arm and seed, the later one wins: globs in the order given, a glob's files sorted by name
(list re-runs last). The config fields other than the seed that differ within an arm are printed
under the tables, so that runs of different settings are never pooled unseen. Every arm is paired with the
reference (the first arm) on the seeds both have; ``--margin`` says whether the lower end of the
95% interval clears ``-margin`` (the issue's "within 1 point")::

    python experiments/paired_seeds.py \\
        "exact=mwn@runs/pairflip/seed*.json" \\
        "every 4=mwn-jvp-online4@runs/pairflip/seed*.json" --margin 1

Nothing is trained here; the statistics are Student's t with n - 1 degrees of freedom.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import statistics
import sys
from pathlib import Path

from scipy import stats


def parse_arm(text: str) -> tuple[str, str, list[str]]:
    name, sep, rest = text.partition("=")
    method, at, globs = rest.partition("@")
    if not (sep and at and name and method and globs):
        raise SystemExit(f"an arm must look like NAME=METHOD@GLOB[,GLOB...], but got {text!r}.")
    return name, method, globs.split(",")


def load_arm(method: str, globs: list[str], metric: str) -> tuple[dict[int, float], dict[str, list]]:
    """The arm's value by seed, and the config fields (other than the seed) whose values differ."""
    out: dict[int, float] = {}
    configs: dict[int, dict] = {}  # of the runs kept (a re-run replaces its seed's)
    for pattern in globs:
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise SystemExit(f"no file matches {pattern!r}; give the JSON files that noisy_labels.py --out wrote.")
        for path in paths:
            try:
                results = json.loads(Path(path).read_text())["results"]
                found = [(int(r["config"]["seed"]), _value(r, metric), dict(r["config"])) for r in results
                         if r["name"] == method]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise SystemExit(f"{path}: not a noisy_labels.py result file ({type(error).__name__}: {error}); "
                                 f"give the JSON files that noisy_labels.py --out wrote.") from None
            for seed, value, config in found:
                out[seed], configs[seed] = value, config
    keys = sorted(set().union(*configs.values()) - {"seed"}) if configs else []
    differing = {}
    for key in keys:
        values = []
        for config in configs.values():
            v = config.get(key, "(absent)")
            if v not in values:
                values.append(v)
        if len(values) > 1:
            differing[key] = values
    return out, differing


def _value(result: dict, metric: str) -> float:
    """``final``/``best`` test accuracy, or ``last3``: the mean of the curve's last three epochs."""
    if metric == "last3":
        curve = [float(v) for v in result["curve"]]
        if len(curve) < 3:
            raise ValueError(f"metric last3 needs at least 3 epochs, but a curve has {len(curve)}")
        return statistics.mean(curve[-3:])
    return float(result[metric])


def paired(diffs: list[float]) -> dict[str, float]:
    n = len(diffs)
    mean = statistics.mean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(n)
    half = stats.t.ppf(0.975, n - 1) * se
    return {"n": n, "mean": mean, "se": se, "low": mean - half, "high": mean + half,
            "median": statistics.median(diffs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", help="NAME=METHOD@GLOB[,GLOB...]; the first arm is the reference")
    parser.add_argument("--metric", choices=("final", "best", "last3"), default="final",
                        help="final or best test accuracy, or last3: the mean of the last three epochs' (a sensitivity check)")
    parser.add_argument("--margin", type=float, default=1.0, help="points an arm may be behind the reference")
    args = parser.parse_args(argv)
    arms = [parse_arm(a) for a in args.arms]
    if len(arms) < 2:
        raise SystemExit("give a reference arm and at least one arm to compare with it.")
    names = [name for name, _, _ in arms]
    if len(set(names)) < len(names):
        raise SystemExit(f"arm names must differ, but got {names}.")
    loaded = {name: load_arm(method, globs, args.metric) for name, method, globs in arms}
    values = {name: v for name, (v, _) in loaded.items()}
    seeds = sorted(set().union(*values.values()))
    print("| seed | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for s in seeds:
        print(f"| {s} | " + " | ".join(f"{values[n][s]:.2f}" if s in values[n] else "" for n in names) + " |")
    ref = names[0]
    print(f"\n| paired difference ({args.metric}) | n | mean ± s.e. | 95% interval | median | within {args.margin:g} |")
    print("|---|---:|---:|---:|---:|---|")
    for name in names[1:]:
        common = [s for s in seeds if s in values[name] and s in values[ref]]
        if len(common) < 2:
            print(f"| {name} - {ref} | {len(common)} | | | | too few seeds |")
            continue
        r = paired([values[name][s] - values[ref][s] for s in common])
        verdict = "yes" if r["low"] > -args.margin else ("no" if r["high"] < -args.margin else "not established")
        print(f"| {name} - {ref} | {r['n']} | {r['mean']:+.2f} ± {r['se']:.2f} | {r['low']:+.2f} to {r['high']:+.2f} "
              f"| {r['median']:+.2f} | {verdict} |")
    for name, (_, differing) in loaded.items():
        for key, found in differing.items():
            print(f"note: arm {name!r} pools runs whose config field {key} differs: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
