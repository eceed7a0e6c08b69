from __future__ import annotations

import pytest
import torch
from torch import nn

from autodata.models import (
    MODELS,
    count_parameters,
    create_model,
    resnet32,
    small_cnn,
    wide_resnet,
    wrn_28_10,
    wrn_40_2,
)


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("resnet32", {"num_classes": 10}, (2, 3, 32, 32)),
        ("resnet32", {"num_classes": 100, "shortcut": "B"}, (2, 3, 32, 32)),
        ("wrn_40_2", {"num_classes": 10, "dropout": 0.3}, (2, 3, 32, 32)),
        ("wide_resnet", {"depth": 10, "widen_factor": 1, "num_classes": 7}, (2, 3, 32, 32)),
        ("small_cnn", {"num_classes": 10}, (3, 1, 28, 28)),
        ("small_cnn", {"num_classes": 10}, (3, 1, 8, 8)),
        ("small_cnn", {"in_channels": 3, "num_classes": 5}, (2, 3, 32, 32)),
    ],
)
def test_forward_shapes(name: str, kwargs: dict, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    out = model(torch.randn(*shape))
    assert out.shape == (shape[0], kwargs["num_classes"])
    assert isinstance(model.fc, nn.Linear) and model.fc.out_features == kwargs["num_classes"]
    assert list(model.children())[-1] is model.fc  # the "last layer" the meta engine uses
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_parameter_counts() -> None:
    assert abs(count_parameters(resnet32()) - 0.46e6) < 0.01e6
    assert abs(count_parameters(wrn_40_2()) - 2.2e6) < 0.05e6
    assert abs(count_parameters(wrn_28_10()) - 36.5e6) < 0.1e6  # no forward: too slow for a test
    assert count_parameters(small_cnn()) < 50_000


def test_channels_last_gives_same_output() -> None:
    torch.manual_seed(0)
    model = resnet32().eval()
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ref, atol=1e-4, rtol=1e-4)


def test_registry_and_bad_arguments() -> None:
    assert {"resnet32", "wrn_40_2", "wrn_28_10", "wide_resnet", "small_cnn"} <= set(MODELS)
    with pytest.raises(ValueError, match="must be one of"):
        create_model("resnet18")
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
        wide_resnet(27, 2)
    with pytest.raises(ValueError, match="shortcut must be"):
        resnet32(shortcut="C")


def test_with_normalization_wraps_model() -> None:
    from autodata.models import Normalize, with_normalization

    model = with_normalization(small_cnn(num_classes=4), (0.5,), (0.25,))
    assert isinstance(model[0], Normalize) and model(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    torch.testing.assert_close(model[0](torch.full((1, 1, 2, 2), 0.75)), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match="std > 0"):
        Normalize((0.5,), (0.0,))
