"""The ready objective, pruners by name, the study driver (nan, raising trials, resume) and the results."""
from __future__ import annotations

import csv
import math

import optuna
import pytest
from conftest import tiny_config

from autodata.train import TrainConfig, build_run
from autodata.tune import Objective, SearchSpace, TuneSettings, create_pruner, optimize, tune
from autodata.tune.study import create_study

LR_SPACE = SearchSpace.of({"lr": {"low": 0.01, "high": 0.3, "log": True}})


def test_the_objective_needs_a_validation_split():
    with pytest.raises(ValueError, match="val_per_class must be > 0 to tune.*set val_per_class"):
        Objective(TrainConfig(dataset="digits"))


def test_the_objective_refuses_an_invalid_space_before_any_trial():
    with pytest.raises(ValueError, match="low must be <= high"):
        Objective(tiny_config(), SearchSpace.of({"lr": {"low": 1.0, "high": 0.1}}))


def test_the_objective_reports_validation_accuracy_each_epoch_and_records_the_config():
    objective = Objective(tiny_config(), LR_SPACE)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert sorted(trial.intermediate_values) == [1, 2]
    assert trial.value == trial.intermediate_values[2] == trial.user_attrs["val_accuracy"]
    assert trial.user_attrs["epochs"] == 2 and 0 <= trial.user_attrs["test_accuracy"] <= 100
    assert TrainConfig.from_dict(trial.user_attrs["config"]) == tiny_config(lr=trial.params["lr"])


def test_a_pruned_trial_stops_after_the_epoch_the_pruner_judged():
    objective = Objective(tiny_config(epochs=4), LR_SPACE)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=101.0))
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state.name == "PRUNED"
    assert study.trials[0].user_attrs["epochs"] == 1


def test_a_second_objective_makes_the_study_multi_objective():
    objective = Objective(tiny_config(), LR_SPACE, second="epochs")
    assert objective.directions == ["maximize", "minimize"]
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].values[1] == 2.0
    with pytest.raises(ValueError, match="second must be None or one of"):
        Objective(tiny_config(), LR_SPACE, second="flops")


def test_a_diverging_run_fails_its_trial_with_nan():
    objective = Objective(tiny_config(epochs=3), SearchSpace.of({"lr": [1e6]}))
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state.name == "FAIL"


def test_values_that_the_config_refuses_together_fail_the_trial_naming_the_space(tmp_path):
    space = SearchSpace.of({"epochs": {"choices": [2]}, "warmup_epochs": {"choices": [2]}})  # each valid alone
    objective = Objective(tiny_config(epochs=3), space)
    study = optuna.create_study(direction="maximize")
    with pytest.raises(ValueError, match=r"trial 0: the space's values \{'epochs': 2, 'warmup_epochs': 2\} together "
                                         r"make a config the run refuses: warmup_epochs must be < epochs \(2\)"):
        study.optimize(objective, n_trials=1)
    settings = TuneSettings(tiny_config(epochs=3), space, out=str(tmp_path), n_trials=2, max_failures=2)
    with pytest.raises(ValueError, match="2 trials in a row failed, the last with: ValueError: trial 1: the space's values"):
        tune(settings)


@pytest.mark.parametrize("name", ["median", "hyperband", "none"])
def test_pruners_by_name(name):
    pruner = create_pruner(name, max_epochs=8)
    assert isinstance(pruner, optuna.pruners.BasePruner)
    assert (name == "none") == isinstance(pruner, optuna.pruners.NopPruner)


def test_an_unknown_pruner_is_refused_by_the_settings():
    with pytest.raises(ValueError, match=r"pruner must be one of \['hyperband', 'median', 'none'\], but got 'asha'"):
        TuneSettings(tiny_config(), out="x", pruner="asha")


def test_a_trial_that_raises_or_returns_nan_fails_and_the_study_goes_on(tmp_path, monkeypatch):
    real = Objective.__call__
    calls = []

    def flaky(self, trial):
        calls.append(trial.number)
        if trial.number == 0:
            raise RuntimeError("out of memory (simulated)")
        if trial.number == 1:
            return math.nan
        return real(self, trial)

    monkeypatch.setattr(Objective, "__call__", flaky)
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=2, pruner="none", sampler_seed=0)
    study = tune(settings)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert "out of memory" in study.trials[0].user_attrs["error"]


def test_a_broken_setup_stops_after_max_failures_in_a_row(tmp_path, monkeypatch):
    monkeypatch.setattr(Objective, "__call__", lambda self, trial: 1 / 0)
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=5, max_failures=3)
    with pytest.raises(ValueError, match="3 trials in a row failed, the last with: .*division by zero"):
        tune(settings)


def test_results_best_config_and_trials_csv(tmp_path):
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=3, pruner="none", sampler_seed=1)
    study = tune(settings)
    best = TrainConfig.load(tmp_path / "best" / "config.json")
    assert best == tiny_config(lr=study.best_params["lr"])
    assert build_run(best).config == best
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert float(rows[study.best_trial.number]["value"]) == study.best_value
    assert {"param_lr", "epochs", "val_accuracy", "test_accuracy", "retry_of"} <= set(rows[0])
    assert not list(tmp_path.glob("**/.*.tmp"))  # atomic writes leave no temporary files


def test_running_again_resumes_to_the_same_total(tmp_path):
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=2, pruner="none")
    tune(settings)
    study = tune(settings.replace(n_trials=3))
    assert len(study.trials) == 3
    assert len(tune(settings.replace(n_trials=3)).trials) == 3  # nothing left to do


def test_a_study_resumed_with_another_space_or_direction_is_refused(tmp_path):
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=1, pruner="none")
    tune(settings)
    with pytest.raises(ValueError, match="must be resumed with the space it was started with"):
        create_study(settings.replace(space=SearchSpace.of({"lr": {"low": 0.02, "high": 0.3}})))
    with pytest.raises(ValueError, match=r"must have the directions \['maximize', 'minimize'\] of this run, but it exists with \['maximize'\]"):
        create_study(settings.replace(second="seconds"))


def test_a_study_started_before_a_config_field_existed_resumes(tmp_path):
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=1, pruner="none")
    study = tune(settings)
    record = study.user_attrs["autodata"]
    del record["base"]["scale_meta_lr"]  # as a study stored before the field existed
    study.set_user_attr("autodata", record)
    assert len(tune(settings.replace(n_trials=2)).trials) == 2
    with pytest.raises(ValueError, match="must be resumed with the base it was started with"):
        create_study(settings.replace(base=tiny_config(lr=0.2)))


@pytest.mark.slow
def test_two_workers_share_the_embedded_journal(tmp_path):
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=4, workers=2, pruner="none")
    study = tune(settings)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert 4 <= len(finished) <= 5 and len(study.trials) == len(finished)  # a worker may finish one trial over
    assert len({t.number for t in study.trials}) == len(study.trials)


def test_optimize_alone_is_one_worker(tmp_path):
    settings = TuneSettings(tiny_config(), LR_SPACE, out=str(tmp_path), n_trials=1, pruner="none")
    assert len(optimize(settings).trials) == 1
