"""The replay's forward-mode rules equal PyTorch's own forward AD (float64), and decline what they do not handle."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from autodata.bilevel.jvp_rules import CHANNELS_LAST_RULES, RULES, ForwardRules
from autodata.models import small_cnn


def _dual_run(fn: Callable[..., Tensor], primals: list[Tensor | None], tangents: list[Tensor | None],
              rules: bool, channels_last: bool = False) -> tuple[Tensor, Tensor]:
    """``fn(*duals)`` under forward AD (no grad), with or without :class:`ForwardRules`: (primal, tangent)."""
    with torch.no_grad(), fwAD.dual_level():
        args = [p if p is None or t is None else fwAD.make_dual(p, t) for p, t in zip(primals, tangents)]
        if rules:
            with ForwardRules(channels_last=channels_last):
                out = fn(*args)
        else:
            out = fn(*args)
        primal, tangent = fwAD.unpack_dual(out)
        return primal.clone(), (torch.zeros_like(primal) if tangent is None else tangent.clone())


def _assert_same_jvp(fn: Callable[..., Tensor], primals: list[Tensor | None], tangents: list[Tensor | None],
                     channels_last: bool = False) -> None:
    got = _dual_run(fn, primals, tangents, rules=True, channels_last=channels_last)
    expected = _dual_run(fn, primals, tangents, rules=False)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-10, atol=1e-12)
    assert got[1].abs().sum() > 0 or expected[1].abs().sum() == 0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the rules that applied (did not decline) during a test."""
    seen: list[str] = []
    for table in (RULES, CHANNELS_LAST_RULES):
        for func, rule in list(table.items()):
            def spy(*args, _rule=rule, **kwargs):
                out = _rule(*args, **kwargs)
                if out is not NotImplemented:
                    seen.append(_rule.__name__)
                return out
            monkeypatch.setitem(table, func, spy)
    return seen


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 7), (4, 3, 5, 6), (3, 2, 3, 4, 5)], ids=["1d", "seq", "2d", "3d"])
@pytest.mark.parametrize("which", ["all", "input", "params", "weight", "bias"])
def test_batch_norm_rule_equals_torch_forward_ad(shape: tuple[int, ...], which: str, calls: list[str]) -> None:
    g = _g()
    c = shape[1]
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 2  # an offset mean
    w, b = torch.rand(c, generator=g, dtype=torch.float64) + 0.5, torch.randn(c, generator=g, dtype=torch.float64)
    t = [torch.randn_like(v) for v in (x, w, b)]
    keep = {"all": (0, 1, 2), "input": (0,), "params": (1, 2), "weight": (1,), "bias": (2,)}[which]
    tangents = [v if i in keep else None for i, v in enumerate(t)]

    def fn(x, w, b):
        return F.batch_norm(x, torch.zeros(c, dtype=x.dtype), torch.ones(c, dtype=x.dtype), w, b, True, 0.1, 1e-5)

    _assert_same_jvp(fn, [x, w, b], tangents)
    assert calls == ["batch_norm_rule"]


def test_batch_norm_rule_without_affine_or_running_stats_and_its_running_stats(calls: list[str]) -> None:
    g = _g(1)
    x, xt = torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    _assert_same_jvp(lambda x: F.batch_norm(x, None, None, None, None, True, 0.1, 1e-3), [x], [xt])
    stats = {}
    for rules in (True, False):
        bn = nn.BatchNorm2d(3).double()
        _dual_run(bn, [x], [xt], rules)
        stats[rules] = (bn.running_mean.clone(), bn.running_var.clone())
    torch.testing.assert_close(stats[True], stats[False], rtol=1e-12, atol=0)
    assert calls == ["batch_norm_rule"] * 2  # in the comparison, then through the module


def test_batch_norm_rule_declines_eval_mode(calls: list[str]) -> None:
    bn = nn.BatchNorm2d(3).double().eval()
    x = torch.randn(4, 3, 5, 5, generator=_g(), dtype=torch.float64)
    _assert_same_jvp(bn, [x], [torch.randn_like(x)])
    assert calls == []


