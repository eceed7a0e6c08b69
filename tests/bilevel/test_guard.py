"""The divergence guard: a climbing validation loss warns and falls back to uniform weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autodata import MetaLearner, MetaWeightNet
from autodata.bilevel import DivergenceGuard


def test_guard_switches_on_a_climb_and_back_on_recovery() -> None:
    guard = DivergenceGuard(warmup=3)
    events = [guard.update(v) for v in [2.3, 2.0, 1.5, 1.2, 1.0, 9.0, 20.0, 30.0]]
    assert True in events and guard.active
    events = [guard.update(v) for v in [0.5] * 60]
    assert False in events and not guard.active
    other = DivergenceGuard()
    other.load_state_dict(guard.state_dict())
    assert other.state_dict() == guard.state_dict()


def test_learner_warns_and_trains_with_uniform_weights_while_the_meta_loss_climbs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = {"n": 0}

    def climbing(out, y):  # the validation loss of a run that diverges after a few steps
        calls["n"] += 1
        return F.cross_entropy(out, y) * (1.0 if calls["n"] < 8 else 10.0 * calls["n"])

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(hidden=8), method="jvp", meta_loss_fn=climbing)
    with pytest.warns(RuntimeWarning, match="past 2 times its best .*training diverges with the learned weights; uniform weights"):
        for _ in range(12):
            loss = learner.step(x, y, x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert learner.last.fallback and torch.equal(learner.last.weights, torch.ones(16))
    assert learner.state_dict()["guard"]["active"]
