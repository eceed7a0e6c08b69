"""Learning to Reweight (Ren et al., "Learning to Reweight Examples for Robust Deep Learning",
ICML 2018): per-sample weights straight from the meta-gradient, no weighting net.

Each step perturbs the loss with weights ``eps = 0`` (eq. 3), takes the hypergradient
``h = dL_meta/d eps`` through a look-ahead, and sets ``w = max(-h, 0)`` normalised to sum 1
(eq. 6-7). Here the weights are scaled to mean 1 so that ``mean(w * l) = sum(w_normalised * l)``.

The real step is bounded (issue #9): at initialisation the sign of ``-h_i`` is mostly decided by
how many samples of ``y_i``'s class the meta batch happens to hold, and ``max(-h, 0)`` keeps a
coherent subset: on a small CNN (SGD lr 0.05, momentum 0.9) the weighted gradient was 2.4-15x
the uniform one at mean weight 1, and the model predicted one class after its first epoch.
``max_step_ratio = 1`` scales the weights so that the step is never larger than plain
training's (their direction, the paper's, is kept).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from autodata.reweight._base import BaseReweighter

__all__ = ["L2RW"]


class L2RW(BaseReweighter):
    """Per-batch weights from the hypergradient of zero weights.

    Its meta-parameters in a step are the zero weights themselves (:meth:`step_weights`); it has
    no parameters of its own, so no meta-optimizer, and the real step's weights come straight
    from their hypergradient (:meth:`real_weights`).

    Example:
        >>> L2RW().weights_from_hypergradient(torch.tensor([-2.0, 1.0, -2.0]))
        tensor([1.5000, 0.0000, 1.5000])
    """

    per_batch = True

    def __init__(self, max_step_ratio: float | None = 1.0) -> None:
        super().__init__()
        if max_step_ratio is not None and (
            isinstance(max_step_ratio, bool)
            or not isinstance(max_step_ratio, (int, float))
            or not (max_step_ratio > 0 and math.isfinite(max_step_ratio))
        ):
            raise ValueError(f"max_step_ratio must be a positive finite number or None, but got {max_step_ratio!r}.")
        self.max_step_ratio = None if max_step_ratio is None else float(max_step_ratio)

    def forward(self, losses: Tensor, targets: Tensor) -> Tensor:
        # Outside a meta step (e.g. with every=k between meta updates) L2RW has no weights of
        # its own; uniform weights are the paper's fallback.
        return torch.ones_like(losses)

    def step_weights(self, losses: Tensor, targets: Tensor) -> tuple[Tensor, list[Tensor]]:
        eps = torch.zeros_like(losses.detach(), requires_grad=True)  # (B,), eq. 3
        return eps, [eps]

    def real_weights(self, losses: Tensor, targets: Tensor, hypergradients: Sequence[Tensor] | None) -> Tensor:
        if hypergradients is None:  # the meta update was skipped: uniform weights
            return torch.ones_like(losses)
        return self.weights_from_hypergradient(hypergradients[0])

    def weights_from_hypergradient(self, hypergradient: Tensor) -> Tensor:
        """``max(-h, 0)`` scaled to mean 1 (eq. 6-7); all zero when no sample helps."""
        w = (-hypergradient).clamp_min(0)
        total = w.sum()
        if total <= 0:
            return torch.zeros_like(w)
        return w * (w.numel() / total)
