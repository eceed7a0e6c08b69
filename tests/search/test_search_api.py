"""search_augmentation over the user's own data and rewards for discrete choices (known-answer tasks:
test_known_answer.py)."""
from __future__ import annotations

import pytest
import torch

from autodata.augment import DifferentiablePolicy
from autodata.bilevel import MetaLearner
from autodata.search import search_augmentation, top_k


def _net(c: int = 1, k: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c * 8 * 8, k))


def test_search_takes_tensors_datasets_and_loaders() -> None:
    x, y = torch.rand(48, 1, 8, 8), torch.randint(0, 3, (48,))
    ds = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    for train, val in (((x, y), (1 - x, y)), (ds, ds), (loader, loader)):
        result = search_augmentation(train, val, _net(), ops=("Invert", "Rotate", "Color"), steps=3, batch_size=16,
                                     keep=2)
        assert len(result.policy.stages[0].sub_policies) == 2
        assert {n for n, _ in result.ranking} == {"Invert", "Rotate", "Color"}


def test_search_arguments_are_checked() -> None:
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 3, (16,))
    with pytest.raises(ValueError, match="steps must be"):
        search_augmentation((x, y), (x, y), _net(), ops=("Invert", "Rotate"), steps=0)
    with pytest.raises(ValueError, match="either sub_policies or ops"):
        search_augmentation((x, y), (x, y), _net(), sub_policies=[("Invert",)], ops=("Invert",), steps=1)
    with pytest.raises(TypeError, match="val must be"):
        search_augmentation((x, y), 3, _net(), ops=("Invert", "Rotate"), steps=1)


def test_policy_learner_refuses_online_with_discrete_choices() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="needs a method applied at once"):
        MetaLearner(net, opt, augment=DifferentiablePolicy(ops=("Invert", "Rotate"), estimator="relax"),
                      method="online")


def test_top_k_ranks_by_expected_application() -> None:
    policy = DifferentiablePolicy(ops=("Invert", "Rotate"))
    with torch.no_grad():
        policy.weight_logits.copy_(torch.tensor([1.0, 0.0]))  # the first picked more often ...
        policy.probability_logits.copy_(torch.tensor([[-6.0, -6.0], [6.0, 6.0]]))  # ... but applies nothing
    kept = top_k(policy.to_policy(), 1)
    assert kept.stages[0].sub_policies[0].ops[0].name == policy.sub_policies[1][0]
