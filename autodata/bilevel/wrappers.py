"""The wrappers a user's model may come in: ``torch.compile``, DistributedDataParallel, DataParallel.

One walk (:func:`layers`) lists them from the outside in; the engine's questions are read off
that list:

- :func:`unwrap`: the plain module under them all (parameter names, replays);
- :func:`is_compiled`: whether the real forward runs a compiled graph (a ``torch.compile``
  wrapper, or ``module.compile()``, which routes ``module(...)`` through ``_compiled_call_impl``);
- :func:`find_ddp`: the DistributedDataParallel wrapper, under ``torch.compile`` too
  (``torch.compile(DDP(model))``);
- :func:`plain_forward`: the model's forward without its compiled graphs, DDP kept (it
  all-reduces the real step's gradients), or ``None`` where there is none: DDP over a compiled
  module calls the compiled graph inside its own forward;
- :func:`uncompiled`: within a block, ``module(...)`` runs its plain call although it was
  compiled in place (``functional_call`` calls ``module(...)``, which :func:`plain_forward`
  cannot redirect).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

__all__ = ["find_ddp", "is_compiled", "layers", "plain_forward", "uncompiled", "unwrap"]

_PARALLEL = (nn.parallel.DistributedDataParallel, nn.DataParallel)


def _compile_wrapped(model: nn.Module) -> nn.Module | None:
    """The module a ``torch.compile`` wrapper (``OptimizedModule``) holds, or ``None`` if ``model`` is none."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else None


def _compiled_in_place(model: nn.Module) -> bool:
    return getattr(model, "_compiled_call_impl", None) is not None


def layers(model: nn.Module) -> list[nn.Module]:
    """``model`` and every module it wraps, from the outside in; the last is the plain module."""
    chain = [model]
    while True:
        inner = _compile_wrapped(chain[-1])
        if inner is None and isinstance(chain[-1], _PARALLEL):
            inner = chain[-1].module
        if inner is None:
            return chain
        chain.append(inner)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under ``torch.compile`` (``OptimizedModule``) and DDP/DataParallel wrappers."""
    return layers(model)[-1]


def is_compiled(model: nn.Module) -> bool:
    """Whether the real forward runs through ``torch.compile`` (a wrapper or ``module.compile()``)."""
    return any(_compile_wrapped(m) is not None or _compiled_in_place(m) for m in layers(model))


def find_ddp(model: nn.Module) -> nn.parallel.DistributedDataParallel | None:
    """The DistributedDataParallel wrapper of ``model``, under ``torch.compile`` wrappers too, or ``None``."""
    return next((m for m in layers(model) if isinstance(m, nn.parallel.DistributedDataParallel)), None)


def plain_forward(model: nn.Module) -> Callable[..., Any] | None:
    """``model``'s forward without its compiled graphs, DDP kept; ``None`` if there is none.

    ``torch.compile(m)`` wraps ``m`` (``_orig_mod``): the plain forward is ``m``'s. ``m.compile()``
    routes ``m(...)`` through the compiled graph (``_compiled_call_impl``), whose plain call, hooks
    included, is ``m._call_impl``. DDP over a compiled module calls the compiled graph inside its own
    forward: there is no plain forward through DDP.
    """
    outer = next(m for m in layers(model) if _compile_wrapped(m) is None)  # the outermost that is not a wrapper of compile
    if isinstance(outer, nn.parallel.DistributedDataParallel) and is_compiled(outer.module):
        return None
    return outer._call_impl if _compiled_in_place(outer) else outer


@contextlib.contextmanager
def uncompiled(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``module(...)`` runs its plain call, also when it was compiled in place.

    ``module.compile()`` routes ``module(...)`` through the compiled graph (``_compiled_call_impl``),
    and :func:`unwrap` cannot strip that: the module is its own plain module. A virtual forward must
    run the plain call: an inductor graph draws its own dropout masks (a replay would not see the
    recorded ones), and a forward differentiated twice must not run an AOTAutograd graph.
    """
    compiled = getattr(module, "_compiled_call_impl", None)
    if compiled is None:
        yield module
        return
    module._compiled_call_impl = None
    try:
        yield module
    finally:
        module._compiled_call_impl = compiled
