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


def _twin_runs(compile_model, method: str, steps: int = 4, dropout: bool = False, compile_after: bool = False,
               **kwargs):
    """(losses, meta-parameters, parameters) of the compiled run, then of the eager run.

    ``dropout``: a Dropout(0.3) before the small CNN; ``compile_after``: ``compile_model`` (one that
    compiles in place) is called after the learner was built.
    """
    from torch import nn

    x, y, xm, ym = _batches()
    runs = []
    for compiled in (True, False):
        torch.manual_seed(0)
        model = create_model("small_cnn", in_channels=1, num_classes=10)  # BatchNorm
        model = nn.Sequential(nn.Dropout(0.3), model) if dropout else model
        net = compile_model(model) if compiled and not compile_after else model
        torch.manual_seed(1)
        mwn = MetaWeightNet()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        learner = MetaLearner(net, optimizer, reweighter=mwn, method=method, **kwargs)
        if compiled and compile_after:
            compile_model(model)
        torch.manual_seed(2)  # the dropout masks
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


@pytest.fixture
def one_rank():
    """A gloo process group of one rank (DDP wraps a model; no other process)."""
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not built")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_a_compiled_ddp_model_runs_its_meta_steps_through_ddp_and_refuses_second_order(one_rank) -> None:
    """torch.compile(DDP(model)): the meta step's real forward must go through DDP, which all-reduces the
    real step's gradients (it ran the module under DDP: with 2 ranks the models drifted apart by 0.06 in 3
    steps), and DDP has no double backward (exact was accepted)."""
    from torch import nn

    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    ddp = nn.parallel.DistributedDataParallel(model)
    calls = []
    ddp.register_forward_pre_hook(lambda module, args: calls.append(1))
    compiled = torch.compile(ddp, backend="aot_eager")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"which a DistributedDataParallel model does not support"):
        MetaLearner(compiled, optimizer, reweighter=MetaWeightNet(), method="exact")
    learner = MetaLearner(compiled, optimizer, reweighter=MetaWeightNet(), method="jvp")
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    for _ in range(2):
        loss = learner.step(x, y, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert learner.last.meta_updated and len(calls) == 2
    torch._dynamo.reset()


def test_ddp_over_a_compiled_module_takes_the_one_step_late_methods_only(one_rank) -> None:
    """DDP(torch.compile(model)) runs the compiled graph inside DDP's forward: no plain forward through DDP
    for a meta step to differentiate (the plain module under it skipped DDP's all-reduce)."""
    from torch import nn

    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    ddp = nn.parallel.DistributedDataParallel(torch.compile(model, backend="aot_eager"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for method in ("jvp", "fd"):
        with pytest.raises(ValueError, match=rf"method='{method}' differentiates the real forward.*DistributedDataParallel "
                                             r"over a torch.compile'd module; compile the DDP model instead.*"
                                             r"\['jvp-online', 'online'\]"):
            MetaLearner(ddp, optimizer, reweighter=MetaWeightNet(), method=method)
    for method in ("online", "jvp-online"):
        MetaLearner(ddp, optimizer, reweighter=MetaWeightNet(), method=method).close()
    MetaLearner(ddp, optimizer, method="jvp")  # nothing learned: the method never runs


@pytest.mark.slow
def test_an_inductor_compiled_model_with_dropout_replays_the_masks_of_its_recorded_forwards() -> None:
    """online/jvp-online replay a recorded real forward with its dropout masks on the plain module; an
    inductor graph draws its own random numbers (the replayed per-sample losses were off by up to 0.5 at
    the recorded parameters), so a recorded forward of a model that draws runs the plain module, and the
    run learns what the eager one learns (it was 4e-3 off in the meta-parameters after 4 steps)."""
    torch._dynamo.reset()
    _assert_twins(_twin_runs(torch.compile, "jvp-online", dropout=True))
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.parametrize(("method", "after"), [("jvp", False), ("online", False), ("jvp-online", True)])
def test_a_model_with_dropout_compiled_in_place_replays_its_virtual_forwards_uncompiled(method: str, after: bool) -> None:
    """``model.compile()`` leaves no wrapper to strip: the look-ahead, replay and validation forwards
    (``functional_call`` of the model) ran the inductor graph, which draws its own dropout masks, and
    the run drifted from the eager one (2e-3 in the meta-parameters after 4 steps); they run the plain call.
    Compiled after the learner was built (``after``), the recorded forwards ran the graph (the learner
    had decided at construction that the model was plain): replayed losses 0.12 off on the mean."""
    from autodata.bilevel.wrappers import uncompiled

    def compile_in_place(model):
        model.compile()
        if not after:
            with uncompiled(model):  # the block's calls are plain; the compiled call comes back after it
                assert model._compiled_call_impl is None
            assert model._compiled_call_impl is not None
        return model

    torch._dynamo.reset()
    # (every=1: with every=k the plain steps between run the graph, whose masks differ from eager's)
    _assert_twins(_twin_runs(compile_in_place, method, dropout=True, compile_after=after))
    torch._dynamo.reset()
