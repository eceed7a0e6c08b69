"""Geometric kernels: shear, translate, rotate, crop-with-padding, horizontal flip.

Every kernel has the signature ``kernel(x, value, position) -> Tensor`` where ``value`` is
the op's own (already signed) per-sample argument, e.g. degrees for ``Rotate``; the mapping
from a normalised magnitude in ``[0, 1]`` lives in :mod:`autodata.augment.ops`.

The affine ops are given by a function ``matrix(value, H, W)`` building a ``(B, 2, 3)``
source-to-destination pixel matrix about the image centre with differentiable tensor
arithmetic; :func:`warp` applies it with Kornia's functional ``warp_affine`` (bilinear,
zero padding), so gradients reach ``value`` and ``x``. Exposing the matrix lets the
batched modules warp the samples of all affine ops of one slot in a single call.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from kornia.geometry.transform import warp_affine
from torch import Tensor

from autodata.data.loader import crop_flip


def warp(x: Tensor, matrix: Tensor) -> Tensor:
    """Warp ``x`` (B, C, H, W) with source-to-destination pixel matrices (B, 2, 3); bilinear, zero padding."""
    h, w = x.shape[-2:]
    return warp_affine(x, matrix.to(x.dtype), (h, w), mode="bilinear", padding_mode="zeros", align_corners=True)


def _affine(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    """Stack six (B,) tensors into (B, 2, 3) matrices [[a, b, c], [d, e, f]]."""
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2)  # (B, 2, 3)


def shear_x_matrix(value: Tensor, h: int, w: int) -> Tensor:
    """Shear along x by ``value`` about the centre: x' = x + value * (y - cy)."""
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _affine(one, value, -value * (h - 1) / 2.0, zero, one, zero)


def shear_y_matrix(value: Tensor, h: int, w: int) -> Tensor:
    """Shear along y by ``value`` about the centre: y' = y + value * (x - cx)."""
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _affine(one, zero, zero, value, one, -value * (w - 1) / 2.0)


def translate_x_matrix(value: Tensor, h: int, w: int) -> Tensor:
    """Translate along x by ``value`` times the width."""
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _affine(one, zero, value * w, zero, one, zero)


def translate_y_matrix(value: Tensor, h: int, w: int) -> Tensor:
    """Translate along y by ``value`` times the height."""
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _affine(one, zero, zero, zero, one, value * h)


def rotate_matrix(value: Tensor, h: int, w: int) -> Tensor:
    """Rotate by ``value`` degrees (counter-clockwise on screen) about the centre."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    theta = value * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    return _affine(cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


def affine_kernel(matrix: Callable[[Tensor, int, int], Tensor]) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """The kernel ``(x, value, position) -> warp(x, matrix(value, H, W))`` of an affine op."""

    def kernel(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
        del position
        return warp(x, matrix(value, x.shape[-2], x.shape[-1]))

    kernel.__name__ = matrix.__name__.removesuffix("_matrix")
    kernel.__doc__ = matrix.__doc__
    return kernel


def _shift(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    one, zero = torch.ones_like(dx), torch.zeros_like(dx)
    return warp(x, _affine(one, zero, dx, zero, one, dy))


def crop_pad(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Zero-pad by ``value * size`` pixels and crop back at ``position`` (B, 2) in [0, 1].

    Equivalent to torchvision's ``RandomCrop(size, padding=p)``: the content moves by the
    integer shift ``round((2 * position - 1) * p)``, gathered exactly (no interpolation) by
    the loader's own :func:`autodata.data.crop_flip`, the library's one crop-and-flip.
    """
    b, c, h, w = x.shape
    dx = torch.round((2 * position[:, 0] - 1) * value * w).long()  # (B,) content shift right
    dy = torch.round((2 * position[:, 1] - 1) * value * h).long()  # (B,) content shift down
    pad = int(torch.maximum(dx.abs().max(), dy.abs().max())) if b else 0
    no_flip = torch.zeros(b, dtype=torch.bool, device=x.device)
    return crop_flip(x, pad - dy, pad - dx, no_flip, pad)


