"""Optuna plots of a study: optimisation history and parameter importances, written into OUT/plots/."""
from __future__ import annotations

import argparse
import doctest
import json
import math

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

import autodata.tune.plots as tune_plots  # noqa: E402
from autodata.tune.plots import plot_optimization_history, plot_param_importances, write_study_plots  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def _imported_once() -> None:
    """matplotlib and fANOVA's scikit-learn forest cost ~3 s to import once; not any test's own time."""
    pytest.importorskip("sklearn.ensemble")
    tune_plots.new_figure(1, 1)


def _study(n: int = 12, directions: list[str] | None = None):
    study = optuna.create_study(directions=directions or ["maximize"], sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        trial.suggest_categorical("schedule", ["cosine", "constant"])
        accuracy = 95 - 20 * (math.log10(lr) + 1) ** 2
        if len(study.directions) == 1:
            trial.report(accuracy, 0)
        if trial.number % 4 == 3:
            raise optuna.TrialPruned()
        return accuracy if len(study.directions) == 1 else (accuracy, lr)

    study.optimize(objective, n_trials=n)
    return study


def test_write_study_plots_draws_both_pngs_into_out_plots(tmp_path) -> None:
    paths = write_study_plots(_study(), tmp_path)
    assert [p.name for p in paths] == list(tune_plots.PLOT_FILES)
    for path in paths:
        assert path.parent == tmp_path / "plots" and path.read_bytes().startswith(PNG)
    assert not list((tmp_path / "plots").glob(".*.tmp"))  # atomic writes leave no temporary file


def test_importances_rank_the_parameter_that_matters_first() -> None:
    importances = tune_plots._importances(_study(16), seed=0)
    assert next(iter(importances)) == "lr" and abs(sum(importances.values()) - 1) < 1e-6


def test_empty_and_tiny_studies_still_draw(tmp_path) -> None:
    empty = optuna.create_study(direction="maximize")
    one = _study(1)
    for study, name in ((empty, "empty"), (one, "one")):
        assert plot_optimization_history(study, tmp_path / f"{name}_h.png").read_bytes().startswith(PNG)
        assert plot_param_importances(study, tmp_path / f"{name}_i.png").read_bytes().startswith(PNG)


def test_a_multi_objective_study_plots_its_first_objective(tmp_path) -> None:
    paths = write_study_plots(_study(8, ["maximize", "minimize"]), tmp_path, title="two objectives")
    assert all(p.stat().st_size > 0 for p in paths)


def test_docstring_example() -> None:
    assert doctest.testmod(tune_plots, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.slow
def test_autodata_tune_writes_the_plots(tmp_path, capsys) -> None:
    from autodata.tune.cli import register

    parser = argparse.ArgumentParser(prog="autodata")
    register(parser.add_subparsers(dest="command"))
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr": {"low": 0.01, "high": 0.3, "log": True}}))
    out = tmp_path / "study"
    args = parser.parse_args(["tune", "--dataset", "digits", "--n-train", "400", "--val-per-class", "10", "--epochs",
                              "1", "--batch-size", "64", "--out", str(out), "--trials", "3", "--pruner", "none",
                              "--space", str(space), "--sampler-seed", "0"])
    assert args.run(args) == 0
    assert f"plots: {out / 'plots' / 'history.png'}, {out / 'plots' / 'importances.png'}" in capsys.readouterr().out
    assert (out / "plots" / "importances.png").read_bytes().startswith(PNG)
