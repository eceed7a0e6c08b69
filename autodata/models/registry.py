"""Build a model by name: ``create_model("resnet32", num_classes=100)``."""
from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from torch import nn

from autodata.models.resnet_cifar import resnet20, resnet32, resnet44, resnet56, resnet110
from autodata.models.small_cnn import small_cnn
from autodata.models.wide_resnet import wide_resnet, wrn_28_10, wrn_40_2

__all__ = ["MODELS", "create_model", "count_parameters"]

MODELS: MappingProxyType[str, Callable[..., nn.Module]] = MappingProxyType(
    {
        "resnet20": resnet20,
        "resnet32": resnet32,
        "resnet44": resnet44,
        "resnet56": resnet56,
        "resnet110": resnet110,
        "wide_resnet": wide_resnet,
        "wrn_40_2": wrn_40_2,
        "wrn_28_10": wrn_28_10,
        "small_cnn": small_cnn,
    }
)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Builds a registered model.

    Args:
        name: A key of :data:`MODELS` (``"resnet32"``, ``"wrn_40_2"``, ``"wrn_28_10"``,
            ``"wide_resnet"``, ``"small_cnn"``, ...).
        **kwargs: Passed to the constructor (e.g. ``num_classes``).

    Returns:
        The model; its last layer is an ``nn.Linear`` named ``fc``.

    Raises:
        ValueError: For an unknown name (lists the known ones).

    Example:
        >>> create_model("small_cnn", num_classes=3).fc.out_features
        3
    """
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, but got {name!r}.")
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters.

    Example:
        >>> count_parameters(create_model("resnet32"))
        464154
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
