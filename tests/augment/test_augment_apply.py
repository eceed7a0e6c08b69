"""PolicyAugment (batched) and PolicyTransform (per image)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autodata.augment import (
    OPS,
    OpConfig,
    Policy,
    PolicyAugment,
    PolicyParams,
    PolicyTransform,
    Stage,
    SubPolicy,
    load_policy,
)
from autodata.augment.testing import check_replay

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SHIPPED = ["autoaugment_cifar10", "randaugment", "trivialaugment", "identity", "crop_flip"]


def _images(b: int = 32, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, 16, 16, generator=torch.Generator().manual_seed(seed))


def _invert_or_identity(p_invert: float = 0.6) -> Policy:
    return Policy.single_stage(
        "coin",
        [SubPolicy((OpConfig("Invert", p_invert),)), SubPolicy((OpConfig("Identity", 1.0),))],
        weights=[1.0, 3.0],
    )


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("channels", [1, 3])
def test_shipped_policies_keep_shape_range_and_replay(name: str, channels: int) -> None:
    aug = PolicyAugment(load_policy(POLICIES / f"{name}.json"), seed=0)
    x = _images(c=channels)
    out = aug(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    check_replay(aug, x)


def test_batched_equals_one_by_one() -> None:
    aug = PolicyAugment(load_policy(POLICIES / "autoaugment_cifar10.json").then(
        load_policy(POLICIES / "crop_flip.json")), seed=0)
    x = _images(24).double()
    params = aug.sample(24, torch.Generator().manual_seed(5))
    batched = aug(x, params)
    single = torch.cat([aug(x[i : i + 1], params.subset(slice(i, i + 1))) for i in range(24)])
    assert torch.allclose(batched, single, atol=1e-9)


def test_sampled_frequencies_match_the_policy() -> None:
    aug = PolicyAugment(_invert_or_identity(0.6), seed=0)
    params = aug.sample(40000, torch.Generator().manual_seed(0))
    picked_invert = params.choice[0] == 0
    assert abs(picked_invert.float().mean().item() - 0.25) < 0.01
    assert abs(params.apply[0, 0][picked_invert].float().mean().item() - 0.6) < 0.015
    assert params.apply[0, 0][~picked_invert].all()  # Identity, probability 1


def test_uniform_magnitude_sampling_and_signs() -> None:
    aug = PolicyAugment(load_policy(POLICIES / "trivialaugment.json"), seed=0)
    params = aug.sample(20000, torch.Generator().manual_seed(0))
    assert abs(params.magnitude.mean().item() - 0.5) < 0.01
    assert abs(params.sign.mean().item()) < 0.03
    assert set(params.sign.unique().tolist()) == {-1.0, 1.0}


def test_zero_weight_sub_policy_is_never_picked() -> None:
    policy = Policy.single_stage(
        "z", [SubPolicy((OpConfig("Invert", 1.0),)), SubPolicy((OpConfig("Identity", 1.0),))], [0.0, 1.0]
    )
    params = PolicyAugment(policy).sample(5000, torch.Generator().manual_seed(0))
    assert (params.choice == 1).all()


def test_generators_and_seeds() -> None:
    aug = PolicyAugment(load_policy(POLICIES / "randaugment.json"), seed=0)
    x = _images(16)
    a = aug(x, aug.sample(16, torch.Generator().manual_seed(1)))
    b = aug(x, aug.sample(16, torch.Generator().manual_seed(2)))
    assert not torch.equal(a, b)
    assert torch.equal(PolicyAugment(aug.policy, seed=3)(x), PolicyAugment(aug.policy, seed=3)(x))


def test_bad_arguments() -> None:
    aug = PolicyAugment(_invert_or_identity())
    x = _images(4)
    with pytest.raises(TypeError, match="policy must be a Policy"):
        PolicyAugment("policy.json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\)"):
        aug(x[0])
    with pytest.raises(ValueError, match="params.choice must have shape"):
        aug(x, aug.sample(5, torch.Generator()))
    with pytest.raises(TypeError, match="params must be PolicyParams"):
        aug(x, {"choice": None})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be an int"):
        aug.sample(-1)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        aug.sample(4, 0)  # type: ignore[arg-type]


def test_transform_matches_module_in_distribution() -> None:
    policy = _invert_or_identity(0.6)
    n = 1200
    img = torch.full((3, 8, 8), 40, dtype=torch.uint8)
    transform = PolicyTransform(policy, seed=0)
    per_image = torch.stack([transform(img) for _ in range(n)])
    assert per_image.dtype == torch.uint8
    batched = PolicyAugment(policy, seed=1)(img.float().div(255).expand(n, 3, 8, 8))
    inverted_single = (per_image[:, 0, 0, 0] == 215).float().mean().item()
    inverted_batch = (batched[:, 0, 0, 0] > 0.5).float().mean().item()
    assert abs(inverted_single - 0.15) < 0.035 and abs(inverted_batch - 0.15) < 0.035


def test_transform_matches_module_pixel_statistics_on_autoaugment() -> None:
    policy = load_policy(POLICIES / "autoaugment_cifar10.json")
    x = _images(400, seed=3)
    transform = PolicyTransform(policy, seed=0)
    single = torch.stack([transform(im) for im in x])
    batched = PolicyAugment(policy, seed=1)(x)
    assert single.dtype == x.dtype
    assert abs(single.mean() - batched.mean()) < 0.01
    assert abs(single.std() - batched.std()) < 0.01


def test_transform_dtypes_and_errors() -> None:
    t = PolicyTransform(load_policy(POLICIES / "crop_flip.json"), seed=0)
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    assert t(img).dtype == torch.uint8
    assert t(img.float() / 255).dtype == torch.float32
    with pytest.raises(ValueError, match=r"img must be a \(C, H, W\) tensor"):
        t(img[None])
    with pytest.raises(ValueError, match="img must be uint8 or floating point"):
        t(img.long())


def test_transform_reseeds_per_dataloader_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(POLICIES / "randaugment.json")
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)

    def in_worker(seed: int) -> torch.Tensor:
        info = type("Info", (), {"seed": seed, "id": seed})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
        return PolicyTransform(policy, seed=0)(img)

    assert torch.equal(in_worker(10), in_worker(10))
    assert not torch.equal(in_worker(10), in_worker(11))


def test_params_move_between_devices() -> None:
    aug = PolicyAugment(_invert_or_identity())
    params = aug.sample(4, torch.Generator().manual_seed(0))
    assert isinstance(params.to("cpu"), PolicyParams) and params.batch_size == 4


def test_stages_apply_in_order() -> None:
    first = Stage((SubPolicy((OpConfig("Invert", 1.0),)),))
    second = Stage((SubPolicy((OpConfig("Solarize", 1.0, 1.0),)),))  # inverts everything
    x = _images(4)
    out = PolicyAugment(Policy("two", (first, second)))(x)
    assert torch.allclose(out, x, atol=1e-6)


def test_transform_in_dataloader_workers_do_not_repeat_each_other() -> None:
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    transform = PolicyTransform(load_policy(POLICIES / "randaugment.json"), seed=0)
    data = [transform] * 4  # item i is transform(img), served by worker i % 2
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, num_workers=2, collate_fn=lambda t: t(img),
        multiprocessing_context="fork", generator=torch.Generator().manual_seed(0),
    )
    first_of_worker_0, first_of_worker_1, *_ = list(loader)
    assert not torch.equal(first_of_worker_0, first_of_worker_1)


def test_batched_equals_a_per_sample_reference() -> None:
    aug = PolicyAugment(load_policy(POLICIES / "autoaugment_cifar10.json").then(
        load_policy(POLICIES / "randaugment.json")), seed=0)
    x = _images(40).double()
    params = aug.sample(40, torch.Generator().manual_seed(7))
    expected = []
    for b in range(40):
        xb = x[b : b + 1]
        for s in range(params.op.shape[0]):
            for j in range(params.op.shape[1]):
                if params.apply[s, j, b]:
                    op = OPS[aug.op_names[int(params.op[s, j, b])]]
                    m, sign, pos = params.magnitude[s, j, b : b + 1], params.sign[s, j, b : b + 1], params.position[s, j, b]
                    xb = op(xb, m.double(), sign.double(), pos[None].double())
        expected.append(xb)
    assert torch.allclose(aug(x, params), torch.cat(expected), atol=1e-9)
