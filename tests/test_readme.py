"""The README's wrap-the-loop example runs as written."""
from __future__ import annotations

import re
from pathlib import Path

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
