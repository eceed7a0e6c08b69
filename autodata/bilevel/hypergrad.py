"""Hypergradient methods: each a small object of one :class:`MetaProblem`, registered by name.

The bilevel problem of one training step (Shu et al. 2019, eq. 4-6; Liu et al. 2019, eq. 6-8):

    theta'(phi) = step(theta, grad_theta L_train(theta, phi))        # the real optimizer's update
    dL_meta(theta'(phi)) / dphi                                      # the hypergradient

where ``phi`` are the meta-parameters of the data components (sample reweighter, augmentation
policy) and ``L_meta`` is the loss on a clean validation batch.

Methods:

* ``exact`` (:class:`Exact`): autograd through the update (second order, ``create_graph=True``).
* ``fd`` (:class:`FiniteDifference`, option ``radius``): DARTS-style finite differences. With ``v = grad L_meta(theta')`` and
  ``u = (d theta'/d g)^T v`` (a cheap vector-Jacobian product through the element-wise update),
  the hypergradient is ``d/dphi <u, grad_theta L_train(theta, phi)>``, approximated by
  ``(grad_phi L_train(theta + eps u) - grad_phi L_train(theta - eps u)) / (2 eps)``:
  two extra forwards and no second-order graph.
* ``last`` (:class:`LastLayers`, option ``layers``): ``exact`` with the look-ahead restricted
  to the model's last layer(s).
* ``online`` (:class:`~autodata.bilevel.online.Online`, in :mod:`autodata.bilevel.online`): ``fd`` for the real step just taken. The real optimizer step *is* the look-ahead:
  its gradient and pre-step state are recorded by an optimizer step hook, the validation loss
  is taken at the parameters it produced, and the hypergradient is applied at the next call,
  one step late. It needs no backward of its own (Baydin et al. 2018 use the same idea for a
  learning rate), so it is the cheapest method that looks at every parameter.

A method is a frozen dataclass carrying its own options. :data:`HYPERGRADIENTS` maps each name
to its class; :func:`register` adds one, so a new method is one class in one file::

    @register
    @dataclass(frozen=True)
    class Neumann(HypergradientMethod):
        name: ClassVar[str] = "neumann"
        terms: int = 3

        def __call__(self, problem): ...

and ``MetaLearner(method="neumann")`` or ``MetaLearner(method=Neumann(terms=5))`` use it.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import Tensor

if TYPE_CHECKING:
    from autodata.bilevel.engine import MetaLearner

__all__ = [
    "HYPERGRADIENTS",
    "Exact",
    "FiniteDifference",
    "HypergradientMethod",
    "LastLayers",
    "MetaProblem",
    "make_method",
    "register",
]


@dataclass(frozen=True)
class MetaProblem:
    """Everything a hypergradient method needs about one training step.

    Attributes:
        params: the looked-ahead model parameters ``theta``, by name (real tensors).
        train_loss: scalar training loss at ``theta``, with its graph to ``params`` and to
            ``meta_params`` (``None`` when ``grads`` are given).
        train_loss_at: recomputes the same training loss (same batch, same sampled
            augmentation, same randomness) at other values of some parameters, without
            touching BatchNorm statistics or the caller's random state.
        lookahead: ``grads -> theta'``, the real optimizer's next update, differentiable.
        meta_loss_at: the clean validation loss at ``theta'`` (missing names keep their
            current, detached value).
        meta_params: the data components' meta-parameters ``phi`` of this step.
        grads: the training gradient at ``params`` when it is already known (the ``online``
            method replays a real step from its recorded gradient); computed when ``None``.
    """

    params: Mapping[str, Tensor]
    train_loss: Tensor | None
    train_loss_at: Callable[[Mapping[str, Tensor]], Tensor]
    lookahead: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]]
    meta_loss_at: Callable[[Mapping[str, Tensor]], Tensor]
    meta_params: Sequence[Tensor]
    grads: Mapping[str, Tensor] | None = None

    def restrict(self, names: Sequence[str]) -> MetaProblem:
        """The same problem with the look-ahead on ``names`` only."""
        unknown = [n for n in names if n not in self.params]
        if not names or unknown:
            raise ValueError(
                f"the restricted look-ahead needs names of looked-ahead parameters, but got "
                f"{list(names)} (unknown: {unknown})."
            )
        grads = None if self.grads is None else {n: self.grads[n] for n in names}
        return replace(self, params={n: self.params[n] for n in names}, grads=grads)


class HypergradientMethod(abc.ABC):
    """A way to compute ``dL_meta(theta'(phi)) / dphi`` for one :class:`MetaProblem`.

    Subclasses are frozen dataclasses whose fields are the method's options, with a unique
    ``name`` (the key in :data:`HYPERGRADIENTS`).

    Attributes:
        name: the registry key, e.g. ``"fd"``.
        delayed: ``True`` for a method that takes the real optimizer step as its look-ahead and
            is applied one step late (``online``); the engine then records each step's forward.
    """

    name: ClassVar[str]
    delayed: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        """The hypergradient of each of ``problem.meta_params`` and the meta loss at ``theta'``."""

    def bind(self, learner: MetaLearner) -> HypergradientMethod:
        """This method made ready for ``learner`` (defaults resolved, compatibility checked)."""
        return self

    def lookahead_names(self, names: Sequence[str]) -> list[str]:
        """The parameters among ``names`` whose look-ahead the hypergradient goes through (all)."""
        return list(names)

    def options(self) -> dict[str, Any]:
        """The method's options by name (its dataclass fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} if dataclasses.is_dataclass(self) else {}


HYPERGRADIENTS: dict[str, type[HypergradientMethod]] = {}
"""Every hypergradient method by name; :func:`register` adds one."""

_M = TypeVar("_M", bound=type[HypergradientMethod])


def register(cls: _M) -> _M:
    """Class decorator: add a :class:`HypergradientMethod` to :data:`HYPERGRADIENTS` under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a hypergradient method must have a non-empty str name, but got {name!r}.")
    if name in HYPERGRADIENTS and HYPERGRADIENTS[name] is not cls:
        raise ValueError(f"method names must be unique, but {name!r} is already {HYPERGRADIENTS[name].__name__}.")
    HYPERGRADIENTS[name] = cls
    return cls


def make_method(method: str | HypergradientMethod, **options: Any) -> HypergradientMethod:
    """A method object from a name (and the options it takes) or the object itself.

    Args:
        method: a name in :data:`HYPERGRADIENTS` or a :class:`HypergradientMethod`.
        **options: option values by field name (``radius``, ``layers``); ``None`` values and
            options the named method does not have are ignored. Must all be ``None`` when
            ``method`` is an object (it carries its own options).

    Example:
        >>> make_method("fd", radius=1e-3, layers=None)
        FiniteDifference(radius=0.001)
    """
    if isinstance(method, HypergradientMethod):
        given = sorted(k for k, v in options.items() if v is not None)
        if given:
            raise ValueError(
                f"options must be given to the method object itself when method is an object, but got "
                f"{given} besides {method!r}."
            )
        return method
    if not isinstance(method, str) or method not in HYPERGRADIENTS:
        raise ValueError(
            f"method must be one of {sorted(HYPERGRADIENTS)} or a HypergradientMethod, but got {method!r}."
        )
    cls = HYPERGRADIENTS[method]
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return cls(**{k: v for k, v in options.items() if k in fields and v is not None})


def _grads_or_zeros(outputs: Tensor, inputs: Sequence[Tensor], **kwargs) -> list[Tensor]:
    grads = torch.autograd.grad(outputs, list(inputs), allow_unused=True, **kwargs)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


@register
@dataclass(frozen=True)
class Exact(HypergradientMethod):
    """Second-order hypergradient by autograd through the optimizer's update."""

    name: ClassVar[str] = "exact"

    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        names = list(problem.params)
        grads = torch.autograd.grad(
            problem.train_loss, [problem.params[n] for n in names], create_graph=True, retain_graph=True
        )
        new = problem.lookahead(dict(zip(names, grads)))
        meta_loss = problem.meta_loss_at(new)
        # retain_graph: the training loss's graph is reused for the real step's backward.
        return _grads_or_zeros(meta_loss, problem.meta_params, retain_graph=True), meta_loss.detach()


def check_radius(radius: Any, what: str = "radius") -> float:
    """``radius`` as a float, or a ValueError unless it is a finite number > 0."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"{what} must be a finite number > 0, but got {radius!r}.")
    return float(radius)


@register
@dataclass(frozen=True)
class FiniteDifference(HypergradientMethod):
    """DARTS-style central finite difference of the mixed second derivative.

    Args:
        radius: the step is ``radius / ||u||`` (DARTS uses 0.01).
    """

    name: ClassVar[str] = "fd"
    radius: float = 1e-2

    def __post_init__(self) -> None:
        check_radius(self.radius)

    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        names = list(problem.params)
        if problem.grads is not None:
            grads = [problem.grads[n] for n in names]
        else:
            grads = torch.autograd.grad(problem.train_loss, [problem.params[n] for n in names], retain_graph=True)
        with torch.enable_grad():
            g_leaves = {n: g.detach().requires_grad_() for n, g in zip(names, grads)}
            new = problem.lookahead(g_leaves)
        new_leaves = {n: t.detach().requires_grad_() for n, t in new.items()}
        meta_loss = problem.meta_loss_at(new_leaves)
        v = torch.autograd.grad(meta_loss, list(new_leaves.values()))
        # u = (d theta' / d g)^T v: element-wise, so this costs no model forward.
        u = torch.autograd.grad(list(new.values()), list(g_leaves.values()), grad_outputs=v)
        norm = torch.sqrt(sum((t.float() ** 2).sum() for t in u))
        if norm == 0:
            return [torch.zeros_like(p) for p in problem.meta_params], meta_loss.detach()
        eps = self.radius / norm
        theta = [problem.params[n].detach() for n in names]
        plus = {n: t + eps * d for n, t, d in zip(names, theta, u)}
        minus = {n: t - eps * d for n, t, d in zip(names, theta, u)}
        # retain_graph: both losses share the graph of the weights (and of the augmented batch).
        grad_plus = _grads_or_zeros(problem.train_loss_at(plus), problem.meta_params, retain_graph=True)
        grad_minus = _grads_or_zeros(problem.train_loss_at(minus), problem.meta_params)
        return [(a - b) / (2 * eps) for a, b in zip(grad_plus, grad_minus)], meta_loss.detach()


def _last_parametrized_module(learner: MetaLearner) -> tuple[str, ...]:
    last: list[str] = []
    for prefix, module in learner.model.named_modules():
        own = [f"{prefix}.{n}" if prefix else n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if own:
            last = own
    return tuple(last)


@register
@dataclass(frozen=True)
class LastLayers(HypergradientMethod):
    """:class:`Exact` with the look-ahead restricted to some parameters (the model's head).

    Args:
        layers: parameter names to look ahead on; default the parameters of the model's last
            module that has any (usually the classifier).
    """

    name: ClassVar[str] = "last"
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(n, str) for n in self.layers) or not self.layers:
                raise ValueError(f"layers must be a non-empty sequence of parameter names, but got {self.layers!r}.")
            object.__setattr__(self, "layers", tuple(self.layers))

    def bind(self, learner: MetaLearner) -> LastLayers:
        layers = self.layers if self.layers is not None else _last_parametrized_module(learner)
        unknown = [n for n in layers if n not in learner.params]
        if unknown:
            raise ValueError(f"layers must name trainable parameters of the model, but got unknown {unknown}.")
        return replace(self, layers=layers)

    def lookahead_names(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.layers is None or n in self.layers]

    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        if self.layers is None:
            raise ValueError("layers must be resolved before use; call bind(learner) first, but got None.")
        return Exact()(problem.restrict(self.layers))
