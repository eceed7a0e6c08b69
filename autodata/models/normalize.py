"""Input normalisation as a layer, so that augmentation can run on ``[0, 1]`` images first."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Normalize", "with_normalization"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; buffers move with the model.

    Shape:
        - x: :math:`(B, C, H, W)`; output: the same.

    Example:
        >>> Normalize((0.5,), (0.25,))(torch.ones(1, 1, 2, 2)).flatten().tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean and std must have one entry per channel and std > 0, but got {mean} and {std}.")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def with_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Sequential:
    """``Normalize`` then ``model``: the model then takes ``[0, 1]`` images (augment first)."""
    return nn.Sequential(Normalize(mean, std), model)
