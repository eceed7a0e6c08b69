"""Hypergradient methods: each a small object of one :class:`MetaProblem`, registered by name.

The bilevel problem of one training step (Shu et al. 2019, eq. 4-6; Liu et al. 2019, eq. 6-8):

    theta'(phi) = step(theta, grad_theta L_train(theta, phi))        # the real optimizer's update
    dL_meta(theta'(phi)) / dphi                                      # the hypergradient

where ``phi`` are the meta-parameters of the data components (sample reweighter, augmentation
policy) and ``L_meta`` is the loss on a clean validation batch.

Methods:

Which to use (costs: BENCHMARKS.md, "Meta-step cost"; ``experiments/bench_meta_cost.py``):

==============  ========  ==================================================  ===========
method          quality   how                                                 needs
==============  ========  ==================================================  ===========
``jvp``         exact     one forward-mode JVP of the per-sample losses       first order
                          along ``u``, a backward through the reweighter
                          only: the cheapest exact method applied at once
``jvp-online``  exact     ``jvp`` of the real step just taken, applied one    first order
                          step late: no training backward of its own, and
                          the meta pass runs before the real forward (peak
                          memory near a plain step's)
``exact``       exact     autograd through the update (double backward):      second order
                          the reference; the most memory
``last``        exact on  ``exact`` with the look-ahead on the last           second order
                the head  layer(s)
``fd``          approx.   central finite differences along ``u`` (option      first order
                          ``one_sided``: forward differences from the real
                          forward's losses, one forward fewer)
``online``      approx.   ``fd`` of the real step just taken, applied one     first order
                          step late
==============  ========  ==================================================  ===========

Every method takes a ``torch.compile``d model: the forwards a step differentiates run the plain
module (:class:`~autodata.bilevel.engine.MetaLearner`). "first order" methods work with
``DistributedDataParallel`` models; second-order ones refuse them (DDP has no double backward).

* ``jvp`` (:class:`ForwardMode`): for a per-sample reweighter the hypergradient factors
  through the weights. With ``u`` as below, ``d L_meta / d phi = (1/B) sum_i (d w_i / d phi)
  <u, grad l_i(theta)>``: the ``B`` directional derivatives ``<u, grad l_i>`` come at once from
  one forward-mode JVP of the per-sample losses along ``u`` (replayed: same batch, dropout masks,
  BatchNorm in train mode on copied buffers), then one backward through the reweighter. The
  JVP and the validation forward run under the cheaper rules of :mod:`~autodata.bilevel.jvp_rules`
  (``rules=True``, exact all the same). For a learnable augmentation's parameters (the input depends on them), central differences as
  ``fd`` (reverse-over-forward through the losses' JVP is not supported by every op).
* ``exact`` (:class:`Exact`): autograd through the update (second order, ``create_graph=True``).
* ``fd`` (:class:`FiniteDifference`, options ``radius``, ``one_sided``): DARTS-style finite
  differences. With ``v = grad L_meta(theta')`` and ``u = (d theta'/d g)^T v`` (a cheap
  vector-Jacobian product through the element-wise update), the hypergradient is
  ``d/dphi <u, grad_theta L_train(theta, phi)>``, approximated by
  ``(grad_phi L_train(theta + eps u) - grad_phi L_train(theta - eps u)) / (2 eps)`` (for a
  reweighter, the per-sample losses are differenced before the weighted sum): two extra
  forwards and no second-order graph; ``one_sided`` takes ``l_i(theta)`` from the real forward,
  one extra forward.
* ``last`` (:class:`LastLayers`, option ``layers``): ``exact`` with the look-ahead restricted
  to the model's last layer(s).
* ``online`` and ``jvp-online`` (:class:`~autodata.bilevel.online.Online`,
  :class:`~autodata.bilevel.online.OnlineForwardMode`, in :mod:`autodata.bilevel.online`):
  ``fd`` and ``jvp`` for the real step just taken. The real optimizer step *is* the look-ahead:
  its gradient and pre-step state are recorded by an optimizer step hook, the validation loss
  is taken at the parameters it produced, and the hypergradient is applied at the next call,
  one step late. They need no training backward of their own (Baydin et al. 2018 use the same
  idea for a learning rate); ``jvp-online`` is the cheapest exact method that looks at every
  parameter.

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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import Tensor

from autodata.bilevel._checks import check_flag
from autodata.bilevel.jvp_rules import Layout, under_rules

if TYPE_CHECKING:
    from autodata.bilevel.engine import MetaLearner

__all__ = [
    "HYPERGRADIENTS",
    "Exact",
    "FiniteDifference",
    "ForwardMode",
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
        train_jvp: ``(theta, u) -> mean(w * <u, grad l>)``, the weighted directional derivative
            of the per-sample training losses at ``theta`` along ``u`` (a forward-mode JVP),
            with its graph to the reweighter's meta-parameters through ``w`` only.
        augment_params: those of ``meta_params`` that belong to the augmentation (the input
            depends on them).
        loss_change: ``(a, b) -> mean(w * (l(a) - l(b)))``, the weighted change of the per-sample
            training losses between parameter values ``a`` and ``b`` (``b=None``: the recorded
            forward's own losses at ``params``), with its graph to the reweighter's
            meta-parameters through ``w`` only (finite differences).
        reduce: averages a list of tensors over data-parallel ranks (identity in one process).
    """

    params: Mapping[str, Tensor]
    train_loss: Tensor | None
    train_loss_at: Callable[[Mapping[str, Tensor]], Tensor]
    lookahead: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]]
    meta_loss_at: Callable[[Mapping[str, Tensor]], Tensor]
    meta_params: Sequence[Tensor]
    grads: Mapping[str, Tensor] | None = None
    train_jvp: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor] | None = None
    augment_params: Sequence[Tensor] = ()
    loss_change: Callable[[Mapping[str, Tensor], Mapping[str, Tensor] | None], Tensor] | None = None
    reduce: Callable[[list[Tensor]], list[Tensor]] = list

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
        second_order: ``True`` for a method that differentiates through a gradient (double
            backward); such a method cannot work through ``torch.compile`` or DDP.
        exact: ``True`` when the hypergradient is exact (up to rounding), not approximated.
    """

    name: ClassVar[str]
    delayed: ClassVar[bool] = False
    second_order: ClassVar[bool] = False
    exact: ClassVar[bool] = False

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
        >>> make_method("fd", radius=1e-2, layers=None)
        FiniteDifference(radius=0.01, one_sided=False)
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
    second_order: ClassVar[bool] = True
    exact: ClassVar[bool] = True

    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        names = list(problem.params)
        grads = torch.autograd.grad(
            problem.train_loss, [problem.params[n] for n in names], create_graph=True, retain_graph=True
        )
        new = problem.lookahead(dict(zip(names, grads)))
        meta_loss = problem.meta_loss_at(new)
        # retain_graph: the training loss's graph is reused for the real step's backward.
        return _grads_or_zeros(meta_loss, problem.meta_params, retain_graph=True), meta_loss.detach()


DEFAULT_RADIUS = {False: 1e-3, True: 3e-4}
"""The default finite-difference radius, central (``False``) and one-sided (``True``), from ``experiments/fd_radius.py``."""


def check_radius(radius: Any, what: str = "radius") -> float:
    """``radius`` as a float, or a ValueError unless it is a finite number > 0."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"{what} must be a finite number > 0, but got {radius!r}.")
    return float(radius)


