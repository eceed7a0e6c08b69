"""``build_run(config) -> Run``: a training run that is stepped epoch by epoch.

A :class:`Run` is the plain loop of quick start 1 (``loss = learner.step(x, y)``, backward,
optimizer step, scheduler step per epoch) cut at epoch boundaries, so that whatever drives it
(the command line, resume, a PBA population, an Optuna trial) can look at it, change its
augmentation, save it and load it between epochs::

    run = build_run(TrainConfig(reweighter="mwn", meta_per_class=10, epochs=3))
    while not run.finished:
        record = run.run_epoch()          # train one epoch, evaluate, record
    torch.save(run.state_dict(), "last.pt")

Randomness: every draw comes from a generator seeded from the config's seed (model
initialisation, loader order, crop and flip, augmentations, dropout), and the global random
state of the caller is left as it was. Two runs of one config in one process give identical
results, and a run loaded from :meth:`Run.state_dict` continues bit for bit on the CPU.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodata.augment import DifferentiablePolicy, Policy, PolicyAugment, load_policy, policy_from_dict, policy_to_dict
from autodata.augment.ops import AUTOAUGMENT_OPS
from autodata.bilevel import MetaLearner
from autodata.models import create_model, with_normalization
from autodata.train.config import TrainConfig
from autodata.train.data import RunData, build_data, derive_seed

__all__ = ["Run", "build_run"]

StepCallback = Callable[[int, int, Tensor], None]

STATE_FORMAT = "autodata.run"
STATE_VERSION = 1


def _build_model(config: TrainConfig, data: RunData) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # initialisation from the run's seed, not the caller's state
        torch.manual_seed(derive_seed(config.seed, "model"))
        net = create_model(config.model, in_channels=data.in_channels, num_classes=data.num_classes)
    model = with_normalization(net, data.normalization.mean, data.normalization.std)
    device = torch.device(config.device)
    memory_format = torch.channels_last if device.type == "cuda" else torch.preserve_format
    return model.to(device, memory_format=memory_format)


def _build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        nesterov = config.nesterov and config.momentum > 0
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=nesterov, weight_decay=config.weight_decay)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def _lr_factor(config: TrainConfig, epoch: int) -> float:
    """The factor of ``config.lr`` in ``epoch``: ``lr_at(epoch) / lr``."""
    return config.lr_at(epoch) / config.lr


def _build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch schedule of :meth:`TrainConfig.lr_at`.

    Without a warm-up, PyTorch's own schedulers (the state in checkpoints saved before the
    warm-up existed); with one, a ``LambdaLR`` of ``lr_at``. Its factor is a ``partial`` of a
    module function, not a lambda, so the run pickles as one without a warm-up does; its
    ``__dict__`` is empty, so a checkpoint holds only the epoch count, never the config.
    """
    if config.warmup_epochs:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(_lr_factor, config))
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _read_augment_file(config: TrainConfig) -> Any:
    """The run's policy (``augment="policy"``) or schedule (``"schedule"``) file, read once; else ``None``."""
    if config.augment == "policy":
        return load_policy(config.policy)
    if config.augment == "schedule":
        return _load_schedule(config)
    return None


def _build_augment(config: TrainConfig, data: RunData, source: Any) -> nn.Module | None:
    """The augmentation module; ``source`` is what :func:`_read_augment_file` read."""
    if config.augment == "policy":
        return PolicyAugment(source)
    if config.augment == "learned":
        ops = config.policy_ops or AUTOAUGMENT_OPS
        policy = DifferentiablePolicy(
            ops=ops, temperature=config.policy_temperature, meta_lr=config.policy_lr, estimator=config.policy_estimator,
            seed=derive_seed(config.seed, "policy"),
        )
        return policy.to(torch.device(config.device))
    if config.augment == "schedule":
        return _augment_for(source.policy_at(0), data)
    return None


