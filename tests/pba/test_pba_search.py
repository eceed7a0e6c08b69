"""The search: config rules, exploit copies policy and lineage, the schedule replays, resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autodata.pba import PBASearch, PBASearchConfig, search_schedule
from autodata.schedules import PBAPolicy, PiecewiseSchedule
from autodata.train import TrainConfig, build_run

TRAIN = TrainConfig(dataset="digits", n_train=400, val_per_class=5, epochs=4, batch_size=100, eval_batch_size=500)


def _config(**changes: object) -> PBASearchConfig:
    return PBASearchConfig(**{"train": TRAIN, "population": 4, "interval": 2, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"population": 1}, "population must be an int >= 2"),
        ({"population": True}, "population must be an int"),
        ({"interval": 0}, r"interval must be an int in \[1, epochs\)"),
        ({"interval": 4}, r"interval must be an int in \[1, epochs\) .*epochs = 4"),
        ({"interval": 9}, r"interval must be an int in \[1, epochs\)"),
        ({"quantile": 0.0}, r"quantile must be a number in \(0, 0.5\]"),
        ({"quantile": 0.75}, r"quantile must be a number in \(0, 0.5\]"),
        ({"engine": "gpu"}, "engine must be one of"),
        ({"train": TRAIN.replace(val_per_class=0)}, "train.val_per_class must be >= 1.*never the test set"),
        ({"train": TRAIN.replace(augment="policy", policy="policies/identity.json")}, "train.augment must be 'none'"),
        ({"train": TRAIN.replace(optimizer="adam")}, "train.optimizer must be 'sgd'"),
        ({"train": TRAIN.replace(compile="default")}, "train.compile must be 'none' for a search"),
        ({"train": "digits"}, "train must be a TrainConfig"),
    ],
)
def test_config_errors_are_clear(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**changes)


def test_config_takes_bf16_and_refuses_a_precision_the_population_cannot_run() -> None:
    c = _config(train=TRAIN.replace(precision="bf16"))
    assert PBASearchConfig.from_json(c.to_json()) == c and c.train.precision == "bf16"
    train = TRAIN.replace()
    object.__setattr__(train, "precision", "fp16")  # a value TrainConfig may take one day
    with pytest.raises(ValueError, match=r"train.precision must be one of \['fp32', 'bf16'\] for a search, but got 'fp16'"):
        _config(train=train)


def test_config_round_trip_and_counts(tmp_path: Path) -> None:
    c = _config()
    c.save(tmp_path / "c.json")
    assert PBASearchConfig.load(tmp_path / "c.json") == c
    assert c.num_perturbations == 1 and [e for e in range(1, 5) if c.perturbs_after(e)] == [2]
    with pytest.raises(ValueError, match="unknown config field"):
        PBASearchConfig.from_dict({**c.to_dict(), "populaton": 3})


def test_exploit_copies_weights_optimizer_state_and_policy() -> None:
    search = PBASearch(_config(population=4, interval=1))
    search.train_epoch()  # epoch 1, then a perturbation
    before = search.population.state_dict()
    policies = list(search.augment.policies)
    search.augment.set_policy(0, PBAPolicy((10, 5) * 30))  # distinguishable policies
    search.augment.set_policy(3, PBAPolicy((3, 2) * 30))
    policies = list(search.augment.policies)
    lineage = [list(m) for m in search.lineage]
    copies = search._perturb(torch.tensor([90.0, 50.0, 60.0, 10.0]))  # member 3 copies member 0
    assert copies == {3: 0}
    after = search.population.state_dict()
    for group in ("params", "buffers", "momentum"):
        for name, t in after[group].items():
            assert torch.equal(t[3], before[group][name][0]), (group, name)
    new = search.augment.policies[3]
    assert new != policies[3]  # explored from member 0's policy, not kept
    changed = sum(a != b for a, b in zip(new.levels, policies[0].levels))
    assert changed < 60 and search.lineage[3] == lineage[0]
    assert search.augment.policies[:3] == policies[:3]


def test_search_writes_a_schedule_that_replays_and_stretches(tmp_path: Path) -> None:
    out = tmp_path / "searched.json"
    lines: list[dict] = []
    result = search_schedule(_config(), out, log=lines.append)
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4] and lines[1]["copies"] and not lines[3]["copies"]
    schedule = PiecewiseSchedule.load(out)
    assert schedule == result.schedule and schedule.num_epochs == 4
    assert all(isinstance(p, PBAPolicy) for p in schedule.per_epoch())
    assert schedule.policy_at(0) == PBAPolicy.zeros()  # PBA starts every member from all zeros
    assert result.best == max(range(4), key=lambda i: (result.val_accuracy[i], -i))
    assert schedule.stretched(10).num_epochs == 10
    run = build_run(TRAIN.replace(augment="schedule", policy=str(out), epochs=6))  # stretched to 6 epochs
    run.fit()
    assert run.finished and run.learner.augment.policy == schedule.stretched(6).policy_at(5)
    # the finished search is not redone: the checkpoint holds it
    again = search_schedule(_config(), out)
    assert again.schedule == result.schedule


def test_members_are_evaluated_where_the_ranking_is_used_and_the_search_is_the_same_either_way(tmp_path: Path) -> None:
    """By default the validation split is evaluated before each perturbation and after the last epoch
    only; eval_every_epoch adds a learning curve, and changes nothing else."""
    config = _config(train=TRAIN.replace(epochs=5))  # interval 2: perturbations after epochs 2 and 4
    assert [e for e in range(1, 6) if config.evaluates_after(e)] == [2, 4, 5]
    curve = config.replace(eval_every_epoch=True)
    assert [e for e in range(1, 6) if curve.evaluates_after(e)] == [1, 2, 3, 4, 5]
    lean, full = PBASearch(config).fit(), PBASearch(curve).fit()
    assert [r["val_accuracy"] is None for r in lean.history] == [True, False, True, False, False]
    assert all(r["val_accuracy"] is not None for r in full.history)
    for a, b in zip(lean.history, full.history):
        assert a["copies"] == b["copies"] and a["train_loss"] == b["train_loss"]
        assert a["val_accuracy"] is None or a["val_accuracy"] == b["val_accuracy"]
    assert lean.schedule == full.schedule and lean.best == full.best and lean.val_accuracy == full.val_accuracy
    old = {k: v for k, v in config.to_dict().items() if k != "eval_every_epoch"}  # a config saved before the field
    assert PBASearchConfig.from_dict(old) == config


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_from_a_perturbation_point_matches_an_uninterrupted_search(tmp_path: Path, precision: str) -> None:
    config = _config(train=TRAIN.replace(precision=precision))
    whole = PBASearch(config, tmp_path / "whole").fit()
    first = PBASearch(config, tmp_path / "cut")
    for _ in range(3):  # epochs 1-3; the checkpoint holds epoch 2 (the perturbation point)
        first.train_epoch()
    resumed = PBASearch(config, tmp_path / "cut")
    assert resumed.epoch == 2
    result = resumed.fit()
    assert result.schedule == whole.schedule and result.val_accuracy == whole.val_accuracy
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in whole.history]
    with pytest.raises(ValueError, match="holds a search of another config"):
        PBASearch(_config(population=5), tmp_path / "cut")
    state = torch.load(tmp_path / "cut" / "search.pt", weights_only=True)["population"]
    assert all(t.dtype == torch.float32 for group in ("params", "momentum") for t in state[group].values())


SCRIPT = """
import sys, time
from autodata.pba import PBASearch, PBASearchConfig, search_schedule
from autodata.train import TrainConfig
config = PBASearchConfig(TrainConfig(dataset="digits", n_train=400, val_per_class=5, epochs=8, batch_size=100,
                                     eval_batch_size=500), population=4, interval=2)
search_schedule(config, sys.argv[1], log=lambda r: print("epoch", r["epoch"], flush=True))
"""


@pytest.mark.slow
def test_kill_9_then_restart_resumes_from_the_last_perturbation(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "epoch 5":  # the checkpoint holds epoch 4; epoch 5 is lost work
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(tmp_path / "s.json.search" / "search.pt", weights_only=True)
    assert state["epoch"] == 4 and not out.exists()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split("\n")[0] == "epoch 5"  # continued, not restarted
    reference = tmp_path / "ref.json"
    subprocess.run([sys.executable, "-c", SCRIPT, str(reference)], capture_output=True, text=True, env=env, check=True)
    assert PiecewiseSchedule.load(out) == PiecewiseSchedule.load(reference)