@pytest.mark.parametrize("kernel, size", [(2, (8, 8)), (2, (7, 9)), (3, (9, 7)), ((2, 3), (6, 9)), ((1, 2), (3, 4))])
@pytest.mark.parametrize("batched", [True, False])
def test_max_pool_rule_equals_torch_forward_ad(kernel, size, batched: bool, calls: list[str]) -> None:
    g = _g()
    shape = (4, 3, *size) if batched else (3, *size)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    _assert_same_jvp(lambda x: F.max_pool2d(x, kernel), [x], [torch.randn_like(x)])
    _assert_same_jvp(lambda x: nn.MaxPool2d(kernel, stride=kernel)(x), [x], [torch.randn_like(x)])
    assert calls == ["max_pool_rule"] * 2


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_max_pool_rule_takes_the_first_of_tied_maxima_as_torch(layout: torch.memory_format, calls: list[str]) -> None:
    """After a ReLU most windows tie at 0; rounded values tie elsewhere: the tangent is the first position's.

    Contiguous inputs take the fold over the windows, channels-last ones PyTorch's kernel and a gather.
    """
    x = torch.randn(6, 4, 13, 12, generator=_g(), dtype=torch.float64).round().relu().contiguous(memory_format=layout)
    assert (x == 0).float().mean() > 0.5
    for kernel in (2, 3):
        t = torch.randn(x.shape, generator=_g(1), dtype=x.dtype).contiguous(memory_format=layout)
        _assert_same_jvp(lambda x: F.max_pool2d(x, kernel), [x], [t])
    assert calls == ["max_pool_rule"] * 2


@pytest.mark.parametrize("options", [dict(kernel_size=3, stride=1), dict(kernel_size=2, padding=1),
                                     dict(kernel_size=2, dilation=2), dict(kernel_size=2, ceil_mode=True)],
                         ids=["overlapping", "padded", "dilated", "ceil"])
def test_max_pool_rule_declines_other_pools(options: dict, calls: list[str]) -> None:
    x = torch.randn(2, 3, 9, 9, generator=_g(), dtype=torch.float64)
    _assert_same_jvp(lambda x: F.max_pool2d(x, **options), [x], [torch.randn_like(x)])
    assert calls == []
    with torch.no_grad(), fwAD.dual_level(), ForwardRules():  # return_indices: torch's path, both outputs
        out, idx = F.max_pool2d(fwAD.make_dual(x, torch.randn_like(x)), 2, return_indices=True)
        assert idx.dtype == torch.int64 and fwAD.unpack_dual(out).tangent is not None
    assert calls == []


