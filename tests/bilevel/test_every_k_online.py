"""``jvp-online`` every k: the update applied one step after each due step is that step's exact hypergradient."""
from __future__ import annotations

import copy

import pytest
import torch
from hypergrad_problem import OPTIMIZERS, setup_problem

from autodata import MetaLearner, MetaWeightNet


def _exact_update(model, optimizer, opt_name: str, mwn: MetaWeightNet, x, y, xm, ym) -> list[torch.Tensor]:
    """The reweighter's change (meta SGD, lr 1) from the double backward at the current state, on this batch."""
    model, reweighter = copy.deepcopy(model), copy.deepcopy(mwn)
    twin = OPTIMIZERS[opt_name](model.parameters())
    twin.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    learner = MetaLearner(model, twin, reweighter=reweighter, method="exact", guard=False,
                          meta_optimizer=torch.optim.SGD(reweighter.parameters(), lr=1.0))
    before = [p.detach().clone() for p in reweighter.parameters()]
    rng = torch.get_rng_state()
    learner.step(x, y, xm, ym)
    torch.set_rng_state(rng)  # the learner under test draws the same dropout masks
    assert learner.last.meta_updated
    learner.close()
    return [b - p.detach() for b, p in zip(before, reweighter.parameters())]


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("opt_name", ["sgd-nesterov-wd", "adamw"])
def test_every_k_applies_each_due_steps_exact_hypergradient_one_step_late_and_nothing_else(opt_name: str, k: int) -> None:
    torch.manual_seed(0)
    model, optimizer, (_, _, xm, ym) = setup_problem(opt_name, 0.3)  # float64 MLP, BatchNorm, dropout 0.3
    mwn = MetaWeightNet(hidden=4).double()
    learner = MetaLearner(model, optimizer, reweighter=mwn, method="jvp-online", every=k, guard=False,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    g = torch.Generator().manual_seed(1)
    expected, applied = None, 0
    for t in range(3 * k + 2):
        x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)
        due = t % k == 0
        if due:
            expected_next = _exact_update(model, optimizer, opt_name, mwn, x, y, xm, ym)
        before = [p.detach().clone() for p in mwn.parameters()]
        loss = learner.step(x, y, xm, ym)
        change = [b - p.detach() for b, p in zip(before, mwn.parameters())]
        applies = t > 0 and (t - 1) % k == 0  # step t-1 was due: its update lands now
        assert learner.last.meta_updated == applies
        if applies:
            for got, want in zip(change, expected):
                torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12 * float(want.abs().max()))
            applied += 1
        else:
            assert not any(c.any() for c in change)
        if due:
            expected = expected_next
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert applied == 4
    learner.close()
