"""A fixed policy as a torchvision v2 transform: one sample (image, masks, boxes) at a time.

:class:`PolicyTransform` is a ``torchvision.transforms.v2.Transform``: it takes what v2
transforms take (a PIL image, a ``(C, H, W)`` tensor, ``tv_tensors.Image`` / ``Video``, and
dicts or tuples of them with ``Mask`` and ``BoundingBoxes``) and returns the same types.
Following v2's two steps, :meth:`~PolicyTransform.make_params` draws one sample's choices
(the same numbers as :meth:`PolicyAugment.sample` with a batch of one, from the transform's
own generator) and :meth:`~PolicyTransform.transform` applies them to each input by type:

* images and videos get every op, with the same kernels and geometry as the batched
  :class:`~autodata.augment.PolicyAugment` (bilinear warps about the centre, zero fill);
* ``Mask`` follows the geometric ops (ShearX/Y, TranslateX/Y, Rotate, CropPad, HFlip) with
  nearest-neighbour sampling and zero fill; colour ops (Cutout included) leave it unchanged;
* ``BoundingBoxes`` (XYXY, XYWH or CXCYWH) follow the geometric ops as the enclosing box of
  their moved corners, clipped to the canvas; rotated formats and ``KeyPoints`` are refused
  with an error naming the geometric ops of the policy.

Speed: one sample's choices are a handful of Python numbers, so the per-image path runs the
chosen ops directly, without :class:`PolicyAugment`'s grouping; affine sampling grids are
cached per (op, value, size); images that draw no op are returned untouched. See
``experiments/bench_transform.py``.

torchvision's ``transforms.v2`` takes about a second to import, so ``import autodata`` does
not import it: the v2 base class is mixed in when the first :class:`PolicyTransform` is built
(``isinstance(t, torchvision.transforms.v2.Transform)`` holds for every instance).
"""
from __future__ import annotations

import bisect
import functools
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodata.augment import _geometric
from autodata.augment.ops import OPS
from autodata.augment.policy import Policy

__all__ = ["PolicyTransform"]

GEOMETRIC_OPS: frozenset[str] = frozenset(
    name for name, spec in OPS.items() if spec.matrix is not None) | {"CropPad", "HFlip"}
"""The ops that move pixels: masks and boxes follow them; every other op leaves them unchanged."""

_GRID_CACHE_SIZE = 512
_PLAIN_BOX_FORMATS = ("XYXY", "XYWH", "CXCYWH")


class Step(NamedTuple):
    """One op that a sample applies: its name, its own (signed) argument and its position."""

    name: str
    value: float
    position: tuple[float, float]


# ------------------------------------------------------------------- single-sample kernels
# The same maths as the batched kernels of ops.py (checked op by op in the tests) for a stack of
# frames that share one Python-number argument; ops without an entry use their batched kernel.
def _sharpness(x: Tensor, value: float) -> Tensor:
    c, h, w = x.shape[-3:]
    if h < 3 or w < 3:
        return OPS["Sharpness"].kernel(x, torch.tensor([value], dtype=x.dtype), torch.zeros(1, 2, dtype=x.dtype))
    kernel = _smooth_kernel(c, x.dtype, x.device)  # (C, 1, 3, 3), PIL's SMOOTH
    blurred = F.conv2d(x, kernel, groups=c).clamp_(0.0, 1.0)  # (N, C, H-2, W-2)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = blurred  # the border keeps its pixels
    return (degenerate + (x - degenerate) * (1.0 + value)).clamp_(0.0, 1.0)


@functools.lru_cache(maxsize=16)
def _smooth_kernel(c: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], dtype=dtype, device=device) / 13
    return k.expand(c, 1, 3, 3).contiguous()


