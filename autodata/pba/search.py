"""PBA's search in one process: a population, exploit and explore every few epochs, a schedule.

Population Based Augmentation (Ho, Liang, Stoica, Abbeel and Chen, ICML 2019, Algorithm 1):

1. N members start from PBA's all-zero policy, each with its own model initialisation;
2. each epoch, every member trains on the same batches, augmented by its own
   :class:`~autodata.schedules.PBAAugment` with its own policy and generator, and is ranked by
   its accuracy on the clean validation split (``val_per_class``; never the test set);
3. every ``interval`` epochs (not after the last), the bottom ``quantile`` copies a member of
   the top ``quantile`` (weights, BatchNorm statistics, momentum and policy:
   :func:`~autodata.schedules.exploit`) and perturbs the copied policy
   (:func:`~autodata.schedules.explore`);
4. the result is the best member's *lineage*: the policy it (and, before each copy, the member
   it copied) trained with at every epoch, a :class:`~autodata.schedules.PiecewiseSchedule`
   that ``TrainConfig(augment="schedule", policy=...)`` replays (stretched to any length).

The whole search state (every member's weights and optimizer state, policies, lineages, every
random generator) is checkpointed atomically at each perturbation point, so a search killed
at any moment and started again with the same config continues from its last perturbation
and ends with the same schedule as an uninterrupted one.

Example:
    >>> import tempfile, os
    >>> from autodata.train import TrainConfig
    >>> train = TrainConfig(dataset="digits", n_train=300, val_per_class=5, epochs=2, batch_size=64)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     result = search_schedule(PBASearchConfig(train, population=2, interval=1), os.path.join(d, "s.json"))
    ...     result.schedule.num_epochs
    2
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from autodata._io import torch_save_atomic
from autodata.models import create_model, with_normalization
from autodata.pba.config import PBASearchConfig
from autodata.pba.population import BasePopulation, make_population
from autodata.schedules import PBAAugment, PBAParams, PBAPolicy, PiecewiseSchedule, exploit, explore, pba_sizes
from autodata.train import RunData, build_data, derive_seed

__all__ = ["PBAResult", "PBASearch", "PopulationAugment", "cosine_lr", "search_schedule"]

STATE_FORMAT = "autodata.pba_search"
STATE_VERSION = 1
CHECKPOINT = "search.pt"
CONFIG = "search_config.json"


def cosine_lr(config: Any, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) of a :class:`~autodata.train.TrainConfig`.

    Kept for callers of the public name: it is :meth:`TrainConfig.lr_at
    <autodata.train.TrainConfig.lr_at>` (the warm-up, then cosine annealing or constant, as a
    single run's scheduler sets it), which the search itself calls.
    """
    return config.lr_at(epoch)


