"""The user's real loop: accumulation, clipping, torch.compile, dict inputs.

That the look-ahead is the real step, clipped or not and for optimizer subclasses, is tested in
test_engine.py (test_virtual_step_reproduces_real_optimizer).
"""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autodata import MetaLearner, MetaWeightNet


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _data(n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _mwn() -> MetaWeightNet:
    torch.manual_seed(1)
    return MetaWeightNet(hidden=4, normalize=False).double()


def _warm(model, optimizer, x, y) -> None:
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def _update(method: str, opt_factory, micro: int, **kwargs):
    """The reweighter's update of one optimizer step over 12 samples in ``micro`` micro-batches."""
    model = _mlp()
    optimizer = opt_factory(model.parameters())
    x, y = _data()
    xm, ym = _data(7, seed=1)
    _warm(model, optimizer, x, y)
    mwn = _mwn()
    before = [p.detach().clone() for p in mwn.parameters()]
    learner = MetaLearner(model, optimizer, reweighter=mwn, method=method, accumulation_steps=micro,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0), **kwargs)
    optimizer.zero_grad()
    for chunk_x, chunk_y in zip(x.chunk(micro), y.chunk(micro)):
        loss = learner.step(chunk_x, chunk_y, xm, ym)
        (loss / micro).backward()
    optimizer.step()
    if method == "online":  # applied at the next call
        learner.step(x[:2], y[:2], xm, ym)
    assert learner.last.meta_updated
    learner.close()
    return [b - p.detach() for b, p in zip(before, mwn.parameters())]


SGD = lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True)  # noqa: E731
ADAM = lambda p: torch.optim.Adam(p, lr=0.05)  # noqa: E731


@pytest.mark.parametrize("method", ["jvp", "fd", "online"])
@pytest.mark.parametrize("opt", [SGD, ADAM], ids=["sgd", "adam"])
def test_accumulated_step_has_one_meta_update_equal_to_the_whole_batch(method, opt) -> None:
    whole = _update("exact", opt, 1)
    got = _update(method, opt, 3, **({} if method == "jvp" else {"fd_radius": 1e-5}))
    for a, b in zip(got, whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)


def test_second_order_methods_refuse_accumulation_and_unannounced_accumulation_warns() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"accumulation_steps > 1 needs a first-order method \['fd', 'jvp', 'jvp-online', 'online'\]"):
        MetaLearner(model, optimizer, reweighter=_mwn(), method="exact", accumulation_steps=2)
    learner = MetaLearner(model, optimizer, reweighter=_mwn(), method="jvp")
    x, y = _data()
    learner.step(x, y, x, y)
    with pytest.warns(RuntimeWarning, match="since the last optimizer.step.*accumulation_steps"):
        learner.step(x, y, x, y)


def test_clipped_lookahead_hypergradients_agree() -> None:
    # that the clipped look-ahead is the clipped real step: test_engine.py's
    # test_virtual_step_reproduces_real_optimizer[sgd-clipped]
    clipped = {m: _update(m, SGD, 1, max_grad_norm=0.05) for m in ("exact", "jvp")}
    unclipped = _update("exact", SGD, 1)
    for a, b in zip(clipped["exact"], clipped["jvp"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
    assert any(not torch.allclose(a, b) for a, b in zip(clipped["exact"], unclipped))  # the clipping changes the update
    model = _mlp()
    with pytest.raises(ValueError, match="with max_grad_norm use 'jvp'"):
        MetaLearner(model, SGD(model.parameters()), reweighter=_mwn(), method="online", max_grad_norm=1.0)


class _DictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 3), nn.Linear(2, 3)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.a(image) + self.b(extra)


@pytest.mark.parametrize("method", ["jvp", "exact", "online"])
def test_dict_batches_through_an_inputs_adapter(method: str) -> None:
    torch.manual_seed(0)
    model = _DictModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(8, 5, generator=g), "extra": torch.randn(8, 2, generator=g)}
    y = torch.randint(0, 3, (8,), generator=g)
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(), method=method, inputs=lambda b: ((), b),
                          meta_data=[(batch, y)])
    for _ in range(2):
        loss = learner.step(batch, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert learner.last.meta_updated and torch.isfinite(loss)
    learner.close()
    with pytest.raises(ValueError, match=r"every input tensor of the training batch must have 8 samples"):
        learner.step({"image": batch["image"], "extra": batch["extra"][:3]}, y)


def _compiled_or_eager_run(method: str, compile_it: bool, x, y, xm, ym) -> tuple[list[torch.Tensor], list[bool]]:
    """Four steps (every=2) of the MLP through ``torch.compile`` (aot_eager) or eager: the reweighter's and
    the model's parameters after them, and whether each step meta-updated."""
    model = _mlp()
    net = torch.compile(model, backend="aot_eager") if compile_it else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    mwn = _mwn()
    learner = MetaLearner(net, optimizer, reweighter=mwn, method=method, every=2,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    meta_updated = []
    for _ in range(4):
        loss = learner.step(x, y, xm, ym)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        meta_updated.append(learner.last.meta_updated)
    return [p.detach().clone() for p in (*mwn.parameters(), *model.parameters())], meta_updated


@pytest.mark.slow
def test_a_compiled_model_meta_learns_as_the_eager_one_with_every_method() -> None:
    """Every method takes a compiled model, the second-order ones too (their meta forwards run the plain
    module, which AOTAutograd's missing double backward would otherwise refuse), and learns what the eager
    twin learns: the same reweighter and model after meta steps and (every=2) a plain compiled step."""
    from autodata.bilevel import HYPERGRADIENTS

    x, y = _data()
    xm, ym = _data(7, seed=1)
    for method in sorted(HYPERGRADIENTS):
        torch._dynamo.reset()
        updates = [_compiled_or_eager_run(method, compile_it, x, y, xm, ym)[0] for compile_it in (True, False)]
        before = [p.detach() for p in _mwn().parameters()]
        assert any(not torch.equal(a, b) for a, b in zip(updates[0], before)), method  # it did learn
        for a, b in zip(*updates):
            torch.testing.assert_close(a, b, msg=method)
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["jvp", "fd"])
def test_a_compiled_model_whose_code_was_compiled_for_plain_training_before_still_meta_learns(method: str) -> None:
    """AOTAutograd donates buffers in a graph first compiled for plain training (another model of the
    same architecture, an earlier trial in one process), and Dynamo serves that graph to this model: the
    meta steps' retain_graph backward must not go through it (their real forward runs the plain module),
    the plain steps between them (every=2) run it, and the run gives the eager model's update."""
    torch._dynamo.reset()
    x, y = _data()
    xm, ym = _data(7, seed=1)
    earlier = _mlp()
    compiled_earlier = torch.compile(earlier, backend="aot_eager")
    opt = torch.optim.SGD(earlier.parameters(), lr=0.1)
    for _ in range(2):  # plain training: the graph is compiled with donated buffers
        loss = torch.nn.functional.cross_entropy(compiled_earlier(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    updates = []
    for compile_it in (True, False):
        state, meta_updated = _compiled_or_eager_run(method, compile_it, x, y, xm, ym)
        assert meta_updated == [True, False, True, False]
        updates.append(state)
    for a, b in zip(*updates):
        torch.testing.assert_close(a, b)
    torch._dynamo.reset()
