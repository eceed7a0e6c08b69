"""DifferentiablePolicy: the DADA search space."""
from __future__ import annotations

import pytest
import torch

from autodata.augment import (
    AUTOAUGMENT_OPS,
    OPS,
    DifferentiableParams,
    DifferentiablePolicy,
    Policy,
    PolicyAugment,
    all_pairs,
    policy_from_json,
    policy_to_json,
)
from autodata.augment.testing import check_parameter_gradients, check_replay

SMALL_OPS = ("Rotate", "Color", "Posterize", "Cutout", "Invert")  # exact, straight-through and magnitude-free


def _images(b: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


def test_default_search_space_is_all_ordered_pairs_of_15_ops() -> None:
    policy = DifferentiablePolicy()
    assert policy.num_sub_policies == 15 * 14 == len(all_pairs(AUTOAUGMENT_OPS))
    assert policy.probability_logits.shape == (210, 2)
    magnitude_free = sum(name in {"AutoContrast", "Invert", "Equalize"} for sub in policy.sub_policies for name in sub)
    assert policy.magnitude_logits.shape == (420 - magnitude_free,)


def test_every_parameter_gets_a_gradient_with_hard_choices() -> None:
    policy = DifferentiablePolicy(ops=SMALL_OPS, seed=0)  # 20 sub-policies, straight-through
    x = _images(320)
    check_parameter_gradients(policy, x, policy.sample(320, torch.Generator().manual_seed(0)))
    assert not isinstance(policy.sign_logits, torch.nn.Parameter)  # signs learn only with a score-function estimator


def test_every_parameter_gets_a_gradient_with_soft_choices() -> None:
    policy = DifferentiablePolicy([("Rotate", "Posterize"), ("Invert", "Cutout"), ("Solarize", "Color")], hard=False)
    x = _images(4)
    check_parameter_gradients(policy, x, policy.sample(4, torch.Generator().manual_seed(0)))


def test_full_search_space_every_parameter_gets_a_gradient() -> None:
    policy = DifferentiablePolicy(seed=0)  # 210 sub-policies; about 20 samples each
    x = torch.rand(4096, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    check_parameter_gradients(policy, x, policy.sample(4096, torch.Generator().manual_seed(0)))


def test_hard_forward_is_the_chosen_sub_policy() -> None:
    policy = DifferentiablePolicy([("Invert", "Identity"), ("Identity", "Invert")], probability=1.0).double()
    x = _images(64).double()
    params = policy.sample(64, torch.Generator().manual_seed(0))
    assert torch.allclose(policy(x, params), 1 - x, atol=1e-3)  # probability 1 - 1e-4 gates fire


def test_soft_and_hard_agree_on_average() -> None:
    subs = [("Brightness", "Identity"), ("Invert", "Identity")]
    hard = DifferentiablePolicy(subs, probability=1.0, magnitude=1.0, temperature=0.1)
    soft = DifferentiablePolicy(subs, probability=1.0, magnitude=1.0, temperature=0.1, hard=False)
    x = torch.full((4000, 1, 4, 4), 0.3)
    params = hard.sample(4000, torch.Generator().manual_seed(0))
    assert abs(hard(x, params).mean().item() - soft(x, params).mean().item()) < 0.01


def test_replay_and_repeated_calls_for_finite_differences() -> None:
    policy = DifferentiablePolicy(ops=SMALL_OPS)
    check_replay(policy, _images(16))


def test_magnitude_gradient_matches_finite_differences() -> None:
    policy = DifferentiablePolicy([("Rotate", "Color"), ("Brightness", "ShearX")]).double()
    x = _images(6).double()
    params = policy.sample(6, torch.Generator().manual_seed(0))
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = lambda: (policy(x, params) * weights).sum()  # noqa: E731
    loss().backward()
    grad = policy.magnitude_logits.grad.clone()
    numeric = torch.zeros_like(grad)
    eps = 1e-6
    with torch.no_grad():
        for i in range(grad.numel()):
            policy.magnitude_logits[i] += eps
            up = loss()
            policy.magnitude_logits[i] -= 2 * eps
            down = loss()
            policy.magnitude_logits[i] += eps
            numeric[i] = (up - down) / (2 * eps)
    assert torch.allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_to_policy_and_back() -> None:
    policy = DifferentiablePolicy(ops=SMALL_OPS)
    with torch.no_grad():
        policy.weight_logits.normal_(generator=torch.Generator().manual_seed(0))
        policy.probability_logits.normal_(generator=torch.Generator().manual_seed(1))
        policy.magnitude_logits.normal_(generator=torch.Generator().manual_seed(2))
    exported = policy.to_policy("learned")
    assert policy_from_json(policy_to_json(exported)) == exported
    assert len(exported.stages[0].sub_policies) == 20
    again = DifferentiablePolicy.from_policy(exported)
    assert torch.allclose(again.weights(), policy.weights(), atol=1e-6)
    assert torch.allclose(again.probabilities(), policy.probabilities(), atol=1e-6)
    assert torch.allclose(again.magnitudes(), policy.magnitudes(), atol=1e-6)
    PolicyAugment(exported)(_images(8))  # the exported policy applies as a fixed one


def test_from_policy_rejects_what_it_cannot_learn() -> None:
    with pytest.raises(ValueError, match="magnitude_sampling must be 'fixed'"):
        DifferentiablePolicy.from_policy(
            policy_from_json(policy_to_json(Policy.identity()).replace('"fixed"', '"uniform"'))
        )
    two = Policy.identity().then(Policy.identity())
    with pytest.raises(ValueError, match="exactly one stage"):
        DifferentiablePolicy.from_policy(two)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same length"):
        DifferentiablePolicy([("Rotate", "Color"), ("Rotate",)])
    with pytest.raises(ValueError, match="op must be one of"):
        DifferentiablePolicy([("Rotate", "Spin")])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        DifferentiablePolicy(ops=SMALL_OPS, temperature=0)
    policy = DifferentiablePolicy(ops=SMALL_OPS)
    with pytest.raises(ValueError, match="params.gumbel must have shape"):
        policy(_images(4), policy.sample(3))
    with pytest.raises(TypeError, match="params must be DifferentiableParams"):
        policy(_images(4), object())  # type: ignore[arg-type]
    assert isinstance(policy.sample(2), DifferentiableParams)


def test_chosen_matches_the_hard_forward() -> None:
    policy = DifferentiablePolicy([("Invert", "Identity"), ("Identity", "Identity")], probability=1.0)
    x = _images(32)
    params = policy.sample(32, torch.Generator().manual_seed(0))
    inverted = (policy(x, params) - (1 - x)).abs().flatten(1).amax(1) < 1e-3
    assert torch.equal(inverted, policy.chosen(params) == 0)


def test_hard_forward_equals_a_per_sample_reference() -> None:
    policy = DifferentiablePolicy(ops=("Rotate", "ShearY", "Color", "Posterize", "Cutout", "Equalize")).double()
    with torch.no_grad():
        policy.magnitude_logits.normal_(generator=torch.Generator().manual_seed(0))
    x = _images(48).double()
    params = policy.sample(48, torch.Generator().manual_seed(1))
    chosen = policy.chosen(params)
    gate_open = (policy.probability_logits.detach() + params.gate_noise) > 0  # (B, K, J)
    mags = policy.magnitudes().detach()
    sign = torch.where(policy._sign_logit_table().detach() + params.sign > 0, 1.0, -1.0).double()  # (B, K, J)
    expected = []
    for b in range(48):
        k, xb = int(chosen[b]), x[b : b + 1]
        for j, name in enumerate(policy.sub_policies[k]):
            if gate_open[b, k, j]:
                xb = OPS[name](xb, mags[k, j].view(1), sign[b, k, j].view(1), params.position[b, k, j][None])
        expected.append(xb)
    assert torch.allclose(policy(x, params), torch.cat(expected), atol=1e-9)


@pytest.mark.parametrize("estimator", ["relax", "reinforce"])
def test_scored_forward_is_the_same_hard_draw(estimator: str) -> None:
    """The score-function estimators apply the same images as the straight-through forward."""
    subs = [("Rotate", "Invert"), ("Color", "Cutout"), ("Posterize", "ShearX")]
    x = _images(64).double()
    st = DifferentiablePolicy(subs, seed=0).double()
    scored = DifferentiablePolicy(subs, estimator=estimator, seed=0).double()
    params = st.sample(64, torch.Generator().manual_seed(3))
    assert torch.allclose(st(x, params), scored(x, params), atol=1e-9)
    assert scored.needs_rewards and not st.needs_rewards


def test_learned_sign_probability_sets_the_sign() -> None:
    policy = DifferentiablePolicy([("Rotate",)], probability=1.0, magnitude=1.0, estimator="reinforce")
    with torch.no_grad():
        policy.sign_logits.fill_(20.0)  # always +
    x = _images(8)
    params = policy.sample(8, torch.Generator().manual_seed(0))
    plus = OPS["Rotate"](x, torch.ones(8) * policy.magnitudes()[0, 0].detach(), torch.ones(8))
    assert torch.allclose(policy(x, params), plus, atol=1e-4)
    assert policy.sign_probabilities()[0, 0] > 0.99


def test_ops_argument_names_the_real_cause() -> None:
    with pytest.raises(ValueError, match="cannot make a sub-policy of ops_per_sub_policy=2"):
        DifferentiablePolicy(ops=("Invert",))
    one = DifferentiablePolicy(ops=("Invert",), ops_per_sub_policy=1)
    assert one.sub_policies == (("Invert",),)
    with pytest.raises(ValueError, match="either sub_policies or ops"):
        DifferentiablePolicy([("Rotate", "Color")], ops=("Rotate", "Color"))
    with pytest.raises(ValueError, match="ops must be distinct"):
        DifferentiablePolicy(ops=("Rotate", "Rotate"))


def test_expected_application_ranks_ops() -> None:
    policy = DifferentiablePolicy(ops=("Invert", "Rotate", "Color"))
    with torch.no_grad():
        for k, sub in enumerate(policy.sub_policies):
            policy.probability_logits[k] = torch.tensor([4.0 if n == "Invert" else -4.0 for n in sub])
    assert policy.op_ranking()[0][0] == "Invert"
    assert torch.allclose(policy.expected_application().sum(), policy.probabilities().mean(0).sum() * 1.0 / 1.0
                          * 1.0, atol=1.0)
