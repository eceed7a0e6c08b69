"""build_run -> Run: stepped by epoch, reproducible from its seed, and resumed bit for bit."""
from __future__ import annotations

import math
import pickle

import pytest
import torch

from autodata.augment import Policy, load_policy
from autodata.bilevel import HYPERGRADIENTS
from autodata.train import TrainConfig, build_run

POLICIES = __import__("pathlib").Path(__file__).resolve().parents[2] / "policies"

BASE = dict(dataset="digits", n_train=400, epochs=2, batch_size=64, meta_per_class=4, meta_batch_size=40,
            noise="symmetric", noise_rate=0.4)


def _comparable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


CASES = {
    **{f"mwn-{m}": dict(reweighter="mwn", method=m) for m in HYPERGRADIENTS},
    "mwn-exact-every2": dict(reweighter="mwn", method="exact", every=2),
    "l2rw-exact": dict(reweighter="l2rw", method="exact"),
    "learned-policy-fd": dict(augment="learned", policy_ops=("Rotate", "Invert", "Contrast"), method="fd"),
    "fixed-policy": dict(augment="policy", policy=str(POLICIES / "autoaugment_cifar10.json"), crop_padding=1),
    "ce-adam": dict(optimizer="adam", lr=1e-3),
    "pba-schedule": dict(augment="schedule", policy=str(POLICIES / "pba_rcifar10_200.json")),
    "warmup": dict(epochs=3, warmup_epochs=2),  # saved after epoch 1: mid-warm-up
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resume_from_a_saved_state_is_bit_identical(case: str, tmp_path) -> None:
    config = TrainConfig(**{**BASE, **CASES[case]})
    whole = build_run(config)
    whole.fit()

    first = build_run(config)
    first.run_epoch()
    torch.save(first.state_dict(), tmp_path / "last.pt")
    resumed = build_run(config)
    resumed.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=True))
    assert resumed.epoch == 1
    resumed.fit()

    assert _comparable(resumed.history) == _comparable(whole.history)
    assert _same_parameters(resumed.model, whole.model)
    assert _same_parameters(resumed.learner.reweighter, whole.learner.reweighter)
    assert _same_parameters(resumed.learner.augment, whole.learner.augment)


def test_two_runs_of_one_config_are_identical_and_leave_the_global_random_state_alone() -> None:
    config = TrainConfig(**{**BASE, "reweighter": "mwn", "method": "online"})
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = build_run(config), build_run(config)
    a.fit()
    b.fit()
    assert torch.equal(torch.get_rng_state(), before)
    assert _comparable(a.history) == _comparable(b.history)
    assert _same_parameters(a.model, b.model)
    other = build_run(config.replace(seed=1))
    other.run_epoch()
    assert other.history[0]["train_loss"] != a.history[0]["train_loss"]


