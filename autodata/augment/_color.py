"""Colour and pixel kernels: enhance blends, posterize, solarize, equalize, autocontrast, invert, cutout.

Every kernel has the signature ``kernel(x, value, position) -> Tensor`` (see
:mod:`autodata.augment._geometric`). The enhance ops follow PIL's ``ImageEnhance``: a blend
``degenerate + factor * (x - degenerate)`` with ``factor = 1 + value``, clamped to
``[0, 1]``; it is differentiable in ``value`` and ``x``.
"""
from __future__ import annotations

import torch
from kornia.enhance import equalize as _kornia_equalize
from kornia.enhance import posterize as _kornia_posterize
from kornia.enhance import sharpness as _kornia_sharpness
from torch import Tensor

_RGB_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's "L" mode


def _grayscale(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 1, H, W) luma; a 1-channel image is its own luma."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (_RGB_WEIGHTS[0] * r + _RGB_WEIGHTS[1] * g + _RGB_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: Tensor, degenerate: Tensor, value: Tensor) -> Tensor:
    factor = (1.0 + value).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    return (degenerate + factor * (x - degenerate)).clamp(0.0, 1.0)


def brightness(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Blend with black: ``x * (1 + value)``."""
    del position
    return _blend(x, torch.zeros_like(x), value)


def color(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Blend with the grayscale image (saturation); a no-op on 1-channel images."""
    del position
    return _blend(x, _grayscale(x), value)


def contrast(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Blend with the mean grey level of each image."""
    del position
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return _blend(x, mean, value)


def sharpness(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Blend with a smoothed copy (PIL's SMOOTH kernel, via Kornia)."""
    del position
    return _kornia_sharpness(x, (1.0 + value).to(x.dtype)).clamp(0.0, 1.0)


def posterize(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Keep the ``round(value)`` high bits of each 8-bit channel (value in [0, 8])."""
    del position
    return _kornia_posterize(x, torch.round(value).long())


def posterize_surrogate(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Piecewise-linear interpolation of :func:`posterize` between neighbouring bit depths.

    At ``value = b + t`` (``b`` integer, ``t`` in ``[0, 1)``) it returns
    ``posterize(x, b) + t * (posterize(x, b + 1) - posterize(x, b))``, so its derivative in
    ``value`` is the finite difference between the two adjacent bit depths.
    """
    del position
    low = torch.floor(value).clamp(max=7.0)
    t = (value - low).view(-1, 1, 1, 1)  # (B, 1, 1, 1), carries the gradient
    at_low = _kornia_posterize(x, low.long())
    at_high = _kornia_posterize(x, low.long() + 1)
    return at_low + t * (at_high - at_low)


def solarize(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Invert every pixel at or above the threshold ``value``."""
    del position
    threshold = value.view(-1, 1, 1, 1)
    return torch.where(x >= threshold, 1.0 - x, x)


SOLARIZE_SOFTNESS = 1.0 / 64.0  # sigmoid width of the surrogate threshold, in [0, 1] pixel units


def solarize_surrogate(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Solarize with a sigmoid step of width :data:`SOLARIZE_SOFTNESS` at the threshold."""
    del position
    s = torch.sigmoid((x - value.view(-1, 1, 1, 1)) / SOLARIZE_SOFTNESS)  # (B, C, H, W)
    return x + s * (1.0 - 2.0 * x)


def equalize(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Histogram-equalise each channel (256 bins, via Kornia); ``value`` is ignored."""
    del value, position
    return _kornia_equalize(x)


def autocontrast(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Stretch each channel to span [0, 1]; constant channels are left unchanged."""
    del value, position
    low = x.amin(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    high = x.amax(dim=(2, 3), keepdim=True)
    span = high - low
    flat = span <= 0
    scale = torch.where(flat, torch.ones_like(span), 1.0 / torch.where(flat, torch.ones_like(span), span))
    low = torch.where(flat, torch.zeros_like(low), low)
    return ((x - low) * scale).clamp(0.0, 1.0)


def invert(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """``1 - x``; ``value`` is ignored."""
    del value, position
    return 1.0 - x


def identity(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Return ``x`` unchanged."""
    del value, position
    return x


CUTOUT_FILL = 0.5  # grey, as AutoAugment's cutout
CUTOUT_SOFTNESS = 0.5  # sigmoid width of the surrogate mask's edges, in pixels


def _cutout_mask(x: Tensor, value: Tensor, position: Tensor, softness: float | None) -> Tensor:
    """(B, 1, H, W) mask of a square of side ``value * min(H, W)`` centred at ``position * (W, H)``."""
    h, w = x.shape[-2:]
    half = (value * min(h, w) / 2.0).view(-1, 1, 1)  # (B, 1, 1)
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) + 0.5
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) + 0.5
    dy = (ys - (position[:, 1] * h).view(-1, 1, 1)).abs()  # (B, H, 1)
    dx = (xs - (position[:, 0] * w).view(-1, 1, 1)).abs()  # (B, 1, W)
    if softness is None:
        mask = ((dy < half) & (dx < half)).to(x.dtype)
    else:
        mask = torch.sigmoid((half - dy) / softness) * torch.sigmoid((half - dx) / softness)
    return mask.unsqueeze(1)  # (B, 1, H, W)


def cutout(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Fill a square of side ``value * min(H, W)`` at ``position`` with grey."""
    mask = _cutout_mask(x, value, position, None)
    return x * (1.0 - mask) + CUTOUT_FILL * mask


def cutout_surrogate(x: Tensor, value: Tensor, position: Tensor) -> Tensor:
    """Cutout with sigmoid-softened edges of width :data:`CUTOUT_SOFTNESS` pixels."""
    mask = _cutout_mask(x, value, position, CUTOUT_SOFTNESS)
    return x * (1.0 - mask) + CUTOUT_FILL * mask
