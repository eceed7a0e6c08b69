"""Virtual optimizer steps: the next update of a real ``torch.optim`` optimizer, as a function.

The bilevel engine needs ``theta' = step(theta, g)``: the parameters the user's optimizer would
produce from gradient ``g``, differentiable in ``g`` and without touching the optimizer's state
or the model. The original Meta-Weight-Net code always looked ahead with plain SGD, whatever
the real optimizer was; here the look-ahead reproduces the real one:

* SGD with momentum, dampening, Nesterov and weight decay (``torch.optim.SGD``),
* Adam and AdamW with their moments, bias correction, AMSGrad and weight decay.

Each rule is a small pure function of one parameter tensor, its gradient, its param-group
settings and its (read-only) optimizer state, written to match PyTorch's single-tensor code
paths line for line.

A subclass of one of these that does not override ``step`` (a custom ``__init__``, extra
methods) uses its base's rule. Gradient clipping by the total norm (``clip_grad_norm_`` before
``optimizer.step()``) is part of the step: pass ``max_grad_norm`` and the look-ahead clips its
gradient the same way, differentiably.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["SUPPORTED_OPTIMIZERS", "VirtualStep", "clip_by_total_norm", "rule_of", "virtual_step"]

# Rule signature: (param, grad, group, state) -> new param.
_Rule = Callable[[Tensor, Tensor, Mapping[str, Any], Mapping[str, Any]], Tensor]


def _scalar(value: Any) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def _sgd(p: Tensor, g: Tensor, group: Mapping[str, Any], state: Mapping[str, Any]) -> Tensor:
    lr, momentum = _scalar(group["lr"]), group.get("momentum", 0.0)
    dampening, weight_decay = group.get("dampening", 0.0), group.get("weight_decay", 0.0)
    if group.get("maximize", False):
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        buf = state.get("momentum_buffer")
        buf = g if buf is None else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if group.get("nesterov", False) else buf
    return p - lr * g


def _safe_sqrt(v: Tensor) -> Tensor:
    # sqrt has an infinite derivative at 0; a second moment of exactly 0 (a parameter that has
    # never had a gradient) would turn the hypergradient into NaN. The clamp changes the value
    # by at most 1e-15, far below Adam's eps.
    return v.clamp_min(1e-30).sqrt()


def _adam(decoupled: bool) -> _Rule:
    def rule(p: Tensor, g: Tensor, group: Mapping[str, Any], state: Mapping[str, Any]) -> Tensor:
        lr, eps = _scalar(group["lr"]), group["eps"]
        beta1, beta2 = (_scalar(b) for b in group["betas"])
        weight_decay = group.get("weight_decay", 0.0)
        if group.get("maximize", False):
            g = -g
        if decoupled or group.get("decoupled_weight_decay", False):
            p = p * (1 - lr * weight_decay)
        elif weight_decay != 0:
            g = g + weight_decay * p
        step = _scalar(state["step"]) + 1 if "step" in state else 1.0
        exp_avg = state.get("exp_avg")
        exp_avg_sq = state.get("exp_avg_sq")
        m = (1 - beta1) * g if exp_avg is None else beta1 * exp_avg + (1 - beta1) * g
        v = (1 - beta2) * g * g if exp_avg_sq is None else beta2 * exp_avg_sq + (1 - beta2) * g * g
        if group.get("amsgrad", False) and state.get("max_exp_avg_sq") is not None:
            v = torch.maximum(state["max_exp_avg_sq"], v)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = math.sqrt(1 - beta2**step)
        denom = _safe_sqrt(v) / bias_correction2_sqrt + eps
        return p - (lr / bias_correction1) * m / denom

    return rule


_RULES: dict[type[torch.optim.Optimizer], _Rule] = {
    torch.optim.SGD: _sgd,
    torch.optim.Adam: _adam(decoupled=False),
    torch.optim.AdamW: _adam(decoupled=True),
}

SUPPORTED_OPTIMIZERS: tuple[str, ...] = tuple(cls.__name__ for cls in _RULES)


def rule_of(optimizer: torch.optim.Optimizer) -> _Rule | None:
    """The update rule of ``optimizer``'s class, or of the supported base class whose ``step`` it keeps."""
    cls = type(optimizer)
    for base in cls.__mro__:
        if base in _RULES:
            return _RULES[base] if cls.step is base.step else None
    return None


def clip_by_total_norm(grads: Mapping[str, Tensor], max_norm: float) -> dict[str, Tensor]:
    """``torch.nn.utils.clip_grad_norm_``'s rule as a function: ``g * min(1, max_norm / (||g|| + 1e-6))``."""
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    return {n: g * coef.to(g.dtype) for n, g in grads.items()}