class PopulationAugment:
    """Each member's PBA augmentation of one shared batch, applied in one batched call.

    Member ``i`` draws its per-sample parameters with its own policy and generator
    (:meth:`PBAAugment.sample`); the draws are concatenated and one :class:`PBAAugment`
    applies them to the batch repeated N times (applying needs the draws, not the policy).

    Args:
        policies: one :class:`PBAPolicy` per member.
        fill: the colour of uncovered pixels (the dataset's mean, as a run's replay uses).
        seeds: one generator seed per member.
        device: where the generators draw.
        pad: the crop's zero padding in pixels (PBA's 4 on 32 px; a run's replay scales it:
            :func:`~autodata.schedules.pba_sizes`).
        cutout_size: the final Cutout's side (PBA's 16 on 32 px; the same).

    Shape:
        - x: :math:`(B, C, H, W)` in ``[0, 1]``; output: :math:`(N, B, C, H, W)`.
    """

    def __init__(self, policies: list[PBAPolicy], fill: tuple[float, ...], seeds: list[int],
                 device: torch.device | str = "cpu", *, pad: int = 4, cutout_size: int = 16) -> None:
        if len(policies) != len(seeds):
            raise ValueError(f"policies and seeds must have one entry per member, but got {len(policies)} and {len(seeds)}.")
        self.augments = [PBAAugment(p, fill=fill, pad=pad, cutout_size=cutout_size).to(device) for p in policies]
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    @property
    def policies(self) -> list[PBAPolicy]:
        return [a.policy for a in self.augments]

    def set_policy(self, i: int, policy: PBAPolicy) -> None:
        self.augments[i].set_policy(policy)

    def __call__(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        draws = [a.sample(b, g) for a, g in zip(self.augments, self.generators)]
        params = PBAParams(*(torch.cat([getattr(d, f.name) for d in draws]) for f in fields(PBAParams)))
        n = len(draws)
        out = self.augments[0](x.repeat(n, 1, 1, 1), params)  # (N * B, C, H, W)
        return out.view(n, *x.shape)  # (N, B, C, H, W)

    def state_dict(self) -> list[Tensor]:
        return [g.get_state() for g in self.generators]

    def load_state_dict(self, states: list[Tensor]) -> None:
        for g, s in zip(self.generators, states):
            g.set_state(s)


@dataclass(frozen=True)
class PBAResult:
    """What a search found.

    Attributes:
        schedule: the best member's lineage, one segment per policy change.
        best: the best member's index.
        val_accuracy: the last validation accuracy (%) of every member.
        final_policies: every member's policy at the end.
        history: one record per epoch (losses, validation accuracies, perturbations, seconds); its
            ``val_accuracy`` is ``None`` on an epoch without an evaluation
            (:attr:`PBASearchConfig.eval_every_epoch`).
    """

    schedule: PiecewiseSchedule[PBAPolicy]
    best: int
    val_accuracy: list[float]
    final_policies: list[PBAPolicy]
    history: list[dict[str, Any]]


def _build_members(config: PBASearchConfig, data: RunData) -> list[nn.Module]:
    train = config.train
    models = []
    for i in range(config.population):
        with torch.random.fork_rng(devices=[]):  # each member's own initialisation, from the seed
            torch.manual_seed(derive_seed(train.seed, f"pba_model_{i}"))
            net = create_model(train.model, in_channels=data.in_channels, num_classes=data.num_classes)
        models.append(with_normalization(net, data.normalization.mean, data.normalization.std).to(torch.device(train.device)))
    return models


class PBASearch:
    """A PBA search stepped epoch by epoch, checkpointed in ``workdir`` at each perturbation.

    Args:
        config: the search.
        workdir: where ``search.pt`` (the state at the last perturbation point) and
            ``search_config.json`` live; ``None``: no checkpoints. A ``workdir`` holding a
            search of the same config resumes it; of another config, it is an error.
        data: already-built data of ``config.train`` (shared by studies).
        log: called with each epoch's record.
    """

    def __init__(self, config: PBASearchConfig, workdir: str | os.PathLike[str] | None = None,
                 data: RunData | None = None, log: Callable[[dict[str, Any]], None] | None = None) -> None:
        if not isinstance(config, PBASearchConfig):
            raise TypeError(f"config must be a PBASearchConfig, but got {type(config).__name__}.")
        self.config = config
        self.workdir = None if workdir is None else os.fspath(workdir)
        self.log = log
        train = config.train
        self.data = data if data is not None else build_data(train)
        self.device = torch.device(train.device)
        n = config.population
        x, y = next(iter(self.data.val_loader))
        example = (x[:2].unsqueeze(0).expand(n, -1, -1, -1, -1).contiguous(), y[:2])
        self.population: BasePopulation = make_population(_build_members(config, self.data), train, config.engine, example)
        seeds = [derive_seed(train.seed, f"pba_augment_{i}") for i in range(n)]
        self.augment = PopulationAugment([PBAPolicy.zeros()] * n, self.data.normalization.mean, seeds, self.device,
                                         **pba_sizes(int(self.data.train.images.shape[-1])))  # as a run's replay
        self.generator = torch.Generator().manual_seed(derive_seed(train.seed, "pba_search"))  # exploit, explore
        self.epoch = 0
        self.lineage: list[list[PBAPolicy]] = [[] for _ in range(n)]
        self.history: list[dict[str, Any]] = []
        self.val_accuracy: list[float] = [0.0] * n
        if self.workdir is not None:
            self._open_workdir()

    # ------------------------------------------------------------------ the epoch
    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.train.epochs

    def train_epoch(self) -> dict[str, Any]:
        """Train every member one epoch, rank them on the validation split, perturb when due."""
        if self.finished:
            raise ValueError(f"the search is finished ({self.epoch} of {self.config.train.epochs} epochs).")
        train = self.config.train
        start = time.perf_counter()
        lr = train.lr_at(self.epoch)
        n = self.config.population
        total = torch.zeros(n, dtype=torch.float64)
        count = 0
        with torch.random.fork_rng(devices=[self.device.index or 0] if self.device.type == "cuda" else []):
            torch.manual_seed(derive_seed(train.seed, f"pba_epoch_{self.epoch}"))  # dropout, per epoch: resumable
            for x, y in self.data.train_loader:
                xs = self.augment(x)  # (N, B, C, H, W)
                losses = self.population.step(xs, y, lr)  # (N,)
                total += losses.double().cpu() * y.shape[0]
                count += int(y.shape[0])
        for i, policy in enumerate(self.augment.policies):
            self.lineage[i].append(policy)
        self.epoch += 1
        images = count * n
        seconds = time.perf_counter() - start
        evaluated = self.config.evaluates_after(self.epoch)
        if evaluated:  # (only where the ranking is used, unless eval_every_epoch)
            val = self.population.evaluate(self.data.val_loader)  # (N,)
            self.val_accuracy = [float(v) for v in val]
        record: dict[str, Any] = {
            "epoch": self.epoch, "lr": lr, "train_loss": (total / max(count, 1)).tolist(),
            "val_accuracy": list(self.val_accuracy) if evaluated else None, "train_seconds": seconds,
            "images_per_second": images / seconds, "copies": {},
        }
        if self.config.perturbs_after(self.epoch):
            record["copies"] = self._perturb(val)
        self.history.append(record)
        if self.config.perturbs_after(self.epoch) or self.finished:
            self._save()
        if self.log is not None:
            self.log(record)
        return record

    def _perturb(self, scores: Tensor) -> dict[int, int]:
        """Exploit (truncation selection) then explore the copied policies; returns {dst: src}."""
        source = exploit(scores, self.config.quantile, self.generator)  # (N,)
        copies = {int(d): int(s) for d, s in enumerate(source.tolist()) if s >= 0}
        for dst, src in copies.items():
            self.population.copy_member(dst, src)
            self.augment.set_policy(dst, explore(self.augment.policies[src], self.generator))
            self.lineage[dst] = list(self.lineage[src])
        return copies

    def fit(self) -> PBAResult:
        """Run the remaining epochs; returns the result."""
        while not self.finished:
            self.train_epoch()
        return self.result()

    def result(self) -> PBAResult:
        """The best member (last validation accuracy, ties to the lower index) and its lineage."""
        if self.epoch == 0:
            raise ValueError("the search has not trained an epoch yet; nothing to report.")
        best = max(range(self.config.population), key=lambda i: (self.val_accuracy[i], -i))
        t = self.config.train
        schedule = PiecewiseSchedule.from_per_epoch(
            self.lineage[best], name=f"pba_searched_{t.dataset}",
            description=(f"autodata PBA search: {t.dataset} n_train={t.n_train} val_per_class={t.val_per_class}, "
                         f"{t.model}, {t.epochs} epochs, population {self.config.population}, interval "
                         f"{self.config.interval}, seed {t.seed}; member {best}, val accuracy "
                         f"{self.val_accuracy[best]:.2f}%"),
        )
        return PBAResult(schedule, best, list(self.val_accuracy), self.augment.policies, [dict(r) for r in self.history])

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The whole search (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "population": self.population.state_dict(),
            "policies": [list(p.levels) for p in self.augment.policies],
            "lineage": [[list(p.levels) for p in member] for member in self.lineage],
            "val_accuracy": list(self.val_accuracy),
            "history": [_jsonable(r) for r in self.history],
            "augment_generators": self.augment.state_dict(),
            "generator": self.generator.get_state(),
            "train_loader": self.data.train_loader.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"{source} must be an autodata PBA search checkpoint (format {STATE_FORMAT!r}), but it is not.")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{source} has version {state.get('version')!r}; this autodata reads version {STATE_VERSION}.")
        if state["config"] != self.config.to_dict():
            raise ValueError(f"{source} was saved by a search with another config; resume it with its own config.")
        self.epoch = int(state["epoch"])
        self.population.load_state_dict(state["population"])
        for i, levels in enumerate(state["policies"]):
            self.augment.set_policy(i, PBAPolicy(tuple(levels)))
        self.lineage = [[PBAPolicy(tuple(p)) for p in member] for member in state["lineage"]]
        self.val_accuracy = [float(v) for v in state["val_accuracy"]]
        self.history = [_from_jsonable(r) for r in state["history"]]
        self.augment.load_state_dict(state["augment_generators"])
        self.generator.set_state(state["generator"])
        self.data.train_loader.load_state_dict(state["train_loader"])

    def _open_workdir(self) -> None:
        assert self.workdir is not None
        os.makedirs(self.workdir, exist_ok=True)
        config_path = os.path.join(self.workdir, CONFIG)
        if os.path.exists(config_path):
            saved = PBASearchConfig.load(config_path)
            if saved != self.config:
                raise ValueError(
                    f"{self.workdir} holds a search of another config; use another directory, "
                    f"or the same config ({config_path}) to resume it."
                )
        else:
            self.config.save(config_path)
        path = os.path.join(self.workdir, CHECKPOINT)
        if os.path.exists(path):
            self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True), path)

    def _save(self) -> None:
        if self.workdir is not None:
            torch_save_atomic(os.path.join(self.workdir, CHECKPOINT), self.state_dict())


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """A history record with string keys only (``copies`` maps member indices)."""
    out = dict(record)
    out["copies"] = [[d, s] for d, s in record["copies"].items()]
    return out


def _from_jsonable(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    out["copies"] = {int(d): int(s) for d, s in record["copies"]}
    return out


def search_schedule(config: PBASearchConfig, out: str | os.PathLike[str], workdir: str | os.PathLike[str] | None = None,
                    log: Callable[[dict[str, Any]], None] | None = None) -> PBAResult:
    """Run (or resume) a search and write the best member's schedule to ``out`` atomically.

    Args:
        config: the search.
        out: the schedule file (JSON, :meth:`PiecewiseSchedule.save`).
        workdir: the checkpoint directory; default ``<out>.search`` (next to ``out``).
        log: called with each epoch's record.
    """
    workdir = os.fspath(out) + ".search" if workdir is None else workdir
    search = PBASearch(config, workdir, log=log)
    result = search.fit()
    result.schedule.save(out)
    return result
