"""The schedule concept: "the policy to use at epoch e".

A schedule is what Population Based Augmentation (Ho et al., "Population Based
Augmentation: Efficient Learning of Augmentation Policy Schedules", ICML 2019) learns: not
one policy but a policy per epoch. :class:`BaseSchedule` has two members,
:attr:`~BaseSchedule.num_epochs` and :meth:`~BaseSchedule.policy_at`; the user's loop asks
``schedule.policy_at(epoch)`` at the top of each epoch and hands the policy to its augment
module. :class:`ConstantSchedule` is the null object: one policy every epoch.
"""
from __future__ import annotations

import abc
from typing import Generic, TypeVar

P = TypeVar("P")


def check_epoch(epoch: object, num_epochs: int | None, name: str = "epoch") -> int:
    """Check that ``epoch`` is an int in ``[0, num_epochs)`` (``num_epochs=None``: any >= 0)."""
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise TypeError(f"{name} must be an int, but got {epoch!r}.")
    if epoch < 0 or (num_epochs is not None and epoch >= num_epochs):
        bound = "" if num_epochs is None else f" and < num_epochs = {num_epochs}"
        raise ValueError(f"{name} must be >= 0{bound}, but got {epoch!r}.")
    return epoch


def check_num_epochs(num_epochs: object, name: str = "num_epochs") -> int:
    """Check that ``num_epochs`` is an int >= 1."""
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"{name} must be an int >= 1, but got {num_epochs!r}.")
    return num_epochs


class BaseSchedule(abc.ABC, Generic[P]):
    """A policy per epoch. Epochs count from 0, as PBA's per-epoch lists do.

    Subclasses implement :attr:`num_epochs` and :meth:`policy_at`.
    """

    @property
    @abc.abstractmethod
    def num_epochs(self) -> int | None:
        """How many epochs the schedule covers; ``None`` means every epoch >= 0."""

    @abc.abstractmethod
    def policy_at(self, epoch: int) -> P:
        """The policy to use during ``epoch`` (0-based).

        Raises:
            ValueError: if ``epoch`` is negative or not below :attr:`num_epochs`.
        """

    def per_epoch(self) -> list[P]:
        """The policy of every epoch, ``[policy_at(0), ..., policy_at(num_epochs - 1)]``."""
        if self.num_epochs is None:
            raise ValueError(f"num_epochs must be an int to list every epoch, but got {self.num_epochs!r}.")
        return [self.policy_at(e) for e in range(self.num_epochs)]


class ConstantSchedule(BaseSchedule[P]):
    """The null schedule: the same policy at every epoch.

    Args:
        policy: the policy returned for every epoch.
        num_epochs: how many epochs it covers; ``None`` (default) for every epoch.

    Example:
        >>> s = ConstantSchedule("crop-flip")
        >>> s.policy_at(0), s.policy_at(10_000), s.num_epochs
        ('crop-flip', 'crop-flip', None)
    """

    def __init__(self, policy: P, num_epochs: int | None = None) -> None:
        self.policy = policy
        self._num_epochs = None if num_epochs is None else check_num_epochs(num_epochs)

    @property
    def num_epochs(self) -> int | None:
        return self._num_epochs

    def policy_at(self, epoch: int) -> P:
        check_epoch(epoch, self._num_epochs)
        return self.policy

    def __repr__(self) -> str:
        return f"ConstantSchedule(policy={self.policy!r}, num_epochs={self._num_epochs})"
