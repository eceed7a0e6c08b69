"""Geometric kernels: shear, translate, rotate, crop-with-padding, horizontal flip.

Every kernel has the signature ``kernel(x, value, position) -> Tensor`` where ``value`` is
the op's own (already signed) per-sample argument, e.g. degrees for ``Rotate``; the mapping
from a normalised magnitude in ``[0, 1]`` lives in :mod:`autodata.augment.ops`.

The affine ops build a ``(B, 2, 3)`` source-to-destination pixel matrix about the image
centre from ``value`` with differentiable tensor arithmetic and warp with Kornia's
functional ``warp_affine`` (bilinear, zero padding), so gradients reach ``value`` and
``x``.
"""
from __future__ import annotations

import math

import torch
from kornia.geometry.transform import warp_affine
from torch import Tensor


def _warp(x: Tensor, matrix: Tensor) -> Tensor:
    """Warp ``x`` (B, C, H, W) with ``matrix`` (B, 2, 3); zero padding, bilinear."""
    h, w = x.shape[-2:]
    return warp_affine(x, matrix.to(x.dtype), (h, w), mode="bilinear", padding_mode="zeros", align_corners=True)


def _centre(x: Tensor) -> tuple[float, float]:
    h, w = x.shape[-2:]
    return (w - 1) / 2.0, (h - 1) / 2.0


def _affine(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    """Stack six (B,) tensors into (B, 2, 3) matrices [[a, b, c], [d, e, f]]."""
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2)  # (B, 2, 3)


def shear_x(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Shear along x by ``value`` (shear factor): x' = x + value * (y - cy)."""
    del position
    cx, cy = _centre(x)
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _warp(x, _affine(one, value, -value * cy, zero, one, zero))


def shear_y(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Shear along y by ``value`` (shear factor): y' = y + value * (x - cx)."""
    del position
    cx, cy = _centre(x)
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _warp(x, _affine(one, zero, zero, value, one, -value * cx))


def translate_x(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Translate along x by ``value`` times the image width."""
    del position
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _warp(x, _affine(one, zero, value * x.shape[-1], zero, one, zero))


def translate_y(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Translate along y by ``value`` times the image height."""
    del position
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    return _warp(x, _affine(one, zero, zero, zero, one, value * x.shape[-2]))


def rotate(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Rotate by ``value`` degrees (counter-clockwise on screen) about the centre."""
    del position
    cx, cy = _centre(x)
    theta = value * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    return _warp(x, _affine(cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy))


def _shift(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    one, zero = torch.ones_like(dx), torch.zeros_like(dx)
    return _warp(x, _affine(one, zero, dx, zero, one, dy))


def crop_pad(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Zero-pad by ``value * size`` pixels and crop back at ``position`` (B, 2) in [0, 1].

    Equivalent to torchvision's ``RandomCrop(size, padding=p)``: the content moves by the
    integer shift ``round((2 * position - 1) * p)``, gathered exactly (no interpolation).
    """
    b, c, h, w = x.shape
    dx = torch.round((2 * position[:, 0] - 1) * value * w).long()  # (B,)
    dy = torch.round((2 * position[:, 1] - 1) * value * h).long()
    ys = torch.arange(h, device=x.device).view(1, h) - dy.view(b, 1)  # (B, H) source rows
    xs = torch.arange(w, device=x.device).view(1, w) - dx.view(b, 1)  # (B, W) source columns
    valid = ((ys >= 0) & (ys < h)).view(b, h, 1) & ((xs >= 0) & (xs < w)).view(b, 1, w)  # (B, H, W)
    index = ys.clamp(0, h - 1).view(b, h, 1) * w + xs.clamp(0, w - 1).view(b, 1, w)  # (B, H, W)
    out = x.flatten(2).gather(2, index.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
    return out * valid.unsqueeze(1).to(x.dtype)


def crop_pad_surrogate(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """The same shift without rounding: the smooth surrogate used by the straight-through estimator."""
    h, w = x.shape[-2:]
    return _shift(x, (2 * position[:, 0] - 1) * value * w, (2 * position[:, 1] - 1) * value * h)


def hflip(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Mirror left-right; ``value`` is ignored."""
    del value, position
    return x.flip(-1)
