"""Search an augmentation policy on the user's own data: a training set, a separate clean
validation set, any model.

The validation set is what the policy is steered towards (DADA, Li et al. 2020, Alg. 1): each
step trains the model on the policy's draw of a training batch and moves the policy by the
hypergradient of the validation loss after the one-step look-ahead. The discrete choices learn
by RELAX (:mod:`autodata.augment.estimators`) through :class:`~autodata.MetaLearner`, which hands the policy per-sample rewards.

Defaults (measured on the known-answer tasks, ``experiments/known_answer.py``):

* ``estimator="relax"``: the straight-through gate ranks the right op low (it measures a blend,
  not "apply or not"); RELAX and REINFORCE find it (RELAX's control variate lowers the spread).
* ``meta_lr=0.05``: with Adam, DADA's 5e-3 moves a logit by at most 5e-3 a step, about 1 in
  200 steps, less than a CPU-sized search has.
* ``method="fd"`` (first order, two extra forwards), ``lr=0.05`` for the look-ahead's model:
  the look-ahead takes the real SGD step, so ``lr`` is its step size. At 0.2 the look-ahead
  turns short-sighted (Rotate and Solarize lost on some seeds); 0.01 ranks as well as 0.05 but
  its policies retrain no better (BENCHMARKS.md, "The look-ahead's step size").
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from autodata.augment import DifferentiablePolicy, Policy
from autodata.bilevel import MetaLearner

__all__ = ["SearchResult", "as_batches", "search_augmentation"]

Data = "tuple[Tensor, Tensor] | torch.utils.data.Dataset | Iterable[tuple[Tensor, Tensor]]"


def as_batches(data: Any, batch_size: int, generator: torch.Generator, what: str) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled ``(x, y)`` batches from tensors ``(x, y)``, a map-style dataset or a loader.

    Tensors ``x`` are float images in ``[0, 1]`` (uint8 are scaled), shape ``(N, C, H, W)``.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        if x.dtype == torch.uint8:
            x = x.float() / 255
        if x.ndim != 4 or y.shape != (x.shape[0],) or x.shape[0] == 0:
            raise ValueError(f"{what} must be (x, y) with x of shape (N, C, H, W) and y of shape (N,), but got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}.")
        while True:
            order = torch.randperm(x.shape[0], generator=generator)
            for i in range(0, x.shape[0] - batch_size + 1 if x.shape[0] >= batch_size else 1, batch_size):
                idx = order[i : i + batch_size]
                yield x[idx], y[idx]
    elif isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=len(data) > batch_size,
                                             generator=generator)
        yield from as_batches(loader, batch_size, generator, what)
    elif isinstance(data, Iterable):
        while True:
            empty = True
            for batch in data:
                empty = False
                x, y = batch[0], batch[1]
                yield (x.float() / 255 if x.dtype == torch.uint8 else x), y
            if empty:
                raise ValueError(f"{what} yields no batch.")
    else:
        raise TypeError(f"{what} must be (x, y) tensors, a Dataset or an iterable of (x, y) batches, but got "
                        f"{type(data).__name__}.")


@dataclass(frozen=True)
class SearchResult:
    """A search's learned module, its export and its trace.

    Attributes:
        policy: the top sub-policies by expected application (weight x mean probability), with
            their learned probabilities, magnitudes and signs (``OpConfig.sign_probability``).
        module: the learned :class:`~autodata.augment.DifferentiablePolicy`.
        ranking: each op with its expected application, largest first.
        history: ``(step, op ranking)`` every ``log_every`` steps.
        seconds: wall time of the search.
    """

    policy: Policy
    module: DifferentiablePolicy
    ranking: list[tuple[str, float]]
    history: list[tuple[int, list[tuple[str, float]]]]
    seconds: float


def search_augmentation(
    train: Any,
    val: Any,
    model: nn.Module,
    *,
    ops: Sequence[str] | None = None,
    ops_per_sub_policy: int = 2,
    sub_policies: Sequence[Sequence[str]] | None = None,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    method: str = "fd",
    estimator: str = "relax",
    meta_lr: float = 0.05,
    temperature: float = 0.5,
    keep: int = 25,
    seed: int = 0,
    log_every: int = 0,
) -> SearchResult:
    """Learn a policy that makes ``model``, trained on ``train``, do well on ``val``.

    Args:
        train: training data: ``(x, y)`` tensors (images ``(N, C, H, W)`` in ``[0, 1]`` or
            uint8), a map-style ``Dataset`` of ``(x, y)``, or an iterable of batches (a
            ``DataLoader``).
        val: the clean validation data (same forms), separate from ``train``.
        model: any classifier of the images (trained in place during the search).
        ops: the op subset (default AutoAugment's 15); or give ``sub_policies``, not both.
        ops_per_sub_policy: ops per sub-policy: ``len(ops)! / (len(ops) - J)!`` sub-policies.
        sub_policies: explicit sub-policies instead of ``ops``.
        steps: meta steps (one model step each).
        batch_size: training and validation batch size.
        lr: the model's SGD learning rate (the look-ahead's step).
        momentum: SGD momentum.
        method: hypergradient method (``fd``, ``exact``, ``last``).
        estimator: of the discrete choices (``relax``, ``reinforce``, ``straight_through``).
        meta_lr: the policy's Adam learning rate.
        temperature: the relaxation temperature.
        keep: sub-policies kept in the exported policy.
        seed: seeds the batches, the draws and the policy.
        log_every: record the op ranking every this many steps (0: never).

    Returns:
        A :class:`SearchResult`.

    Example:
        >>> x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 3, (64,))
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> result = search_augmentation((x, y), (1 - x, y), net, ops=("Invert", "Rotate"), steps=2, batch_size=16)
        >>> [name for name, _ in result.ranking]  # doctest: +SKIP
        ['Invert', 'Rotate']
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, but got {steps!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an int >= 2, but got {batch_size!r}.")
    if keep < 1:
        raise ValueError(f"keep must be >= 1, but got {keep}.")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, but got {type(model).__name__}.")
    start = time.perf_counter()
    device = next(model.parameters()).device
    policy = DifferentiablePolicy(sub_policies, ops=ops,
                                  ops_per_sub_policy=ops_per_sub_policy, estimator=estimator, meta_lr=meta_lr,
                                  temperature=temperature, seed=seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    learner = MetaLearner(model, optimizer, augment=policy, method=method, seed=seed)
    g_train, g_val = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    batches, meta = as_batches(train, batch_size, g_train, "train"), as_batches(val, batch_size, g_val, "val")
    history = []
    model.train()
    for step in range(steps):
        (x, y), (xm, ym) = next(batches), next(meta)
        loss = learner.step(x.to(device), y.to(device), xm.to(device), ym.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if log_every and (step + 1) % log_every == 0:
            history.append((step + 1, policy.op_ranking()))
    exported = policy.to_policy("searched", f"search_augmentation: {steps} steps, estimator {estimator}, "
                                            f"meta_lr {meta_lr}, method {method}, seed {seed}")
    from autodata.search.dada import top_k

    return SearchResult(top_k(exported, keep), policy, policy.op_ranking(), history, time.perf_counter() - start)