@register
@dataclass(frozen=True)
class FiniteDifference(HypergradientMethod):
    """DARTS-style finite difference of the mixed second derivative along ``u``.

    For the reweighter's parameters the differences are taken per sample,
    ``(1/B) sum_i (d w_i / d phi) (l_i(theta + eps u) - l_i(theta - eps u)) / (2 eps)``, before
    the sum (float32 rounding of the sum would swamp them); an augmentation's parameters (the
    input depends on them) get central differences of ``grad_phi L_train``.

    Args:
        radius: the parameters move by ``radius`` (in norm) along ``u``: the step is
            ``eps = radius / ||u||``. Default (``None``): 1e-3 central, 3e-4 one-sided, the
            radii with the smallest float32 errors against the float64 hypergradient on the
            small CNN and ResNet-32 (``experiments/fd_radius.py``; BENCHMARKS.md, "Meta-step
            cost"), where DARTS's 0.01 had up to 60x larger errors.
        one_sided: for the reweighter, the forward difference
            ``(l_i(theta + eps u) - l_i(theta)) / eps`` with ``l_i(theta)`` the real forward's
            own losses: one extra forward instead of two, error ``O(eps)`` instead of
            ``O(eps^2)``.
    """

    name: ClassVar[str] = "fd"
    radius: float | None = None
    one_sided: bool = False

    def __post_init__(self) -> None:
        check_flag(self.one_sided, "one_sided")
        if self.radius is not None:
            check_radius(self.radius)

    @property
    def step_radius(self) -> float:
        """The radius in use: ``radius``, or the measured default of central or one-sided
        differences (resolved here, not stored, so ``dataclasses.replace(m, one_sided=True)``
        takes the one-sided default)."""
        return DEFAULT_RADIUS[self.one_sided] if self.radius is None else self.radius

    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        if self.one_sided and problem.loss_change is None:
            raise ValueError("a one-sided difference needs the problem's loss_change (the engine gives it), but got None.")
        names, u, meta_loss = lookahead_direction(problem)
        return finite_difference(problem, names, u, self.step_radius, self.one_sided), meta_loss