def _equalize(x: Tensor) -> Tensor:
    """PIL's equalize of each channel on its 8-bit levels ``(x * 255).long()`` (as Kornia's)."""
    shape = x.shape
    scaled = x.reshape(-1, shape[-2] * shape[-1]) * 255.0  # (P, HW), one row per plane
    index = scaled.long()
    planes = index.shape[0]
    offsets = torch.arange(planes, device=x.device).unsqueeze(1) * 256
    histo = torch.bincount((index + offsets).flatten(), minlength=256 * planes).view(planes, 256)
    levels = torch.arange(256, device=x.device)
    last = torch.where(histo > 0, levels, 0).amax(1, keepdim=True)  # (P, 1) highest level present
    step = (histo.sum(1, keepdim=True) - histo.gather(1, last)) // 255  # (P, 1)
    lut = (histo.cumsum(1) + step // 2) // step.clamp(min=1)  # (P, 256)
    lut = F.pad(lut[:, :-1], (1, 0)).clamp_(0, 255).to(x.dtype)
    out = torch.where(step == 0, scaled, lut.gather(1, index))
    return (out / 255.0).view(shape)


_KERNELS: dict[str, Callable[[Tensor, float, tuple[float, float]], Tensor]] = {
    "Identity": lambda x, v, p: x,
    "Invert": lambda x, v, p: 1.0 - x,
    "Brightness": lambda x, v, p: (x * (1.0 + v)).clamp_(0.0, 1.0),
    "Sharpness": lambda x, v, p: _sharpness(x, v),
    "Equalize": lambda x, v, p: _equalize(x),
    "HFlip": lambda x, v, p: x.flip(-1),
    "CropPad": lambda x, v, p: _geometric.shift(x, *_geometric.crop_pad_shift(v, p, *x.shape[-2:])),
}


def _generic(x: Tensor, step: Step) -> Tensor:
    """The op's batched kernel; a (1,) argument broadcasts over the frames."""
    value = torch.tensor([step.value], dtype=x.dtype, device=x.device)
    position = torch.tensor([step.position], dtype=x.dtype, device=x.device)
    return OPS[step.name].kernel(x, value, position)


def _pixel_matrix(step: Step, h: int, w: int) -> list[list[float]]:
    """The source-to-destination pixel matrix (2, 3) of a geometric step."""
    if step.name == "HFlip":
        return _geometric.hflip_matrix(w)
    if step.name == "CropPad":
        return _geometric.shift_matrix(*_geometric.crop_pad_shift(step.value, step.position, h, w))
    value = torch.tensor([step.value], dtype=torch.float64)
    return OPS[step.name].matrix(value, h, w)[0].tolist()


def _sampling_grid(matrix: list[list[float]], h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``grid_sample``'s (1, H, W, 2) grid for a pixel matrix, corner-aligned as Kornia's ``warp_affine``."""
    (a, b, c), (d, e, f) = matrix
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det  # inverse: destination -> source
    ic, if_ = -(ia * c + ib * f), -(id_ * c + ie * f)
    sx, sy = 2.0 / (w - 1), 2.0 / (h - 1)  # pixel -> [-1, 1] with align_corners=True
    theta = torch.tensor([[ia, ib * sx / sy, ia + ib * sx / sy + sx * ic - 1.0],
                          [id_ * sy / sx, ie, id_ * sy / sx + ie + sy * if_ - 1.0]], dtype=torch.float64)
    return F.affine_grid(theta[None], [1, 1, h, w], align_corners=True).to(device=device, dtype=dtype)


# ------------------------------------------------------------------------------ the transform
class PolicyTransform(nn.Module):
    """Per-sample transform applying a policy, a ``torchvision.transforms.v2.Transform``.

    Same semantics as :class:`~autodata.augment.PolicyAugment`: with equal generator states
    it draws the same choices as ``PolicyAugment.sample(1)`` and gives the same image (up to
    float rounding and, for ``uint8``, one 8-bit level). Inside a ``DataLoader`` worker, the
    generator is re-seeded once per worker from ``seed`` and the worker's seed, so workers
    do not repeat each other.

    Args:
        policy: the :class:`Policy` to apply.
        seed: seeds the transform's generator (``None``: fresh entropy).

    Example:
        >>> from torchvision import tv_tensors
        >>> from autodata.augment import load_policy
        >>> t = PolicyTransform(load_policy("randaugment"), seed=0)
        >>> img = tv_tensors.Image(torch.zeros(3, 32, 32, dtype=torch.uint8))
        >>> mask = tv_tensors.Mask(torch.ones(32, 32, dtype=torch.uint8))
        >>> out = t({"image": img, "mask": mask, "label": 3})
        >>> type(out["image"]).__name__, out["image"].dtype, type(out["mask"]).__name__, out["label"]
        ('Image', torch.uint8, 'Mask', 3)

    Shape:
        - image: :math:`(C, H, W)` with :math:`C \\in \\{1, 3\\}`, ``uint8`` in ``[0, 255]`` or float
          in ``[0, 1]``; a PIL image in mode ``L`` or ``RGB``; a video :math:`(..., C, H, W)`.
        - mask: :math:`(..., H, W)`, any dtype. boxes: :math:`(N, 4)`.
        - output: the same types, shapes and dtypes.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> PolicyTransform:
        return super().__new__(_with_v2_base(cls))

    def __init__(self, policy: Policy, seed: int | None = None) -> None:
        from autodata.augment.apply import PolicyAugment

        super().__init__()
        self.augment = PolicyAugment(policy, seed=seed)
        self.seed = seed
        self._worker_seed: int | None = None
        aug = self.augment
        s, k, j = aug._op.shape
        self._shape = (s, j)
        self._cdf = aug._cdf.tolist()  # float32 values, compared exactly as searchsorted does
        self._last_pick = list(aug._last_pick)
        self._table = [[[(aug.op_names[o] if o >= 0 else "", p, m, u, n)
                         for o, p, m, u, n in zip(ops, probs, mags, unis, negs)]
                        for ops, probs, mags, unis, negs in zip(*(t[si].tolist() for t in (
                            aug._op, aug._prob, aug._mag, aug._uniform, aug._negative)))] for si in range(s)]
        self._grids: dict[tuple[Any, ...], Tensor] = {}
        self._geometric = [name for name in aug.op_names if name in GEOMETRIC_OPS]

    # ------------------------------------------------------------------ drawing (make_params)
    def _maybe_reseed_for_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is not None and self._worker_seed != info.seed:
            self._worker_seed = info.seed
            base = 0 if self.seed is None else self.seed
            self.augment.generator.manual_seed((base * 1_000_003 + info.seed) % (2**63))

    def draw(self) -> tuple[Step, ...]:
        """Draw one sample's ops in order (``PolicyAugment.sample(1)``'s numbers, Identity left out)."""
        self._maybe_reseed_for_worker()
        s, j = self._shape
        u = torch.rand(s * (1 + 5 * j), generator=self.augment.generator).tolist()
        # the layout of PolicyAugment.sample: choice (S), position (S, J, 2), apply, magnitude, sign (S, J)
        position, gate, mag, sign = s, s + 2 * s * j, s + 3 * s * j, s + 4 * s * j
        steps = []
        for si in range(s):
            ki = min(bisect.bisect_right(self._cdf[si], u[si]), self._last_pick[si])
            for ji, (name, prob, magnitude, uniform, negative) in enumerate(self._table[si][ki]):
                at = si * j + ji
                if not name or u[gate + at] >= prob or name == "Identity":
                    continue
                spec = OPS[name]
                m = u[mag + at] * magnitude if uniform else magnitude
                value = spec.low + m * (spec.high - spec.low)
                if spec.signed and u[sign + at] < negative:  # PolicyAugment's float32 threshold
                    value = -value
                steps.append(Step(name, value, (u[position + 2 * at], u[position + 2 * at + 1])))
        return tuple(steps)

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        from torchvision import tv_tensors

        for inpt in flat_inputs:
            if isinstance(inpt, tv_tensors.KeyPoints) and self._geometric:
                raise TypeError(f"{type(self).__name__} cannot move KeyPoints with the geometric ops "
                                f"{self._geometric} of policy {self.augment.policy.name!r}; pass images, "
                                f"masks and boxes, or a policy without geometric ops.")
            if isinstance(inpt, tv_tensors.BoundingBoxes) and self._geometric:
                fmt = inpt.format.value
                if fmt not in _PLAIN_BOX_FORMATS:
                    raise TypeError(f"{type(self).__name__} can move bounding boxes in the formats "
                                    f"{list(_PLAIN_BOX_FORMATS)} with the geometric ops {self._geometric} of "
                                    f"policy {self.augment.policy.name!r}, but got format {fmt}.")

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"steps": self.draw()}

    # ------------------------------------------------------------------ applying (transform)
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        from torchvision import tv_tensors

        steps: tuple[Step, ...] = params["steps"]
        if not steps:
            return inpt
        if isinstance(inpt, tv_tensors.Mask):
            return self._mask(inpt, steps)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return self._boxes(inpt, steps)
        if isinstance(inpt, tv_tensors.KeyPoints):
            return inpt  # check_inputs refused them if the policy has geometric ops
        pil = sys.modules.get("PIL.Image")
        if pil is not None and isinstance(inpt, pil.Image):
            return self._pil(inpt, steps)
        if isinstance(inpt, tv_tensors.Video):
            return tv_tensors.wrap(self._image(inpt.as_subclass(Tensor), steps), like=inpt)
        if not isinstance(inpt, Tensor) or inpt.ndim != 3:
            shape = tuple(inpt.shape) if isinstance(inpt, Tensor) else type(inpt).__name__
            raise ValueError(f"img must be a (C, H, W) tensor, but got {shape}.")
        out = self._image(inpt.as_subclass(Tensor), steps)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out

    def _grid(self, step: Step, h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (step.name, step.value, step.position if step.name == "CropPad" else None, h, w, dtype, device)
        grid = self._grids.get(key)
        if grid is None:
            if len(self._grids) >= _GRID_CACHE_SIZE:
                self._grids.clear()
            grid = self._grids[key] = _sampling_grid(_pixel_matrix(step, h, w), h, w, dtype, device)
        return grid

    def _image(self, img: Tensor, steps: tuple[Step, ...]) -> Tensor:
        if img.ndim < 3 or img.shape[-3] not in (1, 3):
            raise ValueError(f"img must have shape (..., C, H, W) with 1 or 3 channels, but got {tuple(img.shape)}.")
        if img.dtype != torch.uint8 and not img.is_floating_point():
            raise ValueError(f"img must be uint8 or floating point, but got dtype {img.dtype}.")
        c, h, w = img.shape[-3:]
        x = img.reshape(-1, c, h, w)  # (N, C, H, W)
        x = x.float().div_(255.0) if img.dtype == torch.uint8 else x
        for step in steps:
            kernel = _KERNELS.get(step.name)
            if kernel is not None:
                x = kernel(x, step.value, step.position)
            elif OPS[step.name].matrix is not None and h > 1 and w > 1:
                grid = self._grid(step, h, w, x.dtype, x.device).expand(x.shape[0], h, w, 2)
                x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            else:
                x = _generic(x, step)
        if img.dtype == torch.uint8:
            x = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
        return x.reshape(img.shape)

    def _pil(self, img: Any, steps: tuple[Step, ...]) -> Any:
        from torchvision.transforms.v2 import functional as TF

        if img.mode not in ("L", "RGB"):
            raise ValueError(f"a PIL image must have mode 'L' or 'RGB', but got {img.mode!r}.")
        return TF.to_pil_image(self._image(TF.pil_to_tensor(img), steps), mode=img.mode)

    def _mask(self, mask: Any, steps: tuple[Step, ...]) -> Any:
        from torchvision import tv_tensors

        m = mask.as_subclass(Tensor)
        h, w = m.shape[-2:]
        x = m.reshape(-1, 1, h, w)  # (N, 1, H, W)
        for step in steps:
            if step.name not in GEOMETRIC_OPS:
                continue  # colour ops leave masks alone
            if step.name in _KERNELS:  # whole-pixel shift or flip: exact for any dtype
                x = _KERNELS[step.name](x, step.value, step.position)
                continue
            work = torch.float64 if x.dtype in (torch.int64, torch.float64) else torch.float32
            grid = self._grid(step, h, w, work, x.device).expand(x.shape[0], h, w, 2)
            y = F.grid_sample(x.to(work), grid, mode="nearest", padding_mode="zeros", align_corners=True)
            x = y > 0.5 if x.dtype == torch.bool else y if x.is_floating_point() else y.round().to(x.dtype)
        return tv_tensors.wrap(x.reshape(m.shape), like=mask)

    def _boxes(self, boxes: Any, steps: tuple[Step, ...]) -> Any:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as TF

        geometric = [s for s in steps if s.name in GEOMETRIC_OPS]
        if not geometric:
            return boxes
        h, w = boxes.canvas_size
        fmt = boxes.format
        xyxy = TF.convert_bounding_box_format(boxes.as_subclass(Tensor), old_format=fmt,
                                              new_format=tv_tensors.BoundingBoxFormat.XYXY)
        out = xyxy.reshape(-1, 4).to(torch.float64)
        for step in geometric:
            out = _geometric.transform_boxes(out, _pixel_matrix(step, h, w), h, w)
        out = TF.convert_bounding_box_format(out, old_format=tv_tensors.BoundingBoxFormat.XYXY, new_format=fmt)
        out = out.to(boxes.dtype) if boxes.is_floating_point() else out.round().to(boxes.dtype)
        return tv_tensors.wrap(out.reshape(boxes.shape), like=boxes)

    def extra_repr(self) -> str:
        return f"policy={self.augment.policy.name!r}, seed={self.seed}"

    def __repr__(self) -> str:
        return f"PolicyTransform({self.extra_repr()})"


@functools.cache
def _with_v2_base(cls: type) -> type:
    """``cls`` with ``torchvision.transforms.v2.Transform`` mixed in (imported on first use)."""
    from torchvision.transforms.v2 import Transform

    if issubclass(cls, Transform):
        return cls
    mixed = type(cls.__name__, (cls, Transform), {"__module__": cls.__module__, "__doc__": cls.__doc__})
    mixed.__qualname__ = f"_v2_{cls.__qualname__}"  # found again by the module __getattr__ when unpickled
    return mixed


def __getattr__(name: str) -> Any:
    if name == "_v2_PolicyTransform":
        return _with_v2_base(PolicyTransform)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
