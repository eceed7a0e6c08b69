"""The README's wrap-the-loop example runs as written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- readme-test: {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has no python block marked {marker!r}"
    return match.group(1)


def test_wrap_loop_example_runs_and_learns() -> None:
    code = _block("wrap-loop")
    added = [line for line in code.splitlines() if line.rstrip().endswith(("# +", "# ~")) or "# ~ " in line]
    assert 1 <= len(added) <= 5, "the README promises at most five added or changed lines"
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    learner, model = namespace["learner"], namespace["model"]
    assert learner.num_steps == 3 * len(namespace["loader"])
    assert learner.last.meta_updated and torch.isfinite(learner.last.weights).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _run_block(marker: str, tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_block(marker), str(README), "exec"), namespace)
    return namespace


def test_quick_start_2_searches_saves_and_reuses_a_policy(tmp_path, monkeypatch) -> None:
    namespace = _run_block("policy", tmp_path, monkeypatch)
    assert (tmp_path / "runs" / "my_policy.json").exists()
    assert namespace["x_aug"].shape == namespace["x"].shape
    assert len(namespace["policy"].stages[0].sub_policies) == 10


def test_the_stepwise_run_example_runs(tmp_path, monkeypatch, capsys) -> None:
    namespace = _run_block("run", tmp_path, monkeypatch)
    assert namespace["run"].finished and namespace["state"]["epoch"] == 3
    assert len(capsys.readouterr().out.splitlines()) == 3


def _shell_commands(marker: str) -> list[str]:
    text = README.read_text()
    match = re.search(rf"<!-- readme-test: {marker} -->\s*```bash\n(.*?)```", text, re.S)
    assert match, f"README has no bash block marked {marker!r}"
    joined = match.group(1).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def _run_shell_block(marker: str, cwd) -> None:
    import os
    import shlex
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for command in _shell_commands(marker):
        if command.startswith("optuna-dashboard"):
            continue  # a server: tests/tune/test_tune_dashboard.py starts it for real, fetches the study, stops it
        done = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}\n{done.stderr}"



@pytest.mark.slow
def test_the_schedule_commands_run_as_written(tmp_path) -> None:
    _run_shell_block("shell-schedule", tmp_path)
    assert (tmp_path / "runs" / "digits_schedule.json").exists()
    assert (tmp_path / "runs" / "digits_pba" / "final" / "policy.json").exists()


@pytest.mark.slow
def test_the_tune_commands_run_as_written(tmp_path) -> None:
    _run_shell_block("shell-tune", tmp_path)
    assert (tmp_path / "runs" / "tune_digits" / "trials.csv").exists()
    assert (tmp_path / "runs" / "digits_tuned" / "summary.md").exists()


@pytest.mark.slow
def test_quick_start_3_and_the_inspection_commands_run_as_written(tmp_path) -> None:
    _run_shell_block("shell", tmp_path)
    assert (tmp_path / "runs" / "digits_mwn" / "final" / "reweighter.pt").exists()
    assert (tmp_path / "runs" / "digits_ce" / "summary.md").exists()
    _run_shell_block("shell-look", tmp_path)
    assert (tmp_path / "runs" / "digits_mwn" / "suspects.csv").exists()
    assert (tmp_path / "runs" / "trivial.png").stat().st_size > 0
    assert (tmp_path / "runs" / "rand_m9_n2.json").exists()


def test_the_transform_example_runs(tmp_path, monkeypatch) -> None:
    namespace = _run_block("transform", tmp_path, monkeypatch)
    assert namespace["sample"]["label"] == 3 and namespace["images"].shape == (8, 3, 32, 32)
    assert namespace["masks"].shape == (8, 32, 32)


@pytest.mark.slow
def test_the_own_data_search_finds_invert(tmp_path, monkeypatch) -> None:
    namespace = _run_block("own-data", tmp_path, monkeypatch)
    assert namespace["result"].ranking[0][0] == "Invert"


@pytest.mark.slow
def test_make_demo_runs_the_main_job() -> None:
    """The README's first command (``make test``, the second, is what runs this suite)."""
    import os
    import shutil
    import subprocess

    root = README.parent
    if shutil.which("make") is None or not (root / ".venv" / "bin" / "autodata").exists():
        pytest.skip("make demo needs make and the .venv that make test creates")
    done = subprocess.run(["make", "-s", "demo"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Meta-Weight-Net - cross-entropy" in done.stdout
