"""A small CNN for 28x28 grey images (MNIST, Fashion-MNIST) that also runs on 8x8 digits."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SmallCNN", "small_cnn"]


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU-maxpool blocks, global average pooling, a linear ``fc``.

    Adaptive pooling makes the head independent of the input size (28x28 or 8x8).

    Args:
        in_channels: Input channels.
        num_classes: Output classes.
        width: Channels of the first block (the second has twice as many).

    Shape:
        - x: (B, in_channels, H, W) with H, W >= 4.
        - output: (B, num_classes) logits.

    Example:
        >>> SmallCNN()(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> SmallCNN()(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, but got {width}.")
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (B, w, H/2, W/2)
        out = F.max_pool2d(F.relu(self.bn2(self.conv2(out))), 2)  # (B, 2w, H/4, W/4)
        out = torch.flatten(self.pool(out), 1)  # (B, 2w)
        return self.fc(out)  # (B, num_classes)


def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32) -> SmallCNN:
    """Builds a :class:`SmallCNN`."""
    return SmallCNN(in_channels, num_classes, width)
