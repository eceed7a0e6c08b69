"""Schedules: the augmentation policy to use at each epoch, and PBA's pure parts.

Population Based Augmentation (Ho, Liang, Stoica, Abbeel and Chen, "Population Based
Augmentation: Efficient Learning of Augmentation Policy Schedules", ICML 2019) learns a
*schedule* of policies with population-based training. This package holds everything of
PBA that needs no Ray, no Optuna and no training:

* :class:`BaseSchedule` (``policy_at(epoch)``, ``num_epochs``), the null
  :class:`ConstantSchedule`, and :class:`PiecewiseSchedule` (segments, JSON save / load);
* :class:`PBAPolicy` (30 op entries with probability and magnitude levels) and
  :class:`PBAAugment`, which applies one to batches as PBA does;
* :func:`schedule_from_pba_log`, reading PBA's published schedules (and stretching them);
* :func:`explore` and :func:`exploit`, PBA's PBT steps.

Example:
    >>> import torch
    >>> from autodata.schedules import (
    ...     PBAAugment, PBAPolicy, PiecewiseSchedule, Segment, explore, exploit)
    >>> g = torch.Generator().manual_seed(0)
    >>> start = PBAPolicy.zeros()
    >>> later = explore(explore(start, g), g)
    >>> schedule = PiecewiseSchedule([Segment(0, 2, start), Segment(2, 5, later)])
    >>> aug = PBAAugment()
    >>> x = torch.rand(4, 3, 32, 32)
    >>> for epoch in range(schedule.num_epochs):  # the user's own loop
    ...     aug.set_policy(schedule.policy_at(epoch))
    ...     y = aug(x, aug.sample(4, g))
    >>> y.shape
    torch.Size([4, 3, 32, 32])
    >>> PiecewiseSchedule.from_json(schedule.to_json()) == schedule
    True
    >>> exploit(torch.tensor([0.2, 0.9, 0.5, 0.4]), 0.25, g)  # member 0 copies member 1
    tensor([ 1, -1, -1, -1])

The published schedules (the path comes from the caller, e.g. ``$AUTODATA_DATA``)::

    s = schedule_from_pba_log(os.path.join(root, "pba", "rcifar10_16_wrn.txt"), epochs=1800)
"""
from __future__ import annotations

from autodata.schedules._base import BaseSchedule, ConstantSchedule
from autodata.schedules.explore import exploit, explore, quantile_size
from autodata.schedules.pba_augment import (
    CIFAR10_MEAN,
    COUNT_PROBABILITIES,
    PBAAugment,
    PBAParams,
    pba_affine_matrix,
    pba_op_value,
    pba_sizes,
)
from autodata.schedules.pba_log import (
    PUBLISHED_SEARCH_EPOCHS,
    PBTUpdate,
    pba_log_runs,
    read_pba_log,
    schedule_from_pba_log,
)
from autodata.schedules.pba_policy import PBA_OPS, PBAPolicy
from autodata.schedules.piecewise import PiecewiseSchedule, Segment, stretch_runs

__all__ = [
    "BaseSchedule",
    "CIFAR10_MEAN",
    "COUNT_PROBABILITIES",
    "ConstantSchedule",
    "PBAAugment",
    "PBAParams",
    "PBAPolicy",
    "PBA_OPS",
    "PBTUpdate",
    "PUBLISHED_SEARCH_EPOCHS",
    "PiecewiseSchedule",
    "Segment",
    "exploit",
    "explore",
    "pba_affine_matrix",
    "pba_log_runs",
    "pba_op_value",
    "pba_sizes",
    "quantile_size",
    "read_pba_log",
    "schedule_from_pba_log",
    "stretch_runs",
]
