"""Population Based Augmentation's search: a population trained in one process, a schedule out.

Ho, Liang, Stoica, Abbeel and Chen, "Population Based Augmentation: Efficient Learning of
Augmentation Policy Schedules", ICML 2019. The pure parts (policies, :class:`PBAAugment`,
explore and exploit, schedules) live in :mod:`autodata.schedules`; this package trains the
population (:mod:`autodata.pba.population`: all members at once as one grouped model
(:mod:`autodata.pba.grouped`) or with ``torch.func.vmap``, or one after another), drives PBT (:class:`PBASearch`) and writes the found schedule
(:func:`search_schedule`). The same search through Ray Tune is
:mod:`autodata.tune.ray_pba`; the command is ``autodata search-schedule``.

Example:
    >>> from autodata.train import TrainConfig
    >>> config = PBASearchConfig(TrainConfig(dataset="digits", val_per_class=10, epochs=6), population=4)
    >>> config.num_perturbations
    1
"""
from __future__ import annotations

from autodata.pba.config import ENGINES, PBASearchConfig
from autodata.pba.population import BasePopulation, GroupedPopulation, LoopPopulation, VmapPopulation, make_population
from autodata.pba.search import PBAResult, PBASearch, PopulationAugment, cosine_lr, search_schedule

__all__ = [
    "ENGINES",
    "BasePopulation",
    "GroupedPopulation",
    "LoopPopulation",
    "PBAResult",
    "PBASearch",
    "PBASearchConfig",
    "PopulationAugment",
    "VmapPopulation",
    "cosine_lr",
    "make_population",
    "search_schedule",
]
