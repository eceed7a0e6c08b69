"""Hypergradients of every method and optimizer against central finite differences in float64."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autodata import MetaLearner, MetaWeightNet
from autodata.testing.hypergradients import numeric_hypergradient

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.3),
    "sgd-nesterov-wd": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-3),
    "sgd-dampening": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.5, dampening=0.3),
    "adam": lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=1e-3),
    "adam-amsgrad": lambda p: torch.optim.Adam(p, lr=0.05, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.05),
}


def _setup(opt_name: str):
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)).double()
    optimizer = OPTIMIZERS[opt_name](model.parameters())
    x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)
    xm, ym = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g)
    for _ in range(2):  # populate the optimizer's state (momentum, moments, step count)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer, (x, y, xm, ym)


@pytest.mark.parametrize("method", ["exact", "jvp", "fd", "last"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_hypergradient_matches_finite_differences(method: str, opt_name: str) -> None:
    torch.manual_seed(0)
    model, optimizer, batch = _setup(opt_name)
    mwn = MetaWeightNet(hidden=4).double()
    before = [p.detach().clone() for p in mwn.parameters()]
    names = ["3.weight", "3.bias"] if method == "last" else [n for n, _ in model.named_parameters()]
    expected = numeric_hypergradient(model, optimizer, mwn, batch, names)

    # A unit-rate SGD meta-optimizer turns the applied update into the hypergradient itself.
    learner = MetaLearner(
        model, optimizer, reweighter=mwn, method=method, fd_radius=1e-5,
        meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0),
    )
    learner.step(*batch)
    got = [b - p.detach() for b, p in zip(before, mwn.parameters())]

    num = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(got, expected)))
    den = torch.sqrt(sum((b**2).sum() for b in expected))
    assert den > 1e-8, "degenerate test: the hypergradient is zero"
    assert num / den < 1e-3, f"relative error {float(num / den):.2e}"


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_online_hypergradient_is_that_of_the_real_step_taken(opt_name: str) -> None:
    """``online``: the update applied at step t+1 is the hypergradient of real step t."""
    torch.manual_seed(0)
    model, optimizer, (x, y, xm, ym) = _setup(opt_name)
    mwn = MetaWeightNet(hidden=4).double()
    names = [n for n, _ in model.named_parameters()]
    expected = numeric_hypergradient(model, optimizer, mwn, (x, y, xm, ym), names)

    learner = MetaLearner(model, optimizer, reweighter=mwn, method="online", fd_radius=1e-5,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    loss = learner.step(x, y)  # step 0: no update yet, the forward is recorded
    assert not learner.last.meta_updated
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()  # the hook records this real step's gradient and pre-step state
    for group in optimizer.param_groups:  # a scheduler between steps must not change the replay
        group["lr"] *= 0.5
    before = [p.detach().clone() for p in mwn.parameters()]
    learner.step(x[:6], y[:6], xm, ym)  # step 1 applies the hypergradient of step 0
    assert learner.last.meta_updated
    got = [b - p.detach() for b, p in zip(before, mwn.parameters())]
    num = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(got, expected)))
    den = torch.sqrt(sum((b**2).sum() for b in expected))
    assert den > 1e-8
    assert num / den < 1e-3, f"relative error {float(num / den):.2e}"


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_jvp_equals_exact_to_rounding(opt_name: str) -> None:
    """The forward-mode method is exact: the same update as the double backward, in float64."""
    updates = []
    for method in ("exact", "jvp"):
        torch.manual_seed(0)
        model, optimizer, batch = _setup(opt_name)
        mwn = MetaWeightNet(hidden=4).double()
        before = [p.detach().clone() for p in mwn.parameters()]
        learner = MetaLearner(model, optimizer, reweighter=mwn, method=method,
                              meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
        learner.step(*batch)
        updates.append([b - p.detach() for b, p in zip(before, mwn.parameters())])
    for a, b in zip(*updates):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)