def _load_schedule(config: TrainConfig) -> Any:
    """The schedule file of ``config``, stretched to its epochs when its length differs (as PBA does)."""
    from autodata.schedules import PiecewiseSchedule

    from autodata.augment.shipped import resolve_policy_path

    schedule = PiecewiseSchedule.load(resolve_policy_path(config.policy))
    return schedule if schedule.num_epochs == config.epochs else schedule.stretched(config.epochs)


def _augment_for(policy: Any, data: RunData) -> nn.Module:
    """The module that applies a fixed policy: an autodata Policy or a PBA policy.

    PBA fills uncovered pixels with 0 in normalised space, which is the dataset's mean; its
    crop pad (4 px) and Cutout (16 px) are CIFAR's 32 px sizes, scaled to the data's images.
    """
    if isinstance(policy, Policy):
        return PolicyAugment(policy)
    from autodata.schedules import PBAAugment, PBAPolicy, pba_sizes

    if isinstance(policy, PBAPolicy):
        return PBAAugment(policy, fill=data.normalization.mean, **pba_sizes(int(data.train.images.shape[-1])))
    if isinstance(policy, nn.Module) and hasattr(policy, "sample"):
        return policy
    raise TypeError(f"policy must be a Policy, a PBAPolicy or an augmentation module, but got {type(policy).__name__}.")


def _build_reweighter(config: TrainConfig) -> nn.Module | None:
    if config.reweighter == "none":
        return None
    from autodata.reweight import REWEIGHTERS

    cls = REWEIGHTERS[config.reweighter]
    options = {
        "mwn": dict(hidden=config.reweighter_hidden, meta_lr=config.reweighter_lr, floor=config.reweighter_floor,
                    center=config.reweighter_center if config.reweighter_floor == 0 else "off"),
        "l2rw": dict(max_step_ratio=config.reweighter_max_step_ratio or None),  # 0: unbounded
    }.get(config.reweighter, {})  # a reweighter without options of its own builds with none
    with torch.random.fork_rng(devices=[]):  # initialisation from the run's seed, not the caller's state
        torch.manual_seed(derive_seed(config.seed, "reweighter"))
        reweighter = cls(**options)
    return reweighter.to(torch.device(config.device))


def _compiled(config: TrainConfig, model: nn.Module) -> nn.Module:
    """The module the training steps call: ``model`` itself, or ``torch.compile(model, mode=config.compile)``.

    The run keeps the plain ``model`` (its state dict, evaluation, checkpoints); the compiled
    wrapper shares its parameters and buffers, and the learner replays on the plain module.
    """
    return model if config.compile == "none" else torch.compile(model, mode=config.compile)


