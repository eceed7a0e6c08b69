"""``experiments/paired_seeds.py``: the paired statistics behind BENCHMARKS' every-k accuracy rows."""
from __future__ import annotations

import json

import pytest
from experiment_script import load_script

paired_seeds = load_script("paired_seeds")


def _write(path, method: str, finals: dict[int, float], **config) -> None:
    results = [{"name": method, "final": v, "best": v, "config": {"seed": s, **config}} for s, v in finals.items()]
    path.write_text(json.dumps({"methods": [method], "results": results}))


def test_known_differences_give_the_t_interval(tmp_path, capsys) -> None:
    _write(tmp_path / "ref.json", "mwn", {0: 70.0, 1: 72.0, 2: 74.0, 7: 60.0})
    _write(tmp_path / "arm.json", "mwn-jvp-online4", {0: 71.0, 1: 74.0, 2: 77.0})  # +1, +2, +3; seed 7 unpaired
    _write(tmp_path / "rerun.json", "mwn-jvp-online4", {2: 73.0})  # a re-run listed later wins: -1
    assert paired_seeds.main([f"exact=mwn@{tmp_path}/ref.json",
                              f"k4=mwn-jvp-online4@{tmp_path}/arm.json,{tmp_path}/rerun.json"]) == 0
    out = capsys.readouterr().out
    # differences +1, +2, -1: mean 0.67, s.d. 1.53, s.e. 0.88, t(0.975, 2) = 4.303 -> +-3.79
    assert "| k4 - exact | 3 | +0.67 ± 0.88 | -3.13 to +4.46 | +1.00 | not established |" in out
    assert "| 7 | 60.00 |  |" in out and "| 2 | 74.00 | 73.00 |" in out


def test_verdicts(tmp_path, capsys) -> None:
    _write(tmp_path / "ref.json", "mwn", {s: 70.0 for s in range(5)})
    _write(tmp_path / "near.json", "a", {0: 70.1, 1: 69.9, 2: 70.2, 3: 69.8, 4: 70.0})
    _write(tmp_path / "far.json", "b", {0: 67.1, 1: 66.9, 2: 67.2, 3: 66.8, 4: 67.0})
    paired_seeds.main([f"ref=mwn@{tmp_path}/ref.json", f"near=a@{tmp_path}/near.json", f"far=b@{tmp_path}/far.json"])
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("| near - ref")).endswith("| yes |")
    assert next(line for line in lines if line.startswith("| far - ref")).endswith("| no |")


@pytest.mark.parametrize("arm, message", [
    ("exact", "NAME=METHOD@GLOB"),
    ("exact=mwn@/nonexistent/*.json", "no file matches"),
])
def test_bad_arms_say_what_to_give(arm: str, message: str, tmp_path) -> None:
    _write(tmp_path / "ref.json", "mwn", {0: 1.0, 1: 2.0})
    with pytest.raises(SystemExit, match=message):
        paired_seeds.main([f"ref=mwn@{tmp_path}/ref.json", arm])


def test_a_file_that_is_not_a_result_file_is_named(tmp_path) -> None:
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="bad.json: not a noisy_labels.py result file"):
        paired_seeds.main([f"ref=mwn@{tmp_path}/bad.json", f"x=mwn@{tmp_path}/bad.json"])


def test_pooled_settings_are_named_and_too_few_seeds_said(tmp_path, capsys) -> None:
    _write(tmp_path / "ref.json", "mwn", {0: 70.0, 1: 71.0})
    _write(tmp_path / "a.json", "k", {0: 70.0}, reweighter_lr=0.003)
    _write(tmp_path / "b.json", "k", {1: 71.0})
    paired_seeds.main([f"ref=mwn@{tmp_path}/ref.json", f"k=k@{tmp_path}/a.json", f"one=k@{tmp_path}/a.json"])
    out = capsys.readouterr().out
    assert "| one - ref | 1 | | | | too few seeds |" in out
    paired_seeds.main([f"ref=mwn@{tmp_path}/ref.json", f"k=k@{tmp_path}/a.json,{tmp_path}/b.json"])
    out = capsys.readouterr().out
    assert "note: arm 'k' pools runs whose config field reweighter_lr differs: [0.003, '(absent)']" in out
    with pytest.raises(SystemExit, match="arm names must differ"):
        paired_seeds.main([f"ref=mwn@{tmp_path}/ref.json", f"ref=k@{tmp_path}/a.json"])


def test_a_malformed_entry_is_named(tmp_path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"results": [{"name": "mwn", "final": 1.0}]}))  # no config
    with pytest.raises(SystemExit, match="bad.json: not a noisy_labels.py result file \\(KeyError"):
        paired_seeds.main([f"ref=mwn@{tmp_path}/bad.json", f"x=mwn@{tmp_path}/bad.json"])


def test_last3_is_the_mean_of_the_last_three_epochs(tmp_path, capsys) -> None:
    def result(name, seed, curve):
        return {"name": name, "final": curve[-1], "best": max(curve), "curve": curve, "config": {"seed": seed}}
    data = {"results": [result("r", 0, [1.0, 60.0, 70.0, 80.0]), result("r", 1, [1.0, 60.0, 60.0, 60.0]),
                        result("a", 0, [1.0, 61.0, 71.0, 81.0]), result("a", 1, [1.0, 63.0, 63.0, 63.0])]}
    (tmp_path / "runs.json").write_text(json.dumps(data))
    paired_seeds.main([f"r=r@{tmp_path}/runs.json", f"a=a@{tmp_path}/runs.json", "--metric", "last3"])
    out = capsys.readouterr().out
    assert "| 0 | 70.00 | 71.00 |" in out and "| a - r | 2 | +2.00 ± 1.00 |" in out
