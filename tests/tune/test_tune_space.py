"""Search spaces: the default space, a user space, and invalid spaces refused before any trial."""
from __future__ import annotations

import json

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autodata.train import TrainConfig
from autodata.tune import Param, SearchSpace, default_space

BASE = TrainConfig(val_per_class=5)


def test_default_space_covers_the_optimizer_and_only_what_the_base_learns():
    assert default_space(BASE).names == ("lr", "weight_decay", "momentum", "batch_size", "lr_schedule")
    assert "momentum" not in default_space(BASE.replace(optimizer="adam")).names
    mwn = default_space(BASE.replace(reweighter="mwn", meta_per_class=5)).names
    assert {"reweighter_lr", "reweighter_hidden", "method"} <= set(mwn)
    learned = default_space(BASE.replace(augment="learned", meta_per_class=5)).names
    assert "policy_temperature" in learned and "reweighter_lr" not in learned
    l2rw = default_space(BASE.replace(reweighter="l2rw", meta_per_class=5))
    assert "online" not in next(p for p in l2rw if p.name == "method").choices
    for base in (BASE, BASE.replace(reweighter="mwn", meta_per_class=5), BASE.replace(augment="learned", meta_per_class=5)):
        default_space(base).check(base)


def test_suggest_returns_the_base_config_with_the_drawn_fields():
    space = SearchSpace.of({"lr": {"low": 1e-3, "high": 1.0, "log": True}, "epochs": {"low": 2, "high": 8, "step": 2},
                            "lr_schedule": ["cosine", "constant"], "nesterov": [True, False]})
    space.check(BASE)
    trial = optuna.trial.FixedTrial({"lr": 0.01, "epochs": 4, "lr_schedule": "constant", "nesterov": False})
    config = space.suggest(trial, BASE)
    assert config == BASE.replace(lr=0.01, epochs=4, lr_schedule="constant", nesterov=False)
    assert isinstance(config.epochs, int)


def test_a_space_round_trips_through_json(tmp_path):
    space = default_space(BASE.replace(reweighter="mwn", meta_per_class=5))
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space.to_dict()))
    assert SearchSpace.load(path) == space


def test_every_default_draw_is_a_valid_config():
    base = BASE.replace(reweighter="mwn", meta_per_class=5)
    space = default_space(base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        config = space.suggest(trial, base)
        assert 1e-3 <= config.lr <= 0.5 and config.batch_size in (32, 64, 128, 256)
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"lr": {"low": 0.5, "high": 0.1}}, "low must be <= high, but got low=0.5 > high=0.1; swap them"),
        ({"lr": {"low": 0.0, "high": 0.1, "log": True}}, "low must be > 0 with log=True, but got low=0.0"),
        ({"weight_decay": {"low": -1e-3, "high": 1e-3, "log": True}}, "low must be > 0 with log=True"),
        ({"learning_rate": {"low": 0.1, "high": 1}}, "name must be a TrainConfig field, but got 'learning_rate'"),
        ({"lr_schedule": ["cosine", "step"]}, "the value 'step' is refused by the config: lr_schedule must be one of"),
        ({"method": ["exact", "newton"]}, "the value 'newton' is refused"),
        ({"momentum": {"low": 0.5, "high": 1.0}}, "the value 1.0 is refused by the config: momentum must be in [0, 1)"),
        ({"lr": {"low": -1.0, "high": 1.0}}, "the value -1.0 is refused by the config: lr must be a positive"),
        ({"epochs": {"low": 1.5, "high": 4}}, "low must be an integer for the integer field epochs"),
        ({"lr_schedule": {"low": 1, "high": 2}}, "needs choices"),
        ({"lr": {"low": 1e-3, "high": 1.0, "log": True, "step": 0.1}}, "step must not be set with log=True"),
        ({"lr": {"low": 1e-3}}, "low and high must both be set"),
        ({"lr": {"choices": []}}, "choices must not be empty"),
        ({"lr": {"low": 1e-3, "high": 1, "scale": "log"}}, "unknown key(s) ['scale']"),
        ({"batch_size": [0, 32]}, "the value 0 is refused by the config: batch_size must be >= 1"),
    ],
)
def test_an_invalid_space_is_refused_before_any_trial(spec, message):
    with pytest.raises(ValueError) as error:
        SearchSpace.from_dict(spec).check(BASE)
    assert message in str(error.value)
    assert str(error.value).startswith(("space parameter", "space:"))


def test_a_space_names_each_field_once_and_is_not_empty():
    with pytest.raises(ValueError, match=r"each field once, but got \['lr'\]"):
        SearchSpace((Param("lr", 0.1, 1.0), Param("lr", 0.2, 1.0)))
    with pytest.raises(ValueError, match="at least one field"):
        SearchSpace(()).check(BASE)


@settings(max_examples=60, deadline=None)
@given(low=st.floats(-10, 10, allow_nan=False), high=st.floats(-10, 10, allow_nan=False), log=st.booleans())
def test_a_checked_range_is_one_optuna_accepts(low, high, log):
    param = Param("weight_decay", low, high, log=log)
    try:
        param.check(BASE)
    except ValueError:
        assert low > high or low < 0 or (log and low <= 0)
        return
    value = param.suggest(optuna.create_study().ask())
    assert low <= value <= high
    BASE.replace(weight_decay=value)
