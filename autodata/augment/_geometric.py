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
from collections.abc import Callable

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
