"""The augmentation op table: one small record per op, AutoAugment's ops plus crop and flip.

Each op is an :class:`OpSpec`, called as ``OPS[name](x, magnitude, sign=None, position=None)``
on a float batch ``x`` in ``[0, 1]`` with one normalised ``magnitude`` in ``[0, 1]`` per
sample. The record maps the magnitude linearly onto the op's own range ``[low, high]``
(the ranges of AutoAugment, Cubuk et al. 2019, as tabled in torchvision's
``AutoAugment._augmentation_space``), and signed ops multiply it by a per-sample ``sign``
in ``{-1, +1}``. Magnitude ``0`` is the identity for every op with a magnitude:

* ShearX/ShearY: shear factor ``0 .. 0.3``; TranslateX/TranslateY: ``0 .. 150/331`` of the
  size (AutoAugment's 150 px at 331 px); Rotate: ``0 .. 30`` degrees; all signed.
* Brightness, Color, Contrast, Sharpness: enhance factor ``1 +/- 0.9 m`` (``0.1 .. 1.9``).
* Posterize: ``8 - 4 m`` bits (rounded; torchvision's ``8 - round(bin / (9 / 4))`` at
  ``m = bin / 9``); Solarize: threshold ``256/255 * (1 - m)`` (within one 8-bit level of
  torchvision's ``255 * (1 - m)``, and exactly the identity at ``m = 0``).
* Cutout: grey square of side ``0.5 m`` of the size at a per-sample position; CropPad:
  zero padding of ``0.25 m`` of the size and a crop at a per-sample offset.

Gradients with respect to the magnitude (``differentiable`` in the record):

* exact (``differentiable=True``): the geometric ops warp with an affine matrix built
  from the magnitude (Kornia ``warp_affine``); the enhance ops blend
  ``degenerate + (1 + v) * (x - degenerate)``.
* straight-through (``differentiable=False`` with a ``surrogate``): Posterize, Solarize,
  Cutout and CropPad are piecewise constant in the magnitude. The forward value is the
  exact op; the backward pass uses a smooth surrogate ``s`` of the same op:
  ``out = op(x, v) + s(x.detach(), v) - s(x.detach(), v).detach()``, so that
  ``d out / d v = d s / d v``. The surrogates are: Posterize, piecewise-linear
  interpolation between the two neighbouring bit depths (a finite difference); Solarize,
  a sigmoid step of width 1/64 at the threshold; Cutout, a square mask with sigmoid edges
  of width 0.5 px; CropPad, the shift without rounding to whole pixels.
* none (``uses_magnitude=False``): Identity, AutoContrast, Equalize, Invert and HFlip have
  no magnitude; their gradient with respect to it is exactly zero. A learned policy
  trains them through their application probability and sub-policy weight, as DADA
  (Li et al. 2020) does.

Gradients with respect to ``x`` flow through every op; Posterize and Equalize, which
quantise, pass it with the identity straight-through estimator ``d out / d x = 1``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from autodata.augment import _color, _geometric
from autodata.augment._checks import check_images, check_per_sample, check_unit_interval
from autodata.augment._geometric import (
    affine_kernel,
    rotate_matrix,
    shear_x_matrix,
    shear_y_matrix,
    translate_x_matrix,
    translate_y_matrix,
)

Kernel = Callable[[Tensor, Tensor, Tensor], Tensor]
Matrix = Callable[[Tensor, int, int], Tensor]


@dataclass(frozen=True)
class OpSpec:
    """One augmentation op: its kernel, magnitude range and gradient kind.

    Args:
        name: the op's name, the key in :data:`OPS` and in policy files.
        kernel: ``kernel(x, value, position)`` applying the op with its own argument.
        low: the op's argument at magnitude 0.
        high: the op's argument at magnitude 1.
        signed: whether each sample's argument is multiplied by a random sign.
        differentiable: whether the gradient with respect to the magnitude is exact.
        uses_magnitude: whether the op has a magnitude at all.
        uses_position: whether the op reads a per-sample position in ``[0, 1]^2``.
        surrogate: smooth stand-in whose gradient the straight-through estimator uses.
        detached_input: whether the kernel blocks gradients to ``x`` (identity
            straight-through is then used for ``x``).
        matrix: for affine ops, ``matrix(value, H, W)`` giving the (B, 2, 3) pixel matrix
            that the kernel warps with.

    Example:
        >>> x = torch.rand(4, 3, 32, 32)
        >>> OPS["Rotate"](x, torch.full((4,), 0.5)).shape
        torch.Size([4, 3, 32, 32])

    Shape:
        - x: :math:`(B, C, H, W)`, float in ``[0, 1]``, :math:`C \\in \\{1, 3\\}`.
        - magnitude: :math:`(B,)` in ``[0, 1]``.
        - sign: :math:`(B,)` of ``-1.0`` / ``+1.0`` (default ``+1``).
        - position: :math:`(B, 2)` in ``[0, 1]``, ``(x, y)`` fractions (default centre).
        - output: :math:`(B, C, H, W)`, same dtype.
    """

    name: str
    kernel: Kernel
    low: float
    high: float
    signed: bool
    differentiable: bool
    uses_magnitude: bool = True
    uses_position: bool = False
    surrogate: Kernel | None = None
    detached_input: bool = False
    matrix: Matrix | None = None

    def value(self, magnitude: Tensor, sign: Tensor | None = None) -> Tensor:
        """Map normalised magnitudes (B,) to the op's own argument (B,)."""
        v = self.low + magnitude * (self.high - self.low)
        if self.signed and sign is not None:
            v = v * sign
        return v

    def apply(self, x: Tensor, magnitude: Tensor, sign: Tensor, position: Tensor) -> Tensor:
        """Apply the op without argument checks (the batched modules' inner loop)."""
        v = self.value(magnitude.to(x.dtype), sign.to(x.dtype))  # (B,)
        position = position.to(x.dtype)  # (B, 2)
        out = self.kernel(x, v, position)
        if self.detached_input and x.requires_grad:
            out = out.detach() + (x - x.detach())
        if self.surrogate is not None and v.requires_grad:
            soft = self.surrogate(x.detach(), v, position)
            out = out + (soft - soft.detach())
        return out

    def __call__(
        self,
        x: Tensor,
        magnitude: Tensor,
        sign: Tensor | None = None,
        position: Tensor | None = None,
    ) -> Tensor:
        """Check the arguments and apply the op; see the class docstring."""
        check_images(x)
        b = x.shape[0]
        check_per_sample(magnitude, b, "magnitude")
        check_unit_interval(magnitude, "magnitude")
        if sign is None:
            sign = torch.ones(b, device=x.device, dtype=x.dtype)
        check_per_sample(sign, b, "sign")
        if position is None:
            position = torch.full((b, 2), 0.5, device=x.device, dtype=x.dtype)
        check_per_sample(position, b, "position", (2,))
        check_unit_interval(position, "position")
        return self.apply(x, magnitude, sign, position)


