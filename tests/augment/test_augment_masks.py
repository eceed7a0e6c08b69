"""PolicyAugment(x, params, mask=...) moves label masks with the geometric ops, as Kornia's AugmentationSequential."""
from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from autodata.augment import OpConfig, Policy, PolicyAugment, PolicyTransform, SubPolicy, load_policy


def _one_op(name: str, magnitude: float = 0.7) -> Policy:
    return Policy.single_stage(name, [SubPolicy((OpConfig(name, 1.0, magnitude),))])


def _batch(b: int = 8, size: int = 16, labels: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g), torch.randint(0, labels, (b, size, size), generator=g)


def test_without_a_mask_forward_returns_the_images_only() -> None:
    x, _ = _batch()
    assert isinstance(PolicyAugment(load_policy("randaugment"), seed=0)(x), torch.Tensor)


def test_hflip_and_crop_pad_move_masks_exactly_as_their_images() -> None:
    x, mask = _batch()
    labels_as_image = mask[:, None].float().expand(-1, 3, -1, -1) / 4  # (B, 3, H, W) exact in float
    for name in ("HFlip", "CropPad"):
        aug = PolicyAugment(_one_op(name), seed=0)
        params = aug.sample(8, torch.Generator().manual_seed(1))
        moved_image, moved_mask = aug(labels_as_image, params, mask=mask)
        assert torch.equal(moved_image[:, 0] * 4, moved_mask.float()), name


@pytest.mark.parametrize("name", ["Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"])
def test_affine_ops_move_masks_with_nearest_labels_that_agree_with_the_image(name: str) -> None:
    mask = torch.zeros(4, 24, 24, dtype=torch.long)
    mask[:, 6:18, 8:16] = 3  # a block of label 3 on background 0
    image = (mask == 3).float()[:, None].expand(-1, 3, -1, -1)  # (B, 3, H, W) the same block, white
    aug = PolicyAugment(_one_op(name, 0.5), seed=0)
    params = aug.sample(4, torch.Generator().manual_seed(2))
    moved_image, moved_mask = aug(image, params, mask=mask)
    assert set(moved_mask.unique().tolist()) <= {0, 3}  # labels are never blended
    assert not torch.equal(moved_mask, mask)
    agree = ((moved_image[:, 0] > 0.5) == (moved_mask == 3)).float().mean()
    assert agree > 0.97  # only the bilinear edge differs


def test_colour_ops_leave_masks_unchanged() -> None:
    x, mask = _batch()
    colour = Policy.single_stage("colour", [SubPolicy((OpConfig("Invert", 1.0), OpConfig("Cutout", 1.0, 0.8)))])
    out, moved = PolicyAugment(colour, seed=0)(x, mask=mask)
    assert torch.equal(moved, mask) and not torch.equal(out, x)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32])
@pytest.mark.parametrize("channels", [None, 2])
def test_mask_dtypes_and_shapes_are_kept(dtype: torch.dtype, channels: int | None) -> None:
    x, labels = _batch()
    mask = labels if channels is None else labels[:, None].expand(-1, channels, -1, -1)
    mask = (mask > 2) if dtype == torch.bool else mask.to(dtype)
    aug = PolicyAugment(load_policy("randaugment").then(load_policy("crop_flip")), seed=0)
    params = aug.sample(8, torch.Generator().manual_seed(3))
    out, moved = aug(x, params, mask=mask)
    assert moved.shape == mask.shape and moved.dtype == mask.dtype and out.shape == x.shape
    values = set(mask.unique().tolist()) | {0}
    assert set(moved.unique().tolist()) <= values
    again = aug(x, params, mask=mask)[1]
    assert torch.equal(moved, again)  # replayed parameters replay the masks


def test_batched_masks_match_the_per_image_transform() -> None:
    policy = load_policy("randaugment").then(load_policy("crop_flip"))
    x, mask = _batch(24, 20, seed=4)
    aug = PolicyAugment(policy)
    for i in range(24):  # the same generator state draws the same ops on both paths
        out, moved = aug(x[i : i + 1], aug.sample(1, torch.Generator().manual_seed(i)), mask=mask[i : i + 1])
        sample = PolicyTransform(policy, seed=i)({"image": tv_tensors.Image(x[i]), "mask": tv_tensors.Mask(mask[i])})
        assert torch.allclose(sample["image"], out[0], atol=1e-5)
        assert (sample["mask"] == moved[0]).float().mean() > 0.995  # nearest ties may round apart


def test_bad_masks() -> None:
    x, mask = _batch()
    aug = PolicyAugment(load_policy("randaugment"))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        aug(x, mask=mask.numpy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"mask must have shape \(B, H, W\) or \(B, K, H, W\)"):
        aug(x, mask=mask[:4])
    with pytest.raises(ValueError, match="with B, H, W = 8, 16, 16"):
        aug(x, mask=mask[:, :8])