class VirtualStep:
    """The next update of ``optimizer`` for a chosen set of its parameters, as a function.

    Calling it never modifies the optimizer's state or the parameters: it reads them.

    Args:
        optimizer: the user's real optimizer (SGD, Adam or AdamW, or a subclass that keeps
            their ``step``).
        params: the parameters to look ahead on, by name; each must be in ``optimizer``.
        max_grad_norm: the loop's ``clip_grad_norm_(model.parameters(), max_grad_norm)``
            before each ``optimizer.step()``; ``None``: no clipping. The total norm is that of
            the gradients given to a call.

    Example:
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> step = VirtualStep(opt, dict(model.named_parameters()))
        >>> grads = {n: torch.ones_like(p) for n, p in model.named_parameters()}
        >>> new = step(grads)  # what opt.step() would produce from these gradients
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, params: Mapping[str, Tensor], max_grad_norm: float | None = None
    ) -> None:
        rule = rule_of(optimizer)
        if rule is None:
            overrides = any(base in _RULES for base in type(optimizer).__mro__)
            raise ValueError(
                f"the look-ahead must reproduce the real optimizer, and supports "
                f"{', '.join(SUPPORTED_OPTIMIZERS)} (and subclasses that do not override step), but got "
                f"{type(optimizer).__name__}{' (it overrides step)' if overrides else ''}. "
                f"Use one of those, or pass a supported optimizer to the engine."
            )
        if max_grad_norm is not None and not (isinstance(max_grad_norm, (int, float)) and not isinstance(max_grad_norm, bool)
                                               and math.isfinite(max_grad_norm) and max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be a finite number > 0 or None, but got {max_grad_norm!r}.")
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.optimizer = optimizer
        self.rule = rule
        group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
        missing = [name for name, p in params.items() if id(p) not in group_of]
        if missing:
            raise ValueError(
                f"every looked-ahead parameter must be optimized by the optimizer, but "
                f"{len(missing)} are not (first: {missing[0]!r}). Build the optimizer from "
                f"model.parameters()."
            )
        self.params = dict(params)

    def _groups(self) -> dict[int, Mapping[str, Any]]:
        # Looked up at each call: optimizer.load_state_dict replaces the group dicts (a resumed
        # run), and a scheduler changes their learning rate.
        return {id(p): group for group in self.optimizer.param_groups for p in group["params"]}

    def __call__(
        self,
        grads: Mapping[str, Tensor],
        params: Mapping[str, Tensor] | None = None,
        state: Mapping[str, Mapping[str, Any]] | None = None,
        groups: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Tensor]:
        """Return ``{name: theta'}`` for every name in ``grads``; differentiable in ``grads``.

        Args:
            grads: gradient per parameter name.
            params: parameter values to step from (default: the live parameters).
            state: optimizer state per name to step from (default: the live state); a
                snapshot taken before a real step replays that step.
            groups: param-group settings per name (default: the live ones, whose learning
                rate a scheduler may have changed since the snapshot).
        """
        new = {}
        group_of = self._groups() if groups is None else None
        if self.max_grad_norm is not None:
            grads = clip_by_total_norm(grads, self.max_grad_norm)
        for name, g in grads.items():
            p = self.params[name]
            value = p if params is None else params[name]
            p_state = self.optimizer.state.get(p, {}) if state is None else state[name]
            group = group_of[id(p)] if groups is None else groups[name]
            new[name] = self.rule(value.detach(), g, group, p_state)
        return new

    def snapshot_state(self) -> dict[str, dict[str, Any]]:
        """A copy of the optimizer's state of every looked-ahead parameter (for a later replay)."""
        return {
            name: {k: v.clone() if isinstance(v, Tensor) else v for k, v in self.optimizer.state.get(p, {}).items()}
            for name, p in self.params.items()
        }

    def snapshot_groups(self) -> dict[str, dict[str, Any]]:
        """A copy of the param-group settings (learning rate, momentum, ...) of every parameter."""
        group_of = self._groups()
        return {
            name: {k: v for k, v in group_of[id(p)].items() if k != "params"}
            for name, p in self.params.items()
        }


def virtual_step(optimizer: torch.optim.Optimizer, params: Mapping[str, Tensor], grads: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Functional form of :class:`VirtualStep`: ``theta'`` for ``grads`` without changing anything."""
    return VirtualStep(optimizer, params)(grads)