def lookahead_direction(problem: MetaProblem) -> tuple[list[str], list[Tensor], Tensor]:
    """``u = (d theta'/d g)^T v`` with ``v = grad L_meta(theta')``, and the meta loss at ``theta'``.

    Costs one backward of the training loss (unless ``problem.grads`` is given), the validation
    forward and backward at ``theta'``, and a vector-Jacobian product through the update rule
    (element-wise, or through the clipping norm): no second-order graph. Under data parallelism
    the training gradient and ``v`` are averaged over ranks, as the real step's gradient is.
    """
    names = list(problem.params)
    if problem.grads is not None:
        grads = [problem.grads[n] for n in names]
    else:
        grads = torch.autograd.grad(problem.train_loss, [problem.params[n] for n in names], retain_graph=True)
        grads = problem.reduce(list(grads))
    with torch.enable_grad():
        g_leaves = {n: g.detach().requires_grad_() for n, g in zip(names, grads)}
        new = problem.lookahead(g_leaves)
    new_leaves = {n: t.detach().requires_grad_() for n, t in new.items()}
    meta_loss = problem.meta_loss_at(new_leaves)
    v = problem.reduce(list(torch.autograd.grad(meta_loss, list(new_leaves.values()))))
    # u = (d theta' / d g)^T v: element-wise (or through the clipping norm): no model forward.
    u = torch.autograd.grad(list(new.values()), list(g_leaves.values()), grad_outputs=v)
    return names, list(u), meta_loss.detach()


def _split(problem: MetaProblem) -> tuple[list[Tensor], list[Tensor]]:
    """``problem.meta_params`` split into the reweighter's (through the weights) and the augmentation's."""
    augment_ids = {id(p) for p in problem.augment_params}
    own = [p for p in problem.meta_params if id(p) not in augment_ids]
    return own, [p for p in problem.meta_params if id(p) in augment_ids]


def _step_size(u: Sequence[Tensor], radius: float) -> Tensor | None:
    """``radius / ||u||``, or ``None`` when ``u`` is zero."""
    norm = torch.sqrt(sum((t.float() ** 2).sum() for t in u))
    return None if norm == 0 else radius / norm


def finite_difference(
    problem: MetaProblem, names: Sequence[str], u: Sequence[Tensor], radius: float, one_sided: bool = False
) -> list[Tensor]:
    """``d/dphi <u, grad_theta L_train>`` of every meta-parameter by finite differences along ``u``.

    The reweighter's parameters: differences of the per-sample losses (``problem.loss_change``),
    central or (``one_sided``) forward from the recorded losses; the augmentation's: central
    differences of ``grad_phi L_train`` (:func:`central_difference`).
    """
    own, augment = _split(problem)
    if problem.loss_change is None:
        if one_sided:
            raise ValueError("a one-sided difference needs the problem's loss_change (the engine gives it), but got None.")
        return central_difference(problem, names, u, problem.meta_params, radius)
    if not one_sided and augment:  # one pair of forwards serves both
        return central_difference(problem, names, u, problem.meta_params, radius)
    hyper: dict[int, Tensor] = {}
    if own:
        eps = _step_size(u, radius)
        if eps is None:
            grads = [torch.zeros_like(p) for p in own]
        else:
            theta = {n: problem.params[n].detach() for n in names}
            plus = {n: theta[n] + eps * d for n, d in zip(names, u)}
            if one_sided:
                change, span = problem.loss_change(plus, None), eps
            else:
                change, span = problem.loss_change(plus, {n: theta[n] - eps * d for n, d in zip(names, u)}), 2 * eps
            grads = [g / span for g in _grads_or_zeros(change, own, retain_graph=True)]
        hyper.update(zip(map(id, own), grads))
    hyper.update(zip(map(id, augment), central_difference(problem, names, u, augment, radius)))
    return [hyper[id(p)] for p in problem.meta_params]


