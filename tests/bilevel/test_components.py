"""Any data component plugs into the engine unchanged: a DADA policy, alone or with a MWN."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from autodata import MetaLearner, MetaWeightNet
from autodata.augment import BaseAugment, DifferentiablePolicy
from autodata.bilevel import virtual_step

SUBS = [("Rotate", "Contrast"), ("ShearX", "Brightness"), ("TranslateY", "Color")]


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3))


def _data(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 12, 12, generator=g, dtype=dtype)
    xm = torch.rand(10, 3, 12, 12, generator=g, dtype=dtype)
    return x, torch.randint(0, 3, (24,), generator=g), xm, torch.randint(0, 3, (10,), generator=g)


@pytest.mark.parametrize("method", ["exact", "fd"])
@pytest.mark.parametrize("joint", [False, True], ids=["policy", "policy+mwn"])
def test_every_meta_parameter_gets_a_finite_nonzero_hypergradient(method: str, joint: bool) -> None:
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    policy = DifferentiablePolicy(SUBS, seed=0)
    # the released net (no centring): centring cancels the output bias (frozen) and the input
    # bias of a unit that is on for the whole batch, which would rightly get no gradient here
    mwn = MetaWeightNet(hidden=8, center=False) if joint else None
    components = [policy] + ([mwn] if joint else [])
    params = [p for c in components for p in c.parameters()]
    before = [p.detach().clone() for p in params]
    learner = MetaLearner(model, optimizer, augment=policy, reweighter=mwn, method=method,
                          meta_optimizer=torch.optim.SGD(params, lr=1.0), seed=3)
    loss = learner.step(*_data())
    optimizer.zero_grad()
    loss.backward()
    named = [(f"{type(c).__name__}.{n}", p, c is policy) for c in components for n, p in c.named_parameters()]
    for (name, p, elementwise), b in zip(named, before):
        delta = b - p.detach()
        assert torch.isfinite(delta).all(), name
        # every policy entry (each sub-policy is picked in a batch of 24); for the MWN, every
        # tensor (a ReLU unit that is off for every loss in the batch rightly gets no gradient)
        if elementwise:
            assert (delta != 0).all(), f"{name}: entries {torch.nonzero(delta == 0).flatten().tolist()} got no gradient"
        else:
            assert (delta != 0).any(), f"{name} got no gradient"


@pytest.mark.parametrize("method", ["exact", "fd"])
def test_policy_hypergradient_matches_finite_differences(method: str) -> None:
    """Soft (relaxed) policy in float64: the engine's hypergradient is the derivative of the look-ahead."""
    torch.manual_seed(0)
    model = _model().double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)
    policy = DifferentiablePolicy(SUBS, hard=False, seed=0).double()
    x, y, xm, ym = _data(torch.float64)
    params = policy.sample(x.shape[0], torch.Generator().manual_seed(5))
    params = type(params)(*(t.double() for t in (params.gumbel, params.gate_noise, params.sign, params.position)))

    names = [n for n, _ in model.named_parameters()]
    theta = dict(model.named_parameters())

    def meta_loss() -> float:
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        with torch.enable_grad():
            out = functional_call(model, {**theta, **buffers}, (policy(x, params),))
            grads = torch.autograd.grad(F.cross_entropy(out, y), [theta[n] for n in names])
        new = virtual_step(optimizer, theta, dict(zip(names, grads)))
        with torch.no_grad():
            return float(F.cross_entropy(functional_call(model, {**new, **buffers}, (xm,)), ym))

    expected, h = [], 1e-6
    for p in policy.parameters():
        g = torch.zeros_like(p)
        for i in range(p.numel()):
            old = p.data.view(-1)[i].item()
            p.data.view(-1)[i] = old + h
            plus = meta_loss()
            p.data.view(-1)[i] = old - h
            minus = meta_loss()
            p.data.view(-1)[i] = old
            g.view(-1)[i] = (plus - minus) / (2 * h)
        expected.append(g)

    class Replay(BaseAugment):  # the same policy, replaying the sampled noise above
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def sample(self, batch_size, generator=None):
            return params

        def forward(self, x, p):
            return self.policy(x, p)

    before = [p.detach().clone() for p in policy.parameters()]
    learner = MetaLearner(model, optimizer, augment=Replay(), method=method, fd_radius=1e-5,
                          meta_optimizer=torch.optim.SGD(policy.parameters(), lr=1.0))
    learner.step(x, y, xm, ym)
    got = [b - p.detach() for b, p in zip(before, policy.parameters())]
    num = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(got, expected)))
    den = torch.sqrt(sum((b**2).sum() for b in expected))
    assert den > 1e-8
    assert num / den < 1e-3, f"relative error {float(num / den):.2e}"
