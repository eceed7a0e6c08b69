"""ask(): tuning from a training loop that autodata does not own."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from autodata.tune import ask

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    match = re.search(r"<!-- readme-test: tune -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README has no python block marked 'tune'"
    return match.group(1)


def test_a_finished_block_completes_with_the_last_reported_value():
    study = optuna.create_study(direction="maximize")
    with ask(study) as trial:
        trial.suggest_float("lr", 0.1, 1.0)
        for epoch in range(3):
            trial.report(0.5 + epoch / 10, epoch)
    assert study.trials[0].state.name == "COMPLETE"
    assert study.trials[0].value == pytest.approx(0.7)
    assert study.trials[0].intermediate_values == {0: 0.5, 1: 0.6, 2: pytest.approx(0.7)}


def test_a_pruned_trial_leaves_the_block_and_the_next_one_runs():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.9))
    epochs = []
    for _ in range(2):
        with ask(study) as trial:
            for epoch in range(5):
                epochs.append(epoch)
                trial.report(0.5, epoch)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    assert epochs == [0, 0]


def test_finish_sets_the_value_and_several_objectives_work():
    study = optuna.create_study(directions=["maximize", "minimize"])
    with ask(study) as trial:
        trial.finish((0.9, 12.0))
    assert study.trials[0].values == [0.9, 12.0]


def test_an_exception_fails_the_trial_and_goes_on():
    study = optuna.create_study()
    with pytest.raises(RuntimeError, match="boom"):
        with ask(study):
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with ask(study) as trial:
            trial.report(1.0, 0)
            raise KeyboardInterrupt
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


def test_a_block_without_a_value_is_a_clear_error_and_a_nan_fails():
    study = optuna.create_study()
    with pytest.raises(ValueError, match="ended without a value: call trial.report"):
        with ask(study):
            pass
    with ask(study) as trial:
        trial.finish(float("nan"))
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


@pytest.mark.slow
def test_the_readme_snippet_runs_as_is_in_seconds():
    code = _snippet()
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "{'lr':" in result.stdout
