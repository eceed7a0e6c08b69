"""Networks used by the papers autodata reproduces; every one ends in an ``nn.Linear`` ``fc``.

Example:
    >>> from autodata.models import create_model
    >>> model = create_model("resnet32", num_classes=10)
"""
from __future__ import annotations

from autodata.models.normalize import Normalize, with_normalization
from autodata.models.registry import MODELS, count_parameters, create_model
from autodata.models.resnet_cifar import (
    BasicBlock,
    CifarResNet,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
)
from autodata.models.small_cnn import SmallCNN, small_cnn
from autodata.models.wide_resnet import WideBasicBlock, WideResNet, wide_resnet, wrn_28_10, wrn_40_2

__all__ = [
    "MODELS",
    "BasicBlock",
    "CifarResNet",
    "Normalize",
    "SmallCNN",
    "WideBasicBlock",
    "WideResNet",
    "count_parameters",
    "create_model",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "small_cnn",
    "wide_resnet",
    "wrn_28_10",
    "with_normalization",
    "wrn_40_2",
]
