"""Hypergradients of every method and optimizer against central finite differences in float64."""
from __future__ import annotations

import pytest
import torch

from autodata import MetaLearner, MetaWeightNet
from autodata.bilevel import ForwardMode
from autodata.testing.hypergradients import numeric_hypergradient
from hypergrad_problem import OPTIMIZERS, setup_problem


@pytest.mark.parametrize("method", ["exact", "jvp", "fd", "last"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_hypergradient_matches_finite_differences(method: str, opt_name: str) -> None:
    torch.manual_seed(0)
    model, optimizer, batch = setup_problem(opt_name)
    mwn = MetaWeightNet(hidden=4).double()
    before = [p.detach().clone() for p in mwn.parameters()]
    names = ["4.weight", "4.bias"] if method == "last" else [n for n, _ in model.named_parameters()]
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
    model, optimizer, (x, y, xm, ym) = setup_problem(opt_name)
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
    """The forward-mode method is exact: the same update as the double backward, in float64, with its
    forward-mode rules (the default) and with PyTorch's own formulas (``rules=False``)."""
    updates = []
    for method in ("exact", "jvp", ForwardMode(rules=False)):
        torch.manual_seed(0)
        model, optimizer, batch = setup_problem(opt_name)
        mwn = MetaWeightNet(hidden=4).double()
        before = [p.detach().clone() for p in mwn.parameters()]
        learner = MetaLearner(model, optimizer, reweighter=mwn, method=method,
                              meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
        learner.step(*batch)
        updates.append([b - p.detach() for b, p in zip(before, mwn.parameters())])
    for update in updates[1:]:
        for a, b in zip(update, updates[0]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)
