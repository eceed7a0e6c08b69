"""Hypergradient methods: each a small function of one :class:`MetaProblem`, picked by name.

The bilevel problem of one training step (Shu et al. 2019, eq. 4-6; Liu et al. 2019, eq. 6-8):

    theta'(phi) = step(theta, grad_theta L_train(theta, phi))        # the real optimizer's update
    dL_meta(theta'(phi)) / dphi                                      # the hypergradient

where ``phi`` are the meta-parameters of the data components (sample reweighter, augmentation
policy) and ``L_meta`` is the loss on a clean validation batch.

Methods:

* ``exact``: autograd through the update (second order, ``create_graph=True``).
* ``fd``: DARTS-style finite differences. With ``v = grad L_meta(theta')`` and
  ``u = (d theta'/d g)^T v`` (a cheap vector-Jacobian product through the element-wise update),
  the hypergradient is ``d/dphi <u, grad_theta L_train(theta, phi)>``, approximated by
  ``(grad_phi L_train(theta + eps u) - grad_phi L_train(theta - eps u)) / (2 eps)``:
  two extra forwards and no second-order graph.
* ``last``: ``exact`` with the look-ahead restricted to the model's last layer(s).
* ``online``: ``fd`` for the real step just taken. The real optimizer step *is* the look-ahead:
  its gradient and pre-step state are recorded by an optimizer step hook, the validation loss
  is taken at the parameters it produced, and the hypergradient is applied at the next call,
  one step late. It needs no backward of its own (Baydin et al. 2018 use the same idea for a
  learning rate), so it is the cheapest method that looks at every parameter.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

__all__ = ["HYPERGRADIENTS", "MetaProblem", "exact", "finite_difference", "last_layers"]


@dataclass(frozen=True)
class MetaProblem:
    """Everything a hypergradient method needs about one training step.

    Attributes:
        params: the looked-ahead model parameters ``theta``, by name (real tensors).
        train_loss: scalar training loss at ``theta``, with its graph to ``params`` and to
            ``meta_params`` (``None`` when ``grads`` are given and the method is ``fd``).
        train_loss_at: recomputes the same training loss (same batch, same sampled
            augmentation, same randomness) at other values of some parameters, without
            touching BatchNorm statistics.
        lookahead: ``grads -> theta'``, the real optimizer's next update, differentiable.
        meta_loss_at: the clean validation loss at ``theta'`` (missing names keep their
            current, detached value).
        meta_params: the data components' meta-parameters ``phi``.
        last_names: the parameter names the ``last`` method restricts the look-ahead to.
        fd_radius: finite-difference step is ``fd_radius / ||u||`` (DARTS uses 0.01).
        grads: the training gradient at ``params`` when it is already known (the ``online``
            method replays a real step from its recorded gradient); computed when ``None``.
    """

    params: Mapping[str, Tensor]
    train_loss: Tensor | None
    train_loss_at: Callable[[Mapping[str, Tensor]], Tensor]
    lookahead: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]]
    meta_loss_at: Callable[[Mapping[str, Tensor]], Tensor]
    meta_params: Sequence[Tensor]
    last_names: Sequence[str] = ()
    fd_radius: float = 1e-2
    grads: Mapping[str, Tensor] | None = None

    def restrict(self, names: Sequence[str]) -> MetaProblem:
        """The same problem with the look-ahead on ``names`` only."""
        unknown = [n for n in names if n not in self.params]
        if not names or unknown:
            raise ValueError(
                f"the restricted look-ahead needs names of looked-ahead parameters, but got "
                f"{list(names)} (unknown: {unknown})."
            )
        return replace(self, params={n: self.params[n] for n in names})


def _grads_or_zeros(outputs: Tensor, inputs: Sequence[Tensor], **kwargs) -> list[Tensor]:
    grads = torch.autograd.grad(outputs, list(inputs), allow_unused=True, **kwargs)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


def exact(problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
    """Second-order hypergradient by autograd through the optimizer's update.

    Returns:
        The hypergradient for each meta-parameter and the meta loss at ``theta'``.
    """
    names = list(problem.params)
    grads = torch.autograd.grad(
        problem.train_loss, [problem.params[n] for n in names], create_graph=True, retain_graph=True
    )
    new = problem.lookahead(dict(zip(names, grads)))
    meta_loss = problem.meta_loss_at(new)
    # retain_graph: the training loss's graph is reused for the real step's backward.
    return _grads_or_zeros(meta_loss, problem.meta_params, retain_graph=True), meta_loss.detach()


def finite_difference(problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
    """DARTS-style central finite difference of the mixed second derivative.

    Returns:
        The hypergradient for each meta-parameter and the meta loss at ``theta'``.
    """
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
    eps = problem.fd_radius / norm
    theta = [problem.params[n].detach() for n in names]
    plus = {n: t + eps * d for n, t, d in zip(names, theta, u)}
    minus = {n: t - eps * d for n, t, d in zip(names, theta, u)}
    # retain_graph: both losses share the graph of the weights (and of the augmented batch).
    grad_plus = _grads_or_zeros(problem.train_loss_at(plus), problem.meta_params, retain_graph=True)
    grad_minus = _grads_or_zeros(problem.train_loss_at(minus), problem.meta_params)
    return [(a - b) / (2 * eps) for a, b in zip(grad_plus, grad_minus)], meta_loss.detach()


def last_layers(problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
    """:func:`exact` with the look-ahead restricted to ``problem.last_names`` (the model's head)."""
    return exact(problem.restrict(problem.last_names))


HYPERGRADIENTS: dict[str, Callable[[MetaProblem], tuple[list[Tensor], Tensor]]] = {
    "exact": exact,
    "fd": finite_difference,
    "last": last_layers,
    "online": finite_difference,  # on a problem that replays the recorded real step
}
