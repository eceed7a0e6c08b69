"""The op table: every op passes the shipped contract suite, plus op-specific values."""
from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from autodata.augment import AUTOAUGMENT_OPS, OPS, RANDAUGMENT_OPS, get_op
from autodata.augment import testing as contract

ALL_OPS = sorted(OPS)


@pytest.mark.parametrize("check", contract.OP_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", ALL_OPS)
def test_op_contract(name: str, check) -> None:
    check(OPS[name], 0)


def test_table_covers_autoaugment_and_randaugment() -> None:
    assert len(AUTOAUGMENT_OPS) == 15
    assert set(AUTOAUGMENT_OPS) | set(RANDAUGMENT_OPS) | {"CropPad", "HFlip"} == set(OPS)
    for name, spec in OPS.items():
        assert spec.name == name


def test_get_op_lists_known_ops() -> None:
    with pytest.raises(ValueError, match="Rotate"):
        get_op("Rotation")


def test_non_differentiable_ops_are_straight_through_or_magnitude_free() -> None:
    for spec in OPS.values():
        if not spec.differentiable:
            assert spec.surrogate is not None or not spec.uses_magnitude, spec.name
    assert {n for n, s in OPS.items() if not s.uses_magnitude} == {
        "Identity", "AutoContrast", "Equalize", "Invert", "HFlip"
    }


def _uint8_batch(seed: int = 0, b: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, 12, 12), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _ours(name: str, img: torch.Tensor, magnitude: float, sign: float = 1.0) -> torch.Tensor:
    b = img.shape[0]
    out = OPS[name](img.double() / 255, torch.full((b,), magnitude, dtype=torch.float64), torch.full((b,), sign))
    return out * 255


@pytest.mark.parametrize(
    ("name", "magnitude", "reference"),
    [
        ("Brightness", 0.5, lambda x: TF.adjust_brightness(x, 1.45)),
        ("Color", 0.5, lambda x: TF.adjust_saturation(x, 1.45)),
        ("Contrast", 0.5, lambda x: TF.adjust_contrast(x, 1.45)),
        ("Sharpness", 0.5, lambda x: TF.adjust_sharpness(x, 1.45)),
        ("Solarize", 0.5, lambda x: TF.solarize(x, 128)),
        ("Posterize", 0.5, lambda x: TF.posterize(x, 6)),
        ("Equalize", 0.0, TF.equalize),
        ("AutoContrast", 0.0, TF.autocontrast),
        ("Invert", 0.0, TF.invert),
        ("HFlip", 0.0, TF.horizontal_flip),
    ],
)
def test_pixel_ops_match_torchvision(name: str, magnitude: float, reference) -> None:
    img = _uint8_batch()
    expected = torch.stack([reference(im) for im in img]).double()
    # uint8 rounding in torchvision: within one level, except Sharpness's float-vs-int kernel
    tolerance = 2.0 if name in {"Sharpness", "Contrast"} else 1.0
    assert (_ours(name, img, magnitude) - expected).abs().max() <= tolerance


def test_geometric_ops_match_torchvision_on_interior() -> None:
    img = _uint8_batch(b=1).double()
    ours = OPS["Rotate"](img / 255, torch.tensor([0.5], dtype=torch.float64)) * 255  # 15 degrees
    ref = TF.rotate(img, 15.0, interpolation=TF.InterpolationMode.BILINEAR)
    assert (ours - ref)[..., 3:-3, 3:-3].abs().mean() < 4.0
    shifted = OPS["TranslateX"](img / 255, torch.tensor([4 / 12 / (150 / 331)], dtype=torch.float64)) * 255
    assert torch.allclose(shifted[..., 4:], img[..., :-4], atol=1e-6)


def test_signed_ops_mirror_with_sign() -> None:
    x = torch.rand(1, 1, 9, 9, dtype=torch.float64)
    m = torch.tensor([0.3], dtype=torch.float64)
    pos = OPS["TranslateY"](x, m, torch.tensor([1.0]))
    neg = OPS["TranslateY"](x.flip(-2), m, torch.tensor([-1.0])).flip(-2)
    assert torch.allclose(pos, neg, atol=1e-9)


def test_posterize_and_solarize_ranges() -> None:
    x = torch.linspace(0, 1, 256, dtype=torch.float64).view(1, 1, 16, 16)
    four_bits = OPS["Posterize"](x, torch.ones(1, dtype=torch.float64))
    assert four_bits.unique().numel() == 16
    everything = OPS["Solarize"](x, torch.ones(1, dtype=torch.float64))
    assert torch.allclose(everything, 1 - x)


def test_cutout_and_crop_use_position() -> None:
    x = torch.ones(2, 1, 8, 8)
    out = OPS["Cutout"](x, torch.ones(2), position=torch.tensor([[0.25, 0.25], [0.75, 0.75]]))
    assert (out[0, 0, :4, :4] == 0.5).all() and (out[0, 0, 4:, 4:] == 1).all()
    assert (out[1, 0, 4:, 4:] == 0.5).all() and (out[1, 0, :4, :4] == 1).all()
    crop = OPS["CropPad"](x, torch.ones(2), position=torch.tensor([[1.0, 0.5], [0.0, 0.5]]))
    assert crop[0, 0].sum() == crop[1, 0].sum() == 8 * 6  # shifted 2 px, zero-padded


def test_straight_through_posterize_gradient_is_finite_difference_between_levels() -> None:
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    m = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)  # 6.8 bits
    OPS["Posterize"](x, m).sum().backward()
    p6 = OPS["Posterize"](x, torch.tensor([0.5], dtype=torch.float64))
    p7 = OPS["Posterize"](x, torch.tensor([0.25], dtype=torch.float64))
    assert torch.allclose(m.grad, (p7 - p6).sum() * -4.0)  # bits = 8 - 4 m