def central_difference(
    problem: MetaProblem, names: Sequence[str], u: Sequence[Tensor], wrt: Sequence[Tensor], radius: float
) -> list[Tensor]:
    """``d/d wrt <u, grad_theta L_train>`` by central differences of ``grad_wrt L_train`` at ``theta +- eps u``."""
    if not wrt:
        return []
    eps = _step_size(u, radius)
    if eps is None:
        return [torch.zeros_like(p) for p in wrt]
    theta = [problem.params[n].detach() for n in names]
    plus = {n: t + eps * d for n, t, d in zip(names, theta, u)}
    minus = {n: t - eps * d for n, t, d in zip(names, theta, u)}
    # retain_graph: the losses share the graph of the weights (and of the augmented batch) with
    # the other estimates of the same step.
    grad_plus = _grads_or_zeros(problem.train_loss_at(plus), wrt, retain_graph=True)
    grad_minus = _grads_or_zeros(problem.train_loss_at(minus), wrt, retain_graph=True)
    return [(a - b) / (2 * eps) for a, b in zip(grad_plus, grad_minus)]


@register
@dataclass(frozen=True)
class ForwardMode(HypergradientMethod):
    """Exact hypergradient without a second-order graph: a JVP of the per-sample losses along ``u``.

    ``d L_meta / d phi = (d g / d phi)^T u`` with ``g = grad_theta mean(w * l)`` and ``u = (d theta'
    / d g)^T v``, so for a reweighter it is ``(1/B) sum_i (d w_i / d phi) <u, grad l_i(theta)>``:
    one forward-mode pass (:mod:`torch.autograd.forward_ad`) gives all ``<u, grad l_i>``, a backward
    through the reweighter (a few hundred flops) gives the hypergradient. The momentum, Nesterov
    and Adam factors are in ``u``, from the real optimizer's rule. Cost: the backward of the
    training loss (first order), the validation forward and backward, and one JVP forward
    (about two forwards); no double backward through convolutions or BatchNorm.

    A learnable augmentation's parameters act on the input, so they get central differences
    along ``u``: exact for the reweighter, the ``fd`` approximation for the augmentation.

    Args:
        radius: finite-difference radius for the augmentation's parameters only. Its default,
            1e-2, is DARTS's: the radius study that set :class:`FiniteDifference`'s 1e-3 measured
            the reweighter's differences, not the augmentation's.
        rules: run the forward-mode pass and the validation forward under
            :class:`~autodata.bilevel.jvp_rules.ForwardRules` (cheaper forward-mode rules for
            train-mode BatchNorm, non-overlapping max-pooling and convolutions (no zero-tangent
            term, the two terms summed in place); channels-last convolutions while no random op (dropout) runs there;
            equal to PyTorch's results to rounding), see
            :func:`~autodata.bilevel.jvp_rules.under_rules`; ``False``: PyTorch's own ops and
            formulas.
    """

    name: ClassVar[str] = "jvp"
    exact: ClassVar[bool] = True
    radius: float = 1e-2
    rules: bool = True
    _layout: Layout = field(default_factory=Layout, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_radius(self.radius)
        check_flag(self.rules, "rules")

    def bind(self, learner: MetaLearner) -> ForwardMode:
        return replace(self)  # its own layout choice per learner

    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        if problem.train_jvp is None:
            raise ValueError(f"method={self.name!r} needs the problem's train_jvp (the engine gives it), but got None.")
        if self.rules:
            problem = replace(problem, train_jvp=under_rules(problem.train_jvp, self._layout),
                              meta_loss_at=under_rules(problem.meta_loss_at, self._layout))
        names, u, meta_loss = lookahead_direction(problem)
        own, augment = _split(problem)
        theta = {n: problem.params[n].detach() for n in names}
        directional = problem.train_jvp(theta, dict(zip(names, u)))  # mean(w * <u, grad l>)
        hyper = dict(zip(map(id, own), _grads_or_zeros(directional, own, retain_graph=True))) if own else {}
        hyper.update(zip(map(id, augment), central_difference(problem, names, u, augment, self.radius)))
        return [hyper[id(p)] for p in problem.meta_params], meta_loss


def _last_parametrized_module(learner: MetaLearner) -> tuple[str, ...]:
    last: list[str] = []
    for prefix, module in learner.module.named_modules():
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
    second_order: ClassVar[bool] = True
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
