"""The augmentation concept: draw per-sample parameters, then apply them (STYLE.md, three layers).

Every augmentation module (a fixed :class:`~autodata.augment.PolicyAugment`, a learnable
:class:`~autodata.augment.DifferentiablePolicy`, the :class:`IdentityAugment` null object) is a
:class:`BaseAugment`: :meth:`~BaseAugment.sample` draws the per-sample parameters of a batch
from an explicit generator, :meth:`~BaseAugment.forward` replays them. A module's trainable
parameters are meta-parameters, learned by :class:`autodata.MetaLearner` with the optimizer
settings of :meth:`~BaseAugment.meta_param_groups`.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["BaseAugment", "IdentityAugment", "new_generator"]


class BaseAugment(nn.Module, abc.ABC):
    """A batched augmentation whose per-sample randomness is drawn, logged and replayed.

    Subclasses implement :meth:`sample` and :meth:`forward`, and set :attr:`params_type` to the
    frozen dataclass of tensors that :meth:`sample` returns (``None`` when it draws nothing) so
    that drawn parameters can be saved in a checkpoint (:meth:`params_to_state`).

    Attributes:
        params_type: the dataclass :meth:`sample` returns, or ``None``.
        meta_lr: learning rate of the meta-optimizer for this module's parameters.
        meta_betas: Adam's betas for them.
        meta_weight_decay: their weight decay.
    """

    params_type: ClassVar[type | None] = None
    meta_lr: float = 5e-3
    meta_betas: tuple[float, float] = (0.9, 0.999)
    meta_weight_decay: float = 0.0

    @abc.abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Any:
        """Draw the per-sample parameters of ``batch_size`` samples from ``generator``."""

    @abc.abstractmethod
    def forward(self, x: Tensor, params: Any = None) -> Tensor:
        """Augment ``x`` with ``params`` (drawn fresh when ``None``)."""

    @property
    def learns(self) -> bool:
        """Whether the module has trainable parameters (meta-parameters)."""
        return any(p.requires_grad for p in self.parameters())

    @property
    def needs_rewards(self) -> bool:
        """Whether the engine must hand this module per-sample rewards (score-function estimators).

        When ``True``, :class:`autodata.MetaLearner` multiplies the meta step's per-sample weights
        by a leaf ``alpha = 1``, takes ``dL_meta / d alpha_i`` (sample ``i``'s effect on the
        validation loss after the look-ahead) from the hypergradient method, and adds
        :meth:`discrete_gradients` of those rewards to the module's hypergradients.
        """
        return False

    def discrete_gradients(self, params: Any, rewards: Tensor) -> list[Tensor]:
        """Gradients of the discrete choices' parameters from per-sample ``rewards`` (B,).

        Returns one tensor per trailing trainable parameter; called only when :attr:`needs_rewards`.
        """
        raise NotImplementedError(f"{type(self).__name__} takes no rewards (needs_rewards is False).")

    def meta_param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups of the meta-parameters (empty for a module that learns nothing).

        Example:
            >>> IdentityAugment().meta_param_groups()
            []
        """
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        return [{"params": params, "lr": self.meta_lr, "betas": tuple(self.meta_betas),
                 "weight_decay": self.meta_weight_decay}]

    def params_to_state(self, params: Any) -> dict[str, Tensor] | None:
        """Drawn parameters as a plain dict of tensors (loadable with ``weights_only=True``)."""
        if params is None:
            return None
        if not dataclasses.is_dataclass(params) or isinstance(params, type):
            raise TypeError(
                f"params must be a dataclass of tensors (or None) to be saved, but got {type(params).__name__}; "
                f"override params_to_state and params_from_state in {type(self).__name__}."
            )
        return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}

    def params_from_state(self, state: dict[str, Tensor] | None) -> Any:
        """The inverse of :meth:`params_to_state`."""
        if state is None:
            return None
        if self.params_type is None:
            raise TypeError(f"{type(self).__name__}.params_type must be set to load drawn parameters, but got None.")
        return self.params_type(**state)


class IdentityAugment(BaseAugment):
    """The null augmentation: draws nothing, returns the batch unchanged, learns nothing.

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> aug = IdentityAugment()
        >>> aug(x, aug.sample(2)) is x
        True
    """

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> None:
        return None

    def forward(self, x: Tensor, params: Any = None) -> Tensor:
        return x


def new_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or with fresh entropy (the global RNG is untouched)."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
