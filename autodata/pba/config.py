"""``PBASearchConfig``: one frozen, validated dataclass describes a whole PBA search.

Population Based Augmentation (Ho, Liang, Stoica, Abbeel and Chen, ICML 2019, Algorithm 1)
trains a population of models, each with its own augmentation policy, and every
``interval`` epochs lets the bottom ``quantile`` copy a top member (weights, optimizer state,
policy) and perturb the copied policy. The member setup (data, model, SGD, epochs, seed) is
a :class:`~autodata.train.TrainConfig`; the population's own settings live here. Everything is
checked when the config is built, before any data is read.

Example:
    >>> from autodata.train import TrainConfig
    >>> c = PBASearchConfig(TrainConfig(dataset="digits", val_per_class=10, epochs=6), population=4)
    >>> PBASearchConfig.from_json(c.to_json()) == c
    True
    >>> PBASearchConfig(TrainConfig(val_per_class=10, epochs=6), population=1)
    Traceback (most recent call last):
    ...
    ValueError: population must be an int >= 2 (PBT needs members to copy), but got 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autodata._config import JsonConfig
from autodata.pba.population import AUTOCAST_DTYPES
from autodata.schedules.explore import quantile_size
from autodata.train import TrainConfig

__all__ = ["ENGINES", "PBASearchConfig"]

ENGINES = ("auto", "grouped", "vmap", "loop")
"""How the population trains: ``grouped`` (all members as one wide model, each layer grouped by
member: :mod:`autodata.pba.grouped`), ``vmap`` (all members in one ``torch.func.vmap`` call),
``loop`` (one member after another), ``auto`` (grouped on a CPU, vmap on an accelerator; see
:mod:`autodata.pba.population`)."""


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, but got {value!r}.")
    return value


@dataclass(frozen=True)
class PBASearchConfig(JsonConfig):
    """A PBA search: the member setup plus the population's settings.

    Args:
        train: how each member trains (data, model, SGD, cosine lr, epochs, seed, precision:
            ``"bf16"`` runs the members' forwards under autocast, see
            :mod:`autodata.pba.population`). Its ``val_per_class`` clean validation split ranks
            the members (never the test set); its augmentation must be ``"none"`` (the search
            owns it: :class:`PBAAugment`).
        population: members (PBA: 16).
        interval: epochs between perturbations (PBA: 3).
        quantile: the share of members in the bottom (copiers) and top (copied) quantiles.
        engine: ``"auto"``, ``"grouped"``, ``"vmap"`` or ``"loop"`` (see :data:`ENGINES`).
        eval_every_epoch: rank every member on the validation split after every epoch (a
            learning curve per member) instead of only where the ranking is used: before each
            perturbation and after the last epoch. The search itself (perturbations, schedule) is
            the same either way; the extra evaluations cost a forward pass of the split per
            member per epoch (on the H100 with WRN-40-2 about a quarter of an epoch's time).
    """

    train: TrainConfig = _f(TrainConfig(val_per_class=50), "the member setup")
    population: int = _f(16, "population size (members trained together)")
    interval: int = _f(3, "perturbation interval in epochs (exploit and explore every this many)")
    quantile: float = _f(0.25, "fraction of members in the bottom (copying) and top (copied) quantiles")
    engine: str = _f("auto", "how the population trains: auto, grouped (one wide model), vmap (torch.func) or loop "
                                    "(one member after another)")
    eval_every_epoch: bool = _f(False, "evaluate the members on the validation split after every epoch (a learning curve) "
                                       "instead of only before each perturbation and at the end; the search is the same")

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train must be a TrainConfig, but got {type(self.train).__name__}.")
        if _int("population", self.population) < 2:
            raise ValueError(f"population must be an int >= 2 (PBT needs members to copy), but got {self.population!r}.")
        epochs = self.train.epochs
        if not 1 <= _int("interval", self.interval) < epochs:
            raise ValueError(
                f"interval must be an int in [1, epochs) (a perturbation must happen before the run ends, "
                f"epochs = {epochs}), but got {self.interval!r}."
            )
        q = self.quantile
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q <= 0.5:
            raise ValueError(f"quantile must be a number in (0, 0.5], but got {q!r}.")
        object.__setattr__(self, "quantile", float(q))
        if quantile_size(self.population, self.quantile) < 1:  # unreachable for (0, 0.5] and N >= 2; kept as the rule
            raise ValueError(f"quantile must select at least one member of {self.population}, but got {q!r}.")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {list(ENGINES)}, but got {self.engine!r}.")
        t = self.train
        if t.val_per_class < 1:
            raise ValueError(
                "train.val_per_class must be >= 1: members are ranked on the clean validation split, "
                f"never the test set, but got {t.val_per_class!r}."
            )
        if t.augment != "none":
            raise ValueError(f"train.augment must be 'none' (the search applies PBA's policies itself), but got {t.augment!r}.")
        if t.learns:
            raise ValueError("train must learn no data component (reweighter='none'), but got "
                             f"reweighter={t.reweighter!r}.")
        if t.optimizer != "sgd":
            raise ValueError(f"train.optimizer must be 'sgd' (PBA's; the population steps it functionally), but got {t.optimizer!r}.")
        if t.compile != "none":
            raise ValueError(f"train.compile must be 'none' for a search (the population engines train the members "
                             f"functionally, uncompiled), but got {t.compile!r}.")
        if t.precision not in AUTOCAST_DTYPES:
            raise ValueError(f"train.precision must be one of {list(AUTOCAST_DTYPES)} for a search, but got {t.precision!r}.")

    @property
    def num_perturbations(self) -> int:
        """How many exploit-and-explore steps the search makes."""
        return (self.train.epochs - 1) // self.interval

    def evaluates_after(self, epoch: int) -> bool:
        """Whether the members are ranked on the validation split once ``epoch`` epochs are done."""
        return self.eval_every_epoch or self.perturbs_after(epoch) or epoch == self.train.epochs

    def perturbs_after(self, epoch: int) -> bool:
        """Whether the population is perturbed once ``epoch`` epochs are done (1-based count)."""
        return epoch % self.interval == 0 and epoch < self.train.epochs

    @classmethod
    def _nested(cls) -> dict[str, type[JsonConfig]]:
        return {"train": TrainConfig}
