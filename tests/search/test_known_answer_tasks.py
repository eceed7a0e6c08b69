"""The known-answer tasks' own checks (fast; the searches are in test_known_answer.py)."""
from __future__ import annotations

import pytest
import torch

from autodata.search.known_answer import KNOWN_ANSWER_TASKS, KnownAnswerTask


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"op": "Blur", "magnitude": 0.5}, "op must be one of"),
        ({"op": "Rotate", "magnitude": 1.5}, r"magnitude must be a number in \[0, 1\], but got 1.5"),
        ({"op": "Rotate", "magnitude": "0.5"}, "magnitude must be a number"),
        ({"op": "Rotate", "magnitude": True}, "magnitude must be a number"),
        ({"op": "Invert", "magnitude": 0.0, "sign": -1.0}, "sign must be"),
    ],
)
def test_bad_tasks_are_refused_when_made(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KnownAnswerTask("bad", **fields)


@pytest.mark.parametrize("name", sorted(KNOWN_ANSWER_TASKS))
def test_the_oracle_policy_makes_the_shift(name: str) -> None:
    """The oracle is the right answer: applied to clean images it gives the shifted ones."""
    from autodata.augment import PolicyAugment

    task = KNOWN_ANSWER_TASKS[name]
    x = torch.rand(6, 1, 8, 8)
    augmented = PolicyAugment(task.oracle(), seed=0)(x)
    assert torch.allclose(augmented, task.shift(x), atol=1e-5)
