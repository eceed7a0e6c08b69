"""A :class:`~autodata.MetaLearner` that hands per-sample rewards to a policy's discrete choices.

The score-function estimators of :mod:`autodata.augment.estimators` need, for each sample of
the step, its effect on the validation loss after the look-ahead. The learner gets it from the
hypergradient method itself, as L2RW gets its weights' gradient (Ren et al. 2018, eq. 8): the
meta step's per-sample loss weights are multiplied by a leaf ``alpha = 1`` (values unchanged),
added as a last meta-parameter, and ``dL_meta / d alpha_i`` is sample ``i``'s reward. Any
method (``exact``, ``fd``, ``last``, ``jvp``) computes it at no extra forward; the policy's
:meth:`~autodata.augment.DifferentiablePolicy.discrete_gradients` turns the rewards into the
gradients of its logits, which are added to the pathwise hypergradients (magnitudes) before
the meta-optimizer's step.

This is a subclass rather than a change of the engine so that the engine's protocol stays as
it is; an augmentation without ``needs_rewards`` behaves exactly as in a plain learner.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from autodata.bilevel import MetaLearner

__all__ = ["PolicyLearner"]


class PolicyLearner(MetaLearner):
    """:class:`~autodata.MetaLearner` with rewards for an augmentation's discrete choices.

    Takes the arguments of :class:`~autodata.MetaLearner`; the ``online`` method and gradient
    accumulation are not supported with an augmentation that ``needs_rewards``.

    Example:
        >>> from autodata.augment import DifferentiablePolicy
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> policy = DifferentiablePolicy(ops=("Invert", "Rotate"), estimator="relax", seed=0)
        >>> learner = PolicyLearner(model, opt, augment=policy, method="fd")
        >>> x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 3, (8,))
        >>> loss = learner.step(x, y, x, y)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.augment, "needs_rewards", False):
            if self.method.delayed or getattr(self, "accumulation_steps", 1) != 1:
                raise ValueError(
                    f"an augmentation with discrete choices (estimator "
                    f"{getattr(self.augment, 'estimator', '?')!r}) needs a method applied at once without gradient "
                    f"accumulation, but got method={self.method.name!r}, "
                    f"accumulation_steps={getattr(self, 'accumulation_steps', 1)}; use 'fd', 'exact' or 'last'."
                )
        self._rewarded: tuple[Tensor, Any] | None = None
        self._last_aug_params: Any = None
        self.last_rewards: Tensor | None = None

    def _real_forward(self, *args: Any, **kwargs: Any) -> Any:
        forward = super()._real_forward(*args, **kwargs)
        self._last_aug_params = forward.aug_params
        return forward

    def _step_weights(self, losses: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        weights, params = super()._step_weights(losses, y)
        if not getattr(self.augment, "needs_rewards", False):
            return weights, params
        alpha = torch.ones_like(losses.detach()).requires_grad_()  # (B,) the rewards' leaf
        self._rewarded = (alpha, self._last_aug_params)
        return weights * alpha, [*params, alpha]

    def _apply_hypergradients(
        self, index: int, meta_params: Sequence[Tensor], hypergrads: Sequence[Tensor], meta_loss: Tensor
    ) -> bool:
        rewarded, self._rewarded = self._rewarded, None
        if rewarded is None or not meta_params or meta_params[-1] is not rewarded[0]:
            return super()._apply_hypergradients(index, meta_params, hypergrads, meta_loss)
        meta_params, hypergrads = list(meta_params[:-1]), list(hypergrads)
        rewards = hypergrads.pop().detach()
        self.last_rewards = rewards
        if torch.isfinite(rewards).all() and torch.isfinite(meta_loss):
            extra = self.augment.discrete_gradients(rewarded[1], rewards)
            first = len(meta_params) - len(extra)
            for i, g in enumerate(extra):
                hypergrads[first + i] = hypergrads[first + i] + g.to(hypergrads[first + i])
        else:  # let the engine report (and raise or skip) the non-finite reward
            hypergrads[-1] = hypergrads[-1] + rewards.sum()
        return super()._apply_hypergradients(index, meta_params, hypergrads, meta_loss)
