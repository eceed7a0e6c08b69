"""PBA's search through Ray Tune's ``PopulationBasedTraining`` (``pip install 'autodata[ray]'``).

The same search as :class:`autodata.pba.PBASearch`, run as PBA's authors ran it (Ho et al., ICML
2019, ``pba/search.py``): each member is a Ray trial, a function trainable that drives one
:func:`autodata.train.build_run` run epoch by epoch with the member's PBA policy
(:meth:`Run.set_policy`), reports its clean validation accuracy, and checkpoints through Ray's
``Checkpoint`` (the run's exact state plus the member's lineage) at every perturbation point.
``PopulationBasedTraining`` (truncation with ``quantile_fraction``, ``perturbation_interval``
in epochs, ``synch=True``) copies the checkpoint and config of a top trial into a bottom one
and calls PBA's explore (:func:`autodata.schedules.explore`) as ``custom_explore_fn``. The best
trial's lineage is written in the same schedule format as the in-process search.

Ray is imported only when a search runs. Ray's PBT draws its choices from Python's ``random``
module, so a Ray search is not bit-reproducible; :class:`autodata.pba.PBASearch` is.

Example (not run here: it starts a local Ray instance)::

    from autodata.pba import PBASearchConfig
    from autodata.train import TrainConfig
    config = PBASearchConfig(TrainConfig(dataset="digits", val_per_class=10, epochs=6), population=4)
    result = ray_search_schedule(config, "digits_schedule.json")
"""
from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from autodata._imports import require
from autodata.pba.config import PBASearchConfig
from autodata.pba.search import PBAResult
from autodata.schedules import PBAPolicy, PiecewiseSchedule, explore
from autodata.train import build_run, derive_seed

__all__ = ["pba_explore", "pba_trainable", "ray_search_schedule"]

METRIC = "val_accuracy"
MEMBER_FILE = "member.pt"


def pba_explore(config: dict[str, Any]) -> dict[str, Any]:
    """Ray's ``custom_explore_fn``: PBA's explore of ``config["hp_policy"]`` (60 levels).

    Draws come from Python's ``random`` module, the source Ray's PBT itself uses.

    Example:
        >>> random.seed(0)
        >>> new = pba_explore({"hp_policy": [0] * 60, "member": 3})
        >>> len(new["hp_policy"]), new["member"], max(new["hp_policy"]) <= 10
        (60, 3, True)
    """
    generator = torch.Generator().manual_seed(random.getrandbits(63))
    policy = explore(PBAPolicy(tuple(config["hp_policy"])), generator)
    return {**config, "hp_policy": list(policy.levels)}


def _member_config(search: PBASearchConfig, member: int) -> Any:
    """Member ``member``'s TrainConfig: the search's, with the member's own seed."""
    return search.train.replace(seed=derive_seed(search.train.seed, f"ray_pba_member_{member}"))


