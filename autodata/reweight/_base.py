"""The reweighter concept: a data component that maps per-sample losses to per-sample weights."""
from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = ["BaseReweighter", "UniformReweighter"]


class BaseReweighter(nn.Module, abc.ABC):
    """Maps per-sample training losses to per-sample weights; its parameters are meta-parameters.

    The training loss of a step is ``mean(weights * losses)``. The bilevel engine
    (:class:`autodata.MetaLearner`) learns the reweighter's parameters on a clean validation
    batch through a one-step look-ahead of the real optimizer.

    Attributes:
        per_batch: ``True`` for reweighters whose weights are themselves the meta-parameters of
            one step (L2RW): the engine then looks ahead with zero weights and calls
            :meth:`weights_from_hypergradient` instead of using a meta-optimizer.
        meta_lr: default learning rate of the meta-optimizer for this component.
        meta_weight_decay: default weight decay of the meta-optimizer.
    """

    per_batch: ClassVar[bool] = False
    meta_lr: float = 1e-3
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

    def weights_from_hypergradient(self, hypergradient: Tensor) -> Tensor:
        """Weights from the hypergradient of zero per-sample weights (``per_batch`` reweighters)."""
        raise NotImplementedError(f"{type(self).__name__} is not a per-batch reweighter.")


class UniformReweighter(BaseReweighter):
    """The null reweighter: every sample weighs 1, which is plain empirical risk minimisation.

    Example:
        >>> UniformReweighter()(torch.tensor([0.5, 2.0]), torch.tensor([0, 1]))
        tensor([1., 1.])
    """

    def forward(self, losses: Tensor, targets: Tensor) -> Tensor:
        return torch.ones_like(losses)
