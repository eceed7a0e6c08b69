"""The reweighter concept: a data component that maps per-sample losses to per-sample weights."""
from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["BaseReweighter", "UniformReweighter"]


class BaseReweighter(nn.Module, abc.ABC):
    """Maps per-sample training losses to per-sample weights; its parameters are meta-parameters.

    The training loss of a step is ``mean(weights * losses)``. The bilevel engine
    (:class:`autodata.MetaLearner`) learns the reweighter on a clean validation batch through a
    one-step look-ahead of the real optimizer, through three methods:

    * :meth:`step_weights`: the weights of a meta step and the meta-parameters they depend on
      (default: ``forward`` and the module's parameters; L2RW: zero weights that are their own
      meta-parameters);
    * :meth:`real_weights`: the weights of the real step, given the hypergradients of those
      meta-parameters (default: ``forward`` again, after the meta-optimizer's update);
    * :meth:`meta_param_groups`: the meta-optimizer's settings for the module's parameters;
    * :meth:`data_parallel`: the learner's mean over data-parallel ranks, for decisions that read the batch;
    * :meth:`stalled`: why it has stopped learning, if it has (the learner warns and reports it
      in :class:`~autodata.bilevel.StepInfo`).

    Attributes:
        per_batch: ``True`` when the meta-parameters of a step exist in that step only (L2RW):
            such weights cannot be applied one step late (``method="online"``).
        meta_lr: learning rate of the meta-optimizer for this component.
        meta_betas: Adam's betas for it.
        meta_weight_decay: its weight decay.
        max_step_ratio: when set, the learner scales the real step's weights so that its
            gradient (on the model's last layer) is at most this many times the uniform-weight
            gradient of the same batch (:func:`autodata.bilevel.guard.bound_step`); ``None``:
            no bound.
    """

    per_batch: ClassVar[bool] = False
    max_step_ratio: float | None = None
    meta_lr: float = 1e-3
    meta_betas: tuple[float, float] = (0.9, 0.999)
    meta_weight_decay: float = 0.0

    @abc.abstractmethod
    def forward(self, losses: Tensor, targets: Tensor) -> Tensor:
        """Weights for a batch.

        Args:
            losses: per-sample training losses, detached, shape ``(B,)``.
            targets: the batch's labels, shape ``(B,)``.

        Returns:
            Non-negative weights, shape ``(B,)``, differentiable in the reweighter's parameters.
        """

    @property
    def learns(self) -> bool:
        """Whether a meta step has anything to learn (trainable parameters, or per-batch weights)."""
        return self.per_batch or any(p.requires_grad for p in self.parameters())

    def meta_param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups of the trainable parameters (empty when there are none)."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        return [{"params": params, "lr": self.meta_lr, "betas": tuple(self.meta_betas),
                 "weight_decay": self.meta_weight_decay}]

    def step_weights(self, losses: Tensor, targets: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The weights of a meta step, shape ``(B,)``, and the meta-parameters they depend on."""
        return self(losses, targets), [p for p in self.parameters() if p.requires_grad]

    def data_parallel(self, reduce: Callable[[list[Tensor]], list[Tensor]]) -> None:
        """Called once by a learner whose model is DistributedDataParallel, with its mean over the ranks.

        A reweighter whose state changes with what its own batch shows (Meta-Weight-Net's stall
        watch) uses ``reduce`` to decide alike on every rank, so that the ranks' reweighters stay
        equal; every rank calls it at the same point of each meta step. The default ignores it.
        """

    def stalled(self) -> str | None:
        """Why the reweighter has stopped learning (its weights no longer follow its meta-parameters),
        or ``None`` (the default: it never says so). Read after each meta step."""
        return None

    def real_weights(self, losses: Tensor, targets: Tensor, hypergradients: Sequence[Tensor] | None) -> Tensor:
        """The weights of the real step, shape ``(B,)``.

        Args:
            losses: per-sample losses, detached.
            targets: labels.
            hypergradients: of each meta-parameter of :meth:`step_weights`, or ``None`` when the
                meta update was skipped (a non-finite meta loss).
        """
        return self(losses, targets)


class UniformReweighter(BaseReweighter):
    """The null reweighter: every sample weighs 1, which is plain empirical risk minimisation.

    Example:
        >>> UniformReweighter()(torch.tensor([0.5, 2.0]), torch.tensor([0, 1]))
        tensor([1., 1.])
    """

    def forward(self, losses: Tensor, targets: Tensor) -> Tensor:
        return torch.ones_like(losses)
