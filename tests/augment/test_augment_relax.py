"""Relaxed Bernoulli gates and Gumbel-softmax choices."""
from __future__ import annotations

import math

import pytest
import torch

from autodata.augment import gumbel_noise, gumbel_softmax, logistic_noise, relaxed_bernoulli


def test_noise_is_seeded_by_the_generator() -> None:
    a = logistic_noise((5,), torch.Generator().manual_seed(3))
    b = logistic_noise((5,), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.isfinite(gumbel_noise((1000,), torch.Generator().manual_seed(0))).all()


def test_hard_gate_frequency_matches_probability() -> None:
    p = 0.3
    noise = logistic_noise((20000,), torch.Generator().manual_seed(0))
    gate = relaxed_bernoulli(torch.tensor(math.log(p / (1 - p))), noise, temperature=0.5)
    assert set(gate.unique().tolist()) <= {0.0, 1.0}
    assert abs(gate.mean().item() - p) < 0.02


def test_hard_choice_frequency_matches_softmax() -> None:
    logits = torch.tensor([0.0, 1.0, 2.0])
    noise = gumbel_noise((20000, 3), torch.Generator().manual_seed(0))
    choice = gumbel_softmax(logits, noise, temperature=0.3)
    assert torch.allclose(choice.sum(-1), torch.ones(20000))
    assert torch.allclose(choice.mean(0), torch.softmax(logits, 0), atol=0.02)


@pytest.mark.parametrize("hard", [True, False])
def test_gradients_reach_logits(hard: bool) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.zeros(4, requires_grad=True)
    w = gumbel_softmax(logits, gumbel_noise((8, 4), g), 0.5, hard)
    (w * torch.arange(4.0)).sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad != 0).all()
    gate_logit = torch.zeros((), requires_grad=True)
    relaxed_bernoulli(gate_logit, logistic_noise((8,), g), 0.5, hard).sum().backward()
    assert gate_logit.grad > 0


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError, match="temperature must be > 0"):
        relaxed_bernoulli(torch.zeros(1), torch.zeros(1), 0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        gumbel_softmax(torch.zeros(2), torch.zeros(1, 2), -1.0)
