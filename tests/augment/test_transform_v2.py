"""PolicyTransform as a torchvision v2 transform: inputs by type, samples, masks, boxes, equivalence."""
from __future__ import annotations

import copy
import doctest
import pickle

import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

import autodata.augment.transform_v2 as transform_v2
from autodata.augment import OPS, OpConfig, Policy, PolicyAugment, PolicyTransform, SubPolicy, load_policy

SHIPPED = ["autoaugment_cifar10", "randaugment", "trivialaugment", "crop_flip"]


def _one_op(name: str, magnitude: float = 0.7, probability: float = 1.0) -> Policy:
    return Policy.single_stage(name, [SubPolicy((OpConfig(name, probability, magnitude),))])


def _images(b: int = 8, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


def _batched(policy: Policy, x: torch.Tensor, seed: int) -> torch.Tensor:
    aug = PolicyAugment(policy)
    return aug(x[None], aug.sample(1, torch.Generator().manual_seed(seed)))[0]


def test_it_is_a_v2_transform_and_composes() -> None:
    t = PolicyTransform(load_policy("randaugment"), seed=0)
    assert isinstance(t, v2.Transform) and isinstance(t, PolicyTransform)
    pipeline = v2.Compose([v2.ToImage(), t, v2.ToDtype(torch.float32, scale=True)])
    out = pipeline(PIL.Image.new("RGB", (20, 16), (120, 30, 200)))
    assert isinstance(out, tv_tensors.Image) and out.shape == (3, 16, 20) and out.dtype == torch.float32
    assert "randaugment" in repr(t)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_matches_the_batched_kernel(name: str) -> None:
    x = _images(6, size=12)
    for i in range(6):
        for magnitude in (0.3, 1.0):
            policy = _one_op(name, magnitude)
            single = PolicyTransform(policy, seed=i)(x[i])
            assert torch.allclose(single, _batched(policy, x[i], i), atol=2e-5), (name, i, magnitude)


@pytest.mark.parametrize("name", SHIPPED)
def test_same_seed_same_draw_same_image_as_policy_augment(name: str) -> None:
    policy = load_policy(name)
    x = _images(24, seed=1)
    for i in range(24):
        assert torch.allclose(PolicyTransform(policy, seed=i)(x[i]), _batched(policy, x[i], i), atol=2e-5)


def test_input_types_are_kept() -> None:
    t = PolicyTransform(_one_op("Invert"), seed=0)
    img = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    out = t(tv_tensors.Image(img))
    assert type(out) is tv_tensors.Image and out.dtype == torch.uint8 and torch.equal(out, 255 - img)
    assert type(t(img)) is torch.Tensor and torch.equal(t(img), 255 - img)
    assert torch.allclose(t(img.float() / 255), 1 - img.float() / 255)
    for mode in ("L", "RGB"):
        pil = PIL.Image.new(mode, (10, 6), 40 if mode == "L" else (40, 50, 60))
        out = t(pil)
        assert isinstance(out, PIL.Image.Image) and out.mode == mode and out.size == (10, 6)
        assert out.getpixel((0, 0)) == (215 if mode == "L" else (215, 205, 195))
    video = tv_tensors.Video(torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8))
    out = t(video)
    assert type(out) is tv_tensors.Video and torch.equal(out, 255 - video)


def test_video_frames_share_the_draw() -> None:
    frame = _images(1)[0]
    out = PolicyTransform(_one_op("Rotate", 0.8), seed=0)(tv_tensors.Video(frame.expand(3, -1, -1, -1)))
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2]) and not torch.equal(out[0], frame)


def test_dict_and_tuple_samples() -> None:
    t = PolicyTransform(_one_op("HFlip"), seed=0)
    img = tv_tensors.Image(torch.arange(3 * 4 * 5, dtype=torch.uint8).view(3, 4, 5))
    mask = tv_tensors.Mask(torch.arange(20).view(4, 5))
    boxes = tv_tensors.BoundingBoxes([[0, 1, 2, 3]], format="XYXY", canvas_size=(4, 5))
    out = t({"image": img, "mask": mask, "boxes": boxes, "label": 7, "name": "a"})
    assert torch.equal(out["image"], img.flip(-1)) and torch.equal(out["mask"], mask.flip(-1))
    assert out["boxes"].tolist() == [[3, 1, 5, 3]] and type(out["boxes"]) is tv_tensors.BoundingBoxes
    assert out["label"] == 7 and out["name"] == "a"
    image, label = t(img.as_subclass(torch.Tensor), torch.tensor(3))  # the first pure tensor is the image
    assert torch.equal(image, img.flip(-1)) and label.item() == 3


