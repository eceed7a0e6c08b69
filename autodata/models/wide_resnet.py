"""Wide Residual Networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

WRN-d-k: ``n = (d - 4) / 6`` pre-activation BasicBlocks per stage, widths 16k/32k/64k,
dropout between the two convolutions. WRN-40-2 (2.2M parameters) and WRN-28-10 (36.5M)
are the networks of AutoAugment (Cubuk et al., CVPR 2019), PBA (Ho et al., ICML 2019)
and DADA (Li et al., ECCV 2020).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WideBasicBlock", "WideResNet", "wide_resnet", "wrn_28_10", "wrn_40_2"]


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3, plus a 1x1-conv shortcut when shapes change."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # The projection shortcut sees the pre-activated input, as in the authors' code.
        shortcut = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-widen_factor for 32x32 inputs.

    Args:
        depth: Total depth d; ``(d - 4)`` must be divisible by 6.
        widen_factor: Width multiplier k >= 1.
        num_classes: Output classes.
        dropout: Dropout probability inside each block.
        in_channels: Input channels.

    Shape:
        - x: (B, in_channels, H, W), H and W divisible by 4.
        - output: (B, num_classes) logits.

    Example:
        >>> WideResNet(10, 1)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int = 10,
        dropout: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (e.g. 28, 40), but got {depth}.")
        if widen_factor < 1:
            raise ValueError(f"widen_factor must be >= 1, but got {widen_factor}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), but got {dropout}.")
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        stages: list[nn.Module] = []
        in_planes = widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(WideBasicBlock(in_planes, planes, stride if i == 0 else 1, dropout))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, 16, H, W)
        out = self.block3(self.block2(self.block1(out)))  # (B, 64k, H/4, W/4)
        out = F.relu(self.bn(out))
        out = torch.flatten(self.pool(out), 1)  # (B, 64k)
        return self.fc(out)  # (B, num_classes)


def wide_resnet(
    depth: int, widen_factor: int, num_classes: int = 10, dropout: float = 0.0, in_channels: int = 3
) -> WideResNet:
    """Builds WRN-depth-widen_factor (see :class:`WideResNet`)."""
    return WideResNet(depth, widen_factor, num_classes, dropout, in_channels)


def wrn_40_2(num_classes: int = 10, dropout: float = 0.0, in_channels: int = 3) -> WideResNet:
    """WRN-40-2 (2.2M parameters), the reduced-search network of AutoAugment/PBA/DADA."""
    return WideResNet(40, 2, num_classes, dropout, in_channels)


def wrn_28_10(num_classes: int = 10, dropout: float = 0.0, in_channels: int = 3) -> WideResNet:
    """WRN-28-10 (36.5M parameters)."""
    return WideResNet(28, 10, num_classes, dropout, in_channels)