@pytest.mark.parametrize("bias_tangent", [True, False])
@pytest.mark.parametrize("conv, shape, groups", [(F.conv2d, (3, 4, 7, 6), 2), (F.conv1d, (3, 4, 9), 1), (F.conv3d, (2, 2, 4, 5, 3), 1)])
def test_conv_rule_equals_torch_forward_ad(conv, shape, groups: int, bias_tangent: bool, calls: list[str]) -> None:
    g = _g()
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    w = torch.randn(6, shape[1] // groups, *([3] * (len(shape) - 2)), generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    tangents = [None, torch.randn_like(w), torch.randn_like(b) if bias_tangent else None]
    _assert_same_jvp(lambda x, w, b: conv(x, w, b, 1, 1, 1, groups), [x, w, b], tangents)
    assert calls == [f"{conv.__name__}_rule"]
    _assert_same_jvp(lambda x, w, b: conv(x, w, b, 1, 1, 1, groups), [x, w, b], [torch.randn_like(x), *tangents[1:]])
    assert calls == [f"{conv.__name__}_rule"] * 2  # with an input tangent too: the two terms summed in place


def test_rules_work_under_torch_func_jvp() -> None:
    """The autograd.Functions are setup_context style: ``torch.func.jvp`` runs their ``jvp``."""
    from autodata.bilevel.jvp_rules import _BatchNormTrain, _Conv, _MaxPoolWindows

    g = _g()
    x = torch.randn(4, 3, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.float64)
    u = (torch.randn_like(x), torch.randn_like(w))

    def net(rules: bool) -> Callable[[Tensor, Tensor], Tensor]:
        if rules:
            conv = lambda x, w: _Conv.apply(F.conv2d, x, w, None, (1, 1, 1, 1))  # noqa: E731
            bn = lambda h: _BatchNormTrain.apply(h, None, None, None, None, 0.1, 1e-5)[0]  # noqa: E731
            pool = lambda h: _MaxPoolWindows.apply(h, (2, 2))  # noqa: E731
        else:
            conv = lambda x, w: F.conv2d(x, w, None, 1, 1)  # noqa: E731
            bn = lambda h: F.batch_norm(h, None, None, None, None, True)  # noqa: E731
            pool = lambda h: F.max_pool2d(h, 2)  # noqa: E731
        return lambda x, w: pool(bn(conv(x.detach(), w) + x.sum(1, keepdim=True)))

    got = torch.func.jvp(net(True), (x, w), u)
    expected = torch.func.jvp(net(False), (x, w), u)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", [2, 3, (2, 3)])
def test_max_pool_rule_in_grad_mode_has_torch_gradient(kernel, calls: list[str]) -> None:
    """The validation forward: max-pooling without indices, the gradient to the first maximal position."""
    x = torch.randn(3, 4, 12, 12, generator=_g(), dtype=torch.float64).round().relu()  # ties
    grad_out = torch.randn(3, 4, *F.max_pool2d(x, kernel).shape[-2:], generator=_g(1), dtype=torch.float64)
    grads = []
    for rules in (True, False):
        leaf = x.clone().requires_grad_()
        with ForwardRules() if rules else torch.enable_grad():
            out = F.max_pool2d(leaf, kernel)
        out.backward(grad_out)
        grads.append((out.detach(), leaf.grad))
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    assert calls == ["max_pool_rule"]
    smooth = torch.randn(2, 2, 6, 6, generator=_g(2), dtype=torch.float64, requires_grad=True)
    with ForwardRules():
        assert torch.autograd.gradcheck(lambda t: F.max_pool2d(t, kernel), (smooth,))


def test_the_mode_passes_other_calls_through(calls: list[str]) -> None:
    bn = nn.BatchNorm2d(3).double()
    x = torch.randn(4, 3, 6, 6, generator=_g(), dtype=torch.float64, requires_grad=True)
    with ForwardRules():
        bn(F.conv2d(x, torch.randn(3, 3, 1, 1, dtype=torch.float64))).sum().backward()  # grad mode: PyTorch's ops
        with torch.no_grad():
            F.max_pool2d(bn(x), 2)  # no tangents
    assert x.grad is not None and calls == []


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("model", ["small_cnn", "resnet_block"])
def test_a_replayed_network_has_the_same_jvp_with_the_rules(model: str, channels_last: bool, calls: list[str]) -> None:
    """The whole forward-mode pass of a model along a parameter direction, as :meth:`Replay.train_jvp` runs it."""
    torch.manual_seed(0)
    if model == "small_cnn":
        net, x = small_cnn(1, 10, width=8).double(), torch.randn(10, 1, 12, 12, dtype=torch.float64)
    else:
        from autodata.models import create_model

        net, x = create_model("resnet20", num_classes=10).double(), torch.randn(4, 3, 16, 16, dtype=torch.float64)
    y = torch.randint(0, 10, (x.shape[0],))
    params = {n: p.detach() for n, p in net.named_parameters()}
    u = {n: torch.randn_like(p) for n, p in params.items()}
    names = list(params)

    def losses(*theta):
        state = dict(zip(names, theta))
        state.update({n: b.clone() for n, b in net.named_buffers()})
        return F.cross_entropy(functional_call(net, state, (x,)), y, reduction="none")

    _assert_same_jvp(losses, [params[n] for n in names], [u[n] for n in names], channels_last)
    assert "batch_norm_rule" in calls and ("conv_channels_last_rule" if channels_last else "conv2d_rule") in calls
    assert ("max_pool_rule" in calls) == (model == "small_cnn")


def test_channels_last_runs_what_follows_a_convolution_in_it_and_notes_random_draws() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3))
    x = torch.randn(2, 1, 8, 8)
    inner = []
    net[2].register_forward_hook(lambda m, i, out: inner.append(out.is_contiguous(memory_format=torch.channels_last)))
    with ForwardRules(channels_last=True) as rules:
        out = net(x)  # grad mode
    assert inner == [True] and out.is_contiguous(memory_format=torch.channels_last) and not rules.drew_random
    torch.testing.assert_close(out, net(x), rtol=1e-5, atol=1e-6)
    with ForwardRules(channels_last=True) as rules:
        nn.Sequential(net, nn.Dropout(0.5))(x)  # a module's forward draws
    assert rules.drew_random
    functional = nn.Sequential(nn.Conv2d(1, 2, 3))
    functional.register_forward_hook(lambda m, i, out: F.dropout(out, 0.5))  # inside the module's call
    with ForwardRules(channels_last=True) as rules:
        functional(x)
    assert rules.drew_random
    with ForwardRules(channels_last=True) as rules:
        F.conv2d(x, torch.randn(2, 1, 3, 3))  # no module ran: it cannot tell
    assert rules.drew_random
    with ForwardRules() as rules:
        nn.Sequential(net, nn.Dropout(0.5))(x)
        assert not net(x).is_contiguous(memory_format=torch.channels_last)
    assert not rules.drew_random  # tracked with channels_last only


