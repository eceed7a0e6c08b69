"""PBAAugment: batched output equals a slow per-image reference; PBA's sampling distribution."""
from __future__ import annotations

import dataclasses
import math
import random

import pytest
import torch
import torch.nn.functional as F

from autodata.augment import OPS
from autodata.schedules import COUNT_PROBABILITIES, PBA_OPS, PBAAugment, PBAParams, PBAPolicy, pba_op_value

FILL = torch.tensor([0.25, 0.5, 0.75]).view(1, 3, 1, 1)


def ref_warp(img: torch.Tensor, src) -> torch.Tensor:
    """Bilinear resampling at ``src(x, y)`` for every destination pixel (x, y); ``FILL`` outside."""
    _, _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    sx, sy = src(xs, ys)
    grid = torch.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1], -1).unsqueeze(0).float()
    return F.grid_sample(img - FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=True) + FILL


def ref_box(img: torch.Tensor, cx: int, cy: int, size: int) -> torch.Tensor:
    out = img.clone()
    _, _, h, w = img.shape
    for r in range(max(0, cy - size // 2), min(h, cy + size // 2)):
        for c in range(max(0, cx - size // 2), min(w, cx + size // 2)):
            out[0, :, r, c] = FILL[0, :, 0, 0]
    return out


def ref_op(img: torch.Tensor, name: str, level: int, sign: float, position: torch.Tensor) -> torch.Tensor:
    """One PBA op on one image (1, 3, H, W), written from PBA's augmentation_transforms.py."""
    _, _, h, w = img.shape
    if name == "Rotate":
        t = math.radians(int(level * 30 / 10) * sign)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        return ref_warp(img, lambda x, y: (cx + math.cos(t) * (x - cx) - math.sin(t) * (y - cy),
                                           cy + math.sin(t) * (x - cx) + math.cos(t) * (y - cy)))
    if name == "TranslateX":
        return ref_warp(img, lambda x, y: (x + int(level * 10 / 10) * sign, y))
    if name == "TranslateY":
        return ref_warp(img, lambda x, y: (x, y + int(level * 10 / 10) * sign))
    if name == "ShearX":
        return ref_warp(img, lambda x, y: (x + level * 0.3 / 10 * sign * y, y))
    if name == "ShearY":
        return ref_warp(img, lambda x, y: (x, y + level * 0.3 / 10 * sign * x))
    factor = level * 1.8 / 10 + 0.1
    grey = (0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).unsqueeze(1)
    if name == "Brightness":
        return (img * factor).clamp(0, 1)
    if name == "Color":
        return (grey + factor * (img - grey)).clamp(0, 1)
    if name == "Contrast":
        mean = grey.mean()
        return (mean + factor * (img - mean)).clamp(0, 1)
    if name == "Sharpness":
        return OPS["Sharpness"].kernel(img, torch.tensor([factor - 1.0]), position)
    if name == "Posterize":
        return OPS["Posterize"].kernel(img, torch.tensor([float(4 - int(level * 4 / 10))]), position)
    if name == "Solarize":
        threshold = (256 - int(level * 256 / 10)) / 255
        return torch.where(img >= threshold, 1 - img, img)
    if name == "Invert":
        return 1 - img
    if name == "AutoContrast":
        return OPS["AutoContrast"].kernel(img, torch.zeros(1), position)
    if name == "Equalize":
        return OPS["Equalize"].kernel(img, torch.zeros(1), position)
    if name == "Cutout":
        size = int(level * 20 / 10)
        return ref_box(img, int(position[0, 0] * w), int(position[0, 1] * h), size)
    raise AssertionError(name)


def reference(x: torch.Tensor, p: PBAParams, crop: bool = True, flip: bool = True, cutout: bool = True,
              pad: int = 4, size: int = 16) -> torch.Tensor:
    outs = []
    for i in range(x.shape[0]):
        img = x[i:i + 1]
        _, c, h, w = img.shape
        for slot in range(2):
            op = int(p.op[i, slot])
            if op >= 0:
                img = ref_op(img, PBA_OPS[op], int(p.level[i, slot]), float(p.sign[i, slot]),
                             p.op_position[i, slot].view(1, 2))
        if crop:
            padded = FILL.expand(1, c, h + 2 * pad, w + 2 * pad).clone()
            padded[:, :, pad:pad + h, pad:pad + w] = img
            left, top = int(p.crop[i, 0]), int(p.crop[i, 1])
            img = padded[:, :, top:top + h, left:left + w]
        if flip and bool(p.flip[i]):
            img = img.flip(-1)
        if cutout:
            img = ref_box(img, int(p.cutout_position[i, 0] * w), int(p.cutout_position[i, 1] * h), size)
        outs.append(img)
    return torch.cat(outs)


def busy_policy() -> PBAPolicy:
    levels = []
    for e in range(30):
        levels += [10, (3 * e + 2) % 10]  # every entry fires; magnitudes 0..9 spread over ops
    return PBAPolicy(tuple(levels))


@pytest.mark.parametrize("flags", [(True, True, True), (False, False, False), (True, False, True)])
def test_batched_equals_per_image_reference(flags: tuple[bool, bool, bool]) -> None:
    crop, flip, cutout = flags
    aug = PBAAugment(busy_policy(), crop=crop, flip=flip, cutout=cutout, fill=(0.25, 0.5, 0.75))
    x = torch.rand(96, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    params = aug.sample(96, torch.Generator().manual_seed(1))
    assert set(params.op[params.op >= 0].tolist()) == set(range(15))  # every op is exercised
    assert bool((params.sign == -1).any() and (params.sign == 1).any())
    got = aug(x, params)
    expected = reference(x, params, crop, flip, cutout)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    torch.testing.assert_close(aug(x, params), got, atol=0, rtol=0)  # replay


def test_null_policy_without_extras_is_identity_and_fill_defaults() -> None:
    aug = PBAAugment(crop=False, flip=False, cutout=False, seed=0)
    x = torch.rand(8, 3, 16, 16)
    y = aug(x)
    assert torch.equal(y, x) and y is not x
    grey = PBAAugment(PBAPolicy((0, 0) * 13 + (10, 9) + (0, 0) * 16), crop=False, flip=False, cutout=False, fill=0.5)
    out = grey(torch.rand(2, 1, 32, 32))  # only Cutout(level 9): an 18 x 18 square of 0.5 on grey images
    assert out.shape == (2, 1, 32, 32)


def test_number_of_ops_follows_pba() -> None:
    g = torch.Generator().manual_seed(0)
    n = 20_000
    always = PBAAugment(PBAPolicy((10, 3) * 30)).sample(n, g)
    assert torch.equal(always.num_applied, always.count)  # every entry fires: exactly `count` ops
    freq = torch.bincount(always.count, minlength=3).double() / n
    assert torch.allclose(freq, torch.tensor(COUNT_PROBABILITIES, dtype=torch.float64), atol=0.015)
    never = PBAAugment(PBAPolicy.zeros()).sample(1000, g)
    assert int(never.num_applied.max()) == 0 and bool((never.entry == -1).all())


def _pba_count(probs: list[float], rng: random.Random) -> int:
    """PBA's apply_policy walk, counting what is applied (a transcription with `random`)."""
    count = rng.choices([0, 1, 2], weights=[0.2, 0.3, 0.5])[0]
    applied = 0
    if count == 0:
        return 0
    order = list(range(30))
    rng.shuffle(order)
    for e in order:
        if rng.random() < probs[e]:
            applied += 1
            count -= 1
            if count == 0:
                break
    return applied


def test_number_applied_matches_a_simulation_of_pba_with_sparse_probabilities() -> None:
    levels = [0] * 60
    levels[2 * 4] = 3  # Color p=0.3 (half 0)
    levels[2 * 20] = 1  # Invert p=0.1 (half 1)
    levels[2 * 29] = 6  # Contrast p=0.6 (half 1)
    policy = PBAPolicy(tuple(levels))
    n = 20_000
    params = PBAAugment(policy).sample(n, torch.Generator().manual_seed(3))
    ours = torch.bincount(params.num_applied, minlength=3).double() / n
    rng = random.Random(0)
    probs = [p / 10 for p in policy.probability_levels]
    sim = torch.bincount(torch.tensor([_pba_count(probs, rng) for _ in range(n)]), minlength=3).double() / n
    assert torch.allclose(ours, sim, atol=0.02)
    used = params.entry[params.entry >= 0]
    assert set(used.tolist()) <= {4, 20, 29}
    assert set(params.op[params.op >= 0].tolist()) <= {PBA_OPS.index(o) for o in ("Color", "Invert", "Contrast")}
    # an entry applied twice never happens; the two applied entries differ
    both = params.entry[:, 1] >= 0
    assert bool((params.entry[both, 0] != params.entry[both, 1]).all())


def test_walk_order_is_random() -> None:
    levels = [0] * 60
    levels[2 * 3], levels[2 * 17] = 10, 10  # Brightness (half 0) and TranslateY (half 1), always
    params = PBAAugment(PBAPolicy(tuple(levels))).sample(4000, torch.Generator().manual_seed(0))
    two = params.count == 2
    first_is_3 = (params.entry[two, 0] == 3).double().mean()
    assert 0.45 < float(first_is_3) < 0.55
    assert bool((params.num_applied == params.count).all())


def test_other_draws_are_uniform() -> None:
    p = PBAAugment(pad=4).sample(16_000, torch.Generator().manual_seed(0))
    assert int(p.crop.min()) == 0 and int(p.crop.max()) == 7  # PBA's randint(0, 8)
    assert abs(float(p.flip.double().mean()) - 0.5) < 0.02
    assert abs(float((p.sign == 1).double().mean()) - 0.5) < 0.02
    assert 0.0 <= float(p.cutout_position.min()) and float(p.cutout_position.max()) < 1.0


def test_same_generator_same_params_and_device() -> None:
    aug = PBAAugment(busy_policy())
    a = aug.sample(5, torch.Generator().manual_seed(7))
    b = aug.sample(5, torch.Generator().manual_seed(7), device="cpu")
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    assert a.entry.device.type == "cpu" and a.subset(slice(0, 2)).batch_size == 2


def test_pba_ranges() -> None:
    levels = torch.arange(10)
    plus = torch.ones(10)
    assert pba_op_value("Rotate", levels, plus).tolist() == [float(int(l * 30 / 10)) for l in range(10)]
    assert pba_op_value("Rotate", levels, -plus).max() == 0 and pba_op_value("Rotate", levels, -plus).min() == -27
    assert pba_op_value("TranslateX", levels, plus).tolist() == [float(l) for l in range(10)]
    assert pba_op_value("Posterize", levels, plus).tolist() == [4, 4, 4, 3, 3, 2, 2, 2, 1, 1]
    assert pba_op_value("Solarize", levels, plus).mul(255).round().tolist() == [
        float(256 - int(l * 256 / 10)) for l in range(10)]
    assert pba_op_value("Cutout", levels, plus).tolist() == [float(2 * l) for l in range(10)]
    torch.testing.assert_close(pba_op_value("Color", levels, -plus) + 1, levels * 0.18 + 0.1)
    torch.testing.assert_close(pba_op_value("ShearY", levels, -plus), -levels * 0.03)
    with pytest.raises(ValueError, match="name must be one of"):
        pba_op_value("Blur", levels, plus)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="pad must be an int >= 1, but got 0"):
        PBAAugment(pad=0)
    with pytest.raises(ValueError, match="fill must be a number in"):
        PBAAugment(fill=(0.5, 2.0))
    with pytest.raises(TypeError, match="policy must be a PBAPolicy"):
        PBAAugment().set_policy("x")  # type: ignore[arg-type]
    aug = PBAAugment()
    with pytest.raises(ValueError, match="batch_size must be an int >= 0"):
        aug.sample(-1)
    with pytest.raises(ValueError, match=r"params.entry must have shape \(3, 2\)"):
        aug(torch.rand(3, 3, 8, 8), dataclasses.replace(aug.sample(3), entry=torch.zeros(3, 3)))
    with pytest.raises(ValueError, match=r"fill must have one value or one per channel \(1\)"):
        aug(torch.rand(2, 1, 8, 8))