def build_run(config: TrainConfig, data: RunData | None = None) -> Run:
    """Build the run that ``config`` describes: files are checked first, then data is read.

    Args:
        config: the run's settings.
        data: already-built data of this config (shared between runs of one study).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, but got {type(config).__name__}.")
    source = _read_augment_file(config)  # a bad policy or schedule file fails before any data is read
    data = data if data is not None else build_data(config)
    augment = _build_augment(config, data, source)
    model = _build_model(config, data)
    optimizer = _build_optimizer(config, model)
    scheduler = _build_scheduler(config, optimizer)
    learner = MetaLearner(
        _compiled(config, model), optimizer, reweighter=_build_reweighter(config), augment=augment,
        meta_data=data.meta_loader, method=config.method, every=config.every,
        scale_meta_lr=config.scale_meta_lr, guard=config.guard,
        seed=derive_seed(config.seed, "augment"),
    )
    return Run(config, data, model, optimizer, scheduler, learner, schedule=source if config.augment == "schedule" else None)


def _policy_state(policy: Any) -> dict[str, Any] | None:
    if policy is None:
        return None
    if isinstance(policy, Policy):
        return {"kind": "policy", "policy": policy_to_dict(policy)}
    return {"kind": "pba", "policy": policy.to_dict()}


def _policy_from_state(state: dict[str, Any], source: str) -> Any:
    if state["kind"] == "policy":
        return policy_from_dict(state["policy"], source)
    from autodata.schedules import PBAPolicy

    return PBAPolicy.from_dict(state["policy"], source)


class Run:
    """One training run, stepped epoch by epoch (build it with :func:`build_run`).

    Attributes:
        config: its :class:`TrainConfig`.
        data: its :class:`~autodata.train.data.RunData` (splits and loaders).
        model, optimizer, scheduler: the plain PyTorch objects, free to inspect.
        learner: the :class:`~autodata.MetaLearner` that gives each step's loss.
        epoch: epochs completed.
        history: one metrics record (a dict) per completed epoch.
        schedule: the schedule whose policy each epoch trains with (``augment="schedule"``), else ``None``.
    """

    def __init__(
        self,
        config: TrainConfig,
        data: RunData,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        learner: MetaLearner,
        *,
        schedule: Any = None,
    ) -> None:
        self.config = config
        self.data = data
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.learner = learner
        self.device = torch.device(config.device)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self._fixed_policy: Policy | None = None
        self._rng = self._initial_rng()
        if isinstance(learner.augment, PolicyAugment):
            self._fixed_policy = learner.augment.policy
        self.schedule = schedule  # the policy of each epoch, for augment="schedule"

    # ------------------------------------------------------------------ randomness
    def _initial_rng(self) -> dict[str, Tensor | None]:
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(derive_seed(self.config.seed, "torch"))
            return self._capture_rng()

    def _cuda_devices(self) -> list[int]:
        if self.device.type != "cuda":
            return []
        return [self.device.index if self.device.index is not None else torch.cuda.current_device()]

    def _capture_rng(self) -> dict[str, Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """The run's own global random stream (dropout), the caller's restored afterwards."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.set_rng_state(self._rng["cpu"])
            if self._rng["cuda"] is not None:
                torch.cuda.set_rng_state(self._rng["cuda"], self.device)
            try:
                yield
            finally:
                self._rng = self._capture_rng()

    # ------------------------------------------------------------------ the epoch
    @property
    def finished(self) -> bool:
        """Whether all ``config.epochs`` epochs are done."""
        return self.epoch >= self.config.epochs

    def set_policy(self, policy: Any) -> None:
        """Train the next epochs with another fixed augmentation (PBA swaps policies between epochs).

        Args:
            policy: a :class:`~autodata.augment.Policy`, a :class:`~autodata.schedules.PBAPolicy`
                or an augmentation module with ``sample(batch_size, generator)`` and
                ``forward(x, params)``. A policy (not a module) is saved with the run's state.
        """
        if self.config.augment == "learned":
            raise ValueError("set_policy() needs a run with a fixed augmentation, but this run learns its policy (augment='learned').")
        module = _augment_for(policy, self.data)
        self._fixed_policy = None if module is policy else policy
        self.learner.augment = module

    def train_epoch(self, on_step: StepCallback | None = None) -> dict[str, Any]:
        """Train one epoch; returns its training metrics (the epoch is counted as done).

        Args:
            on_step: called after each optimizer step with ``(step, steps, loss)``: the step's
                index in the epoch, the epoch's number of steps and the detached loss tensor
                (progress bars; reading it with ``float`` syncs a GPU, so do it sparingly).
        """
        if self.finished:
            raise ValueError(f"the run is finished ({self.epoch} of {self.config.epochs} epochs); nothing to train.")
        if self.schedule is not None:
            self.set_policy(self.schedule.policy_at(self.epoch))
        self.model.train()
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        meta_losses: list[float] = []
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")
        steps = len(self.data.train_loader)
        with self._own_rng():
            for step, (x, y) in enumerate(self.data.train_loader):
                with autocast:
                    loss = self.learner.step(x, y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.detach().double() * y.shape[0]
                count += int(y.shape[0])
                info = self.learner.last
                if info is not None and info.meta_updated and math.isfinite(info.meta_loss):
                    meta_losses.append(info.meta_loss)
                if on_step is not None:
                    on_step(step, steps, loss.detach())
        self.scheduler.step()
        self.epoch += 1
        return {
            "epoch": self.epoch,
            "train_loss": float(total) / max(count, 1),
            "meta_loss": sum(meta_losses) / len(meta_losses) if meta_losses else None,
            "lr": lr,
            "train_seconds": time.perf_counter() - start,
        }

    @torch.no_grad()
    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Accuracy (%) and mean cross-entropy of the model, in eval mode, on ``split``.

        Args:
            split: ``"test"``, ``"val"`` (the clean validation split) or ``"meta"``.
        """
        loaders = {"test": self.data.test_loader, "val": self.data.val_loader, "meta": self.data.meta_loader}
        if split not in loaders:
            raise ValueError(f"split must be one of {sorted(loaders)}, but got {split!r}.")
        loader = loaders[split]
        if loader is None:
            raise ValueError(f"this run has no {split} split; set {split}_per_class in the config.")
        was_training = self.model.training
        self.model.eval()
        correct, loss, total = 0, 0.0, 0
        for x, y in loader:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
                logits = self.model(x)
            correct += int((logits.argmax(dim=1) == y).sum())
            loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            total += int(y.numel())
        self.model.train(was_training)
        return {"accuracy": 100.0 * correct / total, "loss": loss / total}

    def run_epoch(self, on_step: StepCallback | None = None) -> dict[str, Any]:
        """Train one epoch, evaluate on the test (and validation) split, record and return the metrics."""
        record = self.train_epoch(on_step)
        start = time.perf_counter()
        for split in ("val", "test"):
            if (self.data.val_loader if split == "val" else self.data.test_loader) is not None:
                result = self.evaluate(split)
                record[f"{split}_accuracy"], record[f"{split}_loss"] = result["accuracy"], result["loss"]
        record["eval_seconds"] = time.perf_counter() - start
        self.history.append(record)
        return record

    def fit(self) -> list[dict[str, Any]]:
        """Run the remaining epochs; returns the whole history."""
        while not self.finished:
            self.run_epoch()
        return self.history

    # ------------------------------------------------------------------ results
    def policy(self) -> Policy | None:
        """The augmentation policy now in use (a learned one exported), ``None`` without one."""
        augment = self.learner.augment
        if isinstance(augment, DifferentiablePolicy):
            return augment.to_policy(name=f"learned_{self.config.dataset}", description="learned by autodata (DADA-style search)")
        return self._fixed_policy

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit; loadable with ``torch.load(weights_only=True)``."""
        policy = self._fixed_policy if self.config.augment != "learned" else None
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "history": [dict(r) for r in self.history],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "learner": self.learner.state_dict(),
            "train_loader": self.data.train_loader.state_dict(),
            "rng": dict(self._rng),
            "policy": _policy_state(policy),
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Continue from a :meth:`state_dict` of a run of the same config."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"{source} must be an autodata run checkpoint (format {STATE_FORMAT!r}), but it is not.")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{source} has checkpoint version {state.get('version')!r}; this autodata reads version {STATE_VERSION}.")
        mine = self.config.to_dict()
        # a field added since the checkpoint was saved had the value it meant then (as when a config.json is loaded)
        theirs = {**state["config"], **TrainConfig.absent_fields(state["config"])}
        differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if differing:
            raise ValueError(
                f"{source} was saved by a run with another config (fields {differing} differ); "
                f"resume it with its own config.json, or start a new run."
            )
        self.epoch = int(state["epoch"])
        self.history = [dict(r) for r in state["history"]]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.learner.load_state_dict(state["learner"])
        self.data.train_loader.load_state_dict(state["train_loader"])
        self._rng = {"cpu": state["rng"]["cpu"], "cuda": state["rng"]["cuda"]}
        if state["policy"] is not None:
            self.set_policy(_policy_from_state(state["policy"], source))