def test_batch_norm_rule_keeps_a_channels_last_layout(calls: list[str]) -> None:
    """The tangent ``A * x_t + B * x + C`` comes out in the input's layout, equal to PyTorch's."""
    g = _g(3)
    x = (torch.randn(5, 4, 6, 7, generator=g, dtype=torch.float64) * 2 - 1).contiguous(memory_format=torch.channels_last)
    w, b = torch.rand(4, generator=g, dtype=torch.float64) + 0.5, torch.randn(4, generator=g, dtype=torch.float64)
    tangents = [torch.randn(x.shape, generator=g, dtype=x.dtype).contiguous(memory_format=torch.channels_last),
                torch.randn(4, generator=g, dtype=x.dtype), torch.randn(4, generator=g, dtype=x.dtype)]

    def fn(x, w, b):
        return F.batch_norm(x, None, None, w, b, True, 0.1, 1e-5)

    for keep in ((0, 1, 2), (1,), (2,)):
        ts = [t if i in keep else None for i, t in enumerate(tangents)]
        _assert_same_jvp(fn, [x, w, b], ts)
        assert _dual_run(fn, [x, w, b], ts, rules=True)[1].is_contiguous(memory_format=torch.channels_last)
    assert calls == ["batch_norm_rule"] * 6


def test_max_pool_rule_leaves_a_channels_last_input_in_grad_mode_to_torch(calls: list[str]) -> None:
    """PyTorch's own call on a channels-last input is the kernel the rule would call."""
    x = torch.randn(3, 4, 8, 8, generator=_g(), dtype=torch.float64).round().relu()
    leaf = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    with ForwardRules(channels_last=True):
        out = F.max_pool2d(leaf, 2)
    out.backward(torch.ones_like(out))
    reference = x.clone().requires_grad_()
    F.max_pool2d(reference, 2).backward(torch.ones_like(out))
    torch.testing.assert_close(leaf.grad, reference.grad, rtol=0, atol=0)
    assert calls == []


def test_random_draws_are_seen_anywhere_in_an_outermost_call_and_between_calls() -> None:
    """Two checks per outermost module call; draws in nested modules, hooks and between calls are seen."""
    inner = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), nn.Dropout(0.5)))
    outer = nn.Sequential(nn.Linear(3, 3), inner)
    x = torch.randn(4, 3)
    with ForwardRules(channels_last=True) as rules:
        outer.eval()(x)  # no draw: dropout is off in eval mode
        inner(x)  # the same modules, now outermost
    assert not rules.drew_random and rules._draws.events == 4
    with ForwardRules(channels_last=True) as rules:
        outer.train()(x)  # the draw is two modules deep
    assert rules.drew_random
    with ForwardRules(channels_last=True) as rules:
        outer.eval()(x)
        torch.rand(1)  # between two outermost calls
        outer(x)
    assert rules.drew_random
    with ForwardRules(channels_last=True) as rules:
        torch.manual_seed(3)  # a replay sets the recorded state before its first module: not a draw
        outer.eval()(x)
    assert not rules.drew_random
