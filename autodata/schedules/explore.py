"""PBA's explore and exploit steps as pure functions of tensors and a generator.

Population Based Augmentation (Ho et al., ICML 2019, Algorithm 1) runs PBT (Jaderberg et
al., 2017) over a population of augmentation policies. Every few epochs:

* :func:`exploit` (truncation selection, Ray Tune's ``PopulationBasedTraining`` with
  ``quantile_fraction=0.25``): each member in the bottom 25% by score copies the weights and
  policy of a member drawn uniformly from the top 25%.
* :func:`explore` (PBA's ``search.py: explore``): each of the 60 levels is, with
  probability 0.2, resampled uniformly from its whole range (0-10 for probability levels,
  0-9 for magnitude levels); otherwise it moves by an amount drawn uniformly from
  ``{0, 1, 2, 3}``, down or up with probability 1/2 each, and is clipped to the range.

No Ray, no training: both take an explicit ``torch.Generator`` and are deterministic given it.
"""
from __future__ import annotations

import math
from typing import overload

import torch
from torch import Tensor

from autodata.augment._checks import check_generator
from autodata.schedules.pba_policy import MAX_MAGNITUDE_LEVEL, MAX_PROBABILITY_LEVEL, PBAPolicy

RESAMPLE_PROBABILITY = 0.2
MAX_STEP = 3


def level_limits(num_levels: int, device: torch.device | str | None = None) -> Tensor:
    """(num_levels,) long: the largest value of each level, 10 at even and 9 at odd positions."""
    limits = torch.full((num_levels,), MAX_MAGNITUDE_LEVEL, dtype=torch.long, device=device)
    limits[0::2] = MAX_PROBABILITY_LEVEL
    return limits


@overload
def explore(policy_levels: PBAPolicy, generator: torch.Generator) -> PBAPolicy: ...
@overload
def explore(policy_levels: Tensor, generator: torch.Generator) -> Tensor: ...


def explore(policy_levels: PBAPolicy | Tensor, generator: torch.Generator) -> PBAPolicy | Tensor:
    """Perturb policy levels as PBA's ``explore`` does.

    Args:
        policy_levels: a :class:`PBAPolicy`, or integer levels ``(..., L)`` with ``L`` even in
            PBA's layout (probability level at even positions, magnitude level at odd ones),
            e.g. ``(N, 60)`` for a population.
        generator: the random source; the draws happen on its device.

    Returns:
        The same kind as ``policy_levels``: a new :class:`PBAPolicy`, or a long tensor of the
        same shape on the input's device.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> new = explore(PBAPolicy.zeros(), g)
        >>> max(new.probability_levels) <= 10 and max(new.magnitude_levels) <= 9
        True

    Shape:
        - policy_levels: :math:`(..., L)`; output: the same.
    """
    g = check_generator(generator)
    if isinstance(policy_levels, PBAPolicy):
        levels = torch.tensor(policy_levels.levels, dtype=torch.long)
        return PBAPolicy(tuple(explore(levels, g).tolist()))
    if not isinstance(policy_levels, Tensor):
        raise TypeError(f"policy_levels must be a PBAPolicy or a Tensor, but got {type(policy_levels).__name__}.")
    x = policy_levels
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"policy_levels must be an integer tensor, but got dtype {x.dtype}.")
    if x.ndim == 0 or x.shape[-1] % 2 != 0:
        raise ValueError(f"policy_levels must have an even last dimension, but got shape {tuple(x.shape)}.")
    limits = level_limits(x.shape[-1], x.device)  # (L,)
    if x.numel() and not bool(((x >= 0) & (x <= limits)).all()):
        raise ValueError(
            f"policy_levels must lie in [0, 10] at even and [0, 9] at odd positions, but got values in "
            f"[{int(x.min())}, {int(x.max())}]."
        )

    def draw(*shape: int) -> Tensor:
        return torch.rand(shape, generator=g, device=g.device).to(x.device)

    shape = tuple(x.shape)
    u_resample, u_value, u_amount, u_sign = draw(*shape), draw(*shape), draw(*shape), draw(*shape)
    x = x.long()
    resampled = (u_value * (limits + 1)).floor().long().minimum(limits)  # (..., L) uniform in 0..limit
    amount = (u_amount * (MAX_STEP + 1)).floor().long().clamp(max=MAX_STEP)  # (..., L) uniform in 0..3
    moved = torch.where(u_sign < 0.5, (x - amount).clamp(min=0), torch.minimum(x + amount, limits))
    return torch.where(u_resample < RESAMPLE_PROBABILITY, resampled, moved).to(policy_levels.dtype)


def quantile_size(population: int, fraction: float) -> int:
    """How many members the top and the bottom quantiles hold (Ray Tune's rule).

    ``ceil(population * fraction)``, at most half the population; 0 below two members.
    """
    if population <= 1:
        return 0
    n = int(math.ceil(population * fraction))
    return min(n, population // 2)


def exploit(scores: Tensor, fraction: float = 0.25, generator: torch.Generator | None = None) -> Tensor:
    """Which member each bottom-quantile member copies (truncation selection).

    Args:
        scores: (N,) one score per member, higher is better (e.g. validation accuracy).
        fraction: the size of the top and bottom quantiles, in ``(0, 0.5]``.
        generator: the random source for the choice of the member to copy (required).

    Returns:
        (N,) long on the scores' device: for a member of the bottom quantile, the index of a
        member of the top quantile drawn uniformly; ``-1`` for every other member (it keeps
        its weights and policy). Ties in score are broken by index (stable sort).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> exploit(torch.tensor([0.9, 0.1, 0.5, 0.7]), 0.25, g)
        tensor([-1,  0, -1, -1])
    """
    if generator is None:
        raise TypeError("generator must be a torch.Generator, but got None.")
    g = check_generator(generator)
    if not isinstance(scores, Tensor) or scores.ndim != 1:
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"scores must be a 1-D tensor (N,), but got {shape}.")
    if not scores.is_floating_point() and scores.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise ValueError(f"scores must be real numbers, but got dtype {scores.dtype}.")
    if scores.is_floating_point() and bool(torch.isnan(scores).any()):
        raise ValueError(f"scores must not contain NaN, but got {scores.tolist()}.")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 0.5:
        raise ValueError(f"fraction must be a number in (0, 0.5], but got {fraction!r}.")
    n = scores.shape[0]
    source = torch.full((n,), -1, dtype=torch.long, device=scores.device)
    k = quantile_size(n, fraction)
    if k == 0:
        return source
    ranked = torch.sort(scores, stable=True).indices  # (N,) worst first
    bottom, top = ranked[:k], ranked[n - k:]
    pick = (torch.rand(k, generator=g, device=g.device).to(scores.device) * k).floor().long().clamp(max=k - 1)
    source[bottom] = top[pick]
    return source