def test_the_run_steps_by_epoch_and_reports_metrics() -> None:
    run = build_run(TrainConfig(**{**BASE, "reweighter": "mwn", "val_per_class": 3}))
    record = run.run_epoch()
    assert run.epoch == 1 and not run.finished
    assert {"epoch", "train_loss", "meta_loss", "lr", "val_accuracy", "val_loss", "test_accuracy", "test_loss"} <= set(record)
    assert math.isfinite(record["meta_loss"]) and 0 <= record["test_accuracy"] <= 100
    run.fit()
    assert run.finished and len(run.history) == 2
    assert run.history[1]["lr"] < run.history[0]["lr"]  # cosine schedule, stepped per epoch
    with pytest.raises(ValueError, match="the run is finished"):
        run.train_epoch()
    # the held-out splits are disjoint from the training set and clean
    assert len(run.data.val) == 30 and len(run.data.meta) == 40
    assert len(run.data.train) == 400 - 30 - 40
    assert run.data.noise is not None and 0.25 < run.data.noise.noise_rate < 0.5


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_the_learning_rate_of_each_epoch_is_the_configs_warm_up_then_its_schedule(schedule: str) -> None:
    config = TrainConfig(**{**BASE, "epochs": 5, "warmup_epochs": 2, "lr": 0.1, "lr_schedule": schedule})
    run = build_run(config)
    run.fit()
    lrs = [r["lr"] for r in run.history]
    # worked by hand: 0.1 * 1/3, 0.1 * 2/3, then cosine over the last 3 epochs (or constant)
    tail = [0.1, 0.1 * (1 + math.cos(math.pi / 3)) / 2, 0.1 * (1 + math.cos(2 * math.pi / 3)) / 2]
    expected = [0.1 / 3, 0.2 / 3, *(tail if schedule == "cosine" else [0.1] * 3)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs == pytest.approx([config.lr_at(e) for e in range(5)], rel=1e-12)
    # without a warm-up the closed form is PyTorch's CosineAnnealingLR, which the run keeps using
    cosine = config.replace(warmup_epochs=0, lr_schedule="cosine")
    plain = build_run(cosine)
    plain.fit()
    assert [r["lr"] for r in plain.history] == pytest.approx([cosine.lr_at(e) for e in range(5)], rel=1e-12)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")  # an unpickled pair
def test_a_run_with_a_warm_up_pickles_and_its_schedule_checkpoints_without_the_config(tmp_path) -> None:
    config = TrainConfig(**{**BASE, "epochs": 4, "warmup_epochs": 2, "lr": 0.1})
    expected = [0.1 / 3, 0.2 / 3, 0.1, 0.05]  # by hand: warm-up 1/3, 2/3, then cosine over 2 epochs
    copy = pickle.loads(pickle.dumps(build_run(config)))  # a lambda factor would not pickle
    lrs = []
    for _ in range(4):
        lrs.append(copy.optimizer.param_groups[0]["lr"])
        copy.optimizer.step()  # no gradients: nothing moves; the order PyTorch expects
        copy.scheduler.step()
    assert lrs == pytest.approx(expected, rel=1e-12)
    # the scheduler's state loads with weights_only (no config object in it) and resumes mid-warm-up
    run = build_run(config)
    run.optimizer.step()
    run.scheduler.step()
    torch.save(run.scheduler.state_dict(), tmp_path / "scheduler.pt")
    resumed = build_run(config)
    resumed.scheduler.load_state_dict(torch.load(tmp_path / "scheduler.pt", weights_only=True))
    resumed.optimizer.step()
    resumed.scheduler.step()  # epoch 2 (a fresh scheduler would be at epoch 1)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(expected[2], rel=1e-12)


def test_evaluate_names_a_missing_split() -> None:
    run = build_run(TrainConfig(**{**BASE, "epochs": 1}))
    with pytest.raises(ValueError, match="no val split; set val_per_class"):
        run.evaluate("val")
    with pytest.raises(ValueError, match="split must be one of"):
        run.evaluate("train")


def test_set_policy_swaps_the_augmentation_and_survives_a_checkpoint(tmp_path) -> None:
    config = TrainConfig(**{**BASE, "epochs": 3})
    run = build_run(config)
    run.run_epoch()
    policy = load_policy(POLICIES / "trivialaugment.json")
    run.set_policy(policy)
    assert run.policy() == policy
    torch.save(run.state_dict(), tmp_path / "last.pt")
    resumed = build_run(config)
    resumed.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=True))
    assert resumed.policy() == policy
    run.fit()
    resumed.fit()
    assert _comparable(resumed.history) == _comparable(run.history)
    with pytest.raises(TypeError, match="policy must be a Policy"):
        run.set_policy("trivialaugment.json")
    learned = build_run(TrainConfig(**{**BASE, "augment": "learned", "policy_ops": ("Rotate", "Invert")}))
    with pytest.raises(ValueError, match="learns its policy"):
        learned.set_policy(Policy.identity())


def test_a_checkpoint_of_another_config_is_refused(tmp_path) -> None:
    run = build_run(TrainConfig(**{**BASE, "epochs": 1}))
    state = run.state_dict()
    other = build_run(TrainConfig(**{**BASE, "epochs": 1, "lr": 0.01}))
    with pytest.raises(ValueError, match=r"another config \(fields \['lr'\] differ\)"):
        other.load_state_dict(state, "last.pt")
    with pytest.raises(ValueError, match="must be an autodata run checkpoint"):
        other.load_state_dict({"model": {}}, "last.pt")


def test_a_checkpoint_saved_before_a_field_existed_resumes_with_its_default(tmp_path) -> None:
    run = build_run(TrainConfig(**{**BASE, "epochs": 1}))
    state = run.state_dict()
    for name in ("reweighter_floor", "reweighter_center", "reweighter_max_step_ratio", "guard", "warmup_epochs",
                 "compile"):  # fields added later
        del state["config"][name]
    build_run(TrainConfig(**{**BASE, "epochs": 1})).load_state_dict(state, "old.pt")
    unguarded = build_run(TrainConfig(**{**BASE, "epochs": 1, "guard": False}))
    with pytest.raises(ValueError, match=r"another config \(fields \['guard'\] differ\)"):
        unguarded.load_state_dict(state, "old.pt")