def test_masks_follow_geometry_and_ignore_colour() -> None:
    mask = tv_tensors.Mask(torch.zeros(16, 16, dtype=torch.uint8))
    mask[3:13, 2:14] = 2
    img = tv_tensors.Image((mask > 0).to(torch.uint8).expand(3, -1, -1) * 255)
    for name in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "CropPad"):
        out = PolicyTransform(_one_op(name, 1.0), seed=1)({"image": img, "mask": mask})
        assert type(out["mask"]) is tv_tensors.Mask and out["mask"].dtype == torch.uint8
        assert set(out["mask"].unique().tolist()) <= {0, 2} and not torch.equal(out["mask"], mask), name
        assert ((out["image"][0] > 127) == (out["mask"] == 2)).float().mean() > 0.95, name
    colour = Policy.single_stage("c", [SubPolicy((OpConfig("Invert", 1.0), OpConfig("Cutout", 1.0, 0.9)))])
    out = PolicyTransform(colour, seed=0)({"image": img, "mask": mask})
    assert torch.equal(out["mask"], mask) and not torch.equal(out["image"], img)


def test_boxes_enclose_the_moved_content() -> None:
    img = torch.zeros(3, 32, 32)
    img[:, 8:20, 10:24] = 1.0
    boxes = tv_tensors.BoundingBoxes([[10, 8, 24, 20]], format="XYXY", canvas_size=(32, 32), dtype=torch.float32)
    for name in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "CropPad", "HFlip"):
        for seed in range(3):
            out = PolicyTransform(_one_op(name, 0.5), seed=seed)({"image": tv_tensors.Image(img), "boxes": boxes})
            ys, xs = (out["image"][0] > 0.5).nonzero().unbind(1)  # lit pixels: their centres are at +0.5
            x1, y1, x2, y2 = out["boxes"][0].tolist()
            tol = 0.5  # a centre half a pixel outside the moved rectangle still reads > 0.5 (bilinear)
            assert x1 - tol <= xs.min() + 0.5 and xs.max() + 0.5 <= x2 + tol, (name, seed)
            assert y1 - tol <= ys.min() + 0.5 and ys.max() + 0.5 <= y2 + tol, (name, seed)
            if name in ("CropPad", "HFlip", "TranslateX", "TranslateY"):  # pure shifts and flips: tight
                assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1, (name, seed)
                assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1, (name, seed)


def test_box_formats_and_refusals() -> None:
    t = PolicyTransform(_one_op("HFlip"), seed=0)
    xywh = tv_tensors.BoundingBoxes([[1, 2, 3, 4]], format="XYWH", canvas_size=(10, 10))
    assert t(xywh).tolist() == [[6, 2, 3, 4]] and t(xywh).format == tv_tensors.BoundingBoxFormat.XYWH
    rotated = tv_tensors.BoundingBoxes([[5.0, 5.0, 2.0, 2.0, 10.0]], format="CXCYWHR", canvas_size=(10, 10))
    with pytest.raises(TypeError, match=r"formats \['XYXY', 'XYWH', 'CXCYWH'\] with the geometric ops \['HFlip'\]"):
        t(rotated)
    points = tv_tensors.KeyPoints([[1.0, 2.0]], canvas_size=(10, 10))
    with pytest.raises(TypeError, match=r"cannot move KeyPoints with the geometric ops \['HFlip'\]"):
        t({"image": torch.zeros(3, 10, 10), "points": points})
    colour = PolicyTransform(_one_op("Invert"), seed=0)
    out = colour({"image": torch.zeros(3, 10, 10), "points": points, "boxes": rotated})
    assert out["points"] is points and out["boxes"] is rotated


def test_bad_images() -> None:
    t = PolicyTransform(_one_op("Invert"), seed=0)
    with pytest.raises(ValueError, match=r"img must be a \(C, H, W\) tensor"):
        t(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        t(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="img must be uint8 or floating point"):
        t(torch.zeros(3, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="mode 'L' or 'RGB'"):
        t(PIL.Image.new("RGBA", (4, 4)))


def test_no_op_drawn_returns_the_input_itself() -> None:
    img = torch.zeros(3, 8, 8, dtype=torch.uint8)
    assert PolicyTransform(_one_op("Invert", probability=0.0), seed=0)(img) is img


def test_pickle_and_copy_keep_the_transform_and_its_state() -> None:
    t = PolicyTransform(load_policy("randaugment"), seed=3)
    for clone in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t)):
        assert isinstance(clone, v2.Transform)
        x = _images(1)[0]
        assert torch.equal(clone(x), copy.deepcopy(t)(x))


def test_docstring_examples() -> None:
    assert doctest.testmod(transform_v2, optionflags=doctest.ELLIPSIS).failed == 0
