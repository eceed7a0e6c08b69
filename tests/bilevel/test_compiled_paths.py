"""A torch.compile'd model meta-learns as its eager twin along the engine's less common paths.

Each test runs the same seeded loop twice, once through the compiled model and once through the
plain one, and compares the losses, the meta-parameters and the model's parameters.
"""
from __future__ import annotations

import pytest
import torch

from autodata import MetaLearner, MetaWeightNet
from autodata.models import create_model


def _batches(channels: int = 1):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, channels, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    xm, ym = torch.rand(16, channels, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    return x, y, xm, ym


def _twin_runs(compile_model, method: str, steps: int = 4, **kwargs):
    """(losses, meta-parameters, parameters) of the compiled run, then of the eager run."""
    x, y, xm, ym = _batches()
    runs = []
    for compiled in (True, False):
        torch.manual_seed(0)
        model = create_model("small_cnn", in_channels=1, num_classes=10)  # BatchNorm
        net = compile_model(model) if compiled else model
        torch.manual_seed(1)
        mwn = MetaWeightNet()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        learner = MetaLearner(net, optimizer, reweighter=mwn, method=method, **kwargs)
        losses = []
        for _ in range(steps):
            loss = learner.step(x, y, xm, ym)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        runs.append((torch.stack(losses), [p.detach().clone() for p in mwn.parameters()],
                     [p.detach().clone() for p in model.parameters()]))
    return runs


def _assert_twins(runs) -> None:
    (losses_c, meta_c, params_c), (losses_e, meta_e, params_e) = runs
    torch.testing.assert_close(losses_c, losses_e)
    for a, b in zip([*meta_c, *params_c], [*meta_e, *params_e]):
        torch.testing.assert_close(a, b)
    torch.manual_seed(1)
    assert any(not torch.equal(a, b) for a, b in zip(meta_e, MetaWeightNet().parameters()))  # it did learn


def _compile_in_place(model):
    model.compile(backend="aot_eager")
    return model


@pytest.mark.slow
@pytest.mark.parametrize("method", ["exact"])
def test_a_model_compiled_in_place_meta_learns_as_the_eager_one(method: str) -> None:
    """``model.compile()`` makes ``model(...)`` the compiled graph, and the model is its own plain module:
    its meta forwards must run the uncompiled call (they ran the graph: AOTAutograd's donated buffers
    refused the meta step's retain_graph backward, and it has no double backward)."""
    torch._dynamo.reset()
    _assert_twins(_twin_runs(_compile_in_place, method, every=2))
    torch._dynamo.reset()
