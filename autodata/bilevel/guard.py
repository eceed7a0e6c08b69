"""Guards against learned weights that make training diverge (issue #9).

Two lines of defence. :func:`bound_step` removes a cause: a reweighter with ``max_step_ratio``
(L2RW: 1) has its real step's weights scaled so that the step's gradient, on the model's last
layer, is at most that many times the uniform-weight gradient of the same batch. L2RW's mean-1
weights on a coherent subset gave a first gradient 2.4-15x the uniform one on a small CNN (the
issue saw 2.6x and a meta loss from 2.3 to 8.5 in one step).

:class:`DivergenceGuard` is the last line: it watches the validation loss at the look-ahead of
the meta steps (an exponential moving average) against the best it has been; when it rises
past ``factor`` times that (and by more than ``margin``), the learner warns and trains with
uniform weights until the average is back under the bound. Nothing fails silently: each
switch is a ``RuntimeWarning`` and :attr:`~autodata.bilevel.StepInfo` reports it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["DivergenceGuard", "bound_step", "last_layer"]


def last_layer(params: Mapping[str, Tensor]) -> list[Tensor]:
    """The parameters of the module that owns the last trainable parameter (usually the classifier)."""
    names = list(params)
    owner = names[-1].rpartition(".")[0]
    return [params[n] for n in names if n.rpartition(".")[0] == owner]


def bound_step(weights: Tensor, losses: Tensor, params: list[Tensor], max_ratio: float) -> tuple[Tensor, float]:
    """Scale ``weights`` so that the real step is at most ``max_ratio`` times the uniform-weight step.

    The norm of ``grad mean(w * l)`` is compared with that of ``grad mean(l)`` on ``params``
    (the last layer: a backward through one layer only). Weights that select a coherent subset
    of a batch give a gradient several times the uniform one although they average 1 (L2RW's
    first steps: 2.4-15x on a small CNN); scaled down they keep their direction, and the step is
    never larger than plain training's.

    Args:
        weights: the real step's weights, detached, shape ``(B,)``.
        losses: the per-sample losses with their graph, shape ``(B,)``.
        params: the parameters the norms are taken on.
        max_ratio: the largest allowed ratio of the two norms.

    Returns:
        The (scaled) weights and the ratio before scaling.

    Raises:
        ValueError: ``max_ratio`` is not a positive finite number (a reweighter's
            ``max_step_ratio`` of 0 or below would zero or flip every step).
    """
    if isinstance(max_ratio, bool) or not isinstance(max_ratio, (int, float)) or not (
        max_ratio > 0 and math.isfinite(max_ratio)
    ):
        raise ValueError(
            f"max_ratio (a reweighter's max_step_ratio) must be a positive finite number, but got {max_ratio!r}."
        )
    weighted = torch.autograd.grad((weights * losses).mean(), params, retain_graph=True, allow_unused=True)
    uniform = torch.autograd.grad(losses.mean(), params, retain_graph=True, allow_unused=True)
    norm_w = math.sqrt(sum(float(g.detach().double().pow(2).sum()) for g in weighted if g is not None))
    norm_u = math.sqrt(sum(float(g.detach().double().pow(2).sum()) for g in uniform if g is not None))
    if norm_u <= 0.0 or not math.isfinite(norm_w):
        return weights, math.nan
    ratio = norm_w / norm_u
    return (weights * (max_ratio / ratio) if ratio > max_ratio else weights), ratio


@dataclass
class DivergenceGuard:
    """Detects a climbing validation loss at the look-ahead; the learner falls back to uniform weights meanwhile.

    Args:
        factor: the smoothed loss may reach ``factor`` times its best before the guard acts.
        margin: and must exceed the best by this much (small losses jitter by large factors).
        beta: smoothing of the moving average.
        warmup: steps before the guard may act (the average needs a few steps).
    """

    factor: float = 2.0
    margin: float = 0.5
    beta: float = 0.9
    warmup: int = 5
    ema: float = math.nan
    best: float = math.inf
    seen: int = 0
    active: bool = False

    def update(self, loss: float) -> bool | None:
        """Record a meta step's validation loss at the look-ahead; ``True``/``False`` when the state
        switched, else ``None``."""
        if not math.isfinite(loss):
            return None
        self.ema = loss if self.seen == 0 else self.beta * self.ema + (1 - self.beta) * loss
        self.seen += 1
        if self.seen < self.warmup:
            return None
        if not self.active:
            self.best = min(self.best, self.ema)
        bound = max(self.factor * self.best, self.best + self.margin)
        diverging = self.ema > bound
        if diverging != self.active:
            self.active = diverging
            return diverging
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema, "best": self.best, "seen": self.seen, "active": self.active}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema, self.best = float(state["ema"]), float(state["best"])
        self.seen, self.active = int(state["seen"]), bool(state["active"])