def crop_pad_surrogate(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """The same shift without rounding: the smooth surrogate used by the straight-through estimator."""
    h, w = x.shape[-2:]
    return _shift(x, (2 * position[:, 0] - 1) * value * w, (2 * position[:, 1] - 1) * value * h)


def hflip(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Mirror left-right with :func:`autodata.data.crop_flip` (no crop); ``value`` is ignored."""
    del value, position
    zeros = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    return crop_flip(x, zeros, zeros, torch.ones_like(zeros, dtype=torch.bool), 0)


# ------------------------------------------------------------- masks and boxes follow the geometry
def warp_nearest(mask: Tensor, matrix: Tensor) -> Tensor:
    """:func:`warp` for label masks: nearest neighbour, zero padding, any dtype kept.

    The same source-to-destination pixel matrices (B, 2, 3) as the images they belong to, so a
    mask moves exactly with its image; labels are never blended. Integer labels up to 2**24 are
    exact (they are warped in float32; int64 masks in float64).

    Shape:
        - mask: :math:`(B, K, H, W)`, any dtype; output: the same.
    """
    h, w = mask.shape[-2:]
    work = torch.float64 if mask.dtype in (torch.int64, torch.float64) else torch.float32
    out = warp_affine(mask.to(work), matrix.to(work), (h, w), mode="nearest", padding_mode="zeros",
                      align_corners=True)  # (B, K, H, W)
    if mask.dtype == torch.bool:
        return out > 0.5
    return out if mask.is_floating_point() else out.round().to(mask.dtype)


def crop_pad_shift(value: float, position: tuple[float, float], h: int, w: int) -> tuple[int, int]:
    """The whole-pixel content shift ``(dx, dy)`` of :func:`crop_pad` for one sample."""
    return round((2 * position[0] - 1) * value * w), round((2 * position[1] - 1) * value * h)


def shift(x: Tensor, dx: int, dy: int) -> Tensor:
    """Move the content of ``x`` (..., H, W) by whole pixels, right by ``dx`` and down by ``dy``; zero fill.

    Any dtype (bool masks included); the same result as :func:`crop_pad` with that shift.
    """
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dx) < w and abs(dy) < h:
        out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = (
            x[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)])
    return out


def shift_matrix(dx: float, dy: float) -> list[list[float]]:
    """The pixel matrix of a shift by ``(dx, dy)`` (for boxes)."""
    return [[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)]]


def hflip_matrix(w: int) -> list[list[float]]:
    """The pixel matrix of :func:`hflip`: ``x' = W - 1 - x`` on pixel centres (for boxes)."""
    return [[-1.0, 0.0, float(w - 1)], [0.0, 1.0, 0.0]]


def transform_boxes(boxes: Tensor, matrix: Sequence[Sequence[float]], h: int, w: int) -> Tensor:
    """Move XYXY boxes (N, 4) in pixel-edge coordinates with a pixel-centre matrix (2, 3).

    The matrices of this module act on pixel centres (pixel ``i`` at ``i``); a box edge at
    ``e`` is the centre coordinate ``e - 0.5``. Each box becomes the smallest axis-aligned box
    around its four moved corners (a rotated or sheared box grows, as in torchvision),
    clipped to the ``(H, W)`` canvas; a box moved off the canvas keeps zero width or height
    (drop it with ``torchvision.transforms.v2.SanitizeBoundingBoxes``).

    Shape:
        - boxes: :math:`(N, 4)` float ``x1, y1, x2, y2``; output: the same.
    """
    m = torch.tensor(matrix, dtype=boxes.dtype, device=boxes.device)  # (2, 3)
    x1, y1, x2, y2 = boxes.unbind(-1)
    xs = torch.stack([x1, x2, x2, x1], -1) - 0.5  # (N, 4) corners, pixel-centre coordinates
    ys = torch.stack([y1, y1, y2, y2], -1) - 0.5
    nx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + 0.5  # (N, 4)
    ny = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + 0.5
    out = torch.stack([nx.amin(-1).clamp(0, w), ny.amin(-1).clamp(0, h), nx.amax(-1).clamp(0, w),
                       ny.amax(-1).clamp(0, h)], -1)  # (N, 4)
    return out
