"""CIFAR ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2).

``6n + 2`` layers: a 3x3 conv to 16 channels, three stages of ``n`` BasicBlocks with
16/32/64 channels (stride 2 at the start of stages 2 and 3), global average pooling and a
linear classifier ``fc``. ResNet-32 (n = 5, 0.46M parameters) is the network of
Meta-Weight-Net (Shu et al., NeurIPS 2019).

Shortcuts that change shape use option A (subsample by 2 and zero-pad the channels; no
parameters, as in the paper) or option B (1x1 conv + BN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


class _ShortcutA(nn.Module):
    """Option-A shortcut: take every other pixel, zero-pad the new channels on both sides."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__()
        extra = planes - in_planes
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]  # (B, C, H/2, W/2)
        return F.pad(x, (0, 0, 0, 0, *self.pad))  # (B, C + extra, H/2, W/2)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or projection) shortcut, post-activation."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = _ShortcutA(in_planes, planes)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A ``6n + 2``-layer CIFAR ResNet.

    Args:
        num_blocks: Blocks per stage ``n`` (5 for ResNet-32).
        num_classes: Output classes.
        in_channels: Input channels.
        shortcut: ``"A"`` (parameter-free, as in the paper) or ``"B"`` (1x1 conv + BN).

    Shape:
        - x: (B, in_channels, H, W) with H, W divisible by 4 (32 for CIFAR).
        - output: (B, num_classes) logits.

    Example:
        >>> model = CifarResNet(num_blocks=1, num_classes=10)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, num_blocks: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A"
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, but got {num_blocks}.")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', but got {shortcut!r}.")
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(num_blocks):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, shortcut))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (B, 16, H, W)
        out = self.layer3(self.layer2(self.layer1(out)))  # (B, 64, H/4, W/4)
        out = torch.flatten(self.pool(out), 1)  # (B, 64)
        return self.fc(out)  # (B, num_classes)


def _cifar_resnet(n: int, num_classes: int, in_channels: int, shortcut: str) -> CifarResNet:
    return CifarResNet(n, num_classes, in_channels, shortcut)


def resnet20(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-20 (n = 3, 0.27M parameters)."""
    return _cifar_resnet(3, num_classes, in_channels, shortcut)


def resnet32(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-32 (n = 5, 0.46M parameters), Meta-Weight-Net's network.

    Example:
        >>> sum(p.numel() for p in resnet32().parameters())
        464154
    """
    return _cifar_resnet(5, num_classes, in_channels, shortcut)


def resnet44(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-44 (n = 7, 0.66M parameters)."""
    return _cifar_resnet(7, num_classes, in_channels, shortcut)


def resnet56(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-56 (n = 9, 0.85M parameters)."""
    return _cifar_resnet(9, num_classes, in_channels, shortcut)


def resnet110(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-110 (n = 18, 1.7M parameters)."""
    return _cifar_resnet(18, num_classes, in_channels, shortcut)
