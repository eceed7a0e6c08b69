"""Differentiable augmentation policy search (DADA: Li et al., ECCV 2020, Sec. 3 and Alg. 1).

The search space is :class:`~autodata.augment.DifferentiablePolicy`: sub-policies of two ops,
each op with a learnable probability (relaxed Bernoulli) and magnitude, and a learnable weight
per sub-policy (Gumbel-softmax). The search is a training run with ``augment="learned"``
(:func:`autodata.train.build_run`): each step trains the model on policy-augmented images and
updates the policy on the clean meta split through the one-step look-ahead of the real
optimizer (``method="fd"`` is DADA's and DARTS's finite-difference approximation). With
``reweighter="mwn"`` a Meta-Weight-Net is learned jointly, in the same bilevel step.

Standard setting of the anchors (AutoAugment, DADA, PBA), :func:`search_config`: reduced
CIFAR-10 (4,000 training images, half of them the clean meta split that steers the policy),
WRN-40-2, 20 epochs. The result exports the ``top_k`` sub-policies by weight (DADA keeps 25)
as a :class:`~autodata.augment.Policy`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autodata.augment import Policy
from autodata.train import TrainConfig, build_run

__all__ = ["PolicySearchResult", "cpu_search_config", "search_config", "search_policy", "top_k"]

CPU_OPS = ("Rotate", "ShearX", "Contrast", "Brightness", "Posterize", "Cutout")


def search_config(**fields: Any) -> TrainConfig:
    """The anchors' setting (reduced CIFAR-10, WRN-40-2, 20 epochs), with ``fields`` on top."""
    settings: dict[str, Any] = dict(
        dataset="cifar10", n_train=4000, meta_per_class=200, model="wrn_40_2", epochs=20, batch_size=128,
        meta_batch_size=128, lr=0.1, weight_decay=2e-4, augment="learned", method="fd", crop_padding=4, flip=True,
    )
    return TrainConfig(**{**settings, **fields})


def cpu_search_config(**fields: Any) -> TrainConfig:
    """A CPU-sized search on scikit-learn's bundled digits: seconds, no files needed."""
    settings: dict[str, Any] = dict(
        dataset="digits", n_train=600, meta_per_class=30, model="small_cnn", epochs=2, batch_size=100,
        meta_batch_size=100, augment="learned", method="fd", policy_ops=CPU_OPS, crop_padding=1,
    )
    return TrainConfig(**{**settings, **fields})


@dataclass(frozen=True)
class PolicySearchResult:
    """The exported policy, the run's per-epoch records and the search's cost."""

    policy: Policy
    history: list[dict[str, Any]]
    seconds: float
    config: TrainConfig
    reweighter_state: dict | None = field(default=None, repr=False)


def top_k(policy: Policy, k: int) -> Policy:
    """The ``k`` sub-policies of largest expected application, weights renormalised.

    A sub-policy's expected application is its weight times the mean probability of its ops:
    how often a sample gets its ops. The weight alone ranks a sub-policy that is picked
    often but applies nothing above one that is always applied.
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1, but got {k}.")
    stage = policy.stages[0]
    weights = stage.probabilities
    score = [w * sum(op.probability for op in sub.ops) / len(sub.ops) for w, sub in zip(weights, stage.sub_policies)]
    order = sorted(range(len(weights)), key=lambda i: -score[i])[:k]
    kept = [weights[i] for i in order]
    total = sum(kept)
    return Policy.single_stage(
        policy.name, [stage.sub_policies[i] for i in order], [w / total for w in kept], policy.description
    )


def search_policy(
    config: TrainConfig,
    *,
    keep: int = 25,
    log: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int, Any], None] | None = None,
) -> PolicySearchResult:
    """Search an augmentation policy: a training run whose policy is learned on the meta split.

    Args:
        config: a run with ``augment="learned"`` (see :func:`search_config`).
        keep: how many sub-policies the exported policy keeps (DADA: 25).
        log: called with each epoch's record.
        on_step: called after each training step (progress bars; see ``Run.train_epoch``).

    Returns:
        The exported policy and the run's history.

    Example:
        >>> result = search_policy(cpu_search_config(epochs=1), keep=5)
        >>> len(result.policy.stages[0].sub_policies)
        5
    """
    if not isinstance(config, TrainConfig) or config.augment != "learned":
        raise ValueError(f"config must be a TrainConfig with augment='learned', but got {config!r:.80}.")
    if keep < 1:
        raise ValueError(f"keep must be >= 1, but got {keep}.")
    start = time.perf_counter()
    run = build_run(config)
    while not run.finished:
        record = run.run_epoch(on_step)
        if log is not None:
            log(record)
    seconds = time.perf_counter() - start
    learned = run.learner.augment
    exported = learned.to_policy(
        name=f"dada_{config.dataset}",
        description=f"DADA-style search by autodata (search_policy) on {config.dataset}, {config.model}, "
                    f"{config.epochs} epochs, method {config.method}, seed {config.seed}; "
                    f"top {keep} of {learned.num_sub_policies} sub-policies by expected application.",
    )
    reweighter = run.learner.reweighter
    state = reweighter.state_dict() if config.reweighter != "none" else None
    return PolicySearchResult(top_k(exported, keep), run.history, seconds, config, state)
