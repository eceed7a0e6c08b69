"""Estimators of the discrete choices against the exact gradient, by enumerating every draw."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from autodata.augment import DifferentiablePolicy
from autodata.augment import estimators as est

SUBS = [("Rotate", "Invert"), ("Invert", "Color"), ("Solarize", "ShearX")]  # signed and unsigned, J = 2


def _policy(estimator: str) -> DifferentiablePolicy:
    policy = DifferentiablePolicy(SUBS, estimator=estimator, seed=0).double()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        policy.weight_logits.copy_(torch.randn(3, generator=g, dtype=torch.float64))
        policy.probability_logits.copy_(torch.randn(3, 2, generator=g, dtype=torch.float64))
        policy.sign_logits.copy_(torch.randn(policy.sign_logits.shape, generator=g, dtype=torch.float64))
    return policy


def _table(k: int = 3, j: int = 2) -> torch.Tensor:
    """A reward for each (sub-policy, gates, signs) of one sample: (K, 2^J, 2^J)."""
    return torch.randn(k, 2**j, 2**j, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def _reward(policy: DifferentiablePolicy, params, table: torch.Tensor) -> torch.Tensor:
    """The reward of each sample's draw: only what changes its image counts (applied signs)."""
    z_c = policy.weight_logits.detach() + params.gumbel
    k = z_c.argmax(-1)
    rows = torch.arange(k.shape[0])
    gates = (policy.probability_logits.detach() + params.gate_noise > 0)[rows, k].long()  # (B, J)
    signs = (policy._sign_logit_table().detach() + params.sign > 0)[rows, k].long()
    signed = (policy._sign_slot >= 0)[k].long()
    signs = signs * gates * signed  # an unapplied or unsigned op's sign changes nothing
    return table[k, gates[:, 0] + 2 * gates[:, 1], signs[:, 0] + 2 * signs[:, 1]]


def _exact_gradient(policy: DifferentiablePolicy, table: torch.Tensor) -> list[torch.Tensor]:
    pi = torch.softmax(policy.weight_logits, 0)
    p = torch.sigmoid(policy.probability_logits)
    q = policy.sign_probabilities()
    signed = (policy._sign_slot >= 0).double()
    total = 0.0
    for k, g0, g1 in itertools.product(range(3), (0, 1), (0, 1)):
        gates = (g0, g1)
        pg = torch.prod(torch.stack([p[k, j] if gates[j] else 1 - p[k, j] for j in range(2)]))
        for s0, s1 in itertools.product((0, 1), (0, 1)):
            signs = (s0, s1)
            ps = 1.0
            for j in range(2):
                if gates[j] and signed[k, j]:
                    ps = ps * (q[k, j] if signs[j] else 1 - q[k, j])
                elif signs[j]:
                    ps = ps * 0.0  # the sign is irrelevant: counted once, as 0
            total = total + pi[k] * pg * ps * table[k, g0 + 2 * g1, s0 + 2 * s1]
    return list(torch.autograd.grad(total, [policy.weight_logits, policy.probability_logits, policy.sign_logits]))


@pytest.mark.parametrize("estimator", ["reinforce", "relax"])
def test_estimator_is_unbiased_against_enumeration(estimator: str) -> None:
    policy, table = _policy(estimator), _table()
    expected = _exact_gradient(policy, table)
    g = torch.Generator().manual_seed(0)
    total, rounds, batch = None, 40, 500
    for _ in range(rounds):
        params = policy.sample(batch, g)
        params = type(params)(*(t.double() for t in (params.gumbel, params.gate_noise, params.sign,
                                                      params.position, params.conditional)))
        grads = policy.discrete_gradients(params, _reward(policy, params, table))[:4]
        grads = [grads[0], grads[1], grads[3]]  # weight, probability and sign logits (not magnitudes)
        total = grads if total is None else [a + b for a, b in zip(total, grads)]
    mean = [t / (rounds * batch) for t in total]
    for name, got, want in zip(("weight", "probability", "sign"), mean, expected):
        assert torch.allclose(got, want, atol=0.03), f"{estimator} {name}: {got} vs {want}"


def test_straight_through_is_biased_on_a_known_case() -> None:
    """The relaxed gate's straight-through gradient is not the gradient of the expected reward."""
    logits = torch.zeros(1, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    u = torch.rand(200_000, generator=g).clamp(1e-6, 1 - 1e-6)
    gate = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / 0.5)
    hard = (gate > 0.5).double() + (gate - gate.detach()).double()
    reward = torch.where(hard.detach() > 0.5, 1.0, 0.0) * hard  # f(b) = b, seen through the gate as b * gate
    (st,) = torch.autograd.grad(reward.mean(), logits)
    exact = 0.25  # d sigmoid(l) / dl at 0, for E[f] = p
    assert abs(float(st) - exact) > 0.1


def test_conditional_noise_reproduces_the_draw() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, generator=g)
    log_pi = torch.log_softmax(logits, 0)
    b = torch.randint(0, 5, (1000,), generator=g)
    zt = est.categorical_conditional(log_pi, b, torch.rand(1000, 5, generator=g))
    assert torch.equal(zt.argmax(-1), b)
    bern = torch.randint(0, 2, (1000, 3), generator=g).double()
    lg = torch.randn(3, generator=g, dtype=torch.float64)
    zb = est.bernoulli_conditional(lg, bern, torch.rand(1000, 3, generator=g, dtype=torch.float64))
    assert torch.equal((zb > 0).double(), bern)


def test_leave_one_out_and_bad_names() -> None:
    assert torch.allclose(est.leave_one_out(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([2.5, 2.0, 1.5]))
    with pytest.raises(ValueError, match="estimator must be one of"):
        est.check_estimator("gumbel")
    with pytest.raises(ValueError, match="estimator must be one of"):
        DifferentiablePolicy(SUBS, estimator="gumbel")


def test_discrete_gradients_reach_every_chosen_logit() -> None:
    policy = DifferentiablePolicy(ops=("Rotate", "Invert", "Color"), estimator="reinforce", seed=0)
    params = policy.sample(256, torch.Generator().manual_seed(0))
    grads = policy.discrete_gradients(params, torch.randn(256, generator=torch.Generator().manual_seed(1)))
    named = dict(zip([n for n, p in policy.named_parameters() if p.requires_grad], grads))
    assert (named["weight_logits"] != 0).all() and (named["probability_logits"] != 0).all()
    assert (named["sign_logits"] != 0).all() and (named["magnitude_logits"] == 0).all()
    assert F.softmax(policy.weight_logits, 0).sum().item() == pytest.approx(1.0)
