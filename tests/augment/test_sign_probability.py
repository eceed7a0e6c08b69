"""The learned sign of a signed op in policies: ``OpConfig.sign_probability``, its file field and
every path that applies a policy (batched, per image, the search's export)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from autodata.augment import (
    OPS,
    DifferentiablePolicy,
    OpConfig,
    Policy,
    PolicyAugment,
    PolicyTransform,
    SubPolicy,
    load_policy,
    policy_from_json,
    policy_to_dict,
    policy_to_json,
    save_policy,
)


def _rotate(sign_probability: float, probability: float = 1.0) -> Policy:
    op = OpConfig("Rotate", probability, 0.5, sign_probability=sign_probability)
    return Policy.single_stage("rot", [SubPolicy((op, OpConfig("Invert", 0.5)))])


def _images(b: int = 8, c: int = 1, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


# --- the field ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-0.1, ValueError, r"sign_probability must be in \[0, 1\], but got -0.1"),
        (1.5, ValueError, r"sign_probability must be in \[0, 1\], but got 1.5"),
        (math.nan, ValueError, r"sign_probability must be in \[0, 1\], but got nan"),
        ("0.9", TypeError, r"sign_probability must be a number in \[0, 1\], but got '0.9'"),
        (True, TypeError, r"sign_probability must be a number in \[0, 1\], but got True"),
    ],
)
def test_bad_sign_probabilities_are_refused(value: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        OpConfig("Rotate", 0.5, 0.5, sign_probability=value)


def test_an_op_without_a_sign_takes_only_one_half() -> None:
    assert OpConfig("Invert", 0.5).sign_probability == 0.5
    assert OpConfig("Invert", 0.5, sign_probability=0.5).sign_probability == 0.5
    with pytest.raises(ValueError, match=r"sign_probability must be 0.5 for Invert, an op without a sign, but got 1"):
        OpConfig("Invert", 0.5, sign_probability=1)
    assert OpConfig("Rotate", 0.5, sign_probability=1).sign_probability == 1.0  # an int parses as a float


# --- files -------------------------------------------------------------------------------------

def test_save_load_round_trips_the_sign_exactly(tmp_path: Path) -> None:
    policy = _rotate(0.1 + 0.2)  # 0.30000000000000004: repr precision
    save_policy(policy, tmp_path / "p.json")
    loaded = load_policy(tmp_path / "p.json")
    assert loaded == policy and loaded.stages[0].sub_policies[0].ops[0].sign_probability == 0.1 + 0.2
    assert policy_to_json(loaded) == (tmp_path / "p.json").read_text()
    ops = json.loads((tmp_path / "p.json").read_text())["stages"][0]["sub_policies"][0]["ops"]
    assert ops[0]["sign_probability"] == 0.1 + 0.2
    assert "sign_probability" not in ops[1]  # the fair coin is not written: older readers still read it


def test_a_file_without_the_field_means_a_fair_coin() -> None:
    data = policy_to_dict(_rotate(0.5))
    assert "sign_probability" not in data["stages"][0]["sub_policies"][0]["ops"][0]  # an older file
    assert policy_from_json(json.dumps(data)).stages[0].sub_policies[0].ops[0].sign_probability == 0.5


@pytest.mark.parametrize(
    ("op", "value", "message"),
    [
        (0, 1.5, r"ops\[0\]\.sign_probability must be in \[0, 1\], but got 1.5"),
        (0, -1, r"ops\[0\]\.sign_probability must be in \[0, 1\], but got -1"),
        (0, "high", r"ops\[0\]\.sign_probability must be a number in \[0, 1\], but got 'high'"),
        (0, None, r"ops\[0\]\.sign_probability must be a number in \[0, 1\], but got None"),
        (1, 0.9, r"ops\[1\]\.sign_probability must be 0.5 for Invert, an op without a sign, but got 0.9"),
    ],
)
def test_bad_values_in_a_file_name_the_file_and_field(tmp_path: Path, op: int, value: object, message: str) -> None:
    data = policy_to_dict(_rotate(0.9))
    data["stages"][0]["sub_policies"][0]["ops"][op]["sign_probability"] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value) and "stages[0].sub_policies[0]" in str(info.value)


@pytest.mark.parametrize("name", ["autoaugment_cifar10", "randaugment", "trivialaugment", "crop_flip", "identity"])
def test_shipped_policies_keep_fair_coins(name: str) -> None:
    policy = load_policy(name)
    assert all(op.sign_probability == 0.5 for st in policy.stages for sub in st.sub_policies for op in sub.ops)


# --- applying ----------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_policy_augment_draws_the_positive_sign_with_its_probability(q: float) -> None:
    params = PolicyAugment(_rotate(q)).sample(20000, torch.Generator().manual_seed(0))
    rotate = params.sign[0, 0]  # slot 0 is Rotate in every sample
    positive = (rotate > 0).float().mean().item()
    assert abs(positive - q) < 0.015
    if q in (0.0, 1.0):
        assert positive == q


def test_policy_augment_applies_the_learned_sign() -> None:
    x = _images()
    for q, sign in ((1.0, 1.0), (0.0, -1.0)):
        policy = Policy.single_stage("r", [SubPolicy((OpConfig("Rotate", 1.0, 0.5, sign_probability=q),))])
        expected = OPS["Rotate"](x, torch.full((8,), 0.5), torch.full((8,), sign))
        assert torch.allclose(PolicyAugment(policy, seed=0)(x), expected, atol=1e-6)


def test_a_fair_coin_draws_the_signs_it_drew_before_the_field() -> None:
    aug = PolicyAugment(_rotate(0.5))
    params = aug.sample(64, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # PolicyAugment.sample's layout: choice, position, apply, magnitude, sign
    s, j, b = 1, 2, 64
    torch.rand(s, b, generator=g), torch.rand(s, j, b, 2, generator=g)
    torch.rand(s, j, b, generator=g), torch.rand(s, j, b, generator=g)
    u_sign = torch.rand(s, j, b, generator=g)
    assert torch.equal(params.sign, torch.where(u_sign < 0.5, -1.0, 1.0))


@pytest.mark.parametrize("q", [0.0, 0.3, 0.7, 1.0])
def test_per_image_transform_draws_the_same_signs_as_the_batched_module(q: float) -> None:
    policy = _rotate(q)
    x = _images(40, seed=1)
    signs = []
    for i in range(40):
        batched = PolicyAugment(policy).sample(1, torch.Generator().manual_seed(i))
        aug = PolicyAugment(policy)
        single = PolicyTransform(policy, seed=i)(x[i])
        assert torch.allclose(single, aug(x[i][None], batched)[0], atol=2e-5)
        steps = PolicyTransform(policy, seed=i).draw()
        signs += [math.copysign(1.0, s.value) for s in steps if s.name == "Rotate"]
        assert [s.name for s in steps if s.name == "Rotate"] == ["Rotate"]
        assert math.copysign(1.0, steps[0].value) == batched.sign[0, 0, 0].item()
    if q in (0.0, 1.0):
        assert set(signs) == {2 * q - 1}


# --- the search's export -----------------------------------------------------------------------

def test_to_policy_exports_the_learned_signs_and_from_policy_reads_them() -> None:
    policy = DifferentiablePolicy(ops=("Rotate", "Invert", "Brightness"), estimator="relax")
    with torch.no_grad():
        policy.sign_logits.normal_(generator=torch.Generator().manual_seed(0))
    exported = policy.to_policy("learned")
    learned = policy.sign_probabilities().tolist()
    for ki, sub in enumerate(exported.stages[0].sub_policies):
        for ji, op in enumerate(sub.ops):
            assert op.sign_probability == (learned[ki][ji] if OPS[op.name].signed else 0.5)
            assert OPS[op.name].signed or learned[ki][ji] == 0.5
    assert policy_from_json(policy_to_json(exported)) == exported
    again = DifferentiablePolicy.from_policy(exported, estimator="relax")
    assert torch.allclose(again.sign_probabilities(), policy.sign_probabilities(), atol=1e-6)


def test_the_search_saves_the_learned_sign() -> None:
    from autodata.search import search_augmentation

    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 3, (32,))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    result = search_augmentation((x, y), (x, y), net, ops=("Rotate", "Invert"), steps=3, batch_size=16, keep=2)
    module_signs = {tuple(sub): result.module.sign_probabilities()[k].tolist()
                    for k, sub in enumerate(result.module.sub_policies)}
    for sub in result.policy.stages[0].sub_policies:
        names = tuple(op.name for op in sub.ops)
        assert [op.sign_probability for op in sub.ops] == module_signs[names]
    assert any(op.sign_probability != 0.5 for sub in result.policy.stages[0].sub_policies for op in sub.ops
               if op.name == "Rotate")  # three steps of RELAX moved the signs
