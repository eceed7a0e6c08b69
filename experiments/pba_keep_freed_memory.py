"""``autodata search schedule`` on a CPU with and without ``--keep-freed-memory`` (glibc keeps freed memory).

The setting is process-wide and cannot be undone, so each arm is its own process: the two
arms alternate, ``--pairs`` times, the same search each time (same seed, so the same
perturbations). Reported: each run's wall time and the median of its per-epoch images/s (the
search's own counter), and per pair the ratio kept / default; the summary is the median of the
per-pair ratios (a shared machine's load moves both arms of a pair alike).

Usage (the figures in BENCHMARKS.md, "Population Based Augmentation"):
    OMP_NUM_THREADS=1 python experiments/pba_keep_freed_memory.py --pairs 5
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autodata._malloc import ENVIRONMENT

RATE = re.compile(r"(\d+) img/s")


def run_search(flags: list[str], keep: bool, workdir: Path) -> tuple[float, float]:
    """One search in a fresh process: (wall seconds, median images/s over its epochs)."""
    shutil.rmtree(workdir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    command = [sys.executable, "-m", "autodata.cli", "search", "schedule", *flags, "--out", str(workdir / "s.json"),
               "--workdir", str(workdir / "w"), "--no-progress",
               "--keep-freed-memory" if keep else "--no-keep-freed-memory"]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"the search failed ({' '.join(command)}):\n{out.stderr[-2000:]}")
    rates = [int(m) for m in RATE.findall(out.stdout)]
    if not rates:
        raise SystemExit(f"no 'img/s' in the search's output:\n{out.stdout[-2000:]}")
    return wall, statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--flags", default="--dataset digits --val-per-class 10 --epochs 12 --population 8 "
                                           "--batch-size 64 --seed 0",
                        help="the search's flags (default: %(default)s)")
    args = parser.parse_args()
    flags = args.flags.split()
    print(f"search: autodata search schedule {args.flags}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    walls, rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            default = run_search(flags, False, Path(tmp) / "default")
            kept = run_search(flags, True, Path(tmp) / "kept")
            walls.append(default[0] / kept[0])
            rates.append(kept[1] / default[1])
            print(f"pair {pair + 1}: default {default[0]:6.1f} s {default[1]:7.0f} img/s | kept {kept[0]:6.1f} s "
                  f"{kept[1]:7.0f} img/s | speed-up: wall {walls[-1]:.2f}x, img/s {rates[-1]:.2f}x", flush=True)
    print(f"median over {args.pairs} pairs: wall {statistics.median(walls):.2f}x (range {min(walls):.2f}-"
          f"{max(walls):.2f}), img/s {statistics.median(rates):.2f}x (range {min(rates):.2f}-{max(rates):.2f}); "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