def test_an_every_k_checkpoint_saved_before_scale_meta_lr_resumes_unscaled(tmp_path) -> None:
    every3 = {**BASE, "epochs": 1, "reweighter": "mwn", "method": "fd", "every": 3}
    run = build_run(TrainConfig(**every3, scale_meta_lr=False))
    state = run.state_dict()
    del state["config"]["scale_meta_lr"]  # saved before the field existed: every-k kept the rates then
    resumed = build_run(TrainConfig(**every3, scale_meta_lr=False))
    resumed.load_state_dict(state, "old.pt")
    assert [g["lr"] for g in resumed.learner.meta_optimizer.param_groups] == [1e-3]
    with pytest.raises(ValueError, match=r"another config \(fields \['scale_meta_lr'\] differ\)"):
        build_run(TrainConfig(**every3)).load_state_dict(state, "old.pt")


def test_the_reweighter_and_the_guard_are_built_as_the_config_says() -> None:
    from autodata.reweight import L2RW, MetaWeightNet

    mwn = build_run(TrainConfig(**{**BASE, "reweighter": "mwn", "reweighter_floor": 1.0, "guard": False}))
    assert isinstance(mwn.learner.reweighter, MetaWeightNet) and mwn.learner.reweighter.floor == 1.0
    assert mwn.learner.guard is None
    losses, targets = torch.linspace(0.1, 3.0, 16), torch.zeros(16, dtype=torch.long)
    with torch.no_grad():
        weights = mwn.learner.reweighter(losses, targets)
        raw = torch.sigmoid(mwn.learner.reweighter.net(losses.unsqueeze(1))).squeeze(1)  # (B,)
    torch.testing.assert_close(weights, raw)  # floor 1: the sigmoids' mean is below 1, so no rescaling
    assert not mwn.learner.reweighter.center  # a floor turns the centring off
    plain = build_run(TrainConfig(**{**BASE, "reweighter": "mwn"}))
    assert plain.learner.reweighter.floor == 0.0 and plain.learner.guard is not None
    assert plain.learner.reweighter.center_mode == "on_stall" and not plain.learner.reweighter.center
    for mode in ("off", "on", "on_stall"):
        mwn = build_run(TrainConfig(**{**BASE, "reweighter": "mwn", "reweighter_center": mode})).learner.reweighter
        assert mwn.center_mode == mode and mwn.center == (mode == "on") and mwn.net[2].bias.requires_grad == (mode != "on")

    bounded = build_run(TrainConfig(**{**BASE, "reweighter": "l2rw", "reweighter_max_step_ratio": 2.5}))
    assert isinstance(bounded.learner.reweighter, L2RW) and bounded.learner.reweighter.max_step_ratio == 2.5
    unbounded = build_run(TrainConfig(**{**BASE, "reweighter": "l2rw", "reweighter_max_step_ratio": 0.0}))
    assert unbounded.learner.reweighter.max_step_ratio is None


def test_a_bad_policy_file_fails_before_any_data_is_read(tmp_path, monkeypatch) -> None:
    import autodata.train.run as run_module

    bad = tmp_path / "policy.json"
    bad.write_text('{"format": "autodata.policy", "version": 1, "name": "x", "stages": "oops"}')
    monkeypatch.setattr(run_module, "build_data", lambda config: pytest.fail("data was read"))
    with pytest.raises(ValueError, match="policy.json"):
        build_run(TrainConfig(**{**BASE, "augment": "policy", "policy": str(bad)}))


def test_a_schedule_run_swaps_policies_by_epoch_as_the_schedule_says() -> None:
    from autodata.schedules import PBAAugment, PiecewiseSchedule

    path = POLICIES / "pba_rcifar10_200.json"
    run = build_run(TrainConfig(**{**BASE, "epochs": 200, "n_train": 100, "augment": "schedule", "policy": str(path)}))
    schedule = PiecewiseSchedule.load(path)
    assert isinstance(run.learner.augment, PBAAugment)
    for epoch in (0, 1):
        run.train_epoch()
        assert run.learner.augment.policy == schedule.policy_at(epoch) == run.policy()
    stretched = build_run(TrainConfig(**{**BASE, "epochs": 400, "n_train": 100, "augment": "schedule", "policy": str(path)}))
    assert stretched.schedule.policy_at(399) == schedule.policy_at(199)
