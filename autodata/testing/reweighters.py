"""The contract of a sample reweighter (:class:`~autodata.reweight.BaseReweighter`)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from autodata.reweight import BaseReweighter

__all__ = ["check_reweighter"]


def _fail(name: str, what: str) -> AssertionError:
    return AssertionError(f"reweighter {name}: {what}")


def check_reweighter(factory: Callable[[], BaseReweighter], batch: int = 32, seed: int = 0) -> None:
    """Weights, step weights, gradients and state of a reweighter.

    * ``forward`` and ``real_weights`` give finite, non-negative weights of shape ``(B,)``;
    * ``step_weights`` gives weights of shape ``(B,)`` and every meta-parameter it names gets a
      finite gradient that is non-zero somewhere (a fixed random projection of the weights);
    * every trainable parameter of the module is among those meta-parameters;
    * ``state_dict`` loads into a fresh instance, which then gives the same weights.

    Args:
        factory: builds the reweighter (a class with default arguments will do).
        batch: B.
        seed: seeds the losses, labels and the projection.
    """
    g = torch.Generator().manual_seed(seed)
    losses = torch.rand(batch, generator=g) * 4  # spread over [0, 4): every hidden unit sees some
    targets = torch.randint(0, 10, (batch,), generator=g)
    projection = torch.randn(batch, generator=g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        r = factory()
    name = type(r).__name__
    if not isinstance(r, BaseReweighter):
        raise _fail(name, "is not a BaseReweighter")

    def check_weights(w: torch.Tensor, where: str) -> None:
        if not isinstance(w, torch.Tensor) or w.shape != (batch,):
            raise _fail(name, f"{where} must have shape ({batch},), but got {getattr(w, 'shape', type(w))}")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise _fail(name, f"{where} must be finite and non-negative, but got {w}")

    with torch.no_grad():
        check_weights(r(losses, targets), "forward")
    weights, meta_params = r.step_weights(losses, targets)
    check_weights(weights.detach(), "step_weights")
    trainable = [p for p in r.parameters() if p.requires_grad]
    if any(all(p is not q for q in meta_params) for p in trainable):
        raise _fail(name, "step_weights leaves out a trainable parameter")
    if meta_params:
        grads = torch.autograd.grad((weights * projection).sum(), meta_params, allow_unused=True)
        for i, (p, grad) in enumerate(zip(meta_params, grads)):
            if grad is None or not torch.isfinite(grad).all() or not (grad != 0).any():
                raise _fail(name, f"meta-parameter {i} {tuple(p.shape)} gets a missing, non-finite or zero gradient")
        hyper = [torch.randn(p.shape, generator=g) for p in meta_params]
    else:
        hyper = []
    with torch.no_grad():
        check_weights(r.real_weights(losses, targets, hyper), "real_weights")
        check_weights(r.real_weights(losses, targets, None), "real_weights of a skipped update")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        other = factory()
    other.load_state_dict(r.state_dict())
    with torch.no_grad():
        if not torch.equal(other(losses, targets), r(losses, targets)):
            raise _fail(name, "a fresh instance that loads its state_dict gives other weights")