def _table(*specs: OpSpec) -> dict[str, OpSpec]:
    return {spec.name: spec for spec in specs}


_ENHANCE = 0.9
_TRANSLATE = 150.0 / 331.0  # fraction of the image size, AutoAugment's 150 px at 331 px

OPS: dict[str, OpSpec] = _table(
    OpSpec("Identity", _color.identity, 0.0, 0.0, False, False, uses_magnitude=False),
    OpSpec("ShearX", affine_kernel(shear_x_matrix), 0.0, 0.3, True, True, matrix=shear_x_matrix),
    OpSpec("ShearY", affine_kernel(shear_y_matrix), 0.0, 0.3, True, True, matrix=shear_y_matrix),
    OpSpec("TranslateX", affine_kernel(translate_x_matrix), 0.0, _TRANSLATE, True, True, matrix=translate_x_matrix),
    OpSpec("TranslateY", affine_kernel(translate_y_matrix), 0.0, _TRANSLATE, True, True, matrix=translate_y_matrix),
    OpSpec("Rotate", affine_kernel(rotate_matrix), 0.0, 30.0, True, True, matrix=rotate_matrix),
    OpSpec("AutoContrast", _color.autocontrast, 0.0, 0.0, False, False, uses_magnitude=False),
    OpSpec("Invert", _color.invert, 0.0, 0.0, False, False, uses_magnitude=False),
    OpSpec("Equalize", _color.equalize, 0.0, 0.0, False, False, uses_magnitude=False, detached_input=True),
    OpSpec("Solarize", _color.solarize, 256.0 / 255.0, 0.0, False, False, surrogate=_color.solarize_surrogate),
    OpSpec(
        "Posterize", _color.posterize, 8.0, 4.0, False, False,
        surrogate=_color.posterize_surrogate, detached_input=True,
    ),
    OpSpec("Contrast", _color.contrast, 0.0, _ENHANCE, True, True),
    OpSpec("Color", _color.color, 0.0, _ENHANCE, True, True),
    OpSpec("Brightness", _color.brightness, 0.0, _ENHANCE, True, True),
    OpSpec("Sharpness", _color.sharpness, 0.0, _ENHANCE, True, True),
    OpSpec("Cutout", _color.cutout, 0.0, 0.5, False, False, uses_position=True, surrogate=_color.cutout_surrogate),
    OpSpec(
        "CropPad", _geometric.crop_pad, 0.0, 0.25, False, False,
        uses_position=True, surrogate=_geometric.crop_pad_surrogate,
    ),
    OpSpec("HFlip", _geometric.hflip, 0.0, 0.0, False, False, uses_magnitude=False),
)
"""Every op by name. Magnitude 0.5 of ``CropPad`` pads 1/8 of the size (4 px at 32 px)."""

AUTOAUGMENT_OPS: tuple[str, ...] = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert",
    "Equalize", "Solarize", "Posterize", "Contrast", "Color", "Brightness", "Sharpness", "Cutout",
)
"""The 15 ops of AutoAugment's search space, also DADA's (the default of DifferentiablePolicy)."""

RANDAUGMENT_OPS: tuple[str, ...] = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
    "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)
"""The 14 ops of torchvision's RandAugment and TrivialAugmentWide."""


def get_op(name: str) -> OpSpec:
    """Return the op called ``name``; raise a ValueError listing the known ops otherwise."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise ValueError(f"op must be one of {sorted(OPS)}, but got {name!r}.") from None
