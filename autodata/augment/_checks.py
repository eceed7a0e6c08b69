"""Argument checks shared by the augmentation ops and modules.

Checks that need only shapes and dtypes are free; checks that read tensor values
(``magnitude`` in ``[0, 1]``) cost one device synchronisation and run only on the public
entry points, never inside the batched modules' inner loops.
"""
from __future__ import annotations

import torch
from torch import Tensor


def check_images(x: object, name: str = "x") -> Tensor:
    """Check that ``x`` is a floating ``(B, C, H, W)`` batch with 1 or 3 channels.

    Shape:
        - x: :math:`(B, C, H, W)` with :math:`C \\in \\{1, 3\\}`.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, but got {type(x).__name__}.")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), but got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point image in [0, 1], but got dtype {x.dtype}.")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels, but got {x.shape[1]}.")
    return x


def check_per_sample(t: object, batch: int, name: str, trailing: tuple[int, ...] = ()) -> Tensor:
    """Check that ``t`` is a tensor of shape ``(batch, *trailing)``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, but got {type(t).__name__}.")
    expected = (batch, *trailing)
    if tuple(t.shape) != expected:
        raise ValueError(f"{name} must have shape {expected}, but got {tuple(t.shape)}.")
    return t


def check_unit_interval(t: Tensor, name: str) -> Tensor:
    """Check that every value of ``t`` lies in ``[0, 1]`` (one device synchronisation)."""
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, but got dtype {t.dtype}.")
    if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(
            f"{name} must lie in [0, 1], but got values in "
            f"[{float(t.min()):.4g}, {float(t.max()):.4g}]."
        )
    return t


def check_generator(generator: object) -> torch.Generator:
    """Check that ``generator`` is a ``torch.Generator``."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, but got {type(generator).__name__}.")
    return generator
