"""experiments/augment_quality.py: seeds, evaluation epochs, the test subset and the goal check."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_script import load_script

from autodata.train import TrainConfig

POLICIES = Path(__file__).resolve().parents[1] / "policies"


aq = load_script("augment_quality")


def test_parse_seeds() -> None:
    assert aq.parse_seeds("0,1") == [0, 1]
    assert aq.parse_seeds("3") == [3]
    for bad in ("", "0,0", "-1", "a,b"):
        with pytest.raises(ValueError, match="seeds must be"):
            aq.parse_seeds(bad)


def test_eval_epochs_include_the_last() -> None:
    assert aq.eval_epochs(24, 8) == [8, 16, 24]
    assert aq.eval_epochs(25, 8) == [8, 16, 24, 25]
    assert aq.eval_epochs(3, 1) == [1, 2, 3]
    assert aq.eval_epochs(3, 10) == [3]
    with pytest.raises(ValueError, match="eval_every must be >= 1"):
        aq.eval_epochs(3, 0)


def _row(name: str, seed: int, best: float, final: float) -> dict:
    return {"name": name, "seed": seed, "best": best, "final": final}


def test_summarize_means_and_goal() -> None:
    rows = [
        _row("identity", 0, 50.0, 49.0), _row("trivialaugment", 0, 52.0, 51.0), _row("dada_x", 0, 51.0, 50.5),
        _row("identity", 1, 52.0, 51.0), _row("trivialaugment", 1, 54.0, 53.0), _row("dada_x", 1, 53.0, 52.9),
    ]
    s = aq.summarize(rows)
    assert s["seeds"] == [0, 1]
    assert s["mean"]["identity"] == {"best": 51.0, "final": 50.0}
    assert s["mean"]["dada_x"]["final"] == pytest.approx(51.7)
    goal = s["goal"]
    assert goal["learned"] == "dada_x" and goal["best_baseline"] == "trivialaugment"
    assert goal["gap_to_best"] == pytest.approx(-0.3)  # 51.7 against 52.0: exactly at the margin
    assert goal["gain_over_crop_flip"] == pytest.approx(1.7)
    assert goal["beats_crop_flip"] and goal["within_margin_of_best"] and goal["met"]


def test_summarize_goal_not_met_and_unfinished_seeds() -> None:
    rows = [
        _row("identity", 0, 50.0, 50.0), _row("randaugment", 0, 50.0, 49.0), _row("dada_x", 0, 49.0, 49.5),
        _row("identity", 1, 60.0, 60.0),  # seed 1 cut off after identity: left out of every mean
    ]
    s = aq.summarize(rows)
    assert s["seeds"] == [0]
    assert s["mean"]["identity"]["final"] == 50.0
    goal = s["goal"]
    assert goal["best_baseline"] == "identity"
    assert not goal["beats_crop_flip"] and not goal["met"]
    assert goal["within_margin_of_best"] is False  # 0.5 below crop/flip


def test_summarize_without_a_learned_policy_or_baseline() -> None:
    assert aq.summarize([_row("randaugment", 0, 1.0, 1.0), _row("dada_x", 0, 2.0, 2.0)])["goal"] is None
    assert aq.summarize([_row("identity", 0, 1.0, 1.0)])["goal"] is None


@pytest.mark.slow
def test_train_one_evaluates_on_the_test_subset_at_the_due_epochs() -> None:
    config = TrainConfig(dataset="digits", model="small_cnn", n_train=128, epochs=3, batch_size=64,
                         augment="policy", policy=str(POLICIES / "identity.json"), seed=0)
    logged: list[int] = []
    result = aq.train_one(config, n_test=100, every=2, name="identity", log=lambda n, s, r: logged.append(r["epoch"]))
    assert logged == [1, 2, 3]
    assert list(result["curve"]) == ["2", "3"]
    assert result["n_test"] == 100 and result["n_train"] == 128
    assert result["final"] == result["curve"]["3"] and result["best"] == max(result["curve"].values())
    assert result["train_loss"] > 0.0  # the last epoch's mean training loss
    assert all(0.0 <= a <= 100.0 and float(a).is_integer() for a in result["curve"].values())  # of 100 images
    with pytest.raises(ValueError, match="n_test must be in"):
        aq.train_one(config, n_test=10**6, every=1, name="identity")


def test_paired_differences_per_seed_mean_and_standard_error() -> None:
    rows = [
        _row("identity", 0, 0.0, 50.0), _row("dada_x", 0, 0.0, 51.0), _row("randaugment", 0, 0.0, 52.0),
        _row("identity", 1, 0.0, 40.0), _row("dada_x", 1, 0.0, 43.0), _row("randaugment", 1, 0.0, 42.0),
        _row("identity", 2, 0.0, 45.0), _row("dada_x", 2, 0.0, 47.0),  # seed 2 unfinished: not paired
    ]
    paired = aq.summarize(rows)["paired"]
    assert set(paired) == {"identity", "randaugment"}
    assert paired["identity"]["per_seed"] == {"0": 1.0, "1": 3.0}
    assert paired["identity"]["mean"] == pytest.approx(2.0)
    assert paired["identity"]["se"] == pytest.approx(1.0)  # stdev of (1, 3) is sqrt(2), over sqrt(2)
    assert paired["randaugment"]["per_seed"] == {"0": -1.0, "1": 1.0} and paired["randaugment"]["mean"] == 0.0
    one_seed = aq.paired_differences(rows, "dada_x", [0])
    assert one_seed["identity"] == {"per_seed": {"0": 1.0}, "mean": 1.0, "se": None}
    assert aq.summarize([_row("identity", 0, 1.0, 1.0)])["paired"] is None


def test_merge_results_joins_files_and_refuses_duplicate_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"results": [_row("identity", 0, 1.0, 1.0), _row("dada_x", 0, 2.0, 2.0)]}))
    second.write_text(json.dumps({"results": [_row("identity", 1, 3.0, 3.0)]}))
    merged = aq.merge_results([str(first), str(second)])
    assert [(r["name"], r["seed"]) for r in merged] == [("identity", 0), ("dada_x", 0), ("identity", 1)]
    with pytest.raises(ValueError, match="one run per policy and seed"):
        aq.merge_results([str(first), str(first)])
