"""The contract of a hypergradient method (:class:`~autodata.bilevel.HypergradientMethod`).

The hypergradient the engine applies must be the derivative of the validation loss after the
real optimizer's look-ahead, ``d L_meta(theta'(phi)) / d phi``: checked against central finite
differences in float64 on a tiny model with a small Meta-Weight-Net.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from autodata.bilevel import HypergradientMethod, MetaLearner, virtual_step
from autodata.reweight import MetaWeightNet

__all__ = ["check_hypergradient", "numeric_hypergradient"]


def numeric_hypergradient(model, optimizer, reweighter, batch, names, h: float = 1e-6) -> list[torch.Tensor]:
    """``d/dphi`` of the validation loss after a look-ahead on ``names``, element by element."""
    x, y, xm, ym = batch
    params = dict(model.named_parameters())
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def meta_loss() -> float:
        with torch.enable_grad():
            losses = F.cross_entropy(functional_call(model, {**params, **buffers}, (x,)), y, reduction="none")
            with torch.no_grad():
                w = reweighter(losses.detach(), y)
            grads = torch.autograd.grad((w * losses).mean(), [params[n] for n in names])
        new = virtual_step(optimizer, {n: params[n] for n in names}, dict(zip(names, grads)))
        state = {n: new.get(n, p.detach()) for n, p in params.items()}
        with torch.no_grad():
            return float(F.cross_entropy(functional_call(model, {**state, **buffers}, (xm,)), ym))

    out = []
    for p in reweighter.parameters():
        g = torch.zeros_like(p)
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            plus = meta_loss()
            flat[i] = old - h
            minus = meta_loss()
            flat[i] = old
            g.view(-1)[i] = (plus - minus) / (2 * h)
        out.append(g)
    return out


def check_hypergradient(method: HypergradientMethod, optimizer: str = "sgd", tolerance: float = 1e-3) -> None:
    """The update ``method`` applies matches central finite differences (relative error < ``tolerance``).

    A delayed method (``online``, ``jvp-online``) is given its real optimizer step first and
    checked at the next step, where it applies the hypergradient of that step.

    Args:
        method: the method object (with options precise enough for float64, e.g. a small radius).
        optimizer: ``"sgd"`` (momentum, weight decay) or ``"adam"``.
        tolerance: largest accepted relative error.
    """
    factories = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-3),
        "adam": lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=1e-3),
    }
    if optimizer not in factories:
        raise ValueError(f"optimizer must be one of {sorted(factories)}, but got {optimizer!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)).double()
        opt = factories[optimizer](model.parameters())
        x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)
        xm, ym = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g)
        for _ in range(2):  # populate the optimizer's state
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        mwn = MetaWeightNet(hidden=4).double()
        learner = MetaLearner(model, opt, reweighter=mwn, method=method,
                              meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
        names = learner.method.lookahead_names([n for n, _ in model.named_parameters()])
        expected = numeric_hypergradient(model, opt, mwn, (x, y, xm, ym), names)
        before = [p.detach().clone() for p in mwn.parameters()]
        loss = learner.step(x, y, xm, ym)
        if not learner.last.meta_updated:  # a delayed method: take the real step, then apply
            opt.zero_grad()
            loss.backward()
            opt.step()
            before = [p.detach().clone() for p in mwn.parameters()]
            learner.step(x[:6], y[:6], xm, ym)
        learner.close()
    if not learner.last.meta_updated:
        raise AssertionError(f"method {method!r}: no meta update after a real step")
    got = [b - p.detach() for b, p in zip(before, mwn.parameters())]
    num = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(got, expected)))
    den = torch.sqrt(sum((b**2).sum() for b in expected))
    if not den > 1e-8:
        raise AssertionError(f"method {method!r}: degenerate check, the numeric hypergradient is zero")
    if not num / den < tolerance:
        raise AssertionError(f"method {method!r}: relative error {float(num / den):.2e} against finite differences")