def pba_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one PBA member (``config``: ``search``, ``member``, ``hp_policy``)."""
    tune = require("ray.tune", extra="ray", purpose="the Ray PBA search")
    search = PBASearchConfig.from_dict(config["search"])
    run = build_run(_member_config(search, int(config["member"])))
    lineage: list[list[int]] = []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a restart, or PBT's exploit: the (copied) member's exact state
        with checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, MEMBER_FILE), map_location=run.device, weights_only=True)
        run.load_state_dict(state["run"], source="the Ray checkpoint")
        lineage = [list(p) for p in state["lineage"]]
    policy = PBAPolicy(tuple(config["hp_policy"]))
    while not run.finished:
        run.set_policy(policy)
        record = run.train_epoch()
        lineage.append(list(policy.levels))
        metrics = {METRIC: run.evaluate("val")["accuracy"], "epoch": run.epoch, "train_loss": record["train_loss"]}
        if run.epoch % search.interval == 0 or run.finished:
            with tempfile.TemporaryDirectory() as directory:
                torch.save({"run": run.state_dict(), "lineage": lineage}, os.path.join(directory, MEMBER_FILE))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        else:
            tune.report(metrics)


def ray_search_schedule(
    config: PBASearchConfig,
    out: str | os.PathLike[str],
    storage_path: str | os.PathLike[str] | None = None,
    name: str = "pba_search",
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    log: Callable[[dict[str, Any]], None] | None = None,
) -> PBAResult:
    """Run (or resume) a PBA search as Ray Tune trials and write the best member's schedule to ``out``.

    Args:
        config: the search (the same :class:`PBASearchConfig` as the in-process search; its
            ``engine`` is not used: each trial trains one model).
        out: the schedule file (written atomically).
        storage_path: Ray's experiment directory (default ``<out>.ray``); an interrupted
            experiment there is restored (``Tuner.restore``).
        name: the experiment name.
        cpus_per_trial, gpus_per_trial: Ray resources of one member (PBA: 2 CPUs, 0.15 GPU).
        log: called with every reported result (the trial's ``epoch``, ``val_accuracy``...).

    Returns:
        A :class:`~autodata.pba.PBAResult` (``history`` holds the best trial's reports).
    """
    ray = require("ray", extra="ray", purpose="the Ray PBA search")
    tune = require("ray.tune", extra="ray", purpose="the Ray PBA search")
    schedulers = require("ray.tune.schedulers", extra="ray", purpose="the Ray PBA search")
    if not isinstance(config, PBASearchConfig):
        raise TypeError(f"config must be a PBASearchConfig, but got {type(config).__name__}.")
    storage = os.path.abspath(os.fspath(out) + ".ray" if storage_path is None else os.fspath(storage_path))
    pbt = schedulers.PopulationBasedTraining(
        time_attr="training_iteration", metric=METRIC, mode="max", perturbation_interval=config.interval,
        quantile_fraction=config.quantile, custom_explore_fn=pba_explore, synch=True,
    )
    trainable = tune.with_resources(pba_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    callbacks = [_LogCallback(tune, log)] if log is not None else []
    run_config = tune.RunConfig(name=name, storage_path=storage, verbose=0, callbacks=callbacks,
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    experiment = os.path.join(storage, name)
    if tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True, param_space=None)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"search": config.to_dict(), "member": tune.grid_search(list(range(config.population))),
                         "hp_policy": list(PBAPolicy.zeros().levels)},
            tune_config=tune.TuneConfig(scheduler=pbt, num_samples=1, reuse_actors=False),
            run_config=run_config,
        )
    results = tuner.fit()
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} Ray trial(s) failed; the first: {errors[0]!r}")
    finals = [(r.metrics[METRIC], -i, i, r) for i, r in enumerate(results)]
    _, _, best, best_result = max(finals, key=lambda t: t[:2])
    with best_result.checkpoint.as_directory() as directory:
        state = torch.load(os.path.join(directory, MEMBER_FILE), map_location="cpu", weights_only=True)
    t = config.train
    schedule = PiecewiseSchedule.from_per_epoch(
        [PBAPolicy(tuple(p)) for p in state["lineage"]], name=f"pba_searched_{t.dataset}",
        description=(f"autodata PBA search through Ray Tune PBT: {t.dataset} n_train={t.n_train} "
                     f"val_per_class={t.val_per_class}, {t.model}, {t.epochs} epochs, population {config.population}, "
                     f"interval {config.interval}; best trial val accuracy {best_result.metrics[METRIC]:.2f}%"),
    )
    schedule.save(out)
    history = best_result.metrics_dataframe.to_dict("records") if best_result.metrics_dataframe is not None else []
    return PBAResult(
        schedule, best, [float(r.metrics[METRIC]) for r in results],
        [PBAPolicy(tuple(r.config["hp_policy"])) for r in results], history,
    )


class _LogCallback:
    """Forwards every trial result to ``log`` (built lazily: Ray's Callback class is Ray's)."""

    def __new__(cls, tune: Any, log: Callable[[dict[str, Any]], None]) -> Any:
        class _Forward(tune.Callback):  # type: ignore[misc, name-defined]
            def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
                log({"epoch": result.get("epoch"), "val_accuracy": [result.get(METRIC, float("nan"))],
                     "copies": {}, "trial": trial.trial_id})

        return _Forward()
