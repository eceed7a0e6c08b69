"""Studies written as short compositions of :func:`autodata.train.build_run`.

A study is a list of configs that differ in one thing, trained side by side: the noisy-label
study trains one :class:`~autodata.train.TrainConfig` per method string (``ce``, ``mwn``,
``l2rw``, ``clean``, ``mwn-last2``...), every run with the same data, model, schedule and
seed; the augmentation study trains one per policy file. :func:`evaluate` is the accuracy
helper for a user's own loop.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from autodata.train import Run, TrainConfig, build_run, parse_method

__all__ = ["evaluate", "study", "noisy_label_study", "policy_study"]

EpochLog = Callable[[str, dict[str, Any]], None]


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
    """Top-1 accuracy in percent of ``model`` (in eval mode) over ``batches``."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += int(y.numel())
    model.train(was_training)
    if total == 0:
        raise ValueError("evaluate() got no samples: the test loader is empty.")
    return 100.0 * correct / total


def _result(name: str, run: Run) -> dict[str, Any]:
    curve = [r["test_accuracy"] for r in run.history]
    return {
        "name": name,
        "best": max(curve),
        "final": curve[-1],
        "curve": curve,
        "seconds": sum(r["train_seconds"] + r["eval_seconds"] for r in run.history),
        "realised_noise_rate": None if run.data.noise is None else run.data.noise.noise_rate,
        "n_train": len(run.data.train),
        "n_meta": 0 if run.data.meta is None else len(run.data.meta),
        "config": run.config.to_dict(),
    }


def study(configs: dict[str, TrainConfig], log: EpochLog | None = None) -> list[dict[str, Any]]:
    """Train each named config to the end, one after the other; a summary dict per run."""
    results = []
    for name, config in configs.items():
        run = build_run(config)
        while not run.finished:
            record = run.run_epoch()
            if log is not None:
                log(name, record)
        results.append(_result(name, run))
    return results


def noisy_label_study(base: TrainConfig, methods: Sequence[str], log: EpochLog | None = None) -> list[dict[str, Any]]:
    """Meta-Weight-Net's comparison (Shu et al. 2019, Sec. 4.2): one run per method string.

    ``base`` sets the data, noise, model and schedule; each method string sets the
    reweighter, hypergradient method and period (:func:`autodata.train.parse_method`);
    ``clean`` trains on the true labels of the same images (the ceiling).
    """
    return study({m: base.replace(**parse_method(m)) for m in methods}, log)


def policy_study(base: TrainConfig, policies: dict[str, str], log: EpochLog | None = None) -> list[dict[str, Any]]:
    """One run per policy file (``name -> path``), all else equal."""
    return study({name: base.replace(augment="policy", policy=path) for name, path in policies.items()}, log)
