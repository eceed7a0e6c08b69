"""Relaxed discrete choices: relaxed Bernoulli gates and Gumbel-softmax.

The noise is drawn separately from an explicit ``torch.Generator`` (the sampler layer) and
passed in, so a relaxed choice can be replayed exactly. Both choices follow the concrete
distribution (Maddison et al. 2017; Jang et al. 2017, "Categorical reparameterization with
Gumbel-softmax"): with logistic noise ``L`` a gate is
``sigmoid((logit + L) / temperature)``, and with Gumbel noise ``G`` a choice is
``softmax((logits + G) / temperature)``. ``hard=True`` gives the straight-through variant:
the forward value is the one-hot (or 0/1) argmax and the gradient is the soft one's,
``hard + (soft - soft.detach())``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-6


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, but got {temperature}.")


def logistic_noise(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Draw standard logistic noise ``log(u) - log(1 - u)`` on the generator's device."""
    u = torch.rand(shape, generator=generator, device=generator.device).clamp(_EPS, 1 - _EPS)
    return torch.log(u) - torch.log1p(-u)


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Draw standard Gumbel noise ``-log(-log(u))`` on the generator's device."""
    u = torch.rand(shape, generator=generator, device=generator.device).clamp(_EPS, 1 - _EPS)
    return -torch.log(-torch.log(u))


def relaxed_bernoulli(logits: Tensor, noise: Tensor, temperature: float, hard: bool = True) -> Tensor:
    """Relaxed Bernoulli gate with application probability ``sigmoid(logits)``.

    Args:
        logits: log-odds of applying, broadcastable to ``noise``.
        noise: standard logistic noise from :func:`logistic_noise`.
        temperature: > 0; smaller is closer to a hard 0/1 gate.
        hard: forward the 0/1 gate with the soft gate's gradient.

    Returns:
        The gate, same shape as ``noise``, in ``[0, 1]`` (in ``{0, 1}`` when ``hard``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> relaxed_bernoulli(torch.zeros(4), logistic_noise((4,), g), 0.5).shape
        torch.Size([4])

    Shape:
        - logits: broadcastable to ``noise``.
        - noise, output: any shape, e.g. :math:`(B,)`.
    """
    _check_temperature(temperature)
    soft = torch.sigmoid((logits + noise) / temperature)
    if not hard:
        return soft
    return (soft > 0.5).to(soft.dtype) + (soft - soft.detach())


def gumbel_softmax(logits: Tensor, noise: Tensor, temperature: float, hard: bool = True) -> Tensor:
    """Gumbel-softmax choice over the last dimension with probabilities ``softmax(logits)``.

    Args:
        logits: unnormalised log-probabilities, broadcastable to ``noise``.
        noise: standard Gumbel noise from :func:`gumbel_noise`.
        temperature: > 0; smaller is closer to one-hot.
        hard: forward the one-hot argmax with the soft weights' gradient.

    Returns:
        Choice weights summing to one over the last dimension.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> gumbel_softmax(torch.zeros(3), gumbel_noise((2, 3), g), 1.0).sum(-1)
        tensor([1., 1.])

    Shape:
        - logits: :math:`(K,)` or broadcastable to ``noise``.
        - noise, output: :math:`(B, K)`.
    """
    _check_temperature(temperature)
    soft = torch.softmax((logits + noise) / temperature, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return one_hot + (soft - soft.detach())
