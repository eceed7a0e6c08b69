"""experiments/pba_keep_freed_memory.py: both arms run the real search command and are compared pair by pair."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from experiment_script import EXPERIMENTS


@pytest.mark.slow
def test_the_benchmark_runs_both_arms_of_a_tiny_search():
    out = subprocess.run(
        [sys.executable, str(EXPERIMENTS / "pba_keep_freed_memory.py"), "--pairs", "1", "--flags",
         "--dataset digits --n-train 300 --val-per-class 5 --epochs 2 --population 2 --interval 1 --batch-size 50"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout
    pair = re.search(r"pair 1: default +[\d.]+ s +(\d+) img/s \| kept +[\d.]+ s +(\d+) img/s \| speed-up: "
                     r"wall ([\d.]+)x, img/s ([\d.]+)x", out)
    assert pair is not None, out
    default, kept, _, ratio = (float(g) for g in pair.groups())
    assert default > 0 and kept > 0 and ratio == pytest.approx(kept / default, abs=0.01)
    assert "median over 1 pairs" in out


def test_a_failing_search_is_reported_with_its_command(tmp_path):
    from experiment_script import load_script

    bench = load_script("pba_keep_freed_memory")
    with pytest.raises(SystemExit, match=r"the search failed .*--population 1"):
        bench.run_search(["--dataset", "digits", "--population", "1"], False, tmp_path / "w")
